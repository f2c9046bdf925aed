//! Finding the shared data directory and the venv's Python for tests that use real files or
//! write PyTorch files with torch itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `BEARD_DATA_DIR`, else `<workspace>/../shared/data`; `None` (with a line saying why the
/// test skips) when it is absent. Where the data must be there — in CI (`CI` set) or with
/// `BEARD_REQUIRE_DATA=1` — a missing directory fails the test instead, naming the path.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("BEARD_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if dir.join("SOURCES.md").is_file() {
        return Some(dir);
    }
    assert!(
        !data_required(),
        "{test}: no shared data at {} (CI or BEARD_REQUIRE_DATA=1 requires it; set BEARD_DATA_DIR)",
        dir.display()
    );
    eprintln!("SKIPPED {test}: no shared data at {} (set BEARD_DATA_DIR)", dir.display());
    None
}

/// Whether a missing shared data set fails the run: in CI, or with `BEARD_REQUIRE_DATA=1`.
fn data_required() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"));
    set("CI") || set("BEARD_REQUIRE_DATA")
}

/// The venv's python (`$VIRTUAL_ENV/bin/python`, else `<workspace>/.venv/bin/python`), which has
/// torch: the build links its libtorch.
pub fn python() -> PathBuf {
    std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"))
        .join("bin/python")
}

/// Run `script` with the venv's python in `dir` (it writes files there); panics with its
/// output when it fails.
pub fn run_python(dir: &Path, script: &str) {
    let output = Command::new(python()).arg("-c").arg(script).current_dir(dir).output().expect("python runs");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
