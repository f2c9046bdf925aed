//! `coordinator import-beard-logs FILE...`: BEARD's reference evaluation logs on this project's
//! leaderboards, tables and HTML report, printed or written to a directory; no server involved.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;

use super::output::OutputArgs;
use crate::import::{LogFile, import, scores, scores_json};
use crate::metrics::{MetricOptions, RrVariant};
use crate::report::{Provenance, site};

#[derive(clap::Args)]
pub(super) struct ImportArgs {
    /// BEARD evaluation logs; method, dataset and IPC are read from each result line.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
    /// Weight of RR in CREI, in [0, 1].
    #[arg(long, default_value_t = 0.5, value_parser = parse_alpha)]
    alpha: f64,
    /// Robustness Ratio formula.
    #[arg(long, value_enum, default_value_t = RrVariantArg::Beard)]
    rr_variant: RrVariantArg,
}

/// [`RrVariant`] on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum RrVariantArg {
    Beard,
    IRr,
}

fn parse_alpha(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(alpha) if (0.0..=1.0).contains(&alpha) => Ok(alpha),
        _ => Err(format!("`{text}` is not a number in [0, 1]")),
    }
}

pub(super) fn run(args: &ImportArgs) -> anyhow::Result<()> {
    args.output.check()?;
    let mut texts = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        texts.push((path.display().to_string(), text));
    }
    let files: Vec<LogFile<'_>> = texts.iter().map(|(name, text)| LogFile { name, text }).collect();
    let rr_variant = match args.rr_variant {
        RrVariantArg::Beard => RrVariant::Beard,
        RrVariantArg::IRr => RrVariant::IRr,
    };
    let options = MetricOptions { alpha: args.alpha, rr_variant, ..MetricOptions::default() };
    let report = import(&files)?.report(options);
    let json = scores_json(&scores(&report));
    let site = if args.output.html() {
        let logs = files.iter().map(|file| (file.name, file.text));
        let provenance = Provenance::default().with_beard_logs(logs);
        site(&report, &provenance, args.output.png)?.into_iter().map(|file| (file.path, file.bytes)).collect()
    } else {
        Vec::new()
    };
    args.output.deliver(
        [("report.md", &report.to_markdown()), ("scores.json", &json), ("report.csv", &report.to_csv())],
        &site,
    )
}
