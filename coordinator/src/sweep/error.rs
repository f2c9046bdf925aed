//! [`SweepError`]: a rejected sweep file as `file:line:column: field.path: what was expected`,
//! built from either a deserialization error or a cross-field [`Issue`].

use super::locate::locate;
use super::path::FieldPath;

/// Why a sweep file was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}:{line}:{column}: {path}{separator}{message}",
    separator = if .path.is_empty() { "" } else { ": " }
)]
pub struct SweepError {
    /// The name the file was submitted under.
    pub file: String,
    /// 1-based line of the offending node.
    pub line: usize,
    /// 1-based column of the offending node.
    pub column: usize,
    /// Field path of the offending node, such as `attacks.pgd.eps` or `ipc[1]`; empty for the
    /// document itself.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// A problem found after deserialization, named by the path of the node to blame.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Issue {
    pub(super) path: FieldPath,
    pub(super) message: String,
}

impl Issue {
    pub(super) fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Self { path, message: message.into() }
    }
}

impl SweepError {
    /// Places a cross-field issue at its node.
    pub(super) fn from_issue(file: &str, text: &str, issue: Issue) -> Self {
        let (line, column) = locate(text, &issue.path, 1);
        Self { file: file.to_owned(), line, column, path: issue.path.to_string(), message: issue.message }
    }

    /// Converts a deserialization error; `yaml_serde` gives the position and the message,
    /// `serde_path_to_error` the field path.
    pub(super) fn from_deserialize(
        file: &str,
        text: &str,
        err: &serde_path_to_error::Error<yaml_serde::Error>,
    ) -> Self {
        let mut path = FieldPath::from(err.path());
        let inner = err.inner();
        let (mut line, mut column) = inner.location().map_or((1, 1), |location| (location.line(), location.column()));
        let message = bare_message(inner, &path);
        // serde blames a repeated field on its whole mapping; point at the repetition instead.
        if let Some(field) = repeated_field(&message) {
            path = path.key(field);
            (line, column) = locate(text, &path, 2);
        }
        Self { file: file.to_owned(), line, column, path: path.to_string(), message }
    }
}

/// The message of a `yaml_serde` error without the field path it puts in front and the position
/// it puts behind, both of which [`SweepError`] shows in its own format.
fn bare_message(err: &yaml_serde::Error, path: &FieldPath) -> String {
    let mut message = err.to_string();
    if let Some(location) = err.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    // yaml_serde names the node it was reading when the error surfaced: the path itself or,
    // for an error in a mapping key, the mapping holding it.
    let prefix = path
        .ancestry()
        .map(|candidate| format!("{candidate}: "))
        .find(|prefix| prefix != ": " && message.starts_with(prefix.as_str()));
    match prefix {
        Some(prefix) => message[prefix.len()..].to_owned(),
        None => message,
    }
}

/// The field of serde's "duplicate field `x`" message.
fn repeated_field(message: &str) -> Option<&str> {
    message.strip_prefix("duplicate field `")?.strip_suffix('`')
}
