//! The parser of BEARD's evaluation log lines.
//!
//! A result line is any line holding `final acc is:`; every other line (logging set-up, blank
//! lines) is skipped. A result line reads
//!
//! ```text
//! PREFIX ATTACK attack on METHOD: final acc is:  target_attack: ACC +- STD, attack time is SECONDS; non_target_attack: ACC +- STD, attack time is SECONDS, dataset: DATASET, IPC: N[, ...]
//! ```
//!
//! where ATTACK is the last word before ` attack on ` and accuracies are in percent. After the
//! IPC, a Transfer log's line carries `eval_accuracies_target: {[{'DC': 0.5431, ...}]}` and
//! `eval_accuracies_non_target: {[...]}`, each target model's accuracy (a fraction) on the
//! examples of the line's attack, one dictionary per run; anything else there (DSA, model,
//! attack list) is ignored. Attack names are matched without regard to case: `Clean`, `FGSM`,
//! `PGD`, `PGD_L2` (or `PGDL2`), `CW`, `Deepfool`, `AA` (or `AutoAttack`), and the Query log's
//! `Square` and `Spsa`. A result line that does not read so is an error naming its file and
//! line.

use super::{ImportError, Location};
use crate::report::{Attack, Mode};

const MARKER: &str = "final acc is:";
const ATTACK_ON: &str = " attack on ";
const TRANSFER_TARGETED: &str = "eval_accuracies_target:";
const TRANSFER_UNTARGETED: &str = "eval_accuracies_non_target:";

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
    /// A Transfer log's `eval_accuracies_target` / `_non_target`: per run, each target model's
    /// accuracy (a fraction) on the examples of this line; empty for other logs.
    pub transfer_targeted: Vec<Vec<(String, f64)>>,
    pub transfer_untargeted: Vec<Vec<(String, f64)>>,
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
    let transfer_targeted = transfer_accuracies(cursor.rest, TRANSFER_TARGETED).map_err(|reason| malformed(&reason))?;
    let transfer_untargeted =
        transfer_accuracies(cursor.rest, TRANSFER_UNTARGETED).map_err(|reason| malformed(&reason))?;
    Ok(Some(LogLine {
        at: at.clone(),
        logged_attack: logged_attack.to_owned(),
        column,
        method: method.to_owned(),
        dataset,
        ipc,
        targeted,
        untargeted,
        transfer_targeted,
        transfer_untargeted,
    }))
}

/// `KEY: {[{'DC': 0.5431, 'DM': 0.6206}, ...]}` in `rest`: one list of (target, fraction) per
/// run; empty when `rest` lacks the key.
fn transfer_accuracies(rest: &str, key: &str) -> Result<Vec<Vec<(String, f64)>>, String> {
    let Some(start) = rest.find(key) else { return Ok(Vec::new()) };
    let after = rest[start + key.len()..].trim_start();
    let body = after
        .strip_prefix("{[")
        .and_then(|body| body.split_once("]}"))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("expected `{key} {{[{{...}}]}}`"))?;
    body.split('}')
        .map(|run| run.trim_start_matches([',', ' ', '{']))
        .filter(|run| !run.trim().is_empty())
        .map(|run| {
            run.split(',')
                .map(|entry| {
                    let (name, value) = entry
                        .split_once(':')
                        .ok_or_else(|| format!("{key}: expected `'MODEL': FRACTION`, found `{entry}`"))?;
                    let name = name.trim().trim_matches(['\'', '"']).to_owned();
                    match value.trim().parse::<f64>() {
                        Ok(fraction) if (0.0..=1.0).contains(&fraction) && !name.is_empty() => Ok((name, fraction)),
                        _ => Err(format!("{key}: `{}` is not a model and a fraction in [0, 1]", entry.trim())),
                    }
                })
                .collect()
        })
        .collect()
}

/// The report column of a logged attack name.
fn column(logged: &str) -> Option<Column> {
    let lower = logged.to_ascii_lowercase();
    let name = match lower.as_str() {
        "clean" => return Some(Column::Clean),
        "pgd_l2" => "pgdl2",
        "aa" => "autoattack",
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
        assert_eq!(column("Spsa"), named("spsa"));
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
        let text = format!("{PGD}\n{}", PGD.replace("PGD attack", "TPGD attack"));
        let error = parse(&text, "log.txt").unwrap_err();
        assert_eq!(
            error,
            ImportError::UnknownAttack { at: Location { file: "log.txt".into(), line: 2 }, name: "TPGD".into() }
        );
        assert!(error.to_string().starts_with("log.txt:2: unknown attack `TPGD`"), "{error}");
    }

    #[test]
    fn transfer_accuracies_are_read_per_run_and_checked() {
        let line = |tail: &str| one(&format!("{PGD}, src_dataset: True, {tail}"));
        let parsed = line(
            "eval_accuracies_target: {[{'DC': 0.3069, 'DM': 0.4168}]}, eval_accuracies_non_target: {[{'DC': 0.2882, \
             'DM': 0.3758}, {'DC': 0.3, 'DM': 0.4}]}",
        )
        .unwrap();
        assert_eq!(parsed.transfer_targeted, vec![vec![("DC".to_owned(), 0.3069), ("DM".to_owned(), 0.4168)]]);
        assert_eq!(parsed.transfer_untargeted.len(), 2);
        assert_eq!(parsed.transfer_untargeted[1], vec![("DC".to_owned(), 0.3), ("DM".to_owned(), 0.4)]);
        assert!(one(PGD).unwrap().transfer_targeted.is_empty());
        let bad = line("eval_accuracies_target: {[{'DC': 30.69}]}").unwrap_err().to_string();
        assert!(bad.contains("`'DC': 30.69` is not a model and a fraction in [0, 1]"), "{bad}");
        let open = line("eval_accuracies_target: [{'DC': 0.3}]").unwrap_err().to_string();
        assert!(open.contains("expected `eval_accuracies_target: {[{...}]}`"), "{open}");
    }
}
