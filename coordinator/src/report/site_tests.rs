//! Tests of the CREI-per-IPC tables, the charts and the HTML site on the report tests' fixtures:
//! the tables pivot the leaderboards, every chart is drawn with its labels (SVG and PNG), the
//! page escapes names, the combined report ranks imported methods with the sweep's, and golden
//! renderings of the new table and of `index.html`.

use super::tests::{
    Cell, compat, golden_input, input, result, shard, with_adversarial_training, with_both_evaluations,
};
use super::*;
use crate::import::tests::{BACON_IPC1, log};
use crate::import::{LogFile, import};

/// The provenance the golden page shows: a fixed commit, so that the page does not change with
/// every commit of this project.
fn fixed_provenance(input: &ReportInput) -> Provenance {
    Provenance { commit: "0000000000000000000000000000000000000000".into(), ..Provenance::default() }.with_sweep(
        "examples/golden.yaml",
        "name: golden\n",
        &input.results,
    )
}

fn file<'a>(files: &'a [SiteFile], path: &str) -> &'a SiteFile {
    files.iter().find(|file| file.path == path).unwrap_or_else(|| {
        let paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
        panic!("no {path} among {paths:?}")
    })
}

fn text(file: &SiteFile) -> &str {
    std::str::from_utf8(&file.bytes).expect("UTF-8")
}

#[test]
fn crei_per_ipc_tables_are_the_leaderboards_crei_by_method_and_ipc() {
    let mut results = golden_input().results;
    // dsa only at IPC 1: no value at IPC 10.
    results.push(result(Cell("cifar10", "dsa", 1, 0, "fgsm", false), shard(30.0, 20.0, 2.0, 0.5)));
    let report = build(&ReportInput { results, ..golden_input() });
    assert_eq!(report.crei_per_ipc.len(), 2, "one table per mode");
    for table in &report.crei_per_ipc {
        assert_eq!(table.ipcs, [Ipc::PerClass(1), Ipc::PerClass(10)]);
        for row in &table.rows {
            for (ipc, crei) in table.ipcs.iter().zip(&row.crei) {
                let board = report
                    .leaderboards
                    .iter()
                    .find(|board| board.ipc == *ipc && board.mode == table.mode)
                    .expect("a board per column");
                let expected = board.rows.iter().find(|cell| cell.method == row.method).map(|cell| cell.crei);
                assert_eq!(*crei, expected, "{} at {ipc} {:?}", row.method, table.mode);
            }
        }
    }
    let untargeted = &report.crei_per_ipc[0];
    assert_eq!(untargeted.mode, Mode::Untargeted);
    let methods: Vec<&str> = untargeted.rows.iter().map(|row| row.method.as_str()).collect();
    assert_eq!(methods, ["dc", "dsa", "dm"], "the sweep's method order");
    assert_eq!(untargeted.rows[1].crei[1], None);
    assert!(!untargeted.rows[2].complete, "dm misses a seed at IPC 10");
    let markdown = report.to_markdown();
    assert!(
        markdown.contains("### CREI per IPC, untargeted, standard evaluation\n\n| Method | IPC 1 | IPC 10 |"),
        "{markdown}"
    );
    assert!(markdown.contains("| dsa* | "), "{markdown}");
}

#[test]
fn golden_html_index_and_the_site_files() {
    let input = golden_input();
    let report = build(&input);
    let files = site(&report, &fixed_provenance(&input), false).expect("the site is drawn");
    golden::check("report_small.html", text(&files[0]));
    let paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "index.html",
            "plots/cifar10-crei-by-ipc-untargeted.svg",
            "plots/cifar10-rrm-aem-untargeted.svg",
            "plots/cifar10-crei-by-ipc-targeted.svg",
            "plots/cifar10-rrm-aem-targeted.svg",
        ]
    );
    let index = text(&files[0]);
    for path in &paths[1..] {
        assert!(index.contains(&format!("src=\"{path}\"")), "the page shows {path}");
    }
    assert!(!index.contains("http://") && !index.contains("https://"), "nothing is loaded from the network");
    assert!(!index.contains("pick-evaluation"), "one evaluation mode: no evaluation picker");
}

/// The bars of a bar chart (SVG) by colour, as (left, right) x extents in drawing order: the
/// filled rectangles standing on the baseline (the lowest bottom edge), which leaves out the
/// legend's swatches.
fn bars(svg: &str, fills: [&str; 2]) -> [Vec<(f64, f64)>; 2] {
    let attribute = |tag: &str, name: &str| -> Option<f64> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[start..].split('"').next()?.parse().ok()
    };
    let rects: Vec<(&str, f64, f64, f64)> = svg
        .split("<rect")
        .skip(1)
        .filter_map(|tag| tag.split('>').next())
        .filter_map(|tag| {
            let fill = fills.into_iter().find(|fill| tag.contains(&format!("fill=\"{fill}\"")))?;
            let (x, y) = (attribute(tag, "x")?, attribute(tag, "y")?);
            Some((fill, x, x + attribute(tag, "width")?, y + attribute(tag, "height")?))
        })
        .collect();
    let baseline = rects.iter().map(|rect| rect.3).fold(f64::MIN, f64::max);
    fills.map(|fill| {
        rects.iter().filter(|rect| rect.0 == fill && rect.3 == baseline).map(|rect| (rect.1, rect.2)).collect()
    })
}

#[test]
fn the_two_bars_of_a_method_stand_side_by_side() {
    let golden = golden_input();
    let mut one_method = golden_input();
    one_method.results.retain(|(spec, _)| spec.train.as_ref().is_some_and(|train| train.method == "dc"));
    one_method.method_order = vec!["dc".to_owned()];
    for (input, methods) in [(golden, 2), (one_method, 1)] {
        let files = site(&build(&input), &Provenance::default(), false).expect("the site is drawn");
        let chart = text(file(&files, "plots/cifar10-rrm-aem-untargeted.svg"));
        // The palette's first two colours: RRM, then AEM.
        let [rrm, aem] = bars(chart, ["#0072B2", "#E69F00"]);
        assert_eq!((rrm.len(), aem.len()), (methods, methods), "one RRM and one AEM bar per method:\n{chart}");
        assert!(chart.contains("\ndc\n"), "the method is named under its bars:\n{chart}");
        for (method, (rrm, aem)) in rrm.iter().zip(&aem).enumerate() {
            assert!(rrm.1 > rrm.0 && aem.1 > aem.0, "method {method}: bars of no width: {rrm:?} {aem:?}\n{chart}");
            assert!(rrm.1 <= aem.0, "method {method}: the RRM bar {rrm:?} reaches into the AEM bar {aem:?}\n{chart}");
        }
        for (left, right) in aem.iter().zip(rrm.iter().skip(1)) {
            assert!(left.1 < right.0, "a method's bars end before the next one's begin: {left:?} {right:?}");
        }
    }
}

#[test]
fn both_evaluation_modes_get_a_picker_labelled_tables_and_their_own_charts() {
    let report = build(&input(with_both_evaluations()));
    let files = site(&report, &Provenance::default(), false).unwrap();
    let paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "index.html",
            "plots/cifar10-crei-by-ipc-untargeted.svg",
            "plots/cifar10-rrm-aem-untargeted.svg",
            "plots/cifar10-crei-by-ipc-targeted.svg",
            "plots/cifar10-rrm-aem-targeted.svg",
            "plots/cifar10-crei-by-ipc-untargeted-beard-compat.svg",
            "plots/cifar10-rrm-aem-untargeted-beard-compat.svg",
        ]
    );
    let chart = text(file(&files, "plots/cifar10-rrm-aem-untargeted-beard-compat.svg"));
    assert!(chart.contains("cifar10, untargeted, beard-compat evaluation: RRM and AEM pooled across IPCs"));
    assert!(chart.contains("\ndc\n") && !chart.contains("\ndm\n"), "dm has no beard-compat results");
    let standard_chart = text(file(&files, "plots/cifar10-crei-by-ipc-untargeted.svg"));
    assert!(standard_chart.contains("cifar10, untargeted, standard evaluation: CREI against IPC"));

    let index = text(&files[0]);
    assert!(index.contains("id=\"pick-evaluation\""), "an evaluation picker with both modes");
    assert!(index.contains("<option value=\"beard-compat\">beard-compat</option>"), "{index}");
    assert_eq!(index.matches("data-evaluation=\"beard-compat\"").count(), 1, "one beard-compat board");
    assert_eq!(index.matches("data-evaluation=\"standard\"").count(), 2, "two standard boards");
    for heading in [
        "<h3>cifar10, IPC 10, untargeted, beard-compat evaluation</h3>",
        "<h3>cifar10, IPC 10, targeted, standard evaluation</h3>",
        "<h3>RRM, AEM and CREI pooled across IPCs (10), standard evaluation</h3>",
        "<h3>RRM, AEM and CREI pooled across IPCs (10), beard-compat evaluation</h3>",
        "<h3>CREI per IPC, untargeted, beard-compat evaluation</h3>",
        "<h3>Evaluation modes: robust accuracy under standard vs beard-compat</h3>",
    ] {
        assert!(index.contains(heading), "{heading}");
    }
    // The comparison's fgsm row: 32 under standard, 43 under beard-compat, 11 points apart.
    assert!(index.contains("<td class=\"num\" data-value=\"11\">11.00</td>"), "{index}");
    assert!(index.contains("data-value=\"43\">43.00 ± 4.24<"), "{index}");
}

#[test]
fn charts_carry_titles_axis_labels_and_a_legend_entry_per_method() {
    let report = build(&golden_input());
    let files = site(&report, &Provenance::default(), false).unwrap();
    let crei = text(file(&files, "plots/cifar10-crei-by-ipc-untargeted.svg"));
    assert!(crei.starts_with("<svg"), "{}", &crei[..80.min(crei.len())]);
    for label in [
        "cifar10, untargeted, standard evaluation: CREI against IPC",
        "Images per class (IPC, log scale)",
        "CREI (%)",
        "\ndc\n",
        "\ndm\n",
    ] {
        assert!(crei.contains(label), "{label} in the CREI chart");
    }
    let bars = text(file(&files, "plots/cifar10-rrm-aem-targeted.svg"));
    for label in ["RRM and AEM pooled across IPCs", "Score (%)", "Method", "\nRRM\n", "\nAEM\n", "\ndc\n", "\ndm\n"] {
        assert!(bars.contains(label), "{label} in the bar chart");
    }
    // Two bars per method, each a filled rectangle of a series colour.
    assert_eq!(bars.matches("fill=\"#0072B2\"").count(), 2 + 1, "two RRM bars and the legend swatch");
}

#[test]
fn full_size_models_are_a_baseline_and_adversarial_training_gets_its_comparison_chart() {
    let report = build(&input(with_adversarial_training()));
    let files = site(&report, &Provenance::default(), true).unwrap();
    let crei = text(file(&files, "plots/cifar10-crei-by-ipc-untargeted.svg"));
    assert!(crei.contains("\nFull-size\n"), "the full method is the Full-size line");
    assert!(crei.contains("stroke-dasharray") || crei.matches("<polyline").count() >= 2, "a dashed line");
    let comparison = text(file(&files, "plots/cifar10-adversarial-training-untargeted.svg"));
    for label in [
        "CREI with and without adversarial training",
        "\nStandard training\n",
        "\nAdversarial training\n",
        "\ndc (10)\n",
    ] {
        assert!(comparison.contains(label), "{label} in the comparison chart");
    }
    file(&files, "plots/cifar10-crei-by-ipc-untargeted-adversarial.svg");
    let index = text(&files[0]);
    assert!(index.contains("id=\"pick-training\""), "a training picker with both regimes");
    assert!(index.contains("Standard (std) vs adversarial training (AT)"));
    assert!(index.contains("href=\"plots/cifar10-adversarial-training-untargeted.png\""));

    // For a person to look at: the charts of this report as PNG.
    let shown: std::path::PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "..", "target", "test-output", "report-charts"].iter().collect();
    std::fs::create_dir_all(&shown).unwrap();
    for chart in files.iter().filter(|file| file.path.ends_with(".png")) {
        std::fs::write(shown.join(chart.path.trim_start_matches("plots/")), &chart.bytes).unwrap();
    }
    let png = &file(&files, "plots/cifar10-adversarial-training-untargeted.png").bytes;
    let decoder = png::Decoder::new(std::io::Cursor::new(png.as_slice()));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("one frame");
    assert_eq!((info.width, info.height), (plots::WIDTH, plots::HEIGHT));
    // The title is drawn: its band holds dark text pixels, not only the white background.
    let row_bytes = info.width as usize * 3;
    let title_band = &pixels[8 * row_bytes..28 * row_bytes];
    let dark = title_band.chunks(3).filter(|pixel| pixel.iter().all(|channel| *channel < 100)).count();
    assert!(dark > 200, "{dark} dark pixels in the title band");
}

#[test]
fn the_page_escapes_every_name() {
    let results = vec![
        result(Cell("<b>set</b>", "<script>alert(1)</script>", 1, 0, "fgsm", false), shard(50.0, 20.0, 2.0, 1.0)),
        result(Cell("<b>set</b>", "a\"b&c", 1, 0, "fgsm", false), shard(50.0, 30.0, 2.0, 1.0)),
    ];
    let report = build(&input(results));
    let files = site(&report, &Provenance::default(), false).unwrap();
    let index = text(&files[0]);
    assert!(!index.contains("<script>alert"), "a method name cannot open a script");
    assert!(!index.contains("<b>set"), "a dataset name cannot open a tag");
    assert!(index.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(index.contains("data-dataset=\"&lt;b&gt;set&lt;/b&gt;\""));
    assert!(index.contains("a&quot;b&amp;c"));
    assert_eq!(index.matches("<script>").count(), 1, "only the page's own script");
    let paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
    assert!(paths.contains(&"plots/-b-set--b--crei-by-ipc-untargeted.svg"), "{paths:?}");
}

#[test]
fn imported_logs_join_the_sweep_beard_compat_boards_and_a_clashing_name_is_marked() {
    let logs = [
        ("bacon.log".to_owned(), log("BACON", "CIFAR10", 1, &BACON_IPC1)),
        ("dm.log".to_owned(), log("dm", "CIFAR10", 1, &BACON_IPC1)),
        ("tiny.log".to_owned(), log("BACON", "Tiny", 1, &BACON_IPC1)),
    ];
    let files: Vec<LogFile<'_>> = logs.iter().map(|(name, text)| LogFile { name, text }).collect();
    let imported = import(&files).expect("the logs parse");
    // The golden sweep evaluated in both modes.
    let mut input = golden_input();
    let compat_results: Vec<_> = input.results.iter().cloned().map(compat).collect();
    input.results.extend(compat_results);
    let report = build_with_imports(&input, &imported);
    let methods = |report: &Report, evaluation: Evaluation| {
        let board = report
            .leaderboards
            .iter()
            .find(|board| {
                board.dataset == "cifar10"
                    && board.ipc == Ipc::PerClass(1)
                    && board.evaluation == evaluation
                    && board.mode == Mode::Untargeted
            })
            .expect("the cifar10 IPC 1 board");
        let mut methods: Vec<String> = board.rows.iter().map(|row| row.method.clone()).collect();
        methods.sort_unstable();
        methods
    };
    assert_eq!(
        methods(&report, Evaluation::BEARD_COMPAT),
        ["BACON", "dc", "dm", "dm (BEARD log)"],
        "CIFAR10 is the sweep's cifar10, and BEARD's numbers are beard-compat numbers"
    );
    assert_eq!(methods(&report, Evaluation::STANDARD), ["dc", "dm"], "reference numbers stay off standard boards");
    let datasets: Vec<&str> = report.multi_ipc.iter().map(|table| table.dataset.as_str()).collect();
    assert_eq!(datasets, ["Tiny", "cifar10"], "a dataset the sweep lacks keeps its name");
    assert_eq!(report.results, build(&input).results + imported.report(input.options).results);
    // The sweep's own rows keep their numbers.
    let alone = build(&input);
    let sweep_dc = |report: &Report, evaluation: Evaluation| {
        let table = report.multi_ipc.iter().find(|table| table.dataset == "cifar10")?;
        let row = table
            .rows
            .iter()
            .find(|row| row.method == "dc" && row.evaluation == evaluation && row.mode == Mode::Untargeted)?;
        Some(row.crei)
    };
    for evaluation in [Evaluation::STANDARD, Evaluation::BEARD_COMPAT] {
        assert!(sweep_dc(&alone, evaluation).is_some());
        assert_eq!(sweep_dc(&report, evaluation), sweep_dc(&alone, evaluation));
    }
    // Imported methods have no standard side in the comparison of the modes.
    let comparison = report.evaluation_modes.iter().find(|table| table.dataset == "cifar10").expect("a comparison");
    let imported_rows: Vec<_> = comparison.rows.iter().filter(|row| row.method.contains("BEARD log")).collect();
    assert!(!imported_rows.is_empty() && imported_rows.iter().all(|row| row.standard.is_none()));

    let provenance =
        fixed_provenance(&input).with_beard_logs(logs.iter().map(|(name, text)| (name.as_str(), text.as_str())));
    let index = text(&site(&report, &provenance, false).unwrap()[0]).to_owned();
    assert!(index.contains("dm (BEARD log)"));
    assert!(index.contains("<code>bacon.log</code>"), "the logs are listed as sources");
    assert!(index.contains("imported BEARD logs: beard-compat numbers"), "the provenance names their mode");

    // With a standard-only sweep, the imported settings have beard-compat boards of their own,
    // which do not list the sweep's methods as still without results, and nothing is compared.
    let standard_only = build_with_imports(&golden_input(), &imported);
    assert_eq!(methods(&standard_only, Evaluation::BEARD_COMPAT), ["BACON", "dm (BEARD log)"]);
    assert_eq!(methods(&standard_only, Evaluation::STANDARD), ["dc", "dm"]);
    for board in standard_only.leaderboards.iter().filter(|board| board.evaluation == Evaluation::BEARD_COMPAT) {
        assert!(board.methods_without_results.is_empty(), "{board:?}");
    }
    assert!(standard_only.evaluation_modes.is_empty(), "no setting is evaluated both ways");
}

#[test]
fn model_pool_rows_are_marked_in_every_format() {
    use beard_proto::v1::{DistilledSource, PooledCheckpoint, distilled_source};
    let mut input = golden_input();
    for (spec, _) in &mut input.results {
        let train = spec.train.as_mut().expect("a train spec");
        if train.method == "dm" {
            let pooled = PooledCheckpoint { sha256: "ab".repeat(32) };
            train.source = Some(DistilledSource { source: Some(distilled_source::Source::Checkpoint(pooled)) });
        }
    }
    let report = build(&input);
    let markdown = report.to_markdown();
    assert!(markdown.contains("| dm (model pool)"), "{markdown}");
    assert!(!markdown.contains("dc (model pool)"), "{markdown}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    let rows = json["leaderboards"][0]["rows"].as_array().expect("rows").clone();
    let marked: Vec<(&str, bool)> = rows
        .iter()
        .map(|row| (row["method"].as_str().unwrap_or(""), row["model_pool"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(marked, [("dm", true), ("dc", false)]);
    let csv = report.to_csv();
    let pooled: Vec<&str> = csv.lines().filter(|line| line.contains(",model_pool,")).collect();
    assert!(!pooled.is_empty() && pooled.iter().all(|line| line.contains(",dm,") && line.ends_with(",1,")), "{csv}");
    let files = site(&report, &Provenance::default(), false).expect("the site is drawn");
    assert!(text(&files[0]).contains("dm <span class=\"tag\""), "the HTML row carries the tag");
}
