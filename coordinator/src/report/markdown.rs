//! The Markdown rendering of a [`Report`]: a title with the metric options, then per dataset its
//! leaderboards, its multi-IPC table and, when it has models trained both ways, its
//! adversarial-training table. Numbers have two decimals; seed statistics read `mean ± std`; an
//! absent result reads `—` and an incomplete row is starred and explained. The whole training
//! split reads `Full-size` in headings and `full` in IPC lists; adversarially trained boards say
//! so in their heading, and the multi-IPC table gains a Training column when it has such rows.
//! The CREI-per-IPC tables (one per mode) follow the multi-IPC table.

use std::fmt::{Display, Write};

use super::observe::{Ipc, Stat, Training};
use super::{AtScores, AtTable, CreiPerIpcTable, Leaderboard, MultiIpcTable, Report};
use crate::metrics::{RrVariant, TimeBasis};

pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    if report.leaderboards.is_empty() {
        out.push_str("\nNo results yet.\n");
    }
    for table in &report.multi_ipc {
        let _ = write!(out, "\n## {}\n", escape(&table.dataset));
        for board in report.leaderboards.iter().filter(|board| board.dataset == table.dataset) {
            leaderboard(&mut out, board);
        }
        multi_ipc(&mut out, table);
        for per_ipc in report.crei_per_ipc.iter().filter(|per_ipc| per_ipc.dataset == table.dataset) {
            crei_per_ipc(&mut out, per_ipc);
        }
        for at in report.adversarial_training.iter().filter(|at| at.dataset == table.dataset) {
            adversarial_training(&mut out, at);
        }
    }
    out
}

fn header(out: &mut String, report: &Report) {
    let options = &report.options;
    let variant = match options.rr_variant {
        RrVariant::Beard => "beard",
        RrVariant::IRr => "i-rr",
    };
    let basis = match options.time_basis {
        TimeBasis::Wall => "wall",
        TimeBasis::PerSample => "per-sample",
        TimeBasis::Normalized => "normalized",
    };
    let _ = writeln!(out, "# BEARD report: {}\n", escape(&report.sweep_name));
    let _ = writeln!(
        out,
        "Metrics: CREI = α·RR + (1 − α)·AE with α = {}; RR variant `{variant}`; time basis \
         `{basis}`.",
        number(options.alpha)
    );
    let _ = writeln!(
        out,
        "Accuracies and scores in percent; cells are mean ± sample std over seeds. {} results.",
        report.results
    );
    if report.unplaced_results > 0 {
        let _ = writeln!(
            out,
            "{} results were left out: their spec names no dataset or no attack.",
            report.unplaced_results
        );
    }
}

fn leaderboard(out: &mut String, board: &Leaderboard) {
    let size = ipc_heading(board.ipc);
    let training = match board.training {
        Training::Standard => "",
        Training::Adversarial => ", adversarial training",
    };
    let _ = write!(out, "\n### {size}, {}{training}\n\n", board.mode.name());
    let attacks: String = board.attacks.iter().map(|attack| format!(" {attack} |")).collect();
    let rules = " --: |".repeat(board.attacks.len());
    let _ = writeln!(out, "| # | Method | Seeds | Clean |{attacks} RR | AE | CREI |");
    let _ = writeln!(out, "| --: | :-- | --: | --: |{rules} --: | --: | --: |");
    for row in &board.rows {
        let star = if row.complete { "" } else { "*" };
        let cells: String = board
            .attacks
            .iter()
            .map(|attack| {
                let cell = row.attacks.iter().find(|cell| cell.attack == *attack);
                format!(" {} |", cell.map_or_else(|| "—".to_owned(), |cell| stat(cell.robust_accuracy)))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {}{star} | {} | {} |{cells} {} | {} | {} |",
            row.rank,
            escape(&row.method),
            row.seeds,
            stat(row.clean_accuracy),
            number(row.rr),
            number(row.ae),
            number(row.crei),
        );
    }
    for row in board.rows.iter().filter(|row| !row.complete) {
        let gaps: Vec<String> = row
            .missing
            .iter()
            .map(|gap| {
                let noun = if gap.seeds.len() == 1 { "seed" } else { "seeds" };
                format!("{} {noun} {}", gap.attack, list(&gap.seeds))
            })
            .collect();
        let _ = write!(out, "\n\\* {} is missing {}.\n", escape(&row.method), gaps.join("; "));
    }
    if !board.methods_without_results.is_empty() {
        let methods: Vec<String> = board.methods_without_results.iter().map(|method| escape(method)).collect();
        let _ = write!(out, "\nNo results yet: {}.\n", methods.join(", "));
    }
}

fn multi_ipc(out: &mut String, table: &MultiIpcTable) {
    let _ = write!(out, "\n### All IPCs ({}): RRM, AEM, CREI pooled across IPCs\n\n", list(&table.ipcs));
    let with_training = table.rows.iter().any(|row| !row.training.is_standard());
    let (training_header, training_rule) = if with_training { (" Training |", " :-- |") } else { ("", "") };
    let _ = writeln!(out, "| Method |{training_header} Mode | IPCs | RRM | AEM | CREI |");
    let _ = writeln!(out, "| :-- |{training_rule} :-- | :-- | --: | --: | --: |");
    for row in &table.rows {
        let star = if row.complete { "" } else { "*" };
        let training = if with_training { format!(" {} |", row.training.name()) } else { String::new() };
        let _ = writeln!(
            out,
            "| {}{star} |{training} {} | {} | {} | {} | {} |",
            escape(&row.method),
            row.mode.name(),
            list(&row.ipcs),
            number(row.rrm),
            number(row.aem),
            number(row.crei),
        );
    }
    if table.rows.iter().any(|row| !row.complete) {
        out.push_str("\n\\* pooled over incomplete results (an IPC, attack or seed is missing).\n");
    }
}

/// The paper's Tables 2 and 3: CREI per method and IPC, for one mode (and regime).
fn crei_per_ipc(out: &mut String, table: &CreiPerIpcTable) {
    let training = if table.training.is_standard() { "" } else { ", adversarial training" };
    let _ = write!(out, "\n### CREI per IPC, {}{training}\n\n", table.mode.name());
    let columns: String = table.ipcs.iter().map(|ipc| format!(" {} |", ipc_heading(*ipc))).collect();
    let _ = writeln!(out, "| Method |{columns}");
    let _ = writeln!(out, "| :-- |{}", " --: |".repeat(table.ipcs.len()));
    for row in &table.rows {
        let star = if row.complete { "" } else { "*" };
        let cells: String =
            row.crei.iter().map(|crei| format!(" {} |", crei.map_or_else(|| "—".to_owned(), number))).collect();
        let _ = writeln!(out, "| {}{star} |{cells}", escape(&row.method));
    }
}

/// `IPC n`, or `Full-size` for the whole training split.
pub(super) fn ipc_heading(ipc: Ipc) -> String {
    match ipc {
        Ipc::PerClass(ipc) => format!("IPC {ipc}"),
        Ipc::Full => "Full-size".to_owned(),
    }
}

/// The paper's Table 4: each setting's scores without (std) and with adversarial training (AT).
fn adversarial_training(out: &mut String, table: &AtTable) {
    out.push_str("\n### Adversarial training: standard (std) vs adversarial (AT)\n\n");
    out.push_str(
        "| Method | IPC | Mode | Clean std | Clean AT | RRM std | RRM AT | AEM std | AEM AT | CREI std | CREI AT | \
         Δ CREI |\n",
    );
    let _ = writeln!(out, "| :-- | :-- | :-- |{}", " --: |".repeat(9));
    for row in &table.rows {
        let complete = [row.standard, row.adversarial].iter().flatten().all(|side| side.complete);
        let star = if complete { "" } else { "*" };
        let side = |pick: fn(&AtScores) -> String| {
            [row.standard, row.adversarial]
                .iter()
                .map(|side| format!(" {} |", side.as_ref().map_or_else(|| "—".to_owned(), pick)))
                .collect::<String>()
        };
        let _ = writeln!(
            out,
            "| {}{star} | {} | {} |{}{}{}{} {} |",
            escape(&row.method),
            row.ipc,
            row.mode.name(),
            side(|scores| stat(scores.clean_accuracy)),
            side(|scores| number(scores.rrm)),
            side(|scores| number(scores.aem)),
            side(|scores| number(scores.crei)),
            row.crei_change.map_or_else(|| "—".to_owned(), number),
        );
    }
    if table.rows.iter().any(|row| [row.standard, row.adversarial].iter().flatten().any(|side| !side.complete)) {
        out.push_str("\n\\* a side misses results (an attack or a seed).\n");
    }
}

/// Two decimals, without a minus sign on a value that rounds to zero.
pub(super) fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    if text == "-0.00" { "0.00".to_owned() } else { text }
}

pub(super) fn stat(value: Stat) -> String {
    format!("{} ± {}", number(value.mean), number(value.std))
}

fn list<T: Display>(values: &[T]) -> String {
    values.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// Keeps user-chosen names (sweep, dataset, method) from breaking tables or emphasis.
fn escape(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut out, character| {
        if matches!(character, '|' | '*' | '`' | '\\') {
            out.push('\\');
        }
        if character == '\n' {
            out.push(' ')
        } else {
            out.push(character)
        }
        out
    })
}
