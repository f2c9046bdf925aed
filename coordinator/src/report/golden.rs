//! Golden-file comparison shared by the report and import tests: approved outputs live in
//! `coordinator/tests/golden/` and are rewritten with `BLESS=1`.

use std::path::PathBuf;

/// Compares `actual` with the golden file `name` byte for byte, or rewrites the file when
/// `BLESS=1`.
pub(crate) fn check(name: &str, actual: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name].iter().collect();
    if std::env::var("BLESS").is_ok_and(|value| value == "1") {
        std::fs::write(&path, actual).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error} (run with BLESS=1 to create)", path.display()));
    assert_eq!(actual, expected, "{} differs (run with BLESS=1 to update)", path.display());
}
