//! Fuzzing of the sweep parser (`beard_coordinator::sweep::parse`) with proptest, over a corpus
//! kept in `tests/fuzz-corpus/`.
//!
//! - [`corpus_replays_cleanly`] parses every corpus file and checks the [invariants](check).
//! - [`mutated_corpus_keeps_the_invariants`] mutates corpus files (byte flips, line deletions and
//!   duplications, splices of two files, scalars replaced by random ones, random keys inserted)
//!   and checks the same invariants on each result. `FUZZ_CASES` sets the number of cases
//!   (default 256, so `make test` stays fast); `FUZZ_SECONDS` instead runs batches of cases with
//!   fresh seeds until that much time has passed (`make fuzz`). With `FUZZ_SAVE=1` a long run
//!   also writes inputs that reach an outcome the corpus has not shown yet into the corpus as
//!   `gen-<hash>.yaml`, and mutates them in later batches.
//!
//! A failing case is shrunk and its seed persisted in `tests/proptest-regressions/`, which is
//! committed; add the shrunk input itself to the corpus too, since the corpus (and so what a seed
//! generates) changes over time.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{env, fs};

use beard_coordinator::sweep::{self, PoolModels, Sweep, SweepError};
use beard_proto::keys::{distill_key, train_key};
use beard_proto::v1::distilled_source;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-corpus");
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/fuzz_sweep.txt");
const FILE_NAME: &str = "fuzz.yaml";
/// The most tasks the parser lets a sweep expand into.
const MAX_TASKS: u64 = 1_000_000;
/// Larger grids are not expanded by the harness, to keep cases fast.
const EXPAND_LIMIT: u64 = 200_000;
/// Inputs a long run writes into the corpus, at most, and their size limit.
const SAVE_LIMIT: usize = 100;
const SAVE_MAX_BYTES: usize = 4096;

// ------------------------------------------------------------------------------------------
// Invariants
// ------------------------------------------------------------------------------------------

/// What `parse` made of an input, for telling outcomes apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    Accepted { trains: bool, attacks: bool },
    Rejected { path: String, message: String },
}

/// Parses `text` and checks every invariant of the parser on it; `Err` names the broken one.
/// A panic inside the parser propagates.
fn check(text: &str) -> Result<Outcome, String> {
    let first = sweep::parse(text, FILE_NAME);
    let again = sweep::parse(text, FILE_NAME);
    if first != again {
        return Err(format!("parse is not deterministic: {first:?} then {again:?}"));
    }
    match first {
        // Checkpoints are read after parsing; a file that cannot be read is an error placed in
        // the sweep file like any other.
        Ok(sweep) if !sweep.checkpoint_paths().is_empty() => {
            let unreadable = sweep.read_checkpoints(text, FILE_NAME, |_| Err("the fuzzer reads no files".into()));
            check_rejected(text, &unreadable.err().ok_or("checkpoints were read from nowhere")?)
        }
        Ok(sweep) => check_accepted(&sweep),
        Err(err) => check_rejected(text, &err),
    }
}

fn check_accepted(sweep: &Sweep) -> Result<Outcome, String> {
    let per_train: u64 = sweep.attacks.iter().map(|attack| attack.modes.len() as u64).sum();
    // A `full` method trains once per dataset, regime and seed; the others once per IPC too.
    let sets: u64 = sweep
        .methods
        .iter()
        .map(|method| if matches!(method.source, sweep::Source::Full { .. }) { 1 } else { sweep.ipcs.len() as u64 })
        .sum();
    let trains = [sweep.datasets.len() as u64, sets, sweep.regimes.len() as u64, sweep.seeds as u64]
        .into_iter()
        .try_fold(1u64, u64::checked_mul)
        .ok_or("the train count overflows u64")?;
    let attacks = trains.checked_mul(per_train).ok_or("the attack count overflows u64")?;
    if sweep.name.trim().is_empty() {
        return Err("accepted an empty name".into());
    }
    if [sweep.datasets.len(), sweep.methods.len(), sweep.ipcs.len(), sweep.regimes.len()].contains(&0)
        || sweep.seeds == 0
    {
        return Err(format!("accepted an empty grid dimension: {sweep:?}"));
    }
    if sweep.attacks.iter().any(|attack| attack.modes.is_empty()) {
        return Err("accepted an attack without modes".into());
    }
    if trains.saturating_add(attacks) > MAX_TASKS {
        return Err(format!("accepted a grid of {trains} trains and {attacks} attacks"));
    }
    if trains.saturating_add(attacks) > EXPAND_LIMIT {
        return Ok(Outcome::Accepted { trains: true, attacks: attacks > 0 });
    }
    let expansion = sweep.expand(&PoolModels::default());
    if expansion.trains.len() as u64 != trains {
        return Err(format!("{} train tasks, expected {trains}", expansion.trains.len()));
    }
    if expansion.attacks.len() as u64 != attacks {
        return Err(format!("{} attack tasks, expected {attacks}", expansion.attacks.len()));
    }
    let train_keys: HashSet<String> = expansion.trains.iter().map(train_key).collect();
    if train_keys.len() != expansion.trains.len() {
        return Err("two train tasks share a key".into());
    }
    let distill_methods = sweep.methods.iter().filter(|method| matches!(method.source, sweep::Source::Distill { .. }));
    let distills = [sweep.datasets.len(), distill_methods.count(), sweep.ipcs.len(), sweep.seeds as usize];
    if expansion.distills.len() != distills.iter().product::<usize>() {
        return Err(format!("{} distill tasks, expected {distills:?} multiplied", expansion.distills.len()));
    }
    let distill_keys: HashSet<String> = expansion.distills.iter().map(distill_key).collect();
    if distill_keys.len() != expansion.distills.len() {
        return Err("two distill tasks share a key".into());
    }
    for train in &expansion.trains {
        if let Some(distilled_source::Source::Distilled(output)) = train.source.as_ref().and_then(|s| s.source.as_ref())
            && !distill_keys.contains(&output.distill_task_id)
        {
            return Err(format!("a train task reads distill task {}, which the sweep lacks", output.distill_task_id));
        }
    }
    for attack in &expansion.attacks {
        let train = attack.train.as_ref().ok_or("an attack task without its train spec")?;
        if attack.train_task_id != train_key(train) {
            return Err(format!("attack task names train {} but carries {}", attack.train_task_id, train_key(train)));
        }
    }
    if sweep.expand(&PoolModels::default()) != expansion {
        return Err("expand is not deterministic".into());
    }
    Ok(Outcome::Accepted { trains: trains > 0, attacks: attacks > 0 })
}

fn check_rejected(text: &str, err: &SweepError) -> Result<Outcome, String> {
    let shown = err.to_string();
    let lines = line_count(text);
    if err.line < 1 || err.column < 1 {
        return Err(format!("position {}:{} is not 1-based: {shown}", err.line, err.column));
    }
    if err.line > lines + 1 {
        return Err(format!("line {} is past the end ({lines} lines): {shown}", err.line));
    }
    if err.message.trim().is_empty() {
        return Err(format!("empty message: {shown}"));
    }
    if err.file != FILE_NAME || !shown.starts_with(&format!("{FILE_NAME}:{}:{}: ", err.line, err.column)) {
        return Err(format!("not `file:line:column: `: {shown}"));
    }
    Ok(Outcome::Rejected { path: shape(&err.path), message: shape(&err.message) })
}

/// Lines as YAML counts them: libyaml breaks lines at `\r\n`, `\r`, `\n`, NEL, LS and PS.
fn line_count(text: &str) -> usize {
    let mut breaks = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                breaks += 1;
            }
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => breaks += 1,
            _ => {}
        }
    }
    breaks + 1
}

/// A message or path with what varies between inputs (quoted text, numbers) blanked out, so that
/// outcomes that differ only in those count once.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    for c in text.chars().take(160) {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if matches!(c, '`' | '\'' | '"') => {
                out.push(c);
                quote = Some(c);
            }
            None if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            None => out.push(c),
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Corpus
// ------------------------------------------------------------------------------------------

fn corpus_files() -> Vec<PathBuf> {
    let entries = fs::read_dir(CORPUS).unwrap_or_else(|err| panic!("{CORPUS}: {err}"));
    let mut files: Vec<PathBuf> =
        entries.map(|entry| entry.expect("corpus entry").path()).filter(|path| path.is_file()).collect();
    files.sort();
    assert!(files.len() >= 50, "the corpus in {CORPUS} has only {} files", files.len());
    files
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The parser takes text; undecodable bytes become U+FFFD, as a file read lossily would.
fn as_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs [`check`], turning a panic into an error naming it.
fn check_catching(text: &str) -> Result<Outcome, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| check(text))) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!("parse panicked: {what}"))
        }
    }
}

#[test]
fn corpus_replays_cleanly() {
    let mut failures = Vec::new();
    let mut accepted = 0;
    for path in corpus_files() {
        let text = as_text(&read(&path));
        match check_catching(&text) {
            Ok(Outcome::Accepted { .. }) => accepted += 1,
            Ok(Outcome::Rejected { .. }) => {}
            Err(why) => failures.push(format!("{}: {why}", path.display())),
        }
    }
    assert!(failures.is_empty(), "corpus files break the parser's invariants:\n{}", failures.join("\n"));
    assert!(accepted >= 5, "only {accepted} corpus files are valid sweeps");
}

#[test]
fn the_invariants_catch_what_they_should() {
    assert_eq!(line_count(""), 1);
    assert_eq!(line_count("a\r\nb\rc\nd\u{2028}"), 5);
    assert_eq!(shape("unknown attack 'pgdd', expected 3 of `x`"), "unknown attack '', expected # of ``");
    let err = sweep::parse("name: [", FILE_NAME).expect_err("unclosed");
    assert!(check_rejected("name: [", &SweepError { line: 9, ..err.clone() }).is_err());
    assert!(check_rejected("name: [", &SweepError { column: 0, ..err.clone() }).is_err());
    assert!(check_rejected("name: [", &SweepError { message: " ".into(), ..err.clone() }).is_err());
    assert!(check_rejected("name: [", &err).is_ok());
}

#[test]
fn grids_too_large_to_expand_are_refused() {
    let text = |seeds: &str| {
        format!(
            "name: x\ndatasets: {{ synthetic: {{}} }}\nmethods: {{ random: random }}\nipc: [1, 2]\n\
             attacks: {{ fgsm: {{}} }}\nseeds: {seeds}\n"
        )
    };
    // 2 IPCs x 166,666 seeds: 333,332 trains and 666,664 attacks, just under a million tasks.
    let sweep = sweep::parse(&text("166666"), FILE_NAME).expect("a million tasks are allowed");
    assert_eq!(sweep.seeds, 166_666);
    for seeds in ["166667", "4294967295"] {
        let err = sweep::parse(&text(seeds), FILE_NAME).expect_err(seeds);
        assert_eq!((err.line, err.column, err.path.as_str()), (6, 1, "seeds"), "{err}");
        assert!(err.message.contains("more than the limit of 1000000"), "{err}");
    }
}

// ------------------------------------------------------------------------------------------
// Mutations
// ------------------------------------------------------------------------------------------

/// One edit of an input.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: Index,
        bit: u8,
    },
    SetByte {
        at: Index,
        byte: u8,
    },
    DeleteBytes {
        at: Index,
        len: usize,
    },
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Lines `from..from + len` of another corpus file, inserted before line `at`.
    Splice {
        other: Index,
        from: Index,
        len: usize,
        at: Index,
    },
    /// The `at`-th word (a run of characters other than YAML punctuation and blanks) replaced.
    ReplaceScalar {
        at: Index,
        with: String,
    },
    /// `key: value` inserted as a new line before line `at`, indented by `indent` spaces.
    InsertKey {
        at: Index,
        indent: usize,
        key: String,
        value: String,
    },
    InsertText {
        at: Index,
        text: String,
    },
}

/// Mutations of one corpus file.
#[derive(Debug, Clone)]
struct Case {
    base: Index,
    mutations: Vec<Mutation>,
}

const KEYS: &[&str] = &[
    "name",
    "pool_dir",
    "datasets",
    "methods",
    "ipc",
    "attacks",
    "targeted",
    "seeds",
    "training",
    "model",
    "evaluation",
    "metrics",
    "root",
    "files",
    "stored",
    "experiment",
    "images",
    "labels",
    "synthetic",
    "cifar10",
    "cifar100",
    "tinyimagenet",
    "random",
    "DC",
    "MTT",
    "fgsm",
    "pgd",
    "pgdl2",
    "cw",
    "deepfool",
    "autoattack",
    "eps",
    "alpha",
    "steps",
    "random_start",
    "c",
    "kappa",
    "lr",
    "overshoot",
    "version",
    "optimizer",
    "momentum",
    "weight_decay",
    "epochs",
    "batch_size",
    "width",
    "depth",
    "norm",
    "pool",
    "test_samples",
    "target_policy",
    "rr_variant",
    "time_basis",
    "1",
    "10",
    "50",
    "0",
    "-1",
    "<<",
    "?",
    "? ",
    "\"\"",
    "''",
    "~",
    "&a",
    "*a",
    "!!str",
    "名前",
    "é",
    "\t",
    "- ",
];

const SCALARS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "10",
    "255",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "99999999999999999999999999999",
    "0x10",
    "0o17",
    "0b11",
    "1_000",
    "+1",
    "1.",
    ".5",
    "1.5",
    "1e-4",
    "1e308",
    "1e309",
    "-1e309",
    "5e-324",
    "1/0",
    "0/0",
    "-8/255",
    "8/255",
    "2/255",
    "1/2/3",
    "/",
    "1/",
    "/1",
    " 8 / 255 ",
    "'8/255'",
    "\"1/0\"",
    "1e308/1e-308",
    ".nan",
    ".NaN",
    "NaN",
    ".inf",
    "-.inf",
    "inf",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "~",
    "null",
    "''",
    "\"\"",
    "{}",
    "[]",
    "[false]",
    "[true, true]",
    "[1, 1]",
    "{ eps: 1/0 }",
    "random",
    "auto",
    "standard",
    "next",
    "least-likely",
    "normalized",
    "pixels",
    "sgd",
    "adam",
    "instance",
    "max",
    "i-rr",
    "per-sample",
    "*a",
    "&a x",
    "!!binary aGk=",
    "!!float 1",
    "!!int x",
    "|",
    ">-",
    "\"\\uD800\"",
    "\"\\x00\"",
    "'",
    "\"",
    "[",
    "{",
    "]",
    "}",
    ":",
    "- ",
    "#",
    "%",
    "@",
    "`",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "😀",
    "é",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SCALARS).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        2 => any::<f64>().prop_map(|x| x.to_string()),
        2 => (any::<i32>(), any::<i32>()).prop_map(|(a, b)| format!("{a}/{b}")),
        2 => prop::collection::vec(any::<char>(), 0..8).prop_map(|chars| chars.into_iter().collect()),
        2 => prop::collection::vec(prop::sample::select(&b"abz019 -_:/.,[]{}#&*!|>'\"\t\\"[..]), 0..10)
            .prop_map(|bytes| as_text(&bytes)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => word()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        1 => (any::<Index>(), 1usize..16).prop_map(|(at, len)| Mutation::DeleteBytes { at, len }),
        2 => any::<Index>().prop_map(Mutation::DeleteLine),
        2 => any::<Index>().prop_map(Mutation::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        2 => (any::<Index>(), any::<Index>(), 1usize..12, any::<Index>())
            .prop_map(|(other, from, len, at)| Mutation::Splice { other, from, len, at }),
        5 => (any::<Index>(), word()).prop_map(|(at, with)| Mutation::ReplaceScalar { at, with }),
        3 => (any::<Index>(), 0usize..7, key(), word())
            .prop_map(|(at, indent, key, value)| Mutation::InsertKey { at, indent, key, value }),
        1 => (any::<Index>(), word()).prop_map(|(at, text)| Mutation::InsertText { at, text }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (any::<Index>(), prop::collection::vec(mutation(), 1..6)).prop_map(|(base, mutations)| Case { base, mutations })
}

/// Byte lines, each with its `\n` (the last one may lack it).
fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// Byte ranges of the words of `bytes`: runs of anything but blanks and YAML flow punctuation.
fn words(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let separator = matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
            || (b == b':' && bytes.get(i + 1).is_none_or(|next| matches!(next, b' ' | b'\n' | b'\r')));
        match (separator, start) {
            (true, Some(s)) => {
                ranges.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        ranges.push((s, bytes.len()));
    }
    ranges
}

fn apply(corpus: &[Vec<u8>], case: &Case) -> Vec<u8> {
    let mut bytes = case.base.get(corpus).clone();
    for mutation in &case.mutations {
        apply_one(corpus, &mut bytes, mutation);
        // Keeps pathological growth (repeated duplications of a long line) in check.
        bytes.truncate(256 * 1024);
    }
    bytes
}

fn apply_one(corpus: &[Vec<u8>], bytes: &mut Vec<u8>, mutation: &Mutation) {
    let at_byte = |at: &Index, len: usize| at.index(len + 1);
    match mutation {
        Mutation::FlipBit { at, bit } if !bytes.is_empty() => *at.get_mut(bytes) ^= 1 << bit,
        Mutation::SetByte { at, byte } if !bytes.is_empty() => *at.get_mut(bytes) = *byte,
        Mutation::DeleteBytes { at, len } => {
            let start = at_byte(at, bytes.len());
            let end = (start + len).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::InsertText { at, text } => {
            let start = at_byte(at, bytes.len());
            bytes.splice(start..start, text.bytes());
        }
        Mutation::ReplaceScalar { at, with } => {
            let ranges = words(bytes);
            if !ranges.is_empty() {
                let (start, end) = *at.get(&ranges);
                bytes.splice(start..end, with.bytes());
            }
        }
        Mutation::DeleteLine(_)
        | Mutation::DuplicateLine(_)
        | Mutation::SwapLines(..)
        | Mutation::Splice { .. }
        | Mutation::InsertKey { .. } => {
            let mut lines = split_lines(bytes);
            edit_lines(corpus, &mut lines, mutation);
            *bytes = lines.concat();
        }
        Mutation::FlipBit { .. } | Mutation::SetByte { .. } => {}
    }
}

fn edit_lines(corpus: &[Vec<u8>], lines: &mut Vec<Vec<u8>>, mutation: &Mutation) {
    if let Some(last) = lines.last_mut().filter(|line| !line.ends_with(b"\n")) {
        last.push(b'\n');
    }
    match mutation {
        Mutation::DeleteLine(at) if !lines.is_empty() => {
            lines.remove(at.index(lines.len()));
        }
        Mutation::DuplicateLine(at) if !lines.is_empty() => {
            let line = at.get(lines).clone();
            lines.insert(at.index(lines.len()), line);
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
        }
        Mutation::Splice { other, from, len, at } => {
            let other: &Vec<u8> = other.get(corpus);
            let other = split_lines(other);
            if !other.is_empty() {
                let start = from.index(other.len());
                let end = (start + len).min(other.len());
                let at = at.index(lines.len() + 1);
                lines.splice(at..at, other[start..end].iter().cloned());
            }
        }
        Mutation::InsertKey { at, indent, key, value } => {
            let line = format!("{}{key}: {value}\n", " ".repeat(*indent)).into_bytes();
            lines.insert(at.index(lines.len() + 1), line);
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------
// The property
// ------------------------------------------------------------------------------------------

fn env_number(name: &str) -> Option<u64> {
    let value = env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

/// Runs `cases` mutated inputs; `Err` carries proptest's report of a (shrunk) failure.
fn run_batch(corpus: &Arc<Vec<Vec<u8>>>, cases: u32, seen: &mut Option<Seen>) -> Result<(), String> {
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        // Every case is cheap; shrinking a failure should still finish in reasonable time.
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let found = std::sync::Mutex::new(Vec::new());
    let result = runner.run(&case(), |case| {
        let bytes = apply(corpus, &case);
        let text = as_text(&bytes);
        let outcome = check(&text).map_err(|why| TestCaseError::fail(format!("{why}\n--- input ---\n{text}")))?;
        if seen.is_some() {
            found.lock().map_err(|_| TestCaseError::fail("poisoned"))?.push((outcome, bytes));
        }
        Ok(())
    });
    if let Some(seen) = seen {
        for (outcome, bytes) in found.into_inner().unwrap_or_default() {
            seen.offer(outcome, &bytes);
        }
    }
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, case)) => {
            let input = as_text(&apply(corpus, &case));
            Err(format!("{why}\nminimal case: {case:?}\nits input ({} bytes):\n{input}", input.len()))
        }
        Err(TestError::Abort(why)) => Err(format!("aborted: {why}")),
    }
}

/// Outcomes seen so far in a long run with `FUZZ_SAVE=1`; inputs reaching a new one go into
/// the corpus.
struct Seen {
    outcomes: BTreeSet<Outcome>,
    saved: usize,
}

impl Seen {
    fn new(corpus: &[Vec<u8>]) -> Self {
        let outcomes = corpus.iter().filter_map(|bytes| check(&as_text(bytes)).ok()).collect();
        Self { outcomes, saved: 0 }
    }

    fn offer(&mut self, outcome: Outcome, bytes: &[u8]) {
        if self.saved >= SAVE_LIMIT || bytes.len() > SAVE_MAX_BYTES || self.outcomes.contains(&outcome) {
            return;
        }
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let path = Path::new(CORPUS).join(format!("gen-{:016x}.yaml", hasher.finish()));
        if fs::write(&path, bytes).is_ok() {
            self.saved += 1;
            self.outcomes.insert(outcome);
        }
    }
}

#[test]
fn mutated_corpus_keeps_the_invariants() {
    let load = || Arc::new(corpus_files().iter().map(|path| read(path)).collect::<Vec<_>>());
    let mut corpus = load();
    let Some(seconds) = env_number("FUZZ_SECONDS") else {
        let cases = env_number("FUZZ_CASES").unwrap_or(256);
        let cases = u32::try_from(cases).unwrap_or(u32::MAX);
        if let Err(report) = run_batch(&corpus, cases, &mut None) {
            panic!("{report}");
        }
        return;
    };
    let budget = Duration::from_secs(seconds);
    let batch = env_number("FUZZ_CASES").map_or(2000, |cases| u32::try_from(cases).unwrap_or(u32::MAX));
    let mut seen = (env::var("FUZZ_SAVE").as_deref() == Ok("1")).then(|| Seen::new(&corpus));
    let start = Instant::now();
    let mut total = 0u64;
    let mut batches = 0u64;
    while start.elapsed() < budget {
        if let Err(report) = run_batch(&corpus, batch, &mut seen) {
            panic!("after {total} passing cases in {:?}: {report}", start.elapsed());
        }
        total += u64::from(batch);
        batches += 1;
        if let Some(seen) = &seen {
            corpus = load();
            eprintln!(
                "fuzz: {total} cases in {:.0?}, {} outcomes, {} inputs saved",
                start.elapsed(),
                seen.outcomes.len(),
                seen.saved
            );
        } else if batches.is_multiple_of(10) {
            eprintln!("fuzz: {total} cases in {:.0?}", start.elapsed());
        }
    }
    eprintln!("fuzz: done, {total} cases in {batches} batches over {:.0?}, no failure", start.elapsed());
}
