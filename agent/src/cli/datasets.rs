//! `agent datasets fetch`: put a dataset's official archive (CIFAR-10, CIFAR-100, TinyImageNet)
//! where a loader reads it: downloaded from its published address (or taken from a file the user
//! downloaded elsewhere), checked against its published MD5 and unpacked ([`crate::data::fetch`]).

use std::path::PathBuf;

use crate::data::fetch::{self, FetchError, Progress};

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchConfig {
    /// `cifar10`, `cifar100` or `tinyimagenet`.
    pub dataset: String,
    /// The directory to unpack into; the dataset's root becomes a directory inside it.
    pub to: PathBuf,
    /// Download from here instead of the official address (the checksum stays the published one).
    pub url: Option<String>,
    /// Install this archive instead of downloading one.
    pub archive: Option<PathBuf>,
}

/// Fetch the dataset `config` names, reporting progress; the dataset's root directory.
pub fn run(config: &FetchConfig, progress: impl FnMut(Progress)) -> Result<PathBuf, FetchError> {
    let mut source = fetch::official(&config.dataset)?;
    if let Some(url) = &config.url {
        source.url.clone_from(url);
    }
    match &config.archive {
        Some(archive) => fetch::install(archive, &source, &config.to, progress),
        None => fetch::fetch(&source, &config.to, progress),
    }
}
