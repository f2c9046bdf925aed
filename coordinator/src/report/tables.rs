//! Setting summaries -> the report's tables: one leaderboard per (dataset, evaluation mode,
//! training regime, IPC, targeted or not), ranked by CREI, and one multi-IPC table per dataset with
//! RRM / AEM / CREI pooled across IPCs per (method, evaluation mode, regime, targeted or not). The
//! models trained on the whole training split have their own leaderboards (IPC `full`) and
//! multi-IPC rows. The side-by-side tables read off the leaderboards are in the compare module.
//!
//! Completeness is judged against what the dataset's results show: every row of a dataset is
//! expected to have every seed seen anywhere in the dataset, for every attack seen anywhere in the
//! dataset in the same evaluation mode and targeting, and a multi-IPC row every IPC of its kind
//! (per class, or full) seen in the dataset. Methods come in the sweep's order; methods of the
//! sweep without a row in a leaderboard are listed as still without results (a method with results
//! on the full training split on the full-split boards only, the others on the per-class boards
//! only; on the boards of an evaluation mode only when the sweep's methods have results in it, so
//! that the boards of imported BEARD logs do not list the sweep's methods).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::observe::{Attack, Evaluation, Ipc, Mode, SettingSummary, Stat, Training};
use crate::metrics::{MetricOptions, evaluate, pool_across_ipcs, single_adversary};

/// One leaderboard: the methods of one (dataset, evaluation mode, regime, IPC, mode), best CREI
/// first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    pub dataset: String,
    pub ipc: Ipc,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub evaluation: Evaluation,
    pub mode: Mode,
    /// Attack columns: the attacks seen in this dataset, evaluation mode and mode.
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
    /// A model-pool checkpoint, attacked as it is (not trained by the sweep).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub model_pool: bool,
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
    /// Standard evaluation first, then methods in the sweep's order, standard training first,
    /// untargeted first.
    pub rows: Vec<MultiIpcRow>,
}

impl MultiIpcTable {
    /// The evaluation modes of the rows, standard first.
    pub fn evaluations(&self) -> BTreeSet<Evaluation> {
        self.rows.iter().map(|row| row.evaluation).collect()
    }
}

/// One method, regime, evaluation mode and mode pooled across the IPCs it has results for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiIpcRow {
    pub method: String,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub evaluation: Evaluation,
    pub mode: Mode,
    pub ipcs: Vec<Ipc>,
    pub rrm: f64,
    pub aem: f64,
    pub crei: f64,
    /// False when an IPC of the dataset (of the row's kind) or an expected (attack, seed) result
    /// is missing.
    pub complete: bool,
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
    let swept = settings
        .iter()
        .filter(|setting| order.names(&setting.key.method))
        .map(|setting| setting.key.evaluation)
        .collect();
    let expected_methods = ExpectedMethods { order: &order, full: full_methods, evaluations: swept };
    let mut datasets: BTreeMap<&str, Vec<&SettingSummary>> = BTreeMap::new();
    for setting in settings {
        datasets.entry(setting.key.dataset.as_str()).or_default().push(setting);
    }
    let mut leaderboards = Vec::new();
    let mut multi_ipc = Vec::new();
    for (dataset, settings) in datasets {
        let expected = Expected::of(&settings);
        leaderboards.extend(dataset_leaderboards(dataset, &settings, &expected, options, &expected_methods));
        multi_ipc.push(multi_ipc_table(dataset, &settings, &expected, options, &order));
    }
    (leaderboards, multi_ipc)
}

/// What every row of one dataset should have.
struct Expected {
    seeds: BTreeSet<u32>,
    attacks: BTreeMap<(Evaluation, Mode), BTreeSet<Attack>>,
}

impl Expected {
    fn of(settings: &[&SettingSummary]) -> Self {
        let mut expected = Self { seeds: BTreeSet::new(), attacks: BTreeMap::new() };
        for setting in settings {
            expected.seeds.extend(&setting.seeds);
            let columns = expected.attacks.entry((setting.key.evaluation, setting.key.mode)).or_default();
            columns.extend(setting.attacks.iter().map(|summary| summary.attack));
        }
        expected
    }

    fn columns(&self, evaluation: Evaluation, mode: Mode) -> impl Iterator<Item = Attack> + '_ {
        self.attacks.get(&(evaluation, mode)).into_iter().flatten().copied()
    }

    /// Expected (attack, seed) results the setting lacks.
    fn missing(&self, setting: &SettingSummary) -> Vec<MissingAttack> {
        self.columns(setting.key.evaluation, setting.key.mode)
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
pub(super) struct MethodOrder<'a>(pub &'a [String]);

impl MethodOrder<'_> {
    pub fn compare(&self, left: &str, right: &str) -> Ordering {
        self.position(left).cmp(&self.position(right)).then_with(|| left.cmp(right))
    }

    fn position(&self, method: &str) -> usize {
        self.0.iter().position(|known| known == method).unwrap_or(self.0.len())
    }

    /// Whether the sweep names `method`.
    fn names(&self, method: &str) -> bool {
        self.0.iter().any(|known| known == method)
    }
}

/// The sweep's methods each leaderboard expects.
struct ExpectedMethods<'a> {
    order: &'a MethodOrder<'a>,
    /// Methods with results on the whole training split.
    full: BTreeSet<&'a str>,
    /// Evaluation modes the sweep's methods have results in.
    evaluations: BTreeSet<Evaluation>,
}

impl ExpectedMethods<'_> {
    /// The sweep's methods expected on a board of `ipc` and `evaluation` but absent from `rows`.
    fn without_results(&self, ipc: Ipc, evaluation: Evaluation, rows: &[LeaderboardRow]) -> Vec<String> {
        if !self.evaluations.contains(&evaluation) {
            return Vec::new();
        }
        self.order
            .0
            .iter()
            .filter(|method| self.full.contains(method.as_str()) == (ipc == Ipc::Full))
            .filter(|method| rows.iter().all(|row| &row.method != *method))
            .cloned()
            .collect()
    }
}

/// Descending, with NaN after every number.
fn descending(left: f64, right: f64) -> Ordering {
    match (left.is_nan(), right.is_nan()) {
        (false, false) => right.total_cmp(&left),
        (left_nan, right_nan) => left_nan.cmp(&right_nan),
    }
}

/// The leaderboards of one dataset: standard evaluation first, then standard training, then IPC
/// ascending (full last), untargeted before targeted.
fn dataset_leaderboards(
    dataset: &str,
    settings: &[&SettingSummary],
    expected: &Expected,
    options: &MetricOptions,
    methods: &ExpectedMethods<'_>,
) -> Vec<Leaderboard> {
    let order = methods.order;
    let mut boards: BTreeMap<(Evaluation, Training, Ipc, Mode), Vec<&SettingSummary>> = BTreeMap::new();
    for setting in settings {
        let key = &setting.key;
        boards.entry((key.evaluation, key.training, key.ipc, key.mode)).or_default().push(setting);
    }
    boards
        .into_iter()
        .map(|((evaluation, training, ipc, mode), settings)| {
            let mut rows: Vec<LeaderboardRow> =
                settings.iter().map(|setting| leaderboard_row(setting, expected, options)).collect();
            rows.sort_by(|left, right| {
                descending(left.crei, right.crei).then_with(|| order.compare(&left.method, &right.method))
            });
            for (index, row) in rows.iter_mut().enumerate() {
                row.rank = index + 1;
            }
            let methods_without_results = methods.without_results(ipc, evaluation, &rows);
            Leaderboard {
                dataset: dataset.to_owned(),
                ipc,
                training,
                evaluation,
                mode,
                attacks: expected.columns(evaluation, mode).map(Attack::name).collect(),
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
        model_pool: setting.model_pool,
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
    let mut groups: BTreeMap<(&str, Evaluation, Training, Mode), Vec<&SettingSummary>> = BTreeMap::new();
    for setting in settings {
        let key = &setting.key;
        groups.entry((key.method.as_str(), key.evaluation, key.training, key.mode)).or_default().push(setting);
    }
    let mut rows: Vec<MultiIpcRow> = groups
        .into_iter()
        .map(|((method, evaluation, training, mode), settings)| {
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
                evaluation,
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
        left.evaluation
            .cmp(&right.evaluation)
            .then_with(|| order.compare(&left.method, &right.method))
            .then(left.training.cmp(&right.training))
            .then(left.mode.cmp(&right.mode))
    });
    MultiIpcTable { dataset: dataset.to_owned(), ipcs: ipcs.into_iter().collect(), rows }
}
