//! Validated scalars of the sweep file: counts (integers >= 1), non-negative and positive
//! numbers and ratios in (0, 1] that may be written as fractions (`8/255`), and non-empty text.
//!
//! Each check runs inside its visitor, so `yaml_serde` reports a bad value at the value's own
//! line and column.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

/// An integer >= 1: an IPC, a seed count, a number of steps, epochs, a batch size, a width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Count(pub(super) u32);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl Visitor<'_> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer >= 1")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
        match u32::try_from(v) {
            Ok(0) => Err(E::custom("expected an integer >= 1, found 0")),
            Ok(count) => Ok(Count(count)),
            Err(_) => Err(E::custom(format_args!("{v} is too large, expected at most {}", u32::MAX))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format_args!("expected an integer >= 1, found {v}"))),
        }
    }
}

/// Which real numbers a field accepts.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Positive,
    NonNegative,
    Ratio,
}

impl Bound {
    fn admits(self, value: f64) -> bool {
        value.is_finite()
            && match self {
                Bound::Positive => value > 0.0,
                Bound::NonNegative => value >= 0.0,
                Bound::Ratio => value > 0.0 && value <= 1.0,
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Bound::Positive => "a number > 0",
            Bound::NonNegative => "a number >= 0",
            Bound::Ratio => "a number in (0, 1]",
        }
    }
}

/// A finite number > 0 (epsilons, step sizes, learning rates, C&W's c).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(super) struct Positive(pub(super) f64);

/// A finite number >= 0 (momentum, weight decay, kappa, overshoot).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(super) struct NonNegative(pub(super) f64);

/// A number in (0, 1] (the share of a batch adversarial training replaces).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(super) struct Ratio(pub(super) f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberVisitor(Bound::Positive)).map(Positive)
    }
}

impl<'de> Deserialize<'de> for NonNegative {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberVisitor(Bound::NonNegative)).map(NonNegative)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberVisitor(Bound::Ratio)).map(Ratio)
    }
}

struct NumberVisitor(Bound);

impl NumberVisitor {
    fn check<E: de::Error>(&self, value: f64, written: &dyn fmt::Display) -> Result<f64, E> {
        if self.0.admits(value) {
            Ok(value)
        } else {
            Err(E::custom(format_args!("expected {}, found {written}", self.0.describe())))
        }
    }
}

impl Visitor<'_> for NumberVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (a decimal such as 0.03 or 1e-4, or a fraction such as 8/255)", self.0.describe())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        // Counts this large are not meaningful for any parameter; precision loss is harmless.
        self.check(v as f64, &v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        self.check(v as f64, &v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        self.check(v, &v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match parse_number(v) {
            Some(value) => self.check(value, &v),
            None => Err(E::invalid_value(Unexpected::Str(v), &self)),
        }
    }
}

/// Parses `0.03`, `1e-4`, `8/255` or ` 8 / 255 `; `None` for anything else (including a zero
/// denominator).
fn parse_number(text: &str) -> Option<f64> {
    let number = |part: &str| part.trim().parse::<f64>().ok().filter(|value| value.is_finite());
    match text.split_once('/') {
        Some((numerator, denominator)) => {
            let denominator = number(denominator).filter(|value| *value != 0.0)?;
            Some(number(numerator)? / denominator)
        }
        None => number(text),
    }
}

/// A string that is not empty (names, directories, file paths).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Text(pub(super) String);

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        if v.trim().is_empty() { Err(E::custom("expected a non-empty string")) } else { Ok(Text(v.to_owned())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_may_be_fractions_decimals_or_exponents() {
        assert_eq!(parse_number("8/255"), Some(8.0 / 255.0));
        assert_eq!(parse_number(" 2 / 255 "), Some(2.0 / 255.0));
        assert_eq!(parse_number("0.03"), Some(0.03));
        assert_eq!(parse_number("1e-4"), Some(1e-4));
        assert_eq!(parse_number("1/0"), None);
        assert_eq!(parse_number("eight"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("1/2/3"), None);
    }

    #[test]
    fn yaml_scalars_of_every_spelling_become_numbers() {
        for (text, expected) in
            [("8/255", 8.0 / 255.0), ("'8/255'", 8.0 / 255.0), ("0.5", 0.5), ("2", 2.0), ("1e-4", 1e-4)]
        {
            let parsed: Positive = yaml_serde::from_str(text).map_err(|e| format!("{text}: {e}")).unwrap();
            assert_eq!(parsed.0, expected, "{text}");
        }
        assert!(yaml_serde::from_str::<Positive>("0").is_err());
        assert!(yaml_serde::from_str::<NonNegative>("-1").is_err());
        assert_eq!(yaml_serde::from_str::<NonNegative>("0").map(|n| n.0).ok(), Some(0.0));
        assert_eq!(yaml_serde::from_str::<Ratio>("1/2").map(|r| r.0).ok(), Some(0.5));
        assert_eq!(yaml_serde::from_str::<Ratio>("1").map(|r| r.0).ok(), Some(1.0));
        for bad in ["0", "1.5", "-0.5"] {
            let err = yaml_serde::from_str::<Ratio>(bad).unwrap_err();
            assert!(err.to_string().contains("a number in (0, 1]"), "{bad}: {err}");
        }
    }

    #[test]
    fn counts_reject_zero_negative_and_fractional_values() {
        assert_eq!(yaml_serde::from_str::<Count>("3").map(|c| c.0).ok(), Some(3));
        for bad in ["0", "-2", "1.5", "'3'", "4294967296"] {
            assert!(yaml_serde::from_str::<Count>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_must_not_be_empty() {
        assert!(yaml_serde::from_str::<Text>("''").is_err());
        assert_eq!(yaml_serde::from_str::<Text>("a/b.pt").map(|t| t.0).ok().as_deref(), Some("a/b.pt"));
    }
}
