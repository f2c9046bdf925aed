//! How `report` and `import-beard-logs` deliver a rendered report: one format on standard output,
//! or every file into a directory — with `--format html`, the HTML site (index.html and its
//! charts) beside report.md, .json and .csv.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(super) enum ReportFormat {
    /// Leaderboards and tables as Markdown.
    Md,
    /// The report as JSON; for import-beard-logs, RR / AE / CREI per method and dataset, per IPC
    /// and combined (scores.json with --out).
    Json,
    /// One long-format CSV of every leaderboard and table.
    Csv,
    /// A static site (index.html, sortable tables, pickers, charts) written with --out.
    Html,
}

/// Where and how a report goes, as the command line asks for it.
#[derive(clap::Args)]
pub(super) struct OutputArgs {
    /// Format printed to standard output (html needs --out).
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Write every format into this directory instead of printing; with --format html also the
    /// HTML report (index.html and plots/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --format html: draw every chart as PNG too, beside its SVG.
    #[arg(long)]
    pub png: bool,
}

impl OutputArgs {
    /// Rejects combinations that cannot be honoured, before any work is done.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.format == ReportFormat::Html && self.out.is_none() {
            bail!("--format html writes a directory: add --out DIR");
        }
        if self.png && self.format != ReportFormat::Html {
            bail!("--png draws the charts of the HTML report: add --format html");
        }
        Ok(())
    }

    pub fn html(&self) -> bool {
        self.format == ReportFormat::Html
    }

    /// Prints the chosen rendering of `texts` (markdown, json, csv: `(file name, text)`), or
    /// writes them and the `site` files (paths relative to the site's directory) into `--out`.
    pub fn deliver(&self, texts: [(&str, &str); 3], site: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        let Some(dir) = &self.out else {
            let [markdown, json, csv] = texts;
            let text = match self.format {
                ReportFormat::Md => markdown.1,
                ReportFormat::Json => json.1,
                ReportFormat::Csv => csv.1,
                ReportFormat::Html => bail!("--format html writes a directory: add --out DIR"),
            };
            print_text(text);
            return Ok(());
        };
        let mut written = Vec::new();
        for (name, text) in texts {
            written.push(write(dir, name, text.as_bytes())?);
        }
        println!("wrote {}", written.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(", "));
        if !site.is_empty() {
            for (path, bytes) in site {
                write(dir, path, bytes)?;
            }
            let charts = site.len() - 1;
            println!(
                "HTML report: {} ({charts} chart files in {})",
                dir.join("index.html").display(),
                dir.join("plots").display()
            );
        }
        Ok(())
    }
}

/// Writes `bytes` to `dir/relative`, creating the folders on the way; `relative` must stay
/// inside `dir` (site paths come from the coordinator).
fn write(dir: &Path, relative: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let inside = Path::new(relative).components().all(|part| matches!(part, Component::Normal(_)));
    if !inside || relative.is_empty() {
        bail!("refusing to write `{relative}`: a report file must be a relative path inside {}", dir.display());
    }
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Prints a rendered report, ending in exactly one line break.
pub(super) fn print_text(text: &str) {
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}
