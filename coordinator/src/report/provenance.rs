//! Where a report's numbers come from, for its readers: the files its results were read from
//! (the sweep file, imported BEARD logs) with their SHA-256, the commit of this project that built
//! it, the devices the agents ran on, and how the results were evaluated. The metric options are
//! the report's own.

use std::collections::BTreeMap;

use beard_proto::keys::sha256_hex;
use beard_proto::v1::{AttackShard, AttackSpec, EvaluationConfig, EvaluationMode, TargetPolicy};

/// The commit of beard-rs this binary was built from (`unknown` outside a git checkout).
pub const BUILD_COMMIT: &str = env!("BEARD_GIT_COMMIT");

/// What a report was built from and with.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub sources: Vec<SourceFile>,
    /// The git commit of beard-rs that built the report.
    pub commit: String,
    /// Devices the results were computed on, by name.
    pub devices: Vec<DeviceResults>,
    /// How the results were evaluated, one line per distinct setting, in order of first mention.
    pub evaluation: Vec<String>,
}

/// A file results were read from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// `sweep` or `beard-log`.
    pub kind: &'static str,
    pub name: String,
    pub sha256: String,
}

/// A device (as the agent describes it, with the precision of its results) and how many of the
/// report's results it computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceResults {
    pub device: String,
    pub results: usize,
}

/// The devices that computed `results`, by name, with their counts (`unknown` for shards that
/// name none).
pub(crate) fn count_devices(results: &[(AttackSpec, AttackShard)]) -> Vec<DeviceResults> {
    let mut devices: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, shard) in results {
        let device = if shard.device.is_empty() { "unknown" } else { shard.device.as_str() };
        *devices.entry(device).or_default() += 1;
    }
    devices.into_iter().map(|(device, results)| DeviceResults { device: device.to_owned(), results }).collect()
}

impl Default for Provenance {
    fn default() -> Self {
        Self { sources: Vec::new(), commit: BUILD_COMMIT.to_owned(), devices: Vec::new(), evaluation: Vec::new() }
    }
}

impl Provenance {
    /// Adds a sweep file and what its results say: the devices that computed them and their
    /// evaluation settings.
    pub fn with_sweep(mut self, file_name: &str, yaml: &str, results: &[(AttackSpec, AttackShard)]) -> Self {
        self.sources.push(SourceFile {
            kind: "sweep",
            name: file_name.to_owned(),
            sha256: sha256_hex(yaml.as_bytes()),
        });
        for (spec, _) in results {
            let evaluation = describe_evaluation(spec.evaluation.as_ref());
            if !self.evaluation.contains(&evaluation) {
                self.evaluation.push(evaluation);
            }
        }
        for counted in count_devices(results) {
            match self.devices.iter_mut().find(|known| known.device == counted.device) {
                Some(known) => known.results += counted.results,
                None => self.devices.push(counted),
            }
        }
        self.devices.sort_by(|left, right| left.device.cmp(&right.device));
        self
    }

    /// Adds imported BEARD evaluation logs, `(file name, text)`.
    pub fn with_beard_logs<'a>(mut self, logs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (name, text) in logs {
            self.sources.push(SourceFile {
                kind: "beard-log",
                name: name.to_owned(),
                sha256: sha256_hex(text.as_bytes()),
            });
        }
        let imported = "imported BEARD logs: beard-compat numbers, evaluated by BEARD's reference code (its own \
                        threat model and timing)";
        if !self.evaluation.iter().any(|line| line == imported) {
            self.evaluation.push(imported.to_owned());
        }
        self
    }
}

/// One line on how a sweep's agents evaluated: the evaluation mode, the test images and the
/// target policy.
fn describe_evaluation(config: Option<&EvaluationConfig>) -> String {
    let Some(config) = config else { return "sweep results: evaluation settings not recorded".to_owned() };
    let images = match config.test_samples {
        0 => "the whole test split".to_owned(),
        count => format!("the first {count} test images"),
    };
    let (mode, policy) = match config.mode() {
        EvaluationMode::Standard => ("standard evaluation (attacks in pixel space)", target_policy(config)),
        EvaluationMode::BeardCompat => (
            "beard-compat evaluation (BEARD's reference pipeline: attacks on normalized images clamped to [0, 1])",
            "(y + 1) mod 10",
        ),
    };
    format!("sweep results: {mode} on {images}; targeted attacks aim at {policy}")
}

/// The target class of a standard evaluation, in words.
fn target_policy(config: &EvaluationConfig) -> &'static str {
    match config.target_policy() {
        TargetPolicy::Unspecified => "the agent's default target class",
        TargetPolicy::Next => "the next class",
        TargetPolicy::Random => "a random class",
        TargetPolicy::LeastLikely => "the least likely class",
    }
}

#[cfg(test)]
mod tests {
    use beard_proto::v1::AttackShard;

    use super::*;

    fn result(device: &str, test_samples: u32, mode: EvaluationMode) -> (AttackSpec, AttackShard) {
        let spec = AttackSpec {
            evaluation: Some(EvaluationConfig {
                test_samples,
                batch_size: 64,
                target_policy: TargetPolicy::Next as i32,
                mode: mode as i32,
            }),
            ..Default::default()
        };
        (spec, AttackShard { device: device.to_owned(), ..Default::default() })
    }

    #[test]
    fn devices_are_counted_and_evaluation_settings_listed_once() {
        let standard = EvaluationMode::Standard;
        let results = [
            result("cuda:0 (H100)", 0, standard),
            result("cpu", 0, standard),
            result("cuda:0 (H100)", 64, standard),
            result("", 0, standard),
            result("cpu", 0, EvaluationMode::BeardCompat),
        ];
        let provenance = Provenance::default().with_sweep("sweep.yaml", "name: x\n", &results);
        assert_eq!(provenance.sources[0].name, "sweep.yaml");
        assert_eq!(provenance.sources[0].sha256, sha256_hex(b"name: x\n"));
        let devices: Vec<(&str, usize)> =
            provenance.devices.iter().map(|device| (device.device.as_str(), device.results)).collect();
        assert_eq!(devices, [("cpu", 2), ("cuda:0 (H100)", 2), ("unknown", 1)]);
        assert_eq!(provenance.evaluation.len(), 3, "{:?}", provenance.evaluation);
        assert!(
            provenance.evaluation[0].contains("standard evaluation (attacks in pixel space) on the whole test split")
        );
        assert!(provenance.evaluation[1].contains("the first 64 test images"));
        assert!(provenance.evaluation[1].contains("aim at the next class"));
        assert!(provenance.evaluation[2].contains("beard-compat evaluation (BEARD's reference pipeline"));
        assert!(provenance.evaluation[2].contains("aim at (y + 1) mod 10"));
    }

    #[test]
    fn imported_logs_are_listed_with_their_hashes() {
        let provenance = Provenance::default().with_beard_logs([("a.log", "one"), ("b.log", "two")]);
        let names: Vec<&str> = provenance.sources.iter().map(|source| source.name.as_str()).collect();
        assert_eq!(names, ["a.log", "b.log"]);
        assert!(provenance.sources.iter().all(|source| source.kind == "beard-log"));
        assert_eq!(provenance.sources[1].sha256, sha256_hex(b"two"));
        assert_eq!(provenance.evaluation.len(), 1);
        assert_eq!(provenance.commit, BUILD_COMMIT);
    }
}
