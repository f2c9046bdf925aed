//! Drawing the report's charts with plotters: CREI against IPC (a line per method, Full-size
//! baselines as horizontal dashed lines) and pairs of bars per method (RRM and AEM; CREI with
//! standard and adversarial training). SVG always; PNG through the bitmap backend, its text set
//! in a font compiled into the binary, so that no system font is needed.
//!
//! A chart is a plain value ([`Chart`]): what to draw is decided elsewhere (see the figures
//! module), so any table can be drawn. Non-finite values are left out of a chart.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use thiserror::Error;

/// Size of every chart, in pixels (SVG user units).
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 500;
/// Width of the legend column on the right of the plotting area.
const LEGEND_WIDTH: u32 = 210;
/// The family plotters draws text in; registered with the bundled font.
const FONT: &str = "sans-serif";
/// Text sizes in pixels: title, axis descriptions, tick labels and legend.
const TITLE_SIZE: u32 = 26;
const AXIS_SIZE: u32 = 19;
const LABEL_SIZE: u32 = 17;
/// Okabe and Ito's palette, distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];
/// Legend labels longer than this are cut with an ellipsis so that they fit the column.
const LEGEND_CHARS: usize = 24;

/// One method's line: (IPC, CREI) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(u32, f64)>,
}

/// A value drawn as a horizontal line across the chart, such as the Full-size baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub label: String,
    pub value: f64,
}

/// CREI (in percent) against IPC on a logarithmic axis.
#[derive(Debug, Clone, PartialEq)]
pub struct CreiByIpc {
    pub title: String,
    /// Points at IPC 0 are ignored: IPC does not apply to a baseline.
    pub lines: Vec<Series>,
    pub baselines: Vec<Baseline>,
}

/// One category of a bar chart: a bar per series, absent where there is no value.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    pub label: String,
    pub values: [Option<f64>; 2],
}

/// Two bars per category, in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedBars {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// The names of the two bars of every group, left then right.
    pub series: [String; 2],
    pub groups: Vec<BarGroup>,
}

/// Anything the report draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    CreiByIpc(CreiByIpc),
    PairedBars(PairedBars),
}

impl Chart {
    pub fn title(&self) -> &str {
        match self {
            Chart::CreiByIpc(chart) => &chart.title,
            Chart::PairedBars(chart) => &chart.title,
        }
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, Error)]
pub enum PlotError {
    #[error("cannot draw the chart `{title}`: {reason}")]
    Draw { title: String, reason: String },
    #[error("the bundled font cannot be read, so charts cannot be drawn")]
    Font,
}

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, PlotError> {
    register_font()?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|reason| draw_error(chart, reason))?;
    }
    Ok(text)
}

/// The chart as a PNG image.
pub fn png(chart: &Chart) -> Result<Vec<u8>, PlotError> {
    register_font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|reason| draw_error(chart, reason))?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels))
        .map_err(|error| draw_error(chart, error.to_string()))?;
    Ok(out)
}

fn draw_error(chart: &Chart, reason: String) -> PlotError {
    PlotError::Draw { title: chart.title().to_owned(), reason }
}

/// Registers the bundled font once; text layout needs it for SVG as well as PNG.
fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT).is_ok()
    });
    if *registered { Ok(()) } else { Err(PlotError::Font) }
}

/// How a legend entry shows its series.
enum Swatch {
    Line,
    Dashed,
    Bar,
}

struct LegendEntry {
    label: String,
    color: RGBColor,
    swatch: Swatch,
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    let body = root.margin(10, 0, 0, 0).titled(chart.title(), (FONT, TITLE_SIZE)).map_err(|error| error.to_string())?;
    let (plot, legend_area) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
    let legend = match chart {
        Chart::CreiByIpc(chart) => crei_by_ipc(&plot, chart),
        Chart::PairedBars(chart) => paired_bars(&plot, chart),
    }
    .map_err(|error| error.to_string())?;
    draw_legend(&legend_area, &legend).map_err(|error| error.to_string())?;
    root.present().map_err(|error| error.to_string())
}

type Drawn<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn crei_by_ipc<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &CreiByIpc) -> Drawn<Vec<LegendEntry>, DB> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = chart
        .lines
        .iter()
        .map(|series| {
            let points = series
                .points
                .iter()
                .filter(|(ipc, value)| *ipc > 0 && value.is_finite())
                .map(|(ipc, value)| (f64::from(*ipc), *value))
                .collect();
            (series.label.as_str(), points)
        })
        .collect();
    let baselines: Vec<&Baseline> = chart.baselines.iter().filter(|baseline| baseline.value.is_finite()).collect();
    // Ticks at the IPCs the chart has.
    let mut ipcs: Vec<f64> = lines.iter().flat_map(|(_, points)| points.iter().map(|(ipc, _)| *ipc)).collect();
    ipcs.sort_by(f64::total_cmp);
    ipcs.dedup();
    let (low, high) = match (ipcs.first(), ipcs.last()) {
        (Some(low), Some(high)) => (low / 1.6, high * 1.6),
        _ => (0.5, 100.0),
    };
    let values = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, value)| *value))
        .chain(baselines.iter().map(|baseline| baseline.value));
    let (bottom, top) = percent_range(values);

    let mut context = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(64)
        .build_cartesian_2d((low..high).log_scale().with_key_points(ipcs), bottom..top)?;
    context
        .configure_mesh()
        .x_desc("Images per class (IPC, log scale)")
        .y_desc("CREI (%)")
        .x_label_formatter(&|ipc| integer_or_decimal(*ipc))
        .y_label_formatter(&|value| integer_or_decimal(*value))
        .axis_desc_style((FONT, AXIS_SIZE))
        .label_style((FONT, LABEL_SIZE))
        .draw()?;
    let mut legend = Vec::new();
    for (index, (label, points)) in lines.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        context.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?;
        context.draw_series(points.iter().map(|point| Circle::new(*point, 4, color.filled())))?;
        legend.push(LegendEntry { label: (*label).to_owned(), color, swatch: Swatch::Line });
    }
    for (index, baseline) in baselines.iter().enumerate() {
        let color = if index == 0 { RGBColor(90, 90, 90) } else { PALETTE[(lines.len() + index) % PALETTE.len()] };
        let ends = [(low, baseline.value), (high, baseline.value)];
        context.draw_series(DashedLineSeries::new(ends, 10, 6, color.stroke_width(2)))?;
        legend.push(LegendEntry { label: baseline.label.clone(), color, swatch: Swatch::Dashed });
    }
    Ok(legend)
}

fn paired_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &PairedBars) -> Drawn<Vec<LegendEntry>, DB> {
    // One segment per group; a degenerate range (a single group) would map every position of the
    // axis onto one point and draw the group's two bars over each other, so a single group gets
    // an empty second segment.
    let last = u32::try_from(chart.groups.len().saturating_sub(1)).unwrap_or(u32::MAX).max(1);
    let values = chart.groups.iter().flat_map(|group| group.values.iter().flatten().copied());
    let (bottom, top) = percent_range(values.filter(|value| value.is_finite()));
    let mut context = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(64)
        .build_cartesian_2d((0..last).into_segmented(), bottom..top)?;
    let label_of = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(index) => {
            chart.groups.get(*index as usize).map(|group| group.label.clone()).unwrap_or_default()
        }
        _ => String::new(),
    };
    context
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(chart.groups.len().max(1))
        .x_label_formatter(&label_of)
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .y_label_formatter(&|value| integer_or_decimal(*value))
        .axis_desc_style((FONT, AXIS_SIZE))
        .label_style((FONT, LABEL_SIZE))
        .draw()?;
    let colors = [PALETTE[0], PALETTE[1]];
    for (index, group) in (0u32..).zip(&chart.groups) {
        for (side, value) in group.values.iter().enumerate() {
            let Some(value) = value.filter(|value| value.is_finite()) else { continue };
            let (left, right, margins) = if side == 0 {
                (SegmentValue::Exact(index), SegmentValue::CenterOf(index), (14, 1))
            } else {
                (SegmentValue::CenterOf(index), SegmentValue::Exact(index + 1), (1, 14))
            };
            let mut bar = Rectangle::new([(left, 0.0), (right, value)], colors[side].filled());
            bar.set_margin(0, 0, margins.0, margins.1);
            context.draw_series(std::iter::once(bar))?;
        }
    }
    Ok(chart
        .series
        .iter()
        .zip(colors)
        .map(|(label, color)| LegendEntry { label: label.clone(), color, swatch: Swatch::Bar })
        .collect())
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[LegendEntry]) -> Drawn<(), DB> {
    let style = TextStyle::from((FONT, LABEL_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (row, entry) in (0i32..).zip(entries) {
        let y = 40 + row * 24;
        match entry.swatch {
            Swatch::Line => {
                area.draw(&PathElement::new([(8, y), (36, y)], entry.color.stroke_width(2)))?;
                area.draw(&Circle::new((22, y), 4, entry.color.filled()))?;
            }
            Swatch::Dashed => {
                area.draw(&PathElement::new([(8, y), (18, y)], entry.color.stroke_width(2)))?;
                area.draw(&PathElement::new([(24, y), (36, y)], entry.color.stroke_width(2)))?;
            }
            Swatch::Bar => area.draw(&Rectangle::new([(10, y - 7), (34, y + 7)], entry.color.filled()))?,
        }
        area.draw(&Text::new(shorten(&entry.label), (44, y), style.clone()))?;
    }
    Ok(())
}

/// 0 to 100 percent, widened to hold every value with a little room.
fn percent_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((0.0f64, 100.0f64), |(low, high), value| (low.min(value), high.max(value)));
    let pad = |value: f64| if value == 0.0 || value == 100.0 { value } else { value + value.signum() * 5.0 };
    (pad(low), pad(high))
}

fn integer_or_decimal(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 { format!("{value:.0}") } else { format!("{value}") }
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LEGEND_CHARS {
        label.to_owned()
    } else {
        let kept: String = label.chars().take(LEGEND_CHARS - 1).collect();
        format!("{kept}…")
    }
}
