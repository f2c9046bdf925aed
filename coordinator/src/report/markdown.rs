//! The Markdown rendering of a [`Report`]: a title with the metric options, then per dataset its
//! leaderboards and its multi-IPC table. Numbers have two decimals; seed statistics read
//! `mean ± std`; an absent result reads `—` and an incomplete row is starred and explained.

use std::fmt::Write;

use super::observe::Stat;
use super::{Leaderboard, MultiIpcTable, Report};
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
    let _ = write!(out, "\n### IPC {}, {}\n\n", board.ipc, board.mode.name());
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
    out.push_str("| Method | Mode | IPCs | RRM | AEM | CREI |\n");
    out.push_str("| :-- | :-- | :-- | --: | --: | --: |\n");
    for row in &table.rows {
        let star = if row.complete { "" } else { "*" };
        let _ = writeln!(
            out,
            "| {}{star} | {} | {} | {} | {} | {} |",
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

/// Two decimals, without a minus sign on a value that rounds to zero.
fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    if text == "-0.00" { "0.00".to_owned() } else { text }
}

fn stat(value: Stat) -> String {
    format!("{} ± {}", number(value.mean), number(value.std))
}

fn list(values: &[u32]) -> String {
    values.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
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
