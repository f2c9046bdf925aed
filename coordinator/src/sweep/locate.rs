//! Finding the line and column of a node named by a [`FieldPath`], for errors that are only found
//! after the file has been deserialized (cross-field checks).
//!
//! The file is walked a second time with `yaml_serde`; when the walk reaches the wanted node it
//! fails on purpose with a marker error, and `yaml_serde` stamps that error with the node's
//! position, so these positions are the same ones a deserialization error would carry.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::path::{FieldPath, Step};

/// The message of the deliberate error that marks the wanted node.
const MARKER: &str = "beard-sweep-locator: node reached";

/// 1-based line and column of the node at `path`. For a mapping entry this is its key; with
/// `occurrence` > 1 it is that occurrence of a repeated key. When the node cannot be found the
/// nearest enclosing node is used, and failing that the start of the file.
pub(super) fn locate(text: &str, path: &FieldPath, occurrence: usize) -> (usize, usize) {
    path.ancestry()
        .find_map(|candidate| {
            let wanted = if candidate == *path { occurrence.max(1) } else { 1 };
            find(text, candidate.steps(), wanted)
        })
        .unwrap_or((1, 1))
}

fn find(text: &str, steps: &[Step], occurrence: usize) -> Option<(usize, usize)> {
    let seek = Seek { steps, occurrence };
    match seek.deserialize(yaml_serde::Deserializer::from_str(text)) {
        Err(err) if err.to_string().contains(MARKER) => {
            err.location().map(|location| (location.line(), location.column()))
        }
        _ => None,
    }
}

fn marker<E: de::Error>() -> E {
    E::custom(MARKER)
}

/// Walks down `steps`; ends in `Ok` (or an ordinary error) when the node is not there.
struct Seek<'p> {
    steps: &'p [Step],
    occurrence: usize,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.steps.first() {
            None => deserializer.deserialize_any(Hit),
            Some(_) => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or a sequence")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(wanted), rest)) = self.steps.split_first() else {
            return Ok(());
        };
        let mut matches = 0;
        loop {
            let fire = rest.is_empty() && matches + 1 == self.occurrence;
            match map.next_key_seed(KeyProbe { wanted, fire })? {
                None => return Ok(()),
                Some(true) if !rest.is_empty() => {
                    return map.next_value_seed(Seek { steps: rest, occurrence: self.occurrence });
                }
                Some(true) => matches += 1,
                Some(false) => {}
            }
            map.next_value::<IgnoredAny>()?;
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(wanted), rest)) = self.steps.split_first() else {
            return Ok(());
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek { steps: rest, occurrence: self.occurrence })?;
        Ok(())
    }
}

/// Reads one mapping key and says whether it is the wanted one; fails with the marker instead
/// when it is and `fire` is set, so that the error carries the key's position.
struct KeyProbe<'k> {
    wanted: &'k str,
    fire: bool,
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match key == self.wanted {
            true if self.fire => Err(marker()),
            matched => Ok(matched),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Fails with the marker on whatever node it is given.
struct Hit;

impl<'de> Visitor<'de> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(marker())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(marker())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(marker())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(marker())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(marker())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(marker())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(marker())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(marker())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(marker())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: x
attacks:
  fgsm: {}
  deepfool:
    steps: 5
ipc: [1, 10,
  10]
files:
  1: a.pt
";

    fn at(path: FieldPath) -> (usize, usize) {
        locate(TEXT, &path, 1)
    }

    #[test]
    fn finds_keys_elements_and_the_root() {
        assert_eq!(at(FieldPath::root().key("attacks").key("deepfool")), (4, 3));
        assert_eq!(at(FieldPath::root().key("attacks").key("deepfool").key("steps")), (5, 5));
        assert_eq!(at(FieldPath::root().key("ipc").index(2)), (7, 3));
        assert_eq!(at(FieldPath::root().key("files").key(1)), (9, 3));
        assert_eq!(at(FieldPath::root()), (1, 1));
    }

    #[test]
    fn a_missing_node_falls_back_to_its_nearest_ancestor() {
        assert_eq!(at(FieldPath::root().key("attacks").key("pgd").key("eps")), (2, 1));
        assert_eq!(at(FieldPath::root().key("ipc").index(9)), (6, 1));
    }

    #[test]
    fn later_occurrences_of_a_repeated_key_can_be_found() {
        let text = "a: 1\nb: 2\na: 3\n";
        assert_eq!(locate(text, &FieldPath::root().key("a"), 2), (3, 1));
        assert_eq!(locate("[: oops", &FieldPath::root().key("a"), 1), (1, 1));
    }
}
