//! Short, stable, human-readable names of task specs for logs, `status` and dry runs.

use crate::evaluation::mode_name;
use crate::v1::{
    AttackConfig, AttackSpec, DistillSpec, EvaluationMode, TaskSpec, TrainSpec, attack_config, distill_spec,
    distilled_source, task_spec,
};

/// The sweep-file name of an attack (`fgsm`, `pgd`, `pgdl2`, `cw`, `deepfool`, `autoattack`,
/// AutoAttack's parts `apgd-ce`, `apgd-t`, `fab-t`, `square`, and the query attack `spsa`).
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
        Some(attack_config::Attack::FabT(_)) => "fab-t",
        Some(attack_config::Attack::Square(_)) => "square",
        Some(attack_config::Attack::Spsa(_)) => "spsa",
        None => "none",
    }
}

/// `dataset/method/ipcN/seedS`: `full` in place of `ipcN` for the whole training split, `/at`
/// before the seed for adversarial training, and `pool:` with the first 8 digits of the
/// checkpoint's SHA-256 in place of the seed for a model-pool entry.
pub fn describe_train(train: &TrainSpec) -> String {
    let dataset = train.dataset.as_ref().map_or("?", |d| d.name.as_str());
    let source = train.source.as_ref().and_then(|s| s.source.as_ref());
    let ipc = match source {
        Some(distilled_source::Source::Full(_)) => "full".to_owned(),
        _ => format!("ipc{}", train.ipc),
    };
    if let Some(distilled_source::Source::Checkpoint(pooled)) = source {
        let digest = pooled.sha256.get(..8).unwrap_or(&pooled.sha256);
        return format!("{dataset}/{}/{ipc}/pool:{digest}", train.method);
    }
    let adversarial = train.training.as_ref().is_some_and(|t| t.adversarial.is_some());
    let at = if adversarial { "/at" } else { "" };
    format!("{dataset}/{}/{ipc}{at}/seed{}", train.method, train.seed)
}

/// `dataset/method/ipcN/seedS attack mode`, then ` beard-compat` for that evaluation mode, then
/// ` -> M1, M2` naming the target methods of a transfer task.
pub fn describe_attack(attack: &AttackSpec) -> String {
    let train = attack.train.as_ref().map(describe_train).unwrap_or_default();
    let name = attack.attack.as_ref().map_or("none", attack_name);
    let mode = if attack.targeted { "targeted" } else { "untargeted" };
    let evaluation = attack.evaluation.as_ref().map_or(EvaluationMode::Standard, |evaluation| evaluation.mode());
    let mut text = match evaluation {
        EvaluationMode::Standard => format!("{train} {name} {mode}"),
        other => format!("{train} {name} {mode} {}", mode_name(other)),
    };
    if !attack.transfer_targets.is_empty() {
        let methods: Vec<&str> = attack
            .transfer_targets
            .iter()
            .filter_map(|target| target.train.as_ref())
            .map(|t| t.method.as_str())
            .collect();
        text.push_str(&format!(" -> {}", methods.join(", ")));
    }
    text
}

/// `dataset/method/ipcN/seedS algorithm`, e.g. `synthetic/DM/ipc1/seed0 dm`.
pub fn describe_distill(distill: &DistillSpec) -> String {
    let dataset = distill.dataset.as_ref().map_or("?", |d| d.name.as_str());
    let algorithm = match &distill.algorithm {
        Some(distill_spec::Algorithm::Dm(_)) => "dm",
        Some(distill_spec::Algorithm::GradientMatching(config)) if config.matching.as_ref().is_some_and(|m| m.dsa) => {
            "dsa"
        }
        Some(distill_spec::Algorithm::GradientMatching(_)) => "dc",
        Some(distill_spec::Algorithm::Idm(config)) if config.bacon => "bacon",
        Some(distill_spec::Algorithm::Idm(_)) => "idm",
        Some(distill_spec::Algorithm::Herding(_)) => "herding",
        Some(distill_spec::Algorithm::Kcenter(_)) => "kcenter",
        None => "none",
    };
    format!("{dataset}/{}/ipc{}/seed{} {algorithm}", distill.method, distill.ipc, distill.seed)
}

/// Whether a train spec is a model-pool entry (a checkpoint attacked as it is, never trained).
pub fn is_pooled(train: &TrainSpec) -> bool {
    matches!(train.source.as_ref().and_then(|s| s.source.as_ref()), Some(distilled_source::Source::Checkpoint(_)))
}

/// Either of the above, prefixed with the task kind.
pub fn describe_task(spec: &TaskSpec) -> String {
    match &spec.kind {
        Some(task_spec::Kind::Train(train)) if is_pooled(train) => format!("model-pool {}", describe_train(train)),
        Some(task_spec::Kind::Train(train)) => format!("train {}", describe_train(train)),
        Some(task_spec::Kind::Attack(attack)) if !attack.transfer_targets.is_empty() => {
            format!("transfer {}", describe_attack(attack))
        }
        Some(task_spec::Kind::Attack(attack)) => format!("attack {}", describe_attack(attack)),
        Some(task_spec::Kind::Distill(distill)) => format!("distill {}", describe_distill(distill)),
        None => "empty task".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{
        AdversarialTraining, AttackConfig, DatasetRef, DistilledSource, Fgsm, FullTrainSplit, PooledCheckpoint,
        TrainingConfig, TransferTarget, attack_config,
    };

    #[test]
    fn train_descriptions_name_full_sets_and_adversarial_training() {
        let mut train = TrainSpec {
            dataset: Some(DatasetRef { name: "cifar10".into(), root: String::new() }),
            method: "DM".into(),
            ipc: 10,
            seed: 2,
            ..Default::default()
        };
        assert_eq!(describe_train(&train), "cifar10/DM/ipc10/seed2");
        train.training =
            Some(TrainingConfig { adversarial: Some(AdversarialTraining::default()), ..Default::default() });
        assert_eq!(describe_train(&train), "cifar10/DM/ipc10/at/seed2");
        train.source = Some(DistilledSource { source: Some(distilled_source::Source::Full(FullTrainSplit {})) });
        train.ipc = 0;
        assert_eq!(describe_train(&train), "cifar10/DM/full/at/seed2");
    }

    #[test]
    fn model_pool_entries_are_named_by_their_checkpoint() {
        let pooled = PooledCheckpoint { sha256: "0123456789abcdef".repeat(4) };
        let train = TrainSpec {
            dataset: Some(DatasetRef { name: "cifar10".into(), root: String::new() }),
            method: "DM".into(),
            ipc: 50,
            source: Some(DistilledSource { source: Some(distilled_source::Source::Checkpoint(pooled)) }),
            ..Default::default()
        };
        assert!(is_pooled(&train));
        let task = TaskSpec { kind: Some(task_spec::Kind::Train(train)) };
        assert_eq!(describe_task(&task), "model-pool cifar10/DM/ipc50/pool:01234567");
    }

    #[test]
    fn transfer_tasks_name_their_target_methods() {
        let model = |method: &str| TrainSpec {
            dataset: Some(DatasetRef { name: "cifar10".into(), root: String::new() }),
            method: method.into(),
            ipc: 1,
            ..Default::default()
        };
        let target = |method: &str| TransferTarget { train_task_id: String::new(), train: Some(model(method)) };
        let attack = AttackSpec {
            train: Some(model("DC")),
            attack: Some(AttackConfig { attack: Some(attack_config::Attack::Fgsm(Fgsm { eps: 0.03 })) }),
            transfer_targets: vec![target("DM"), target("DSA")],
            ..Default::default()
        };
        let task = TaskSpec { kind: Some(task_spec::Kind::Attack(attack)) };
        assert_eq!(describe_task(&task), "transfer cifar10/DC/ipc1/seed0 fgsm untargeted -> DM, DSA");
    }
}
