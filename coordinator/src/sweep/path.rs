//! Field paths such as `attacks.pgd.eps` or `ipc[2]`: how an error names the node it is about,
//! and how the locator finds that node again in the file.

use std::fmt;

/// One step down into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// The entry of a mapping with this key (as the key is written, numbers included).
    Key(String),
    /// The element of a sequence at this index.
    Index(usize),
}

/// A path from the document root; empty for the root itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldPath(Vec<Step>);

impl FieldPath {
    /// The document root.
    pub(super) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a mapping key.
    pub(super) fn key(mut self, key: impl fmt::Display) -> Self {
        self.0.push(Step::Key(key.to_string()));
        self
    }

    /// This path extended by a sequence index.
    pub(super) fn index(mut self, index: usize) -> Self {
        self.0.push(Step::Index(index));
        self
    }

    pub(super) fn steps(&self) -> &[Step] {
        &self.0
    }

    /// This path and every path above it, longest first, ending with the root.
    pub(super) fn ancestry(&self) -> impl Iterator<Item = FieldPath> + '_ {
        (0..=self.0.len()).rev().map(|len| FieldPath(self.0[..len].to_vec()))
    }
}

impl From<&serde_path_to_error::Path> for FieldPath {
    fn from(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let steps = path
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(Step::Key(key.clone())),
                Segment::Seq { index } => Some(Step::Index(*index)),
                // Unit variants are values, not places; YAML has no node for them.
                Segment::Enum { .. } => None,
                Segment::Unknown => Some(Step::Key("?".to_owned())),
            })
            .collect();
        FieldPath(steps)
    }
}

/// `a.b[2].c`; the root renders as the empty string.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if position == 0 => f.write_str(key)?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_field_accesses() {
        let path = FieldPath::root().key("attacks").key("pgd").key("targeted").index(1);
        assert_eq!(path.to_string(), "attacks.pgd.targeted[1]");
        assert_eq!(FieldPath::root().index(0).key("x").to_string(), "[0].x");
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn ancestry_walks_up_to_the_root() {
        let path = FieldPath::root().key("a").index(2);
        let rendered: Vec<String> = path.ancestry().map(|p| p.to_string()).collect();
        assert_eq!(rendered, ["a[2]", "a", ""]);
    }
}
