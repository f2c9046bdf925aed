//! The static HTML report: one self-contained directory holding `index.html` (styles and script
//! inline) and the charts under `plots/` — SVG always, PNG beside them on request — readable
//! from the file system with no network.

use super::Report;
use super::figures::figures;
use super::html::{self, Chart};
use super::plots::{self, PlotError};
use super::provenance::Provenance;

/// A file of the site: its path relative to the site's directory, and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The files of the site of `report`: `index.html` first, then the charts.
pub fn site(report: &Report, provenance: &Provenance, png: bool) -> Result<Vec<SiteFile>, PlotError> {
    let figures = figures(report);
    let mut files = Vec::with_capacity(1 + figures.len() * (1 + usize::from(png)));
    for figure in &figures {
        files.push(SiteFile {
            path: format!("plots/{}.svg", figure.stem),
            bytes: plots::svg(&figure.chart)?.into_bytes(),
        });
        if png {
            files.push(SiteFile { path: format!("plots/{}.png", figure.stem), bytes: plots::png(&figure.chart)? });
        }
    }
    let charts: Vec<Chart<'_>> = figures.iter().map(|figure| Chart { figure, png }).collect();
    files.insert(
        0,
        SiteFile { path: "index.html".into(), bytes: html::index(report, provenance, &charts).into_bytes() },
    );
    Ok(files)
}
