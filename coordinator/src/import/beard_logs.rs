//! The parser of BEARD's evaluation log lines.
//!
//! A result line is any line holding `final acc is:`; every other line (logging set-up, blank
//! lines) is skipped. A result line reads
//!
//! ```text
//! PREFIX ATTACK attack on METHOD: final acc is:  target_attack: ACC +- STD, attack time is SECONDS; non_target_attack: ACC +- STD, attack time is SECONDS, dataset: DATASET, IPC: N[, ...]
//! ```
//!
//! where ATTACK is the last word before ` attack on `, accuracies are in percent and anything
//! after the IPC (DSA, model, attack list, transfer accuracies) is ignored. Attack names are
//! matched without regard to case: `Clean`, `FGSM`, `PGD`, `PGD_L2` (or `PGDL2`), `CW`,
//! `Deepfool`, `AA` (or `AutoAttack`). A result line that does not read so is an error naming its
//! file and line.

use super::{ImportError, Location};
use crate::report::{Attack, Mode};

const MARKER: &str = "final acc is:";
const ATTACK_ON: &str = " attack on ";

/// What a line measures: the clean model or one attack column of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Clean,
    Attack(Attack),
}

/// Accuracy ± std (percent) and seconds of one mode of one line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measurement {
    pub accuracy: f64,
    pub std: f64,
    pub time: f64,
}

/// One parsed result line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogLine {
    pub at: Location,
    /// The attack as the log spells it, for messages.
    pub logged_attack: String,
    pub column: Column,
    pub method: String,
    pub dataset: String,
    pub ipc: u32,
    pub targeted: Measurement,
    pub untargeted: Measurement,
}

impl LogLine {
    pub fn measurement(&self, mode: Mode) -> Measurement {
        match mode {
            Mode::Targeted => self.targeted,
            Mode::Untargeted => self.untargeted,
        }
    }

    /// `PGD of BACON on CIFAR10 IPC 1`, for messages.
    pub fn describe(&self) -> String {
        format!("{} of {} on {} IPC {}", self.logged_attack, self.method, self.dataset, self.ipc)
    }
}

/// The result lines of one file, in file order; a file without any is an error.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<LogLine>, ImportError> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = Location { file: file.to_owned(), line: index + 1 };
        if let Some(parsed) = parse_line(line, at)? {
            lines.push(parsed);
        }
    }
    if lines.is_empty() {
        return Err(ImportError::NoResults { file: file.to_owned() });
    }
    Ok(lines)
}

/// `None` for a line that is not a result line.
fn parse_line(line: &str, at: Location) -> Result<Option<LogLine>, ImportError> {
    let Some((head, tail)) = line.split_once(MARKER) else {
        return Ok(None);
    };
    let malformed = |reason: &str| ImportError::Malformed { at: at.clone(), reason: reason.to_owned() };
    let (words, method) = head
        .trim_end()
        .strip_suffix(':')
        .and_then(|head| head.rsplit_once(ATTACK_ON))
        .ok_or_else(|| malformed("expected `ATTACK attack on METHOD:` before `final acc is:`"))?;
    let method = method.trim();
    let logged_attack = words.rsplit(char::is_whitespace).next().unwrap_or_default();
    if method.is_empty() || logged_attack.is_empty() {
        return Err(malformed("expected `ATTACK attack on METHOD:` before `final acc is:`"));
    }
    let column = column(logged_attack)
        .ok_or_else(|| ImportError::UnknownAttack { at: at.clone(), name: logged_attack.to_owned() })?;

    let mut cursor = Cursor { rest: tail, at: &at };
    cursor.literal("target_attack:")?;
    let targeted = cursor.measurement("targeted")?;
    cursor.literal(";")?;
    cursor.literal("non_target_attack:")?;
    let untargeted = cursor.measurement("untargeted")?;
    cursor.literal(",")?;
    cursor.literal("dataset:")?;
    let dataset = cursor.field("dataset")?.to_owned();
    cursor.literal(",")?;
    cursor.literal("IPC:")?;
    let ipc = cursor.field("IPC")?;
    let ipc = ipc.parse().map_err(|_| malformed(&format!("IPC `{ipc}` is not a whole number")))?;
    Ok(Some(LogLine {
        at: at.clone(),
        logged_attack: logged_attack.to_owned(),
        column,
        method: method.to_owned(),
        dataset,
        ipc,
        targeted,
        untargeted,
    }))
}

/// The report column of a logged attack name.
fn column(logged: &str) -> Option<Column> {
    let lower = logged.to_ascii_lowercase();
    let name = match lower.as_str() {
        "clean" => return Some(Column::Clean),
        "pgd_l2" => "pgdl2",
        "aa" => "autoattack",
        // BEARD's `Spsa` rows are SPSA only when targeted: its untargeted run is AutoAttack
        // (../shared/BLACKBOX.md, section 2), so they stay out of the spsa column.
        "spsa" => return None,
        other => other,
    };
    Attack::named(name).map(Column::Attack)
}

/// Reads the part of a result line after `final acc is:`, each step skipping leading spaces.
struct Cursor<'a> {
    rest: &'a str,
    at: &'a Location,
}

impl<'a> Cursor<'a> {
    fn error(&self, expected: &str) -> ImportError {
        let found: String = self.rest.chars().take(24).collect();
        let found = if found.is_empty() { "the end of the line".to_owned() } else { format!("`{found}`") };
        ImportError::Malformed { at: self.at.clone(), reason: format!("expected {expected}, found {found}") }
    }

    fn literal(&mut self, literal: &str) -> Result<(), ImportError> {
        let rest = self.rest.trim_start();
        match rest.strip_prefix(literal) {
            Some(after) => {
                self.rest = after;
                Ok(())
            }
            None => {
                self.rest = rest;
                Err(self.error(&format!("`{literal}`")))
            }
        }
    }

    /// A finite number, up to the next space, comma or semicolon.
    fn number(&mut self, what: &str) -> Result<f64, ImportError> {
        self.rest = self.rest.trim_start();
        let end = self.rest.find([' ', '\t', ',', ';']).unwrap_or(self.rest.len());
        match self.rest[..end].parse::<f64>() {
            Ok(value) if value.is_finite() => {
                self.rest = &self.rest[end..];
                Ok(value)
            }
            _ => Err(self.error(&format!("the {what} (a number)"))),
        }
    }

    /// `ACC +- STD, attack time is SECONDS`, with the accuracy in [0, 100] and no negative
    /// spread or time.
    fn measurement(&mut self, mode: &str) -> Result<Measurement, ImportError> {
        let accuracy = self.number(&format!("{mode} accuracy"))?;
        self.literal("+-")?;
        let std = self.number(&format!("{mode} accuracy std"))?;
        self.literal(",")?;
        self.literal("attack time is")?;
        let time = self.number(&format!("{mode} attack time"))?;
        let out_of_range = |reason: String| ImportError::Malformed { at: self.at.clone(), reason };
        if !(0.0..=100.0).contains(&accuracy) {
            return Err(out_of_range(format!("{mode} accuracy {accuracy} is not a percentage in [0, 100]")));
        }
        if std < 0.0 || time < 0.0 {
            return Err(out_of_range(format!("{mode} std {std} and time {time} cannot be negative")));
        }
        Ok(Measurement { accuracy, std, time })
    }

    /// Text up to the next comma (or the end of the line), trimmed and not empty.
    fn field(&mut self, what: &str) -> Result<&'a str, ImportError> {
        let end = self.rest.find(',').unwrap_or(self.rest.len());
        let value = self.rest[..end].trim();
        if value.is_empty() {
            return Err(self.error(&format!("the {what}")));
        }
        self.rest = &self.rest[end..];
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGD: &str = "2024-11-10 12:00:00,000 - INFO - PGD attack on BACON: final acc is:  target_attack: 30.61 +- \
                       0.00, attack time is 8.52; non_target_attack: 20.78 +- 0.00, attack time is 8.79, dataset: \
                       CIFAR10, IPC: 1, DSA:True, num_eval: 0, aug:False , model: ConvNet";

    fn one(line: &str) -> Result<LogLine, ImportError> {
        parse(line, "log.txt").map(|mut lines| lines.remove(0))
    }

    fn reason(line: &str) -> String {
        match one(line) {
            Err(ImportError::Malformed { at, reason }) => {
                assert_eq!(at, Location { file: "log.txt".into(), line: 1 });
                reason
            }
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn parses_a_reference_line() {
        let line = one(PGD).unwrap();
        assert_eq!(line.at, Location { file: "log.txt".into(), line: 1 });
        assert_eq!(line.column, Column::Attack(Attack::named("pgd").unwrap()));
        assert_eq!((line.method.as_str(), line.dataset.as_str(), line.ipc), ("BACON", "CIFAR10", 1));
        assert_eq!(line.targeted, Measurement { accuracy: 30.61, std: 0.0, time: 8.52 });
        assert_eq!(line.untargeted, Measurement { accuracy: 20.78, std: 0.0, time: 8.79 });
        assert_eq!(line.measurement(Mode::Targeted), line.targeted);
        assert_eq!(line.describe(), "PGD of BACON on CIFAR10 IPC 1");
    }

    #[test]
    fn every_reference_attack_name_has_a_column() {
        let named = |name: &str| Some(Column::Attack(Attack::named(name).unwrap()));
        assert_eq!(column("Clean"), Some(Column::Clean));
        assert_eq!(column("FGSM"), named("fgsm"));
        assert_eq!(column("PGD"), named("pgd"));
        assert_eq!(column("PGD_L2"), named("pgdl2"));
        assert_eq!(column("PGDL2"), named("pgdl2"));
        assert_eq!(column("CW"), named("cw"));
        assert_eq!(column("Deepfool"), named("deepfool"));
        assert_eq!(column("DeepFool"), named("deepfool"));
        assert_eq!(column("AA"), named("autoattack"));
        assert_eq!(column("AutoAttack"), named("autoattack"));
        assert_eq!(column("Square"), named("square"));
        assert_eq!(column("Spsa"), None);
    }

    #[test]
    fn integers_short_times_a_bare_ipc_and_crlf_are_read() {
        let line = one("x - INFO - CW attack on DM: final acc is: target_attack: 27 +- 1.5, attack time is 36.8; \
             non_target_attack: 9 +- 0, attack time is 458.79, dataset: CIFAR100, IPC: 50\r")
        .unwrap();
        assert_eq!(line.targeted, Measurement { accuracy: 27.0, std: 1.5, time: 36.8 });
        assert_eq!(line.untargeted, Measurement { accuracy: 9.0, std: 0.0, time: 458.79 });
        assert_eq!((line.dataset.as_str(), line.ipc), ("CIFAR100", 50));
    }

    #[test]
    fn other_lines_are_skipped_and_line_numbers_count_them() {
        let text = format!("2024-11-10 - INFO - Logging setup complete.\n\n{PGD}\n");
        let lines = parse(&text, "run.log").unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].at.to_string(), "run.log:3");
    }

    #[test]
    fn a_file_without_result_lines_is_an_error() {
        assert_eq!(
            parse("Logging setup complete.\n", "empty.log"),
            Err(ImportError::NoResults { file: "empty.log".into() })
        );
    }

    #[test]
    fn malformed_lines_are_errors_naming_what_was_expected() {
        assert!(reason("PGD on BACON: final acc is: target_attack: 1 +- 0").contains("`ATTACK attack on METHOD:`"));
        assert!(reason("PGD attack on : final acc is: target_attack: 1 +- 0").contains("`ATTACK attack on METHOD:`"));
        let reason_for = |from: &str, to: &str| reason(&PGD.replacen(from, to, 1));
        assert_eq!(
            reason_for("target_attack: 30.61", "target_attack: high"),
            "expected the targeted accuracy (a number), found `high +- 0.00, attack tim`"
        );
        assert!(reason_for("; non_target", ", non_target").starts_with("expected `;`"));
        assert!(reason_for("20.78 +-", "20.78 ±").starts_with("expected `+-`"));
        assert!(reason_for("attack time is 8.79", "time 8.79").starts_with("expected `attack time is`"));
        assert!(reason_for("dataset: CIFAR10,", "dataset: ,").starts_with("expected the dataset"));
        assert_eq!(reason_for("IPC: 1,", "IPC: one,"), "IPC `one` is not a whole number");
        assert_eq!(reason(&PGD[..PGD.find(", dataset").unwrap()]), "expected `,`, found the end of the line");
        assert_eq!(reason_for("30.61", "130.61"), "targeted accuracy 130.61 is not a percentage in [0, 100]");
        assert!(reason_for("8.52", "-8.52").contains("cannot be negative"));
        assert!(reason_for("8.52", "NaN").starts_with("expected the targeted attack time"));
    }

    #[test]
    fn unknown_attacks_are_errors_with_their_location() {
        let text = format!("{PGD}\n{}", PGD.replace("PGD attack", "Spsa attack"));
        let error = parse(&text, "log.txt").unwrap_err();
        assert_eq!(
            error,
            ImportError::UnknownAttack { at: Location { file: "log.txt".into(), line: 2 }, name: "Spsa".into() }
        );
        assert!(error.to_string().starts_with("log.txt:2: unknown attack `Spsa`"), "{error}");
    }
}
