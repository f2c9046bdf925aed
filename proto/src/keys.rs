//! Content keys: a task is named by the SHA-256 of everything that determines its output.
//!
//! The key hashes a domain tag and the prost encoding of the [`TaskSpec`]. Proto3 messages
//! without maps encode deterministically (fields in tag order, defaults omitted), so the same
//! spec always gives the same key, and adding a field with a zero default later keeps old keys.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::v1::{AttackSpec, DistillSpec, TaskSpec, TrainSpec, task_spec};

const DOMAIN_TAG: &[u8] = b"beard.v1.TaskSpec\0";

/// Content key of any task spec, as 64 lowercase hex digits.
pub fn task_key(spec: &TaskSpec) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN_TAG);
    hasher.update(spec.encode_to_vec());
    hex::encode(hasher.finalize())
}

/// Content key of a train task.
pub fn train_key(train: &TrainSpec) -> String {
    task_key(&TaskSpec { kind: Some(task_spec::Kind::Train(train.clone())) })
}

/// Content key of an attack task.
pub fn attack_key(attack: &AttackSpec) -> String {
    task_key(&TaskSpec { kind: Some(task_spec::Kind::Attack(attack.clone())) })
}

/// Content key of a distill task.
pub fn distill_key(distill: &DistillSpec) -> String {
    task_key(&TaskSpec { kind: Some(task_spec::Kind::Distill(distill.clone())) })
}

/// SHA-256 of a byte string as lowercase hex (checkpoints, blobs).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// True when `text` is a well-formed content key or digest (64 lowercase hex digits), the only
/// shape accepted from the network before it is used as a file name.
pub fn is_valid_key(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::DatasetRef;

    fn spec(seed: u32) -> TrainSpec {
        TrainSpec {
            dataset: Some(DatasetRef { name: "synthetic".into(), root: String::new() }),
            method: "random".into(),
            ipc: 10,
            seed,
            ..Default::default()
        }
    }

    #[test]
    fn equal_specs_share_a_key_and_different_specs_do_not() {
        assert_eq!(train_key(&spec(0)), train_key(&spec(0)));
        assert_ne!(train_key(&spec(0)), train_key(&spec(1)));
        assert!(is_valid_key(&train_key(&spec(3))));
    }

    #[test]
    fn keys_reject_anything_but_lowercase_hex_of_the_right_length() {
        assert!(!is_valid_key("../../etc/passwd"));
        assert!(!is_valid_key(&"A".repeat(64)));
        assert!(!is_valid_key(&"a".repeat(63)));
    }
}
