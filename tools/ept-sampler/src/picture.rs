// SPDX-License-Identifier: GPL-2.0

//! Pictures of a VM's heat: address x heat (from `heatmap`) and address x
//! time (from `history`), as PNG or SVG, drawn with plotters.
//!
//! One drawing function serves both formats (it is generic over plotters'
//! backend), so the PNG and the SVG of the same data show the same thing.
//! Text uses DejaVu Sans, compiled into the tool: the tool runs in
//! initramfs images and on servers without fontconfig or any font files.
//!
//! The picture:
//!
//! - **Heat** (top panel): the guest-physical address on x; on y the share
//!   of the window's rounds in which the pages were accessed, as a bar in
//!   the heat colour of that share. Dirty rounds are a dark blue mark at
//!   their share. Unmapped addresses (holes) are grey, mapped but cold ones
//!   the colour of 0. Memslot edges are dashed lines.
//! - **History** (bottom panel): the same address axis; one row per round
//!   of `history`, oldest at the bottom, each region in the heat colour of
//!   the share of its pages accessed in that round.
//! - **Legend** (right): the colour scale shared by both panels and the
//!   marks.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use ept_core::procfs::heatmap::Run;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordu64};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor};

use crate::bins;
use crate::error::Error;
use crate::model::{History, HistoryRound, VmSnapshot};

/// The picture file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PictureFormat {
    /// PNG bitmap.
    Png,
    /// SVG vector picture.
    Svg,
}

/// Smallest picture that still has room for the axes and the legend.
pub const MIN_SIZE: (u32, u32) = (320, 200);

/// Largest picture (a PNG this size is 64 MiB of pixels in memory).
pub const MAX_SIZE: (u32, u32) = (8192, 8192);

/// Grey of addresses that are not mapped (holes).
pub const HOLE: RGBColor = RGBColor(200, 200, 200);

/// Colour of the dirty marks.
pub const DIRTY: RGBColor = RGBColor(20, 40, 150);

/// Colour of memslot edges.
const SLOT_EDGE: RGBColor = RGBColor(0, 0, 0);

/// What a picture shows; [`Picture::from_vm`] makes one from a snapshot,
/// `report` makes one from a whole recording.
#[derive(Clone, Debug, Default)]
pub struct Picture {
    /// The line on top.
    pub title: String,
    /// The address x heat panel.
    pub heat: Option<HeatPanel>,
    /// The address x time panel.
    pub history: Option<TimePanel>,
    /// Memslots as guest-physical byte ranges, with their slot ids.
    pub memslots: Vec<(Range<u64>, u16)>,
}

/// The data of the address x heat panel.
#[derive(Clone, Debug)]
pub struct HeatPanel {
    /// The heat map's runs, in address order.
    pub runs: Vec<Run>,
    /// Rounds in the window.
    pub window: u8,
    /// Whether dirty bits were recorded.
    pub dirty: bool,
    /// A few words on the sampling (mode, granule).
    pub note: String,
}

/// The data of the address x time panel.
#[derive(Clone, Debug)]
pub struct TimePanel {
    /// Guest-physical address of region 0.
    pub base: u64,
    /// Bytes per region.
    pub region: u64,
    /// Rounds, oldest first, with distinct round numbers.
    pub rounds: Vec<HistoryRound>,
}

/// Where a panel's plotting area is in the picture and what its axes
/// span: for tests and anyone who wants to find an address in the
/// pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct PanelArea {
    /// Pixel columns of the plotting area.
    pub x: Range<i32>,
    /// Pixel rows of the plotting area.
    pub y: Range<i32>,
    /// Guest-physical addresses at the left and right edge.
    pub gpa: Range<f64>,
    /// Value at the bottom and top edge (heat in percent, or seconds since
    /// the first round).
    pub value: Range<f64>,
}

impl PanelArea {
    /// The pixel column of address `gpa`.
    pub fn column(&self, gpa: u64) -> i32 {
        let f = (gpa as f64 - self.gpa.start) / (self.gpa.end - self.gpa.start);
        self.x.start + (f * f64::from(self.x.end - self.x.start)).round() as i32
    }

    /// The pixel row of `value` (rows grow downwards, values upwards).
    pub fn row(&self, value: f64) -> i32 {
        let f = (value - self.value.start) / (self.value.end - self.value.start);
        self.y.end - (f * f64::from(self.y.end - self.y.start)).round() as i32
    }
}

/// Where the panels are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// The heat panel, if drawn.
    pub heat: Option<PanelArea>,
    /// The history panel, if drawn.
    pub history: Option<PanelArea>,
}

/// Colour stops of the heat scale (ColorBrewer YlOrRd): light for cold,
/// dark red for hot, brightness falling with heat so it also reads in
/// grey.
const STOPS: [(u8, u8, u8); 9] = [
    (255, 255, 204),
    (255, 237, 160),
    (254, 217, 118),
    (254, 178, 76),
    (253, 141, 60),
    (252, 78, 42),
    (227, 26, 28),
    (189, 0, 38),
    (128, 0, 38),
];

/// The colour of heat `h` (0 cold .. 1 hot; clamped).
pub fn heat_colour(h: f64) -> RGBColor {
    let h = if h.is_nan() { 0.0 } else { h.clamp(0.0, 1.0) };
    let pos = h * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `gpa` as a short label in MiB or GiB.
pub fn gpa_label(gpa: f64, span: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    const GIB: f64 = 1024.0 * MIB;
    if span >= 4.0 * GIB {
        let g = gpa / GIB;
        if (g - g.round()).abs() < 1e-9 {
            format!("{g:.0}G")
        } else {
            format!("{g:.1}G")
        }
    } else {
        let m = gpa / MIB;
        if (m - m.round()).abs() < 1e-6 {
            format!("{m:.0}M")
        } else {
            format!("{m:.1}M")
        }
    }
}

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The font is compiled in and known good; if it were not, text
        // would fail to draw and the caller would get that error.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

impl Picture {
    /// The picture of one VM at one moment: its heat map and its
    /// `history` ring.
    pub fn from_vm(vm: &VmSnapshot) -> Picture {
        let settings = vm.config.as_ref().and_then(|c| c.settings);
        let heat = vm.heatmap.as_ref().map(|(header, runs)| HeatPanel {
            runs: runs.clone(),
            window: header.window,
            dirty: header.mode.dirty(),
            note: format!(
                "last {} rounds of {}, mode {}, granule {}",
                header.window,
                header.rounds,
                header.mode.as_str(),
                header.granule
            ),
        });
        let history = vm.history.as_ref().and_then(TimePanel::from_history);
        let period = settings.map_or(String::new(), |s| format!(", period {} ms", s.period_ms));
        Picture {
            title: format!("VM {}{period}", vm.row.vm),
            heat,
            history,
            memslots: memslot_ranges(vm),
        }
    }

    /// The address span of everything drawn.
    fn span(&self) -> Option<Range<u64>> {
        let mut spans: Vec<Range<u64>> = Vec::new();
        if let Some((s, e)) = self.heat.as_ref().and_then(|h| bins::span(&h.runs)) {
            spans.push(s..e);
        }
        if let Some(t) = &self.history {
            spans.push(t.span());
        }
        spans.extend(self.memslots.iter().map(|(r, _)| r.clone()));
        let start = spans.iter().map(|r| r.start).min()?;
        let end = spans.iter().map(|r| r.end).max()?;
        (end > start).then_some(start..end)
    }
}

/// A VM's memslots as byte ranges.
pub fn memslot_ranges(vm: &VmSnapshot) -> Vec<(Range<u64>, u16)> {
    vm.memslots
        .iter()
        .filter_map(|m| {
            let start = m.base_gfn.checked_mul(4096)?;
            let end = start.checked_add(m.npages.checked_mul(4096)?)?;
            Some((start..end, m.id))
        })
        .collect()
}

impl TimePanel {
    /// The panel of a `history` ring; `None` if it kept no round.
    pub fn from_history(h: &History) -> Option<TimePanel> {
        (!h.rounds.is_empty()).then(|| TimePanel {
            base: h.header.base,
            region: h.header.region.bytes(),
            rounds: h.rounds.clone(),
        })
    }

    fn regions(&self) -> usize {
        self.rounds
            .iter()
            .map(|r| r.accessed.len())
            .max()
            .unwrap_or(0)
    }

    fn span(&self) -> Range<u64> {
        let len = (self.regions() as u64).saturating_mul(self.region);
        self.base..self.base.saturating_add(len)
    }

    /// Start of each round in seconds since the first, and the usual
    /// interval between rounds (the median; 1 s if there is one round).
    fn times(&self) -> (Vec<f64>, f64) {
        let first = self.rounds.first().map_or(0, |r| r.record.start_ns);
        let t: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| r.record.start_ns.saturating_sub(first) as f64 / 1e9)
            .collect();
        let mut gaps: Vec<f64> = t
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|g| *g > 0.0)
            .collect();
        gaps.sort_by(f64::total_cmp);
        let usual = gaps.get(gaps.len() / 2).copied().unwrap_or(1.0);
        (t, usual)
    }
}

/// Draws `vm`'s heat map (and its history, when it has one) into `path`,
/// `width` x `height` pixels.
pub fn write(
    vm: &VmSnapshot,
    path: &Path,
    format: PictureFormat,
    width: u32,
    height: u32,
) -> Result<(), Error> {
    write_picture(&Picture::from_vm(vm), path, format, width, height)
}

/// Draws `pic` into `path`.
pub fn write_picture(
    pic: &Picture,
    path: &Path,
    format: PictureFormat,
    width: u32,
    height: u32,
) -> Result<(), Error> {
    if pic.heat.is_none() && pic.history.is_none() {
        return Err(Error::Other(format!(
            "{}: no heat map and no history to draw (is the VM being sampled? `ept-sampler start` it first)",
            pic.title
        )));
    }
    let (bytes, _) = render(pic, format, width, height)?;
    std::fs::write(path, bytes).map_err(|e| crate::source::io_error(path.to_path_buf(), e))
}

/// Draws `pic` as the bytes of a PNG or SVG file, and says where its
/// panels are.
pub fn render(
    pic: &Picture,
    format: PictureFormat,
    width: u32,
    height: u32,
) -> Result<(Vec<u8>, Layout), Error> {
    check_size(width, height)?;
    register_font();
    match format {
        PictureFormat::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            let layout = {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                let layout = draw(&root, pic).map_err(draw_error)?;
                root.present().map_err(draw_error)?;
                layout
            };
            Ok((encode_png(&rgb, width, height)?, layout))
        }
        PictureFormat::Svg => {
            let mut svg = String::new();
            let layout = {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                let layout = draw(&root, pic).map_err(draw_error)?;
                root.present().map_err(draw_error)?;
                layout
            };
            Ok((svg.into_bytes(), layout))
        }
    }
}

/// Where the panels of `pic` drawn at this size are.
pub fn layout(pic: &Picture, width: u32, height: u32) -> Result<Layout, Error> {
    render(pic, PictureFormat::Png, width, height).map(|(_, l)| l)
}

fn check_size(width: u32, height: u32) -> Result<(), Error> {
    if width < MIN_SIZE.0 || height < MIN_SIZE.1 || width > MAX_SIZE.0 || height > MAX_SIZE.1 {
        return Err(Error::Other(format!(
            "picture size {width}x{height}: must be from {}x{} to {}x{} pixels",
            MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
        )));
    }
    Ok(())
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Other(format!("cannot draw the picture: {e}"))
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| Error::Other(format!("cannot encode the PNG: {e}"));
    let mut w = enc.write_header().map_err(err)?;
    w.write_image_data(rgb).map_err(err)?;
    w.finish().map_err(err)?;
    Ok(out)
}

type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Sizes that follow the picture's size.
#[derive(Clone, Copy)]
struct Sizes {
    font: u32,
    title: u32,
    legend: u32,
    y_labels: u32,
    x_labels: u32,
}

impl Sizes {
    fn of(width: u32, height: u32) -> Sizes {
        let font = (height.min(width * 3 / 4) / 45).clamp(10, 22);
        Sizes {
            font,
            title: font * 2,
            legend: (width / 8).clamp(70, 160),
            y_labels: font * 4,
            x_labels: font * 3,
        }
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pic: &Picture,
) -> DrawResult<Layout, DB> {
    let (width, height) = root.dim_in_pixel();
    let sz = Sizes::of(width, height);
    root.fill(&WHITE)?;
    let Some(span) = pic.span() else {
        root.draw_text(
            "nothing to draw: no heat map and no history",
            &("sans-serif", sz.font).into_font().color(&BLACK),
            (10, 10),
        )?;
        return Ok(Layout::default());
    };
    let root = root.titled(&pic.title, ("sans-serif", sz.title * 3 / 4))?;
    let (main, legend) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(sz.legend));
    let mut layout = Layout::default();
    match (&pic.heat, &pic.history) {
        (Some(h), Some(t)) => {
            let (top, bottom) = main.split_vertically(main.dim_in_pixel().1 * 2 / 5);
            layout.heat = Some(draw_heat(&top, h, pic, span.clone(), sz)?);
            layout.history = Some(draw_time(&bottom, t, pic, span, sz)?);
        }
        (Some(h), None) => layout.heat = Some(draw_heat(&main, h, pic, span, sz)?),
        (None, Some(t)) => layout.history = Some(draw_time(&main, t, pic, span, sz)?),
        (None, None) => {}
    }
    draw_legend(&legend, pic, sz)?;
    Ok(layout)
}

fn x_range(span: &Range<u64>) -> Range<f64> {
    span.start as f64..span.end as f64
}

/// Address ticks at multiples of a power of two (64M, 128M, ... rather
/// than plotters' decimal 47.7M, 95.4M), at most about eight of them.
fn x_ticks(span: &Range<u64>) -> Vec<u64> {
    let len = span.end.saturating_sub(span.start).max(1);
    let mut step: u64 = 4096;
    while len / step > 8 {
        step = step.saturating_mul(2);
    }
    let first = span.start.div_ceil(step).saturating_mul(step);
    (0..)
        .map(|i: u64| first.saturating_add(i.saturating_mul(step)))
        .take_while(|&x| x <= span.end)
        .collect()
}

/// The x axis: addresses with power-of-two ticks.
fn x_axis(span: &Range<u64>) -> WithKeyPoints<RangedCoordu64> {
    (span.start..span.end).with_key_points(x_ticks(span))
}

fn draw_heat<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    h: &HeatPanel,
    pic: &Picture,
    span: Range<u64>,
    sz: Sizes,
) -> DrawResult<PanelArea, DB> {
    let xr = x_range(&span);
    let width_bytes = xr.end - xr.start;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("heat: {}", h.note), ("sans-serif", sz.font))
        .margin(sz.font / 2)
        .x_label_area_size(sz.x_labels)
        .y_label_area_size(sz.y_labels)
        .build_cartesian_2d(x_axis(&span), 0f64..105f64)?;
    let fmt_x = |v: &u64| gpa_label(*v as f64, width_bytes);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(16)
        .y_labels(5)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|v: &f64| {
            if *v > 100.0 {
                String::new()
            } else {
                format!("{v:.0}%")
            }
        })
        .x_desc("guest-physical address")
        .y_desc("rounds in window")
        .label_style(("sans-serif", sz.font * 4 / 5))
        .axis_desc_style(("sans-serif", sz.font * 4 / 5))
        .draw()?;
    let (px, py) = chart.plotting_area().get_pixel_range();
    // One bin per pixel column: the picture is exact at any size.
    let columns = usize::try_from(px.end - px.start).unwrap_or(1).max(1);
    let folded = bins::fold(&h.runs, span.start, span.end, columns);
    chart.draw_series(folded.iter().map(|b| {
        let colour = if b.hole > b.present && b.hole > 0.0 {
            HOLE
        } else if b.present > 0.0 {
            heat_colour(0.0)
        } else {
            WHITE
        };
        Rectangle::new([(b.start, 0.0), (b.end, 105.0)], colour.filled())
    }))?;
    chart.draw_series(folded.iter().filter(|b| b.accessed > 0.0).map(|b| {
        Rectangle::new(
            [(b.start, 0.0), (b.end, b.accessed * 100.0)],
            heat_colour(b.accessed).filled(),
        )
    }))?;
    if h.dirty {
        let mark = (105.0 / f64::from((py.end - py.start).max(1))) * 1.5;
        chart.draw_series(folded.iter().filter(|b| b.dirty > 0.0).map(|b| {
            let y = b.dirty * 100.0;
            Rectangle::new(
                [(b.start, (y - mark).max(0.0)), (b.end, y + mark)],
                DIRTY.filled(),
            )
        }))?;
    }
    draw_slot_edges(&mut chart, pic, 0.0..105.0, true, sz)?;
    Ok(PanelArea {
        x: px,
        y: py,
        gpa: xr,
        value: 0.0..105.0,
    })
}

fn draw_slot_edges<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<WithKeyPoints<RangedCoordu64>, RangedCoordf64>>,
    pic: &Picture,
    y: Range<f64>,
    label: bool,
    sz: Sizes,
) -> DrawResult<(), DB> {
    for (range, id) in &pic.memslots {
        for x in [range.start, range.end] {
            chart.draw_series(DashedLineSeries::new(
                [(x, y.start), (x, y.end)],
                6,
                4,
                SLOT_EDGE.stroke_width(1),
            ))?;
        }
        if label {
            chart.draw_series(std::iter::once(Text::new(
                format!("slot {id}"),
                (range.start, y.end),
                ("sans-serif", sz.font * 3 / 4).into_font().color(&BLACK),
            )))?;
        }
    }
    Ok(())
}

fn draw_time<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    t: &TimePanel,
    pic: &Picture,
    span: Range<u64>,
    sz: Sizes,
) -> DrawResult<PanelArea, DB> {
    let xr = x_range(&span);
    let width_bytes = xr.end - xr.start;
    let (times, usual) = t.times();
    let top = times.last().copied().unwrap_or(0.0) + usual;
    let first = t.rounds.first().map_or(0, |r| r.record.round);
    let last = t.rounds.last().map_or(0, |r| r.record.round);
    let caption = format!(
        "history: accessed share of each {} region, rounds {first}..{last}",
        crate::picture::size_label(t.region)
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", sz.font))
        .margin(sz.font / 2)
        .x_label_area_size(sz.x_labels)
        .y_label_area_size(sz.y_labels)
        .build_cartesian_2d(x_axis(&span), 0f64..top)?;
    let fmt_x = |v: &u64| gpa_label(*v as f64, width_bytes);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(16)
        .y_labels(6)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|v: &f64| format!("{v:.1}s"))
        .x_desc("guest-physical address")
        .y_desc("time since the first round")
        .label_style(("sans-serif", sz.font * 4 / 5))
        .axis_desc_style(("sans-serif", sz.font * 4 / 5))
        .draw()?;
    let hs = t.span();
    let (hx0, hx1) = (hs.start, hs.end);
    // A row lasts until the next round, but a gap (rounds missing from a
    // recording, a stop) is left blank rather than smeared.
    let rows: Vec<(f64, f64)> = times
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let next = times.get(i + 1).copied().unwrap_or(s + usual);
            (s, next.min(s + usual * 1.5))
        })
        .collect();
    let (px, py) = chart.plotting_area().get_pixel_range();
    let bands = bands(
        t,
        &rows,
        top,
        usize::try_from(py.end - py.start).unwrap_or(1).max(1),
        usize::try_from(px.end - px.start).unwrap_or(1).max(1),
    );
    chart.draw_series(
        bands
            .iter()
            .map(|b| Rectangle::new([(hx0, b.s), (hx1, b.e)], heat_colour(0.0).filled())),
    )?;
    let mut rects = Vec::new();
    for b in &bands {
        for &(x0, x1, share) in &b.cells {
            rects.push(Rectangle::new(
                [(x0, b.s), (x1, b.e)],
                heat_colour(f64::from(share) / 255.0).filled(),
            ));
        }
    }
    chart.draw_series(rects)?;
    draw_slot_edges(&mut chart, pic, 0.0..top, false, sz)?;
    Ok(PanelArea {
        x: px,
        y: py,
        gpa: xr,
        value: 0.0..top,
    })
}

/// One drawn row of the history panel: a time span (seconds since the
/// first round) and its non-zero cells (first address, end address,
/// share 1..=255).
struct Band {
    s: f64,
    e: f64,
    cells: Vec<(u64, u64, u8)>,
}

/// The history as rows and cells no finer than the pixels: rounds that
/// fall in one pixel row, and regions in one pixel column, are drawn as
/// their mean share. A long recording or a large guest then gives a
/// picture (and an SVG file) the size of the plot, not of the data.
fn bands(t: &TimePanel, rows: &[(f64, f64)], top: f64, height: usize, width: usize) -> Vec<Band> {
    let regions = t.regions();
    // Rounds grouped by pixel row (each round alone when they fit).
    let mut groups: Vec<(f64, f64, Vec<&HistoryRound>)> = Vec::new();
    let mut last_key = None;
    for (round, &(s, e)) in t.rounds.iter().zip(rows) {
        let key = if t.rounds.len() <= height {
            None
        } else {
            Some((s / top.max(f64::MIN_POSITIVE) * height as f64) as usize)
        };
        match groups.last_mut() {
            Some(g) if key.is_some() && key == last_key => {
                g.0 = g.0.min(s);
                g.1 = g.1.max(e);
                g.2.push(round);
            }
            _ => groups.push((s, e, vec![round])),
        }
        last_key = key;
    }
    // Regions grouped by pixel column.
    let columns = regions.min(width).max(1);
    let column = |c: usize| (c * regions / columns)..((c + 1) * regions / columns);
    groups
        .into_iter()
        .map(|(s, e, rounds)| {
            let mut shares: Vec<u8> = Vec::with_capacity(columns);
            for c in 0..columns {
                let r = column(c);
                let (mut sum, mut n) = (0u64, 0u64);
                for round in &rounds {
                    for share in round.accessed.get(r.clone()).unwrap_or(&[]) {
                        sum += u64::from(*share);
                        n += 1;
                    }
                }
                // Rounded up: one accessed page in a column still shows.
                shares.push(if n == 0 { 0 } else { sum.div_ceil(n) as u8 });
            }
            let addr = |c: usize| {
                let region = column(c).start as u64;
                t.base.saturating_add(region.saturating_mul(t.region))
            };
            let end = t.span().end;
            let mut cells = Vec::new();
            let mut i = 0;
            while i < shares.len() {
                let mut j = i + 1;
                while j < shares.len() && shares[j] == shares[i] {
                    j += 1;
                }
                if shares[i] > 0 {
                    let x1 = if j < columns { addr(j) } else { end };
                    cells.push((addr(i), x1, shares[i]));
                }
                i = j;
            }
            Band { s, e, cells }
        })
        .collect()
}

/// `bytes` as `4K`, `2M`, `1G` (the largest binary unit that divides it).
pub fn size_label(bytes: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pic: &Picture,
    sz: Sizes,
) -> DrawResult<(), DB> {
    let (w, h) = area.dim_in_pixel();
    let font = ("sans-serif", sz.font * 4 / 5).into_font().color(&BLACK);
    let pad = (sz.font / 2) as i32;
    let bar_w = (w as i32 / 4).clamp(10, 30);
    let top = sz.font as i32 * 3;
    let bar_h = (h as i32 * 2 / 5).max(40);
    area.draw_text("heat", &font, (pad, top - sz.font as i32 * 2))?;
    let steps = bar_h.max(1);
    for i in 0..steps {
        let v = 1.0 - f64::from(i) / f64::from(steps - 1).max(1.0);
        let y = top + i;
        area.draw(&Rectangle::new(
            [(pad, y), (pad + bar_w, y + 1)],
            heat_colour(v).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(pad, top), (pad + bar_w, top + bar_h)],
        BLACK.stroke_width(1),
    ))?;
    for (v, label) in [(1.0, "100%"), (0.5, "50%"), (0.0, "0")] {
        let y = top + ((1.0 - v) * f64::from(bar_h - 1)) as i32;
        area.draw_text(label, &font, (pad + bar_w + 4, y - sz.font as i32 * 2 / 5))?;
    }
    let mut y = top + bar_h + sz.font as i32;
    let swatch = sz.font as i32;
    let item = |colour: RGBColor, text: &str, y: &mut i32| -> DrawResult<(), DB> {
        area.draw(&Rectangle::new(
            [(pad, *y), (pad + swatch, *y + swatch)],
            colour.filled(),
        ))?;
        area.draw_text(text, &font, (pad + swatch + 4, *y))?;
        *y += swatch * 3 / 2;
        Ok(())
    };
    if pic.heat.is_some() {
        item(HOLE, "hole", &mut y)?;
        if pic.heat.as_ref().is_some_and(|h| h.dirty) {
            item(DIRTY, "dirty", &mut y)?;
        }
    }
    if !pic.memslots.is_empty() {
        area.draw(&PathElement::new(
            [(pad + swatch / 2, y), (pad + swatch / 2, y + swatch)],
            SLOT_EDGE.stroke_width(1),
        ))?;
        area.draw_text("memslot", &font, (pad + swatch + 4, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_power_of_two_multiples_inside_the_span() {
        const M: u64 = 1 << 20;
        assert_eq!(
            x_ticks(&(0..256 * M)),
            (0..=8).map(|i| i * 32 * M).collect::<Vec<_>>()
        );
        let t = x_ticks(&(3 * M..100 * M));
        assert!(t.len() <= 9 && t.len() >= 4, "{t:?}");
        assert!(t
            .iter()
            .all(|&x| (3 * M..=100 * M).contains(&x) && x % (16 * M) == 0));
        assert_eq!(x_ticks(&(0..4096)), vec![0, 4096]);
    }

    #[test]
    fn labels_use_the_unit_of_the_span() {
        const M: f64 = 1048576.0;
        assert_eq!(gpa_label(128.0 * M, 256.0 * M), "128M");
        assert_eq!(gpa_label(1.5 * M, 256.0 * M), "1.5M");
        assert_eq!(gpa_label(8192.0 * M, 16384.0 * M), "8G");
        assert_eq!(size_label(2 << 20), "2M");
        assert_eq!(size_label(4096), "4K");
        assert_eq!(size_label(1 << 30), "1G");
    }

    #[test]
    fn heat_colours_darken_with_heat() {
        let luma = |c: RGBColor| 299 * u32::from(c.0) + 587 * u32::from(c.1) + 114 * u32::from(c.2);
        let mut last = u32::MAX;
        for i in 0..=100 {
            let l = luma(heat_colour(f64::from(i) / 100.0));
            assert!(l <= last, "heat {i}%: brighter than the step before");
            last = l;
        }
        assert_eq!(heat_colour(-1.0), heat_colour(0.0));
        assert_eq!(heat_colour(f64::NAN), heat_colour(0.0));
        assert_eq!(heat_colour(2.0), heat_colour(1.0));
        // The marks are not on the scale.
        for c in [HOLE, DIRTY] {
            assert!((0..=255).all(|i| heat_colour(f64::from(i) / 255.0) != c));
        }
    }

    #[test]
    fn an_empty_picture_is_refused() {
        let pic = Picture {
            title: "VM 1-2".into(),
            ..Picture::default()
        };
        let err = write_picture(
            &pic,
            Path::new("/nonexistent/x.png"),
            PictureFormat::Png,
            800,
            600,
        )
        .unwrap_err();
        assert!(err.to_string().contains("start"), "{err}");
    }
}
