//! Validated collections of the sweep file: non-empty lists (also written as one value where a
//! field allows it), and non-empty mappings whose keys are unique and keep the order they are
//! written in.
//!
//! Emptiness is checked in the collection's own visitor and a repeated key in the key's visitor,
//! so `yaml_serde` reports either at the offending node.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A list with at least one element.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NonEmpty<T>(pub(super) Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(NonEmptyVisitor(PhantomData))
    }
}

struct NonEmptyVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NonEmptyVisitor<T> {
    type Value = NonEmpty<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom("expected a non-empty list"));
        }
        Ok(NonEmpty(items))
    }
}

/// One value or a non-empty list of them (`modes: beard-compat` or `modes: [standard, beard-compat]`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OneOrMore<T>(pub(super) NonEmpty<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMore<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OneOrMoreVisitor(PhantomData))
    }
}

struct OneOrMoreVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMoreVisitor<T> {
    type Value = OneOrMore<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or a non-empty list")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(OneOrMore(NonEmpty(vec![T::deserialize(de::value::StrDeserializer::new(value))?])))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        NonEmptyVisitor(PhantomData).visit_seq(seq).map(OneOrMore)
    }
}

/// A key of a sweep-file mapping: how it is read from a YAML scalar.
pub(super) trait MapKey: Sized + PartialEq + fmt::Display {
    /// What the mapping holds, singular, for messages ("attack", "dataset").
    const WHAT: &'static str;

    /// The key from a string scalar.
    fn from_text<E: de::Error>(text: &str) -> Result<Self, E>;

    /// The key from an integer scalar; most keys are names and refuse integers.
    fn from_integer<E: de::Error>(value: u64) -> Result<Self, E> {
        Self::from_text(&value.to_string())
    }
}

/// Reads one key of a mapping and refuses a key already in `seen`.
pub(super) struct KeySeed<'s, K> {
    pub(super) seen: &'s [K],
}

impl<K: MapKey> KeySeed<'_, K> {
    fn unique<E: de::Error>(&self, key: K) -> Result<K, E> {
        if self.seen.contains(&key) { Err(E::custom(format_args!("duplicate {} '{key}'", K::WHAT))) } else { Ok(key) }
    }
}

impl<'de, K: MapKey> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = K;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<K: MapKey> Visitor<'_> for KeySeed<'_, K> {
    type Value = K;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a valid {} key", K::WHAT)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<K, E> {
        self.unique(K::from_text(v)?)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<K, E> {
        self.unique(K::from_integer(v)?)
    }
}

/// A mapping with at least one entry, unique keys, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OrderedMap<K, V>(pub(super) Vec<(K, V)>);

impl<K: PartialEq, V> OrderedMap<K, V> {
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }
}

/// Reads the entries of a mapping, each value by `read_value(key, map)`, refusing repeated keys
/// and an empty mapping. Shared by [`OrderedMap`] and mappings whose value type depends on the
/// key.
pub(super) fn read_entries<'de, A, K, V>(
    mut map: A,
    mut read_value: impl FnMut(&K, &mut A) -> Result<V, A::Error>,
) -> Result<Vec<(K, V)>, A::Error>
where
    A: MapAccess<'de>,
    K: MapKey,
{
    let mut keys: Vec<K> = Vec::new();
    let mut values = Vec::new();
    while let Some(key) = map.next_key_seed(KeySeed { seen: &keys })? {
        values.push(read_value(&key, &mut map)?);
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(de::Error::custom(format_args!("expected at least one {}", K::WHAT)));
    }
    Ok(keys.into_iter().zip(values).collect())
}

impl<'de, K: MapKey, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OrderedMapVisitor(PhantomData))
    }
}

struct OrderedMapVisitor<K, V>(PhantomData<(K, V)>);

impl<'de, K: MapKey, V: Deserialize<'de>> Visitor<'de> for OrderedMapVisitor<K, V> {
    type Value = OrderedMap<K, V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a mapping of {} names", K::WHAT)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_entries(map, |_, map| map.next_value()).map(OrderedMap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowercase words only, to exercise key validation.
    #[derive(Debug, PartialEq)]
    struct Word(String);

    impl fmt::Display for Word {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl MapKey for Word {
        const WHAT: &'static str = "word";

        fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
            if text.chars().all(|c| c.is_ascii_lowercase()) {
                Ok(Word(text.to_owned()))
            } else {
                Err(E::custom(format_args!("bad word '{text}'")))
            }
        }
    }

    #[test]
    fn maps_keep_their_order_and_refuse_duplicates_and_emptiness() {
        let map: OrderedMap<Word, u32> = yaml_serde::from_str("b: 1\na: 2\nc: 3\n").unwrap();
        let keys: Vec<&str> = map.keys().map(|w| w.0.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(map.get(&Word("a".into())), Some(&2));

        let err = yaml_serde::from_str::<OrderedMap<Word, u32>>("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(err.to_string().contains("duplicate word 'a'"), "{err}");
        assert_eq!(err.location().map(|l| l.line()), Some(3));
        let err = yaml_serde::from_str::<OrderedMap<Word, u32>>("{}").unwrap_err();
        assert!(err.to_string().contains("expected at least one word"), "{err}");
        assert!(yaml_serde::from_str::<OrderedMap<Word, u32>>("A: 1").is_err());
    }

    #[test]
    fn lists_must_not_be_empty() {
        let list: NonEmpty<u32> = yaml_serde::from_str("[1, 2]").unwrap();
        assert_eq!(list.0, [1, 2]);
        let err = yaml_serde::from_str::<NonEmpty<u32>>("[]").unwrap_err();
        assert!(err.to_string().contains("non-empty list"), "{err}");
    }
}
