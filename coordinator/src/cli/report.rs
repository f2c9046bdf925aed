//! `coordinator report SWEEP`: the report a running coordinator builds of a sweep — with
//! `--with-import`, BEARD's logs ranked on its beard-compat boards — printed or written to a
//! directory.

use std::path::PathBuf;

use anyhow::{Context, bail};
use beard_proto::v1::{ImportedLog, ReportRequest};

use super::output::OutputArgs;
use super::{Target, connect};

#[derive(clap::Args)]
pub(super) struct ReportArgs {
    /// Sweep id (as printed by `submit`).
    sweep: String,
    #[command(flatten)]
    output: OutputArgs,
    /// BEARD evaluation logs whose methods join the sweep's on the same boards: the beard-compat
    /// ones, since the logs' numbers come from BEARD's reference code.
    #[arg(long = "with-import", value_name = "FILE", num_args = 1..)]
    with_import: Vec<PathBuf>,
    #[command(flatten)]
    target: Target,
}

pub(super) async fn run(args: ReportArgs) -> anyhow::Result<()> {
    args.output.check()?;
    let mut imports = Vec::with_capacity(args.with_import.len());
    for path in &args.with_import {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        imports.push(ImportedLog { name: path.display().to_string(), text });
    }
    let request = ReportRequest { sweep_id: args.sweep, imports, html: args.output.html(), png: args.output.png };
    let mut client = connect(&args.target).await?;
    let report = match client.report(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => bail!("{}", status.message()),
        Err(status) => return Err(status.into()),
    };
    let site: Vec<(String, Vec<u8>)> = report.html_files.into_iter().map(|file| (file.path, file.content)).collect();
    args.output
        .deliver([("report.md", &report.markdown), ("report.json", &report.json), ("report.csv", &report.csv)], &site)
}
