//! Short, stable, human-readable names of task specs for logs, `status` and dry runs.

use crate::v1::{AttackConfig, AttackSpec, TaskSpec, TrainSpec, attack_config, task_spec};

/// The sweep-file name of an attack (`fgsm`, `pgd`, `pgdl2`, `cw`, `deepfool`, `autoattack`,
/// and AutoAttack's parts `apgd-ce`, `apgd-t`, `square`).
pub fn attack_name(attack: &AttackConfig) -> &'static str {
    match attack.attack {
        Some(attack_config::Attack::Fgsm(_)) => "fgsm",
        Some(attack_config::Attack::Pgd(_)) => "pgd",
        Some(attack_config::Attack::Pgdl2(_)) => "pgdl2",
        Some(attack_config::Attack::Cw(_)) => "cw",
        Some(attack_config::Attack::Deepfool(_)) => "deepfool",
        Some(attack_config::Attack::Autoattack(_)) => "autoattack",
        Some(attack_config::Attack::ApgdCe(_)) => "apgd-ce",
        Some(attack_config::Attack::ApgdT(_)) => "apgd-t",
        Some(attack_config::Attack::Square(_)) => "square",
        None => "none",
    }
}

/// `dataset/method/ipcN/seedS`.
pub fn describe_train(train: &TrainSpec) -> String {
    let dataset = train.dataset.as_ref().map_or("?", |d| d.name.as_str());
    format!("{dataset}/{}/ipc{}/seed{}", train.method, train.ipc, train.seed)
}

/// `dataset/method/ipcN/seedS attack mode`.
pub fn describe_attack(attack: &AttackSpec) -> String {
    let train = attack.train.as_ref().map(describe_train).unwrap_or_default();
    let name = attack.attack.as_ref().map_or("none", attack_name);
    let mode = if attack.targeted { "targeted" } else { "untargeted" };
    format!("{train} {name} {mode}")
}

/// Either of the above, prefixed with the task kind.
pub fn describe_task(spec: &TaskSpec) -> String {
    match &spec.kind {
        Some(task_spec::Kind::Train(train)) => format!("train {}", describe_train(train)),
        Some(task_spec::Kind::Attack(attack)) => format!("attack {}", describe_attack(attack)),
        None => "empty task".to_owned(),
    }
}
