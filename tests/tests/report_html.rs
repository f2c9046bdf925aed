//! The HTML report in a browser. A real coordinator and agent run a small sweep in both evaluation
//! modes; `coordinator report --format html --png --with-import` writes its site with BEARD-format
//! logs on the same (beard-compat) boards; headless Chromium opens it: the page loads without
//! console errors, both modes' boards are there and labelled, a click on a header sorts the
//! table, the pickers switch the leaderboard, the two modes are compared side by side, the
//! query attack has its column, the transfer matrices are coloured heatmaps with the white-box
//! diagonal outlined, and a screenshot is written to target/test-output/report_html/. Chromium is required: the test fails
//! without it.

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use browser::Browser;
use common::*;

/// Two methods at IPC 1 and 5, FGSM, a short PGD and a small SPSA (a query attack), targeted and
/// not, in both evaluation modes, one seed; FGSM transferred between the two methods.
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
  spsa: { nb_sample: 8, max_batch_size: 8 }
targeted: [false, true]
seeds: 1
training: { optimizer: adam, lr: 0.001, epochs: 2, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }
model: { width: 8 }
evaluation: { test_samples: 32, batch_size: 32, modes: [standard, beard-compat] }
transfer: { attacks: { fgsm: {} } }
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

/// (dataset, evaluation, ipc, mode) of every visible leaderboard, and its heading.
fn visible_boards(browser: &mut Browser) -> anyhow::Result<Vec<[String; 5]>> {
    let boards = browser.evaluate(
        "Array.from(document.querySelectorAll('.board:not([hidden])'), board => [board.dataset.dataset, \
         board.dataset.evaluation, board.dataset.ipc, board.dataset.mode, board.querySelector('h3').textContent])",
    )?;
    Ok(serde_json::from_value(boards)?)
}

/// A visible board: dataset, evaluation mode, IPC, mode and the heading that names them.
fn shown(evaluation: &str, ipc: &str, mode: &str) -> [String; 5] {
    let heading = format!("synthetic, IPC {ipc}, {mode}, {evaluation} evaluation");
    ["synthetic", evaluation, ipc, mode, &heading].map(str::to_owned)
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
    for chart in [
        "synthetic-crei-by-ipc-untargeted",
        "synthetic-rrm-aem-targeted",
        "synthetic-crei-by-ipc-untargeted-beard-compat",
    ] {
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

    // One board shows: the first dataset, evaluation mode, IPC and mode. BEARD's logs are
    // beard-compat numbers: they are ranked on the sweep's beard-compat boards only.
    let boards = visible_boards(&mut browser)?;
    ensure!(boards == [shown("standard", "1", "untargeted")], "the first board shows: {boards:?}");
    let mut methods = visible_methods(&mut browser)?;
    methods.sort();
    ensure!(methods == ["random", "random-b"], "the sweep's standard results: {methods:?}");
    pick(&mut browser, "evaluation", "beard-compat")?;
    let boards = visible_boards(&mut browser)?;
    ensure!(boards == [shown("beard-compat", "1", "untargeted")], "the beard-compat board shows: {boards:?}");
    let mut methods = visible_methods(&mut browser)?;
    methods.sort();
    // The imported logs have no SPSA: their rows are starred as incomplete.
    ensure!(methods == ["LOGGED-A*", "LOGGED-B*", "random", "random-b"], "sweep and imported methods: {methods:?}");

    // A click on the Method header sorts by name, a second click reverses; CREI sorts by number.
    let method_header = ".board:not([hidden]) thead th:nth-child(2) button";
    browser.click(method_header)?;
    let ascending = visible_methods(&mut browser)?;
    ensure!(ascending == ["LOGGED-A*", "LOGGED-B*", "random", "random-b"], "ascending by name: {ascending:?}");
    browser.click(method_header)?;
    let descending = visible_methods(&mut browser)?;
    ensure!(descending == ["random-b", "random", "LOGGED-B*", "LOGGED-A*"], "descending by name: {descending:?}");
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
    ensure!(visible_boards(&mut browser)? == [shown("beard-compat", "5", "untargeted")]);
    pick(&mut browser, "mode", "targeted")?;
    ensure!(visible_boards(&mut browser)? == [shown("beard-compat", "5", "targeted")]);
    pick(&mut browser, "evaluation", "standard")?;
    ensure!(visible_boards(&mut browser)? == [shown("standard", "5", "targeted")]);
    let hidden = browser.evaluate("document.getElementById('no-board').hidden")?;
    ensure!(hidden == true, "a board exists for this choice");

    // The two modes side by side: a row per (method, IPC, mode, attack) of the sweep, with both
    // robust accuracies; the imported methods have a beard-compat side only.
    let compared = browser.evaluate(
        "(() => { const heading = Array.from(document.querySelectorAll('h3')).find(h => \
         h.textContent === 'Evaluation modes: robust accuracy under standard vs beard-compat'); \
         if (!heading) return null; \
         const rows = heading.nextElementSibling.querySelectorAll('tbody tr'); \
         return Array.from(rows, row => [row.cells[0].textContent, row.cells[6].getAttribute('data-value'), \
         row.cells[7].getAttribute('data-value')]); })()",
    )?;
    let compared: Option<Vec<(String, String, String)>> = serde_json::from_value(compared)?;
    let compared = compared.context("the page compares the evaluation modes")?;
    let ours: Vec<_> = compared.iter().filter(|(method, ..)| method.starts_with("random")).collect();
    ensure!(ours.len() == 24, "2 methods x 2 IPCs x 2 modes x 3 attacks: {compared:?}");
    ensure!(
        ours.iter().all(|(_, standard, compat)| !standard.is_empty() && !compat.is_empty()),
        "each row of the sweep has both modes: {compared:?}"
    );
    ensure!(
        compared.iter().filter(|(method, ..)| method.starts_with("LOGGED")).all(|(_, standard, _)| standard.is_empty()),
        "imported rows have no standard side: {compared:?}"
    );

    // The query attack has its column; the transfer section draws every matrix as a heatmap.
    let headers = browser
        .evaluate("Array.from(document.querySelectorAll('.board:not([hidden]) thead th'), cell => cell.textContent)")?;
    let headers: Vec<String> = serde_json::from_value(headers)?;
    ensure!(headers.iter().any(|header| header == "spsa"), "an spsa column: {headers:?}");
    let heatmaps = browser.evaluate(
        "Array.from(document.querySelectorAll('#transfer table.heatmap'), table => \
         Array.from(table.querySelectorAll('tbody tr'), (row, index) => Array.from(row.querySelectorAll('td'), \
         (cell, column) => [getComputedStyle(cell).backgroundColor, cell.classList.contains('diagonal') === \
         (column === index), Number(cell.getAttribute('data-value'))])))",
    )?;
    let heatmaps: Vec<Vec<Vec<(String, bool, f64)>>> = serde_json::from_value(heatmaps)?;
    ensure!(heatmaps.len() == 8, "2 IPCs x 2 evaluation modes x 2 modes, one attack: {heatmaps:?}");
    for cells in heatmaps.iter().flatten().flatten() {
        let (colour, diagonal_marked, value) = cells;
        ensure!(colour.starts_with("rgb(") && colour != "rgba(0, 0, 0, 0)", "a coloured cell: {cells:?}");
        ensure!(*diagonal_marked && (0.0..=100.0).contains(value), "the diagonal outlined, a percentage: {cells:?}");
    }
    ensure!(heatmaps.iter().all(|rows| rows.len() == 2 && rows.iter().all(|row| row.len() == 2)), "2 x 2");
    let black_box = browser.evaluate("document.querySelectorAll('#transfer .black-box table').length")?;
    ensure!(black_box == 16, "a black-box board per target, IPC, evaluation mode and mode: {black_box}");

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
    ensure!(index.contains(", IPC 1, untargeted, beard-compat evaluation</h3>"), "imported numbers are beard-compat");
    for name in ["report.md", "scores.json", "report.csv", "plots/synthetic-crei-by-ipc-targeted-beard-compat.svg"] {
        ensure!(dir.path().join(name).is_file(), "{name} is written");
    }
    ensure!(!dir.path().join("plots/synthetic-crei-by-ipc-targeted-beard-compat.png").exists(), "PNG only with --png");
    Ok(())
}
