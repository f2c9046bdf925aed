//! The Markdown rendering of a [`Report`]: a title with the metric options, then per dataset its
//! leaderboards, its multi-IPC table (one per evaluation mode), its CREI-per-IPC tables, when it
//! has models trained both ways its adversarial-training tables, and when it has settings
//! evaluated both ways the comparison of the evaluation modes; then the transfer matrices (the
//! white-box diagonal in bold) and black-box boards, when there are any. Numbers have two decimals; seed
//! statistics read `mean ± std`; an absent result reads `—` and an incomplete row is starred and
//! explained; a model-pool row reads `(model pool)` after its method. The whole training split
//! reads `Full-size` in headings and `full` in IPC lists.
//! Every heading names the evaluation mode of its numbers (`standard evaluation`, `beard-compat
//! evaluation`); adversarially trained boards say so in their heading, and a multi-IPC table
//! gains a Training column when it has such rows.

use std::fmt::{Display, Write};

use super::observe::{Evaluation, Ipc, Stat, Training};
use super::{
    AtScores, AtTable, CreiPerIpcTable, EvaluatedAccuracy, EvaluationComparison, Leaderboard, MultiIpcTable, Report,
    TransferSetting, TransferTables,
};
use crate::metrics::{RrVariant, TimeBasis};

pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    if report.leaderboards.is_empty() && report.transfer.is_empty() {
        out.push_str("\nNo results yet.\n");
    }
    for table in &report.multi_ipc {
        let _ = write!(out, "\n## {}\n", escape(&table.dataset));
        for board in report.leaderboards.iter().filter(|board| board.dataset == table.dataset) {
            leaderboard(&mut out, board);
        }
        for evaluation in table.evaluations() {
            multi_ipc(&mut out, table, evaluation);
        }
        for per_ipc in report.crei_per_ipc.iter().filter(|per_ipc| per_ipc.dataset == table.dataset) {
            crei_per_ipc(&mut out, per_ipc);
        }
        for at in report.adversarial_training.iter().filter(|at| at.dataset == table.dataset) {
            adversarial_training(&mut out, at);
        }
        for comparison in report.evaluation_modes.iter().filter(|comparison| comparison.dataset == table.dataset) {
            evaluation_modes(&mut out, comparison);
        }
    }
    transfer(&mut out, &report.transfer);
    out
}

/// The transfer matrices, then the black-box boards.
fn transfer(out: &mut String, tables: &TransferTables) {
    if tables.is_empty() {
        return;
    }
    out.push_str(
        "\n## Transfer attacks\n\nRobust accuracy of each target model (columns) against the true labels on the \
         examples crafted on each source model (rows); the diagonal, where the source judges its own examples, \
         is the white-box figure.\n",
    );
    for matrix in &tables.matrices {
        let _ = write!(out, "\n### {}, {}\n\n", setting_heading(&matrix.setting), matrix.attack);
        let targets: String = matrix.targets.iter().map(|target| format!(" {} |", escape(target))).collect();
        let _ = writeln!(out, "| Source (row) / target (column) |{targets}");
        let _ = writeln!(out, "| :-- |{}", " --: |".repeat(matrix.targets.len()));
        for (source, cells) in matrix.sources.iter().zip(&matrix.cells) {
            let cells: String = cells
                .iter()
                .zip(&matrix.targets)
                .map(|(cell, target)| {
                    let text = cell.map_or_else(|| "—".to_owned(), stat);
                    if target == source { format!(" **{text}** |") } else { format!(" {text} |") }
                })
                .collect();
            let _ = writeln!(out, "| {} |{cells}", escape(source));
        }
    }
    out.push_str(
        "\n### Black-box scores per target\n\nBEARD's `metrics/black_box`: per target model, the target's clean and \
         robust accuracies on each source's examples, with the source's attack times; RR, AE and CREI as on the \
         white-box boards.\n",
    );
    for board in &tables.black_box {
        let _ = write!(out, "\n#### Target {}: {}\n\n", escape(&board.target), setting_heading(&board.setting));
        let attacks: String = board.attacks.iter().map(|attack| format!(" {attack} |")).collect();
        let _ = writeln!(out, "| Source | Clean |{attacks} RR | AE | CREI |");
        let _ = writeln!(out, "| :-- | --: |{} --: | --: | --: |", " --: |".repeat(board.attacks.len()));
        for row in &board.rows {
            let cells: String = row
                .robust_accuracy
                .iter()
                .map(|value| format!(" {} |", value.map_or_else(|| "—".to_owned(), number)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} |{cells} {} | {} | {} |",
                escape(&row.source),
                number(row.clean_accuracy),
                number(row.scores.rr),
                number(row.scores.ae),
                number(row.scores.crei)
            );
        }
    }
}

/// `cifar10, IPC 10, untargeted (standard evaluation)`, with the training regime when adversarial.
fn setting_heading(setting: &TransferSetting) -> String {
    format!(
        "{}, {}, {}{}",
        escape(&setting.dataset),
        ipc_heading(setting.ipc),
        setting.mode.name(),
        regime(setting.training, setting.evaluation)
    )
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
    if !report.devices.is_empty() {
        let devices: Vec<String> =
            report.devices.iter().map(|d| format!("`{}` ({} results)", escape(&d.device), d.results)).collect();
        let _ = writeln!(out, "Computed on (device, precision): {}.", devices.join(", "));
    }
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
    let _ = write!(out, "\n### {size}, {}{}\n\n", board.mode.name(), regime(board.training, board.evaluation));
    let attacks: String = board.attacks.iter().map(|attack| format!(" {attack} |")).collect();
    let rules = " --: |".repeat(board.attacks.len());
    let _ = writeln!(out, "| # | Method | Seeds | Clean |{attacks} RR | AE | CREI |");
    let _ = writeln!(out, "| --: | :-- | --: | --: |{rules} --: | --: | --: |");
    for row in &board.rows {
        let star = if row.complete { "" } else { "*" };
        let pooled = if row.model_pool { " (model pool)" } else { "" };
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
            "| {} | {}{pooled}{star} | {} | {} |{cells} {} | {} | {} |",
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

/// The rows of `table` evaluated in `evaluation`.
fn multi_ipc(out: &mut String, table: &MultiIpcTable, evaluation: Evaluation) {
    let _ = write!(
        out,
        "\n### All IPCs ({}), {} evaluation: RRM, AEM, CREI pooled across IPCs\n\n",
        list(&table.ipcs),
        evaluation.name()
    );
    let rows: Vec<_> = table.rows.iter().filter(|row| row.evaluation == evaluation).collect();
    let with_training = rows.iter().any(|row| !row.training.is_standard());
    let (training_header, training_rule) = if with_training { (" Training |", " :-- |") } else { ("", "") };
    let _ = writeln!(out, "| Method |{training_header} Mode | IPCs | RRM | AEM | CREI |");
    let _ = writeln!(out, "| :-- |{training_rule} :-- | :-- | --: | --: | --: |");
    for row in &rows {
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
    if rows.iter().any(|row| !row.complete) {
        out.push_str("\n\\* pooled over incomplete results (an IPC, attack or seed is missing).\n");
    }
}

/// The paper's Tables 2 and 3: CREI per method and IPC, for one mode (and regime and evaluation).
fn crei_per_ipc(out: &mut String, table: &CreiPerIpcTable) {
    let _ = write!(out, "\n### CREI per IPC, {}{}\n\n", table.mode.name(), regime(table.training, table.evaluation));
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

/// What a heading says after the mode: `, adversarial training` for that regime, then the
/// evaluation mode (`, standard evaluation`, `, beard-compat evaluation`).
pub(super) fn regime(training: Training, evaluation: Evaluation) -> String {
    let training = match training {
        Training::Standard => "",
        Training::Adversarial => ", adversarial training",
    };
    format!("{training}, {} evaluation", evaluation.name())
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
    let _ = write!(
        out,
        "\n### Adversarial training: standard (std) vs adversarial (AT), {} evaluation\n\n",
        table.evaluation.name()
    );
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

/// The evaluation modes side by side: every attack's robust accuracy under standard and under
/// beard-compat, and beard-compat minus standard (Δ).
fn evaluation_modes(out: &mut String, table: &EvaluationComparison) {
    let (standard, compat) = (Evaluation::STANDARD.name(), Evaluation::BEARD_COMPAT.name());
    let _ = write!(out, "\n### Evaluation modes: robust accuracy under {standard} vs {compat}\n\n");
    let with_training = table.rows.iter().any(|row| !row.training.is_standard());
    let (training_header, training_rule) = if with_training { (" Training |", " :-- |") } else { ("", "") };
    let _ = writeln!(
        out,
        "| Method | IPC |{training_header} Mode | Attack | Clean {standard} | Clean {compat} | Robust {standard} | \
         Robust {compat} | Δ ({compat} − {standard}) |"
    );
    let _ = writeln!(out, "| :-- | :-- |{training_rule} :-- | :-- |{}", " --: |".repeat(5));
    for row in &table.rows {
        let sides = [row.standard, row.beard_compat];
        let complete = sides.iter().flatten().all(|side| side.complete);
        let star = if complete { "" } else { "*" };
        let side = |pick: fn(&EvaluatedAccuracy) -> Stat| {
            sides
                .iter()
                .map(|side| format!(" {} |", side.as_ref().map_or_else(|| "—".to_owned(), |side| stat(pick(side)))))
                .collect::<String>()
        };
        let training = if with_training { format!(" {} |", row.training.name()) } else { String::new() };
        let _ = writeln!(
            out,
            "| {}{star} | {} |{training} {} | {} |{}{} {} |",
            escape(&row.method),
            row.ipc,
            row.mode.name(),
            row.attack,
            side(|side| side.clean_accuracy),
            side(|side| side.robust_accuracy),
            row.difference.map_or_else(|| "—".to_owned(), number),
        );
    }
    if table.rows.iter().any(|row| [row.standard, row.beard_compat].iter().flatten().any(|side| !side.complete)) {
        out.push_str("\n\\* a side misses seeds of this attack.\n");
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
