//! Setting summaries -> the report's tables: one leaderboard per (dataset, training regime, IPC,
//! mode), ranked by CREI, and one multi-IPC table per dataset with RRM / AEM / CREI pooled across
//! IPCs per (method, regime, mode). The models trained on the whole training split have their own
//! leaderboards (IPC `full`) and multi-IPC rows. When a dataset has models trained both ways, its
//! adversarial-training table (the paper's Table 4) sets each setting's standard and adversarial
//! scores side by side, taken from the leaderboards.
//!
//! Completeness is judged against what the dataset's results show: every row of a dataset is
//! expected to have every seed seen anywhere in the dataset, for every attack seen anywhere in the
//! dataset in the same mode, and a multi-IPC row every IPC of its kind (per class, or full) seen in
//! the dataset. Methods come in the sweep's order; methods of the sweep without a row in a
//! leaderboard are listed as still without results (a method with results on the full training
//! split on the full-split boards only, the others on the per-class boards only).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::observe::{Attack, Ipc, Mode, SettingSummary, Stat, Training};
use crate::metrics::{MetricOptions, evaluate, pool_across_ipcs, single_adversary};

/// One leaderboard: the methods of one (dataset, IPC, mode), best CREI first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    pub dataset: String,
    pub ipc: Ipc,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub mode: Mode,
    /// Attack columns: the attacks seen in this dataset and mode.
    pub attacks: Vec<&'static str>,
    /// Seeds expected of every row: those seen in this dataset.
    pub seeds: Vec<u32>,
    pub rows: Vec<LeaderboardRow>,
    /// Methods of the sweep with no result in this leaderboard yet.
    pub methods_without_results: Vec<String>,
}

/// One method's row of a leaderboard. Accuracies and scores in percent, times in time-basis units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderboardRow {
    /// 1 for the best CREI.
    pub rank: usize,
    pub method: String,
    /// Seeds with at least one result.
    pub seeds: usize,
    pub clean_accuracy: Stat,
    /// t_c: the smaller of the targeted and untargeted mean clean times.
    pub clean_time: f64,
    /// The row's attacks in column order; columns without a result are absent.
    pub attacks: Vec<AttackCell>,
    pub rr: f64,
    pub ae: f64,
    pub crei: f64,
    /// False when some expected (attack, seed) result is missing.
    pub complete: bool,
    pub missing: Vec<MissingAttack>,
}

/// One attack of a leaderboard row, with its single-adversary scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackCell {
    pub attack: &'static str,
    pub robust_accuracy: Stat,
    pub time: f64,
    pub seeds: usize,
    pub rrs: f64,
    pub aes: f64,
}

/// The expected seeds without a result for one attack of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingAttack {
    pub attack: &'static str,
    pub seeds: Vec<u32>,
}

/// The paper's Table 1 for one dataset: scores pooled across IPCs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiIpcTable {
    pub dataset: String,
    /// IPCs with results in this dataset.
    pub ipcs: Vec<Ipc>,
    pub rows: Vec<MultiIpcRow>,
}

/// One method, regime and mode pooled across the IPCs it has results for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiIpcRow {
    pub method: String,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub mode: Mode,
    pub ipcs: Vec<Ipc>,
    pub rrm: f64,
    pub aem: f64,
    pub crei: f64,
    /// False when an IPC of the dataset (of the row's kind) or an expected (attack, seed) result
    /// is missing.
    pub complete: bool,
}

/// The paper's Table 4 for one dataset: every (method, IPC, mode) with its scores under standard
/// and under adversarial training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtTable {
    pub dataset: String,
    /// Methods in the sweep's order, then IPC ascending (full last), untargeted first.
    pub rows: Vec<AtRow>,
}

/// One setting trained both ways; a side without results yet is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtRow {
    pub method: String,
    pub ipc: Ipc,
    pub mode: Mode,
    pub standard: Option<AtScores>,
    pub adversarial: Option<AtScores>,
    /// Adversarial minus standard CREI, when both sides have results.
    pub crei_change: Option<f64>,
}

/// The scores of one side of an [`AtRow`], as its leaderboard row has them (RRM and AEM are the
/// multi-adversary RR and AE).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AtScores {
    pub clean_accuracy: Stat,
    pub rrm: f64,
    pub aem: f64,
    pub crei: f64,
    pub complete: bool,
}

/// The adversarial-training tables of the datasets that have both standard and adversarially
/// trained models, datasets by name.
pub(crate) fn adversarial_training(leaderboards: &[Leaderboard], method_order: &[String]) -> Vec<AtTable> {
    let order = MethodOrder(method_order);
    type Sides = (Option<AtScores>, Option<AtScores>);
    let mut datasets: BTreeMap<&str, BTreeMap<(&str, Ipc, Mode), Sides>> = BTreeMap::new();
    for board in leaderboards {
        for row in &board.rows {
            let scores = AtScores {
                clean_accuracy: row.clean_accuracy,
                rrm: row.rr,
                aem: row.ae,
                crei: row.crei,
                complete: row.complete,
            };
            let sides = datasets
                .entry(board.dataset.as_str())
                .or_default()
                .entry((row.method.as_str(), board.ipc, board.mode))
                .or_default();
            match board.training {
                Training::Standard => sides.0 = Some(scores),
                Training::Adversarial => sides.1 = Some(scores),
            }
        }
    }
    datasets
        .into_iter()
        .filter(|(_, settings)| {
            settings.values().any(|sides| sides.0.is_some()) && settings.values().any(|sides| sides.1.is_some())
        })
        .map(|(dataset, settings)| {
            let mut rows: Vec<AtRow> = settings
                .into_iter()
                .map(|((method, ipc, mode), (standard, adversarial))| AtRow {
                    method: method.to_owned(),
                    ipc,
                    mode,
                    crei_change: standard
                        .zip(adversarial)
                        .map(|(standard, adversarial)| adversarial.crei - standard.crei),
                    standard,
                    adversarial,
                })
                .collect();
            rows.sort_by(|left, right| {
                order
                    .compare(&left.method, &right.method)
                    .then(left.ipc.cmp(&right.ipc))
                    .then(left.mode.cmp(&right.mode))
            });
            AtTable { dataset: dataset.to_owned(), rows }
        })
        .collect()
}

/// The leaderboards and multi-IPC tables of all datasets, datasets by name.
pub(crate) fn tables(
    settings: &[SettingSummary],
    options: &MetricOptions,
    method_order: &[String],
) -> (Vec<Leaderboard>, Vec<MultiIpcTable>) {
    let order = MethodOrder(method_order);
    let full_methods: BTreeSet<&str> =
        settings.iter().filter(|s| s.key.ipc == Ipc::Full).map(|s| s.key.method.as_str()).collect();
    let mut datasets: BTreeMap<&str, Vec<&SettingSummary>> = BTreeMap::new();
    for setting in settings {
        datasets.entry(setting.key.dataset.as_str()).or_default().push(setting);
    }
    let mut leaderboards = Vec::new();
    let mut multi_ipc = Vec::new();
    for (dataset, settings) in datasets {
        let expected = Expected::of(&settings);
        leaderboards.extend(dataset_leaderboards(dataset, &settings, &expected, options, &order, &full_methods));
        multi_ipc.push(multi_ipc_table(dataset, &settings, &expected, options, &order));
    }
    (leaderboards, multi_ipc)
}

/// What every row of one dataset should have.
struct Expected {
    seeds: BTreeSet<u32>,
    attacks: BTreeMap<Mode, BTreeSet<Attack>>,
}

impl Expected {
    fn of(settings: &[&SettingSummary]) -> Self {
        let mut expected = Self { seeds: BTreeSet::new(), attacks: BTreeMap::new() };
        for setting in settings {
            expected.seeds.extend(&setting.seeds);
            let columns = expected.attacks.entry(setting.key.mode).or_default();
            columns.extend(setting.attacks.iter().map(|summary| summary.attack));
        }
        expected
    }

    fn columns(&self, mode: Mode) -> impl Iterator<Item = Attack> + '_ {
        self.attacks.get(&mode).into_iter().flatten().copied()
    }

    /// Expected (attack, seed) results the setting lacks.
    fn missing(&self, setting: &SettingSummary) -> Vec<MissingAttack> {
        self.columns(setting.key.mode)
            .filter_map(|attack| {
                let have = setting.attacks.iter().find(|summary| summary.attack == attack);
                let seeds: Vec<u32> = self
                    .seeds
                    .iter()
                    .filter(|seed| have.is_none_or(|summary| !summary.seeds.contains(seed)))
                    .copied()
                    .collect();
                (!seeds.is_empty()).then_some(MissingAttack { attack: attack.name(), seeds })
            })
            .collect()
    }
}

/// The sweep's method order; methods it does not name come after, by name.
struct MethodOrder<'a>(&'a [String]);

impl MethodOrder<'_> {
    fn compare(&self, left: &str, right: &str) -> Ordering {
        self.position(left).cmp(&self.position(right)).then_with(|| left.cmp(right))
    }

    fn position(&self, method: &str) -> usize {
        self.0.iter().position(|known| known == method).unwrap_or(self.0.len())
    }
}

/// Descending, with NaN after every number.
fn descending(left: f64, right: f64) -> Ordering {
    match (left.is_nan(), right.is_nan()) {
        (false, false) => right.total_cmp(&left),
        (left_nan, right_nan) => left_nan.cmp(&right_nan),
    }
}

/// The leaderboards of one dataset: standard training first, then IPC ascending (full last),
/// untargeted before targeted.
fn dataset_leaderboards(
    dataset: &str,
    settings: &[&SettingSummary],
    expected: &Expected,
    options: &MetricOptions,
    order: &MethodOrder<'_>,
    full_methods: &BTreeSet<&str>,
) -> Vec<Leaderboard> {
    let mut boards: BTreeMap<(Training, Ipc, Mode), Vec<&SettingSummary>> = BTreeMap::new();
    for setting in settings {
        boards.entry((setting.key.training, setting.key.ipc, setting.key.mode)).or_default().push(setting);
    }
    boards
        .into_iter()
        .map(|((training, ipc, mode), settings)| {
            let mut rows: Vec<LeaderboardRow> =
                settings.iter().map(|setting| leaderboard_row(setting, expected, options)).collect();
            rows.sort_by(|left, right| {
                descending(left.crei, right.crei).then_with(|| order.compare(&left.method, &right.method))
            });
            for (index, row) in rows.iter_mut().enumerate() {
                row.rank = index + 1;
            }
            let methods_without_results = order
                .0
                .iter()
                .filter(|method| full_methods.contains(method.as_str()) == (ipc == Ipc::Full))
                .filter(|method| rows.iter().all(|row| &row.method != *method))
                .cloned()
                .collect();
            Leaderboard {
                dataset: dataset.to_owned(),
                ipc,
                training,
                mode,
                attacks: expected.columns(mode).map(Attack::name).collect(),
                seeds: expected.seeds.iter().copied().collect(),
                rows,
                methods_without_results,
            }
        })
        .collect()
}

/// A row with rank 0; ranks are given once the leaderboard is sorted.
fn leaderboard_row(setting: &SettingSummary, expected: &Expected, options: &MetricOptions) -> LeaderboardRow {
    let observation = setting.observation();
    let scores = evaluate(&observation, options);
    let singles = single_adversary(&observation, options.rr_variant);
    let attacks = setting
        .attacks
        .iter()
        .zip(singles)
        .map(|(summary, single)| AttackCell {
            attack: summary.attack.name(),
            robust_accuracy: summary.robust_accuracy,
            time: summary.time,
            seeds: summary.seeds.len(),
            rrs: single.rrs,
            aes: single.aes,
        })
        .collect();
    let missing = expected.missing(setting);
    LeaderboardRow {
        rank: 0,
        method: setting.key.method.clone(),
        seeds: setting.seeds.len(),
        clean_accuracy: setting.clean_accuracy,
        clean_time: setting.clean_time,
        attacks,
        rr: scores.rr,
        ae: scores.ae,
        crei: scores.crei,
        complete: missing.is_empty(),
        missing,
    }
}

fn multi_ipc_table(
    dataset: &str,
    settings: &[&SettingSummary],
    expected: &Expected,
    options: &MetricOptions,
    order: &MethodOrder<'_>,
) -> MultiIpcTable {
    let ipcs: BTreeSet<Ipc> = settings.iter().map(|setting| setting.key.ipc).collect();
    let mut groups: BTreeMap<(&str, Training, Mode), Vec<&SettingSummary>> = BTreeMap::new();
    for setting in settings {
        groups.entry((setting.key.method.as_str(), setting.key.training, setting.key.mode)).or_default().push(setting);
    }
    let mut rows: Vec<MultiIpcRow> = groups
        .into_iter()
        .map(|((method, training, mode), settings)| {
            let observations: Vec<_> = settings.iter().map(|setting| setting.observation()).collect();
            let scores = evaluate(&pool_across_ipcs(&observations), options);
            let row_ipcs: Vec<Ipc> = settings.iter().map(|setting| setting.key.ipc).collect();
            let full = row_ipcs.contains(&Ipc::Full);
            let kind = ipcs.iter().filter(|ipc| (**ipc == Ipc::Full) == full).count();
            let complete =
                row_ipcs.len() == kind && settings.iter().all(|setting| expected.missing(setting).is_empty());
            MultiIpcRow {
                method: method.to_owned(),
                training,
                mode,
                ipcs: row_ipcs,
                rrm: scores.rr,
                aem: scores.ae,
                crei: scores.crei,
                complete,
            }
        })
        .collect();
    rows.sort_by(|left, right| {
        order
            .compare(&left.method, &right.method)
            .then(left.training.cmp(&right.training))
            .then(left.mode.cmp(&right.mode))
    });
    MultiIpcTable { dataset: dataset.to_owned(), ipcs: ipcs.into_iter().collect(), rows }
}
