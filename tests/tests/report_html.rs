//! The HTML report in a browser. A real coordinator and agent run a small sweep; `coordinator
//! report --format html --png --with-import` writes its site with BEARD-format logs on the same
//! boards; headless Chromium opens it: the page loads without console errors, a click on a
//! header sorts the table, the pickers switch the leaderboard, and a screenshot is written to
//! target/test-output/report_html/. Chromium is required: the test fails without it.

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use browser::Browser;
use common::*;

/// Two methods at IPC 1 and 5, FGSM and a short PGD in both modes, one seed.
const SWEEP: &str = "name: html-report
datasets:
  synthetic: {}
methods:
  random: random
  random-b: random
ipc: [1, 5]
attacks:
  fgsm: {}
  pgd: { steps: 3 }
targeted: [false, true]
seeds: 1
training: { optimizer: adam, lr: 0.001, epochs: 2, batch_size: 64 }
model: { width: 8 }
evaluation: { test_samples: 32, batch_size: 32 }
";

/// Where the test leaves what a person may want to look at.
fn output_dir() -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target").join("test-output").join("report_html");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs a sweep to completion and writes its HTML report with the fixture logs into `site`.
async fn write_site(dir: &Path, site: &Path) -> anyhow::Result<String> {
    let coordinator = start_coordinator(dir, 10.0)?;
    let _agent = start_agent(dir, &coordinator, "agent-0")?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, SWEEP).await?;
    let status = wait_finished(&mut client, &sweep, Duration::from_secs(300)).await?;
    ensure!(status.failed == 0 && status.done == status.total, "the sweep finished: {status:?}");
    let log = workspace_root().join("tests/fixtures/beard_log_synthetic.txt");
    let output = Command::new(binary("coordinator"))
        .args(["report", &sweep, "--format", "html", "--png", "--coordinator", &coordinator.url])
        .arg("--token-file")
        .arg(coordinator.token_file())
        .arg("--out")
        .arg(site)
        .arg("--with-import")
        .arg(&log)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "report failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

/// The method names of the visible leaderboard, top to bottom.
fn visible_methods(browser: &mut Browser) -> anyhow::Result<Vec<String>> {
    let methods = browser.evaluate(
        "Array.from(document.querySelectorAll('.board:not([hidden]) tbody tr'), row => row.cells[1].textContent)",
    )?;
    Ok(serde_json::from_value(methods)?)
}

/// The data-value of one column of the visible leaderboard, top to bottom.
fn visible_column(browser: &mut Browser, column: usize) -> anyhow::Result<Vec<f64>> {
    let values = browser.evaluate(&format!(
        "Array.from(document.querySelectorAll('.board:not([hidden]) tbody tr'), \
         row => Number(row.cells[{column}].getAttribute('data-value')))"
    ))?;
    Ok(serde_json::from_value(values)?)
}

/// (dataset, ipc, mode) of every visible leaderboard.
fn visible_boards(browser: &mut Browser) -> anyhow::Result<Vec<(String, String, String)>> {
    let boards = browser.evaluate(
        "Array.from(document.querySelectorAll('.board:not([hidden])'), \
         board => [board.dataset.dataset, board.dataset.ipc, board.dataset.mode])",
    )?;
    Ok(serde_json::from_value(boards)?)
}

/// Chooses `value` in the picker `key`, as a user's choice does (the value, then `change`).
fn pick(browser: &mut Browser, key: &str, value: &str) -> anyhow::Result<()> {
    let picked = browser.evaluate(&format!(
        "(() => {{ const select = document.getElementById('pick-{key}'); select.value = {value}; \
         select.dispatchEvent(new Event('change', {{ bubbles: true }})); return select.value; }})()",
        value = serde_json::to_string(value)?
    ))?;
    ensure!(picked == value, "the {key} picker offers {value}: it shows {picked}");
    Ok(())
}

fn is_sorted(values: &[f64], ascending: bool) -> bool {
    values.windows(2).all(|pair| if ascending { pair[0] <= pair[1] } else { pair[0] >= pair[1] })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_sorts_and_switches_boards_in_chromium_without_console_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let site = output_dir()?.join("site");
    let _ = std::fs::remove_dir_all(&site);
    let stdout = write_site(dir.path(), &site).await?;
    ensure!(stdout.contains("HTML report:") && stdout.contains("index.html"), "the command says where: {stdout}");
    for chart in ["synthetic-crei-by-ipc-untargeted", "synthetic-rrm-aem-targeted"] {
        for extension in ["svg", "png"] {
            let path = site.join("plots").join(format!("{chart}.{extension}"));
            ensure!(path.metadata().is_ok_and(|file| file.len() > 1000), "{} is written", path.display());
        }
    }

    let mut browser = Browser::launch(1280, 900)?;
    browser.open(&site.join("index.html"))?;
    let title = browser.evaluate("document.title")?;
    ensure!(title == "BEARD report: html-report", "title: {title}");
    let charts = browser
        .evaluate("Promise.all(Array.from(document.images, image => image.decode().then(() => image.naturalWidth)))")?;
    let widths: Vec<u32> = serde_json::from_value(charts)?;
    ensure!(!widths.is_empty() && widths.iter().all(|width| *width > 0), "every chart of the page draws: {widths:?}");

    // One board shows: the first dataset, IPC and mode; the imported methods are ranked on it.
    let boards = visible_boards(&mut browser)?;
    ensure!(boards == [("synthetic".into(), "1".into(), "untargeted".into())], "the first board shows: {boards:?}");
    let mut methods = visible_methods(&mut browser)?;
    methods.sort();
    ensure!(methods == ["LOGGED-A", "LOGGED-B", "random", "random-b"], "sweep and imported methods: {methods:?}");

    // A click on the Method header sorts by name, a second click reverses; CREI sorts by number.
    let method_header = ".board:not([hidden]) thead th:nth-child(2) button";
    browser.click(method_header)?;
    let ascending = visible_methods(&mut browser)?;
    ensure!(ascending == ["LOGGED-A", "LOGGED-B", "random", "random-b"], "ascending by name: {ascending:?}");
    browser.click(method_header)?;
    let descending = visible_methods(&mut browser)?;
    ensure!(descending == ["random-b", "random", "LOGGED-B", "LOGGED-A"], "descending by name: {descending:?}");
    let crei_column = browser.evaluate("document.querySelector('.board:not([hidden]) thead tr').cells.length - 1")?;
    let crei_column = crei_column.as_u64().context("a column count")? as usize;
    browser.click(&format!(".board:not([hidden]) thead th:nth-child({}) button", crei_column + 1))?;
    let crei = visible_column(&mut browser, crei_column)?;
    ensure!(crei.len() == 4 && is_sorted(&crei, true), "ascending CREI: {crei:?}");
    let marked = browser.evaluate(&format!(
        "document.querySelector('.board:not([hidden]) thead th:nth-child({})').getAttribute('aria-sort')",
        crei_column + 1
    ))?;
    ensure!(marked == "ascending", "the header shows the order: {marked}");

    // The pickers switch the board.
    pick(&mut browser, "ipc", "5")?;
    ensure!(visible_boards(&mut browser)? == [("synthetic".into(), "5".into(), "untargeted".into())]);
    pick(&mut browser, "mode", "targeted")?;
    ensure!(visible_boards(&mut browser)? == [("synthetic".into(), "5".into(), "targeted".into())]);
    let hidden = browser.evaluate("document.getElementById('no-board').hidden")?;
    ensure!(hidden == true, "a board exists for this choice");

    let screenshot = browser.screenshot()?;
    ensure!(screenshot.starts_with(b"\x89PNG\r\n\x1a\n") && screenshot.len() > 10_000, "a PNG screenshot");
    let path = output_dir()?.join("index.png");
    std::fs::write(&path, &screenshot)?;
    eprintln!("screenshot of the HTML report: {}", path.display());

    let errors = browser.errors();
    ensure!(errors.is_empty(), "console errors: {errors:#?}");
    // The check above can see errors: one the test makes itself is reported.
    browser.evaluate("console.error('probe from the test')")?;
    let probe = browser.errors();
    ensure!(probe.len() == 1 && probe[0].contains("probe from the test"), "the probe is seen: {probe:?}");
    Ok(())
}

#[test]
fn import_beard_logs_writes_the_html_report_and_html_needs_a_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = workspace_root().join("tests/fixtures/beard_log_synthetic.txt");
    let output =
        Command::new(binary("coordinator")).arg("import-beard-logs").arg(&log).args(["--format", "html"]).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success() && stderr.contains("add --out DIR"), "html without --out: {stderr}");

    let output = Command::new(binary("coordinator"))
        .arg("import-beard-logs")
        .arg(&log)
        .args(["--format", "html", "--out"])
        .arg(dir.path())
        .output()?;
    ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let index = std::fs::read_to_string(dir.path().join("index.html"))?;
    ensure!(index.contains("LOGGED-A") && index.contains("beard_log_synthetic.txt"), "methods and the log as source");
    for name in ["report.md", "scores.json", "report.csv", "plots/synthetic-crei-by-ipc-targeted.svg"] {
        ensure!(dir.path().join(name).is_file(), "{name} is written");
    }
    ensure!(!dir.path().join("plots/synthetic-crei-by-ipc-targeted.png").exists(), "PNG only with --png");
    Ok(())
}
