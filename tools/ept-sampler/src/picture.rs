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
//! - **Heat** (top panel): the guest-physical address on x ([`Axis`]: the
//!   memslots, long holes between them cut out and marked by a zigzag);
//!   on y the share of the window's rounds in which the pages were
//!   accessed, as a bar in the heat colour of that share. Dirty rounds are
//!   a dark blue mark at their share. Unmapped addresses (holes) are grey,
//!   mapped but cold ones the colour of 0. Memslot edges are dashed lines.
//! - **History** (bottom panel): the same address axis; one row per round
//!   of `history`, oldest at the bottom, each region in the heat colour of
//!   the share of its pages accessed in that round, over the ground of
//!   the heat panel (holes grey).
//! - **Legend** (right): the colour scale shared by both panels and the
//!   marks.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use ept_core::heat::IdleAge;
use ept_core::procfs::heatmap::Run;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordu64};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor};

use crate::axis::{Axis, Segment};
use crate::bins::{self, Bin, ColorBy};
use crate::error::Error;
use crate::model::{slot_bytes, History, HistoryRound, VmSnapshot};
use crate::render::{size_label, term, text};

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
    /// Memslots as guest-physical byte ranges, with their slot numbers.
    pub memslots: Vec<(Range<u64>, u32)>,
    /// The time x bytes panel of idle memory (a recording's).
    pub idle: Option<IdlePanel>,
}

/// The data of the idle panel: a VM's idle histograms over time, drawn
/// as stacked areas, the memory used most recently at the bottom.
#[derive(Clone, Debug)]
pub struct IdlePanel {
    /// Which bit the ages are of: `access` or `write`.
    pub what: &'static str,
    /// The bands' names, youngest first (`<1s`, `1s-10s`, ... `>=1h`).
    pub bands: Vec<String>,
    /// Per snapshot, in time order: seconds since the first snapshot,
    /// and bytes per band (one per name); `None` where the ages were
    /// not known (the bands are broken there).
    pub points: Vec<(f64, Option<Vec<u64>>)>,
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
    /// What the bars show: heat, or freshness by idle age
    /// ([`bins::freshness`]).
    pub by: ColorBy,
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

/// Where the panels are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// The heat panel, if drawn.
    pub heat: Option<PanelArea>,
    /// The history panel, if drawn.
    pub history: Option<PanelArea>,
    /// The idle panel, if drawn.
    pub idle: Option<IdleArea>,
}

/// Where the idle panel is drawn, and its scales.
#[derive(Clone, Debug, PartialEq)]
pub struct IdleArea {
    /// Pixel columns of the plotting area.
    pub x: Range<i32>,
    /// Pixel rows of the plotting area.
    pub y: Range<i32>,
    /// Seconds at the left and right edge.
    pub time: Range<f64>,
    /// MiB at the bottom and top edge.
    pub mib: Range<f64>,
}

impl IdleArea {
    /// The pixel column of `t` seconds.
    pub fn column(&self, t: f64) -> i32 {
        let f = (t - self.time.start) / (self.time.end - self.time.start);
        self.x.start + (f * f64::from(self.x.end - self.x.start)).round() as i32
    }

    /// The pixel row of `mib`.
    pub fn row(&self, mib: f64) -> i32 {
        let f = (mib - self.mib.start) / (self.mib.end - self.mib.start);
        self.y.end - (f * f64::from(self.y.end - self.y.start)).round() as i32
    }
}

/// The colour of band `i` of `n` in the idle panel: the heat colour of
/// recent use for the youngest, fading with age (never as light as the
/// page, so the oldest band still shows on white).
pub fn band_colour(i: usize, n: usize) -> RGBColor {
    let f = if n <= 1 {
        0.0
    } else {
        i as f64 / (n - 1) as f64
    };
    heat_colour(1.0 - 0.85 * f)
}

/// Colour stops of the heat scale (ColorBrewer YlOrRd): light for cold,
/// dark red for hot, brightness falling with heat so it also reads in
/// grey. The terminal's 24-bit ramp (inferno) is dark for cold, which
/// suits a terminal and not a white page, so the colours differ; how heat
/// maps onto them is shared ([`term::ramp_rgb`]: the first stop only for
/// no heat at all).
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

/// The colour of heat `h` (0 cold .. 1 hot; clamped, NaN is cold).
pub fn heat_colour(h: f64) -> RGBColor {
    let (r, g, b) = term::ramp_rgb(&STOPS, h);
    RGBColor(r, g, b)
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
            by: ColorBy::Heat,
        });
        let history = vm.history.as_ref().and_then(TimePanel::from_history);
        let period = settings.map_or(String::new(), |s| format!(", period {} ms", s.period_ms));
        Picture {
            title: format!("VM {}{period}", vm.row.vm),
            heat,
            history,
            memslots: memslot_ranges(vm),
            idle: None,
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

    /// The x axis: the memslots' addresses, long holes between them cut
    /// out (the heat map and the history have nothing but holes there);
    /// the whole span when there are no memslots.
    pub fn axis(&self) -> Option<Axis> {
        if self.heat.is_none() && self.history.is_none() {
            return None;
        }
        let slots: Vec<Range<u64>> = self.memslots.iter().map(|(r, _)| r.clone()).collect();
        Axis::new(&slots).or_else(|| Axis::new(&[self.span()?]))
    }
}

/// A VM's memslots as byte ranges, with their slot numbers (as in
/// `heatmap`'s `slot` column).
pub fn memslot_ranges(vm: &VmSnapshot) -> Vec<(Range<u64>, u32)> {
    vm.memslots
        .iter()
        .map(|m| (slot_bytes(m), m.slot()))
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
    if pic.heat.is_none() && pic.history.is_none() && pic.idle.is_none() {
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
    let axis = pic.axis();
    if axis.is_none() && pic.idle.is_none() {
        root.draw_text(
            "nothing to draw: no heat map and no history",
            &("sans-serif", sz.font).into_font().color(&BLACK),
            (10, 10),
        )?;
        return Ok(Layout::default());
    }
    let root = root.titled(&pic.title, ("sans-serif", sz.title * 3 / 4))?;
    let (main, legend) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(sz.legend));
    let mut layout = Layout::default();
    // The idle panel (time on x) below the address panels.
    let (main, legend) = match (&pic.idle, &axis) {
        (Some(idle), Some(_)) => {
            let at = main.dim_in_pixel().1 * 13 / 20;
            let (main, bottom) = main.split_vertically(at);
            let (legend, idle_legend) = legend.split_vertically(at);
            layout.idle = Some(draw_idle(&bottom, idle, sz)?);
            draw_idle_legend(&idle_legend, idle, sz)?;
            (main, legend)
        }
        (Some(idle), None) => {
            layout.idle = Some(draw_idle(&main, idle, sz)?);
            draw_idle_legend(&legend, idle, sz)?;
            return Ok(layout);
        }
        (None, _) => (main, legend),
    };
    let Some(axis) = axis else {
        return Ok(layout);
    };
    match (&pic.heat, &pic.history) {
        (Some(h), Some(t)) => {
            let (top, bottom) = main.split_vertically(main.dim_in_pixel().1 * 2 / 5);
            layout.heat = Some(draw_heat(&top, h, pic, &axis, sz)?);
            layout.history = Some(draw_time(&bottom, t, pic, &axis, sz)?);
        }
        (Some(h), None) => layout.heat = Some(draw_heat(&main, h, pic, &axis, sz)?),
        (None, Some(t)) => layout.history = Some(draw_time(&main, t, pic, &axis, sz)?),
        (None, None) => {}
    }
    draw_legend(&legend, pic, &axis, sz)?;
    Ok(layout)
}

/// The pictures' side of the axis: ticks and labels for plotters.
impl Axis {
    /// Address ticks at multiples of a power of two (64M, 128M, ... rather
    /// than plotters' decimal 47.7M, 95.4M), about eight along the axis,
    /// each segment's start among them, none crowding another: axis
    /// positions and their addresses.
    fn ticks(&self) -> Vec<(f64, u64)> {
        let mut candidates: Vec<(f64, u64)> = self
            .segments
            .iter()
            .map(|s| (s.at.start, s.gpa.start))
            .collect();
        let n = self.segments.len();
        for (i, s) in self.segments.iter().enumerate() {
            let wanted = ((s.at.end - s.at.start) * 8.0).round().max(1.0) as u64;
            let mut step: u64 = 4096;
            while s.bytes() / step > wanted {
                step = step.saturating_mul(2);
            }
            let first = s.gpa.start.div_ceil(step).saturating_mul(step);
            // A segment's end is the break's edge, unless it is the last.
            let end = if i + 1 == n { s.gpa.end } else { s.gpa.end - 1 };
            candidates.extend(
                (0..)
                    .map(|k: u64| first.saturating_add(k.saturating_mul(step)))
                    .take_while(|&x| x <= end)
                    .map(|x| (s.position(x), x)),
            );
        }
        let mut ticks: Vec<(f64, u64)> = Vec::new();
        for c in candidates {
            if ticks.iter().all(|t| (t.0 - c.0).abs() >= 1.0 / 12.0 - 1e-9) {
                ticks.push(c);
            }
        }
        ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
        ticks
    }

    /// The axis for plotters, in [`UNITS`], with [`Axis::ticks`].
    fn coord(&self) -> WithKeyPoints<RangedCoordu64> {
        (0..UNITS).with_key_points(self.ticks().into_iter().map(|(x, _)| unit(x)).collect())
    }

    /// Where plotters draws `gpa`.
    fn x(&self, gpa: u64) -> u64 {
        unit(self.position(gpa))
    }

    /// The label of the tick at `x` (in [`UNITS`]): its address, not one
    /// read back from the rounded position; short where that is exact
    /// (`128M`), else in hex (a segment after a break starts anywhere:
    /// `0xfffc0000`, not `4.0G`).
    fn label(&self, x: u64) -> String {
        let Some(gpa) = self
            .ticks()
            .into_iter()
            .find(|&(t, _)| unit(t) == x)
            .map(|(_, gpa)| gpa)
            .or_else(|| self.gpa_at(x as f64 / UNITS as f64))
        else {
            return String::new();
        };
        let short = size_label(gpa);
        if short.contains('.') {
            format!("{gpa:#x}")
        } else {
            short
        }
    }
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
    /// The address axis.
    pub axis: Axis,
    /// Value at the bottom and top edge (heat in percent, or seconds since
    /// the first round).
    pub value: Range<f64>,
}

impl PanelArea {
    /// The pixel column of address `gpa`.
    pub fn column(&self, gpa: u64) -> i32 {
        let f = self.axis.position(gpa);
        self.x.start + (f * f64::from(self.x.end - self.x.start)).round() as i32
    }

    /// The pixel row of `value` (rows grow downwards, values upwards).
    pub fn row(&self, value: f64) -> i32 {
        let f = (value - self.value.start) / (self.value.end - self.value.start);
        self.y.end - (f * f64::from(self.y.end - self.y.start)).round() as i32
    }
}

/// Plotters' x coordinate: the axis position in millionths (near enough:
/// plotters formats the labels of integer axes, not of `f64` ones with key
/// points).
const UNITS: u64 = 1 << 20;

/// An axis position in [`UNITS`].
fn unit(x: f64) -> u64 {
    (x.clamp(0.0, 1.0) * UNITS as f64).round() as u64
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<WithKeyPoints<RangedCoordu64>, RangedCoordf64>>;

/// Pixel columns of the plot a segment gets (at least one).
fn columns_of(seg: &Segment, plot_px: i32) -> usize {
    ((seg.at.end - seg.at.start) * f64::from(plot_px.max(1)))
        .round()
        .max(1.0) as usize
}

/// What is under the heat of a bin: grey for a hole, the colour of no heat
/// where something is mapped, white where the sampler knows nothing.
fn ground(b: &Bin) -> RGBColor {
    if b.hole > b.present && b.hole > 0.0 {
        HOLE
    } else if b.present > 0.0 {
        heat_colour(0.0)
    } else {
        WHITE
    }
}

/// The ground of the panels across the axis, as address ranges of one
/// colour, no finer than the pixels: from the heat map when there is one
/// (holes grey), else from the memslots (addresses outside them grey).
fn grounds(pic: &Picture, axis: &Axis, plot_px: i32) -> Vec<(Range<u64>, RGBColor)> {
    let mut out: Vec<(Range<u64>, RGBColor)> = Vec::new();
    for seg in &axis.segments {
        let n = columns_of(seg, plot_px);
        let bins: Vec<(Range<u64>, RGBColor)> = match &pic.heat {
            Some(h) => bins::fold(&h.runs, seg.gpa.start, seg.gpa.end, n)
                .iter()
                .map(|b| (b.start..b.end, ground(b)))
                .collect(),
            None if !pic.memslots.is_empty() => {
                // The bins of no runs: only their edges are wanted.
                bins::fold(&[], seg.gpa.start, seg.gpa.end, n)
                    .iter()
                    .map(|b| {
                        let mapped = pic
                            .memslots
                            .iter()
                            .any(|(r, _)| r.start < b.end && b.start < r.end);
                        (b.start..b.end, if mapped { heat_colour(0.0) } else { HOLE })
                    })
                    .collect()
            }
            None => vec![(seg.gpa.clone(), heat_colour(0.0))],
        };
        for (r, c) in bins {
            match out.last_mut() {
                Some((last, lc)) if *lc == c && last.end == r.start => last.end = r.end,
                _ => out.push((r, c)),
            }
        }
    }
    out
}

/// The mesh and labels of a panel.
fn configure<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    axis: &Axis,
    y_labels: usize,
    y_fmt: &dyn Fn(&f64) -> String,
    y_desc: &str,
    sz: Sizes,
) -> DrawResult<(), DB> {
    let fmt_x = |v: &u64| axis.label(*v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(16)
        .y_labels(y_labels)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(y_fmt)
        .x_desc("guest-physical address")
        .y_desc(y_desc)
        .label_style(("sans-serif", sz.font * 4 / 5))
        .axis_desc_style(("sans-serif", sz.font * 4 / 5))
        .draw()
}

fn draw_heat<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    h: &HeatPanel,
    pic: &Picture,
    axis: &Axis,
    sz: Sizes,
) -> DrawResult<PanelArea, DB> {
    let age = h.by == ColorBy::Age;
    let caption = if age {
        format!(
            "age: time since the last access, {}",
            h.note.replace("last ", "heat map of the last ")
        )
    } else {
        format!("heat: {}", h.note)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", sz.font))
        .margin(sz.font / 2)
        .x_label_area_size(sz.x_labels)
        .y_label_area_size(sz.y_labels)
        .build_cartesian_2d(axis.coord(), 0f64..105f64)?;
    let y_fmt = |v: &f64| {
        if *v > 100.0 {
            String::new()
        } else if age {
            // Freshness 100% is just now, 0 an hour or more.
            match bins::age_of_freshness(v / 100.0) {
                0 => "now".to_string(),
                ms if ms >= bins::AGE_SCALE_MS => format!(">={}", text::age_text(ms)),
                ms => text::age_text(ms),
            }
        } else {
            format!("{v:.0}%")
        }
    };
    let y_desc = if age {
        "idle for (log scale)"
    } else {
        "rounds in window"
    };
    configure(&mut chart, axis, 5, &y_fmt, y_desc, sz)?;
    let (px, py) = chart.plotting_area().get_pixel_range();
    let x = |gpa: u64| axis.x(gpa);
    chart.draw_series(
        grounds(pic, axis, px.end - px.start)
            .into_iter()
            .map(|(r, c)| Rectangle::new([(x(r.start), 0.0), (x(r.end), 105.0)], c.filled())),
    )?;
    // One bin per pixel column: the picture is exact at any size.
    let folded: Vec<Bin> = axis
        .segments
        .iter()
        .flat_map(|s| {
            bins::fold(
                &h.runs,
                s.gpa.start,
                s.gpa.end,
                columns_of(s, px.end - px.start),
            )
        })
        .collect();
    let level = |b: &Bin, dirty: bool| b.level(dirty, h.by).unwrap_or(0.0);
    chart.draw_series(
        folded
            .iter()
            .map(|b| (b, level(b, false)))
            .filter(|(_, l)| *l > 0.0)
            .map(|(b, l)| {
                Rectangle::new(
                    [(x(b.start), 0.0), (x(b.end), l * 100.0)],
                    heat_colour(l).filled(),
                )
            }),
    )?;
    if h.dirty {
        let mark = (105.0 / f64::from((py.end - py.start).max(1))) * 1.5;
        chart.draw_series(folded.iter().filter(|b| level(b, true) > 0.0).map(|b| {
            let y = level(b, true) * 100.0;
            Rectangle::new(
                [(x(b.start), (y - mark).max(0.0)), (x(b.end), y + mark)],
                DIRTY.filled(),
            )
        }))?;
    }
    draw_slot_edges(&mut chart, pic, axis, 0.0..105.0, true, sz)?;
    draw_breaks(&mut chart, axis, 0.0..105.0)?;
    Ok(PanelArea {
        x: px,
        y: py,
        axis: axis.clone(),
        value: 0.0..105.0,
    })
}

/// Colour of the break marks where a long hole is cut out of the axis.
pub const BREAK: RGBColor = RGBColor(90, 90, 90);

/// Each break as a white gap with a zigzag down its middle (the usual
/// mark of a broken axis).
fn draw_breaks<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    axis: &Axis,
    y: Range<f64>,
) -> DrawResult<(), DB> {
    for (at, _) in axis.breaks() {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(unit(at.start), y.start), (unit(at.end), y.end)],
            WHITE.filled(),
        )))?;
        let (l, r) = (
            unit(at.start + (at.end - at.start) * 0.25),
            unit(at.start + (at.end - at.start) * 0.75),
        );
        let steps = 12;
        let points: Vec<(u64, f64)> = (0..=steps)
            .map(|i| {
                let v = y.start + (y.end - y.start) * f64::from(i) / f64::from(steps);
                (if i % 2 == 0 { l } else { r }, v)
            })
            .collect();
        chart.draw_series(std::iter::once(PathElement::new(
            points,
            BREAK.stroke_width(2),
        )))?;
    }
    Ok(())
}

fn draw_slot_edges<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    pic: &Picture,
    axis: &Axis,
    y: Range<f64>,
    label: bool,
    sz: Sizes,
) -> DrawResult<(), DB> {
    for (range, _) in &pic.memslots {
        for x in [range.start, range.end] {
            let x = axis.x(x);
            chart.draw_series(DashedLineSeries::new(
                [(x, y.start), (x, y.end)],
                6,
                4,
                SLOT_EDGE.stroke_width(1),
            ))?;
        }
    }
    if !label {
        return Ok(());
    }
    // Slots that start close together (the firmware's small ones in the
    // first megabyte) share one label, as `heatmap` lists them: `slots
    // 0,2,3` rather than labels drawn over each other.
    let mut starts: Vec<(f64, u32)> = pic
        .memslots
        .iter()
        .map(|(r, id)| (axis.position(r.start), *id))
        .collect();
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut labels: Vec<(f64, Vec<u32>)> = Vec::new();
    for (x, id) in starts {
        match labels.last_mut() {
            Some((at, ids)) if x - *at < 0.08 => ids.push(id),
            _ => labels.push((x, vec![id])),
        }
    }
    chart.draw_series(labels.into_iter().map(|(x, ids)| {
        let names: Vec<String> = ids.iter().map(u32::to_string).collect();
        let s = if ids.len() == 1 { "" } else { "s" };
        Text::new(
            format!("slot{s} {}", names.join(",")),
            (unit(x), y.end),
            ("sans-serif", sz.font * 3 / 4).into_font().color(&BLACK),
        )
    }))?;
    Ok(())
}

fn draw_time<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    t: &TimePanel,
    pic: &Picture,
    axis: &Axis,
    sz: Sizes,
) -> DrawResult<PanelArea, DB> {
    let (times, usual) = t.times();
    let top = times.last().copied().unwrap_or(0.0) + usual;
    let first = t.rounds.first().map_or(0, |r| r.record.round);
    let last = t.rounds.last().map_or(0, |r| r.record.round);
    let caption = format!(
        "history: accessed share of each {} region, rounds {first}..{last}",
        size_label(t.region)
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", sz.font))
        .margin(sz.font / 2)
        .x_label_area_size(sz.x_labels)
        .y_label_area_size(sz.y_labels)
        .build_cartesian_2d(axis.coord(), 0f64..top)?;
    let y_fmt = |v: &f64| format!("{v:.1}s");
    configure(
        &mut chart,
        axis,
        6,
        &y_fmt,
        "time since the first round",
        sz,
    )?;
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
    let x = |gpa: u64| axis.x(gpa);
    let bands = bands(
        t,
        axis,
        &rows,
        top,
        usize::try_from(py.end - py.start).unwrap_or(1).max(1),
        px.end - px.start,
    );
    // The ground under each stretch of rounds without a gap: holes grey.
    // The shares do not tell holes from idle memory; the heat map (or the
    // memslots) does, as of the picture's moment: a region mapped only
    // later or earlier shows its heat over grey in those rounds.
    let history = t.span();
    let ground = grounds(pic, axis, px.end - px.start);
    let mut stretches: Vec<(f64, f64)> = Vec::new();
    for b in &bands {
        match stretches.last_mut() {
            Some(last) if b.s <= last.1 + usual * 1e-6 => last.1 = last.1.max(b.e),
            _ => stretches.push((b.s, b.e)),
        }
    }
    chart.draw_series(stretches.iter().flat_map(|&(s, e)| {
        ground.iter().filter_map(move |(r, c)| {
            let (a, b) = (r.start.max(history.start), r.end.min(history.end));
            (b > a).then(|| Rectangle::new([(x(a), s), (x(b), e)], c.filled()))
        })
    }))?;
    let mut rects = Vec::new();
    for b in &bands {
        for &(x0, x1, share) in &b.cells {
            rects.push(Rectangle::new(
                [(x(x0), b.s), (x(x1), b.e)],
                heat_colour(f64::from(share) / 255.0).filled(),
            ));
        }
    }
    chart.draw_series(rects)?;
    draw_slot_edges(&mut chart, pic, axis, 0.0..top, false, sz)?;
    draw_breaks(&mut chart, axis, 0.0..top)?;
    Ok(PanelArea {
        x: px,
        y: py,
        axis: axis.clone(),
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
/// Regions in holes cut out of the axis are not drawn.
fn bands(
    t: &TimePanel,
    axis: &Axis,
    rows: &[(f64, f64)],
    top: f64,
    height: usize,
    plot_px: i32,
) -> Vec<Band> {
    let regions = t.regions() as u64;
    let span = t.span();
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
    // Per segment: its regions, grouped by pixel column, and the
    // addresses each group covers within the segment.
    let region_of = |gpa: u64| (gpa.saturating_sub(t.base) / t.region.max(1)).min(regions);
    let mut columns: Vec<(Range<usize>, Range<u64>)> = Vec::new();
    for seg in &axis.segments {
        let (lo, hi) = (seg.gpa.start.max(span.start), seg.gpa.end.min(span.end));
        if hi <= lo {
            continue;
        }
        let (r0, r1) = (region_of(lo), region_of(hi - 1) + 1);
        let n = (r1 - r0).min(columns_of(seg, plot_px) as u64).max(1);
        let addr = |r: u64| t.base.saturating_add(r.saturating_mul(t.region));
        for c in 0..n {
            let (a, b) = (r0 + c * (r1 - r0) / n, r0 + (c + 1) * (r1 - r0) / n);
            let (x0, x1) = (addr(a).max(lo), addr(b).min(hi));
            if b > a && x1 > x0 {
                columns.push((a as usize..b as usize, x0..x1));
            }
        }
    }
    groups
        .into_iter()
        .map(|(s, e, rounds)| {
            let mut cells: Vec<(u64, u64, u8)> = Vec::new();
            for (r, gpa) in &columns {
                let (mut sum, mut n) = (0u64, 0u64);
                for round in &rounds {
                    for share in round.accessed.get(r.clone()).unwrap_or(&[]) {
                        sum += u64::from(*share);
                        n += 1;
                    }
                }
                // Rounded up: one accessed page in a column still shows.
                let share = if n == 0 { 0 } else { sum.div_ceil(n) as u8 };
                if share == 0 {
                    continue;
                }
                match cells.last_mut() {
                    Some(last) if last.2 == share && last.1 == gpa.start => last.1 = gpa.end,
                    _ => cells.push((gpa.start, gpa.end, share)),
                }
            }
            Band { s, e, cells }
        })
        .collect()
}

/// Stacked areas of the idle histograms against time; a snapshot
/// without known ages breaks the areas.
fn draw_idle<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &IdlePanel,
    sz: Sizes,
) -> DrawResult<IdleArea, DB> {
    const MIB: f64 = (1u64 << 20) as f64;
    let end = p.points.last().map_or(0.0, |(t, _)| *t);
    let time = 0.0..if end > 0.0 { end } else { 1.0 };
    let most = p
        .points
        .iter()
        .filter_map(|(_, b)| b.as_ref())
        .map(|b| b.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let top = (most as f64 / MIB * 1.05).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("idle: memory by time since the last {}", p.what),
            ("sans-serif", sz.font),
        )
        .margin(sz.font / 2)
        .x_label_area_size(sz.x_labels)
        .y_label_area_size(sz.y_labels)
        .build_cartesian_2d(time.clone(), 0f64..top)?;
    let y_fmt = |v: &f64| size_label((v * MIB) as u64);
    let x_fmt = |v: &f64| format!("{v:.0}s");
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(8)
        .y_labels(5)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("time since the first snapshot")
        .y_desc("mapped memory")
        .label_style(("sans-serif", sz.font * 4 / 5))
        .axis_desc_style(("sans-serif", sz.font * 4 / 5))
        .draw()?;
    // Stretches of snapshots with known ages.
    let mut stretches: Vec<Vec<(f64, &[u64])>> = Vec::new();
    let mut open = false;
    for (t, bands) in &p.points {
        match bands {
            Some(b) if open => {
                if let Some(last) = stretches.last_mut() {
                    last.push((*t, b));
                }
            }
            Some(b) => {
                stretches.push(vec![(*t, b)]);
                open = true;
            }
            None => open = false,
        }
    }
    // A snapshot alone between gaps is a bar half the usual spacing to
    // each side (the whole panel when it is the only snapshot), not a
    // polygon of no width.
    let mut gaps: Vec<f64> = p
        .points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|g| *g > 0.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let half = gaps.get(gaps.len() / 2).map_or(time.end, |g| g / 2.0);
    for stretch in &mut stretches {
        if let [(t, b)] = stretch.as_slice() {
            let (t, b) = (*t, *b);
            *stretch = vec![
                ((t - half).max(time.start), b),
                ((t + half).min(time.end), b),
            ];
        }
    }
    let n = p.bands.len();
    for stretch in &stretches {
        // Band k lies between the sums of bands 0..k and 0..=k.
        let mut lower: Vec<f64> = vec![0.0; stretch.len()];
        for k in 0..n {
            let upper: Vec<f64> = stretch
                .iter()
                .zip(&lower)
                .map(|((_, b), lo)| lo + b.get(k).copied().unwrap_or(0) as f64 / MIB)
                .collect();
            let outline: Vec<(f64, f64)> = stretch
                .iter()
                .zip(&upper)
                .map(|((t, _), v)| (*t, *v))
                .chain(stretch.iter().zip(&lower).rev().map(|((t, _), v)| (*t, *v)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                band_colour(k, n).filled(),
            )))?;
            lower = upper;
        }
    }
    let (px, py) = chart.plotting_area().get_pixel_range();
    Ok(IdleArea {
        x: px,
        y: py,
        time,
        mib: 0.0..top,
    })
}

/// The idle panel's bands, oldest on top as in the panel.
fn draw_idle_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &IdlePanel,
    sz: Sizes,
) -> DrawResult<(), DB> {
    let font = ("sans-serif", sz.font * 4 / 5).into_font().color(&BLACK);
    let pad = (sz.font / 2) as i32;
    let swatch = sz.font as i32;
    let mut y = sz.font as i32 * 2;
    area.draw_text(&format!("since {}", p.what), &font, (pad, y))?;
    y += swatch * 3 / 2;
    let n = p.bands.len();
    for (k, name) in p.bands.iter().enumerate().rev() {
        area.draw(&Rectangle::new(
            [(pad, y), (pad + swatch, y + swatch)],
            band_colour(k, n).filled(),
        ))?;
        area.draw_text(name, &font, (pad + swatch + 4, y))?;
        y += swatch * 5 / 4;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pic: &Picture,
    axis: &Axis,
    sz: Sizes,
) -> DrawResult<(), DB> {
    let (w, h) = area.dim_in_pixel();
    let font = ("sans-serif", sz.font * 4 / 5).into_font().color(&BLACK);
    let pad = (sz.font / 2) as i32;
    let bar_w = (w as i32 / 4).clamp(10, 30);
    let top = sz.font as i32 * 3;
    let bar_h = (h as i32 * 2 / 5).max(40);
    let age = pic.heat.as_ref().is_some_and(|h| h.by == ColorBy::Age);
    area.draw_text(
        if age { "idle for" } else { "heat" },
        &font,
        (pad, top - sz.font as i32 * 2),
    )?;
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
    let labels: Vec<(f64, String)> = if age {
        vec![
            (1.0, "now".into()),
            (bins::freshness(IdleAge::Ms(60_000)), "1m".into()),
            (0.0, ">=1h, never".into()),
        ]
    } else {
        vec![(1.0, "100%".into()), (0.5, "50%".into()), (0.0, "0".into())]
    };
    for (v, label) in labels {
        let y = top + ((1.0 - v) * f64::from(bar_h - 1)) as i32;
        area.draw_text(&label, &font, (pad + bar_w + 4, y - sz.font as i32 * 2 / 5))?;
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
    if pic.heat.is_some() || !pic.memslots.is_empty() {
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
        y += swatch * 3 / 2;
    }
    if axis.breaks().next().is_some() {
        let zigzag: Vec<(i32, i32)> = (0..=4)
            .map(|i| {
                (
                    pad + if i % 2 == 0 { 2 } else { swatch - 2 },
                    y + i * swatch / 4,
                )
            })
            .collect();
        area.draw(&PathElement::new(zigzag, BREAK.stroke_width(2)))?;
        area.draw_text("hole cut out", &font, (pad + swatch + 4, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn ticks_are_power_of_two_multiples_inside_the_span() {
        let axis = Axis::new(std::slice::from_ref(&(0..256 * M))).unwrap();
        let gpas: Vec<u64> = axis.ticks().iter().map(|&(_, g)| g).collect();
        assert_eq!(gpas, (0..=8).map(|i| i * 32 * M).collect::<Vec<_>>());
        for (x, gpa) in axis.ticks() {
            assert_eq!(axis.gpa_at(x), Some(gpa));
        }
        let labels: Vec<String> = axis
            .ticks()
            .iter()
            .map(|&(x, _)| axis.label(unit(x)))
            .collect();
        assert_eq!(labels[1], "32M");
        assert_eq!(labels[4], "128M");
        assert_eq!(labels[8], "256M");
        let axis = Axis::new(std::slice::from_ref(&(3 * M..100 * M))).unwrap();
        let t: Vec<u64> = axis.ticks().iter().map(|&(_, g)| g).collect();
        assert!(t.len() <= 9 && t.len() >= 4, "{t:?}");
        // The start, then multiples of 16M.
        assert_eq!(t[0], 3 * M);
        assert!(t[1..]
            .iter()
            .all(|&x| (3 * M..=100 * M).contains(&x) && x % (16 * M) == 0));
    }

    #[test]
    fn a_segment_after_a_cut_starts_with_a_tick_labelled_in_hex() {
        // A QEMU guest of 256 MiB and its BIOS slot just below 4 GiB.
        let bios = 0xfffc_0000..0x1_0000_0000;
        let axis = Axis::new(&[0..256 * M, bios.clone()]).unwrap();
        let tick = axis.ticks().into_iter().find(|&(_, g)| g == bios.start);
        assert_eq!(axis.label(unit(tick.unwrap().0)), "0xfffc0000");
    }

    #[test]
    fn without_a_heat_map_addresses_outside_the_memslots_are_holes() {
        let pic = Picture {
            history: Some(TimePanel {
                base: 0,
                region: 2 * M,
                rounds: Vec::new(),
            }),
            memslots: vec![(0..M, 0), (M + 64 * 1024..4 * M, 1)],
            ..Picture::default()
        };
        let axis = pic.axis().unwrap();
        assert_eq!(axis.segments.len(), 1, "a short hole stays on the axis");
        let g = grounds(&pic, &axis, 400);
        let at = |gpa: u64| {
            g.iter()
                .find(|(r, _)| r.contains(&gpa))
                .map(|(_, c)| *c)
                .unwrap()
        };
        assert_eq!(at(M / 2), heat_colour(0.0));
        assert_eq!(at(M + 32 * 1024), HOLE);
        assert_eq!(at(3 * M), heat_colour(0.0));
        assert_eq!(g.len(), 3, "{g:?}");
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

    /// The pixel at (x, y) of a PNG.
    fn pixel(png_bytes: &[u8], x: i32, y: i32) -> RGBColor {
        let mut reader = png::Decoder::new(png_bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let at = (y as usize * info.width as usize + x as usize) * 3;
        RGBColor(buf[at], buf[at + 1], buf[at + 2])
    }

    #[test]
    fn idle_bands_are_stacked_youngest_at_the_bottom() {
        // 0 s: 60M used within 1 s, 30M idle 1-10 s, 10M longer; 10 s:
        // 20M, 50M, 30M.
        let idle = IdlePanel {
            what: "access",
            bands: vec!["<1s".into(), "1s-10s".into(), ">=10s".into()],
            points: vec![
                (0.0, Some(vec![60 * M, 30 * M, 10 * M])),
                (10.0, Some(vec![20 * M, 50 * M, 30 * M])),
            ],
        };
        let heat = HeatPanel {
            runs: Vec::new(),
            window: 5,
            dirty: false,
            note: String::new(),
            by: ColorBy::Heat,
        };
        for with_heat in [false, true] {
            let pic = Picture {
                title: "VM 1-2".into(),
                idle: Some(idle.clone()),
                heat: with_heat.then(|| heat.clone()),
                memslots: vec![(0..100 * M, 0)],
                ..Picture::default()
            };
            let (png, layout) = render(&pic, PictureFormat::Png, 900, 700).unwrap();
            let a = layout.idle.unwrap();
            assert_eq!(layout.heat.is_some(), with_heat);
            // Near each end, the middle of each band, by its own figures.
            for (t, mids) in [(0.5, [28.0, 75.5, 95.5]), (9.5, [10.0, 45.0, 85.0])] {
                for (k, mid) in mids.into_iter().enumerate() {
                    assert_eq!(
                        pixel(&png, a.column(t), a.row(mid)),
                        band_colour(k, 3),
                        "band {k} at {t} s (heat panel: {with_heat})"
                    );
                }
            }
            // Above the stack: the page.
            assert_eq!(pixel(&png, a.column(5.0), a.row(102.0)), WHITE);
        }
        for k in 1..5 {
            assert_ne!(band_colour(k - 1, 5), band_colour(k, 5));
        }
        assert_ne!(band_colour(4, 5), WHITE);
    }

    #[test]
    fn a_snapshot_alone_between_gaps_is_a_bar_not_nothing() {
        let idle = IdlePanel {
            what: "access",
            bands: vec!["<1s".into(), ">=1s".into()],
            points: vec![
                (0.0, Some(vec![60 * M, 40 * M])),
                (5.0, None),
                (10.0, Some(vec![20 * M, 80 * M])),
            ],
        };
        let pic = Picture {
            title: "VM 1-2".into(),
            idle: Some(idle),
            ..Picture::default()
        };
        let (png, layout) = render(&pic, PictureFormat::Png, 900, 500).unwrap();
        let a = layout.idle.unwrap();
        // Each snapshot's histogram at its own time, half the spacing (5 s)
        // to each side; none at the gap between them.
        assert_eq!(pixel(&png, a.column(0.5), a.row(30.0)), band_colour(0, 2));
        assert_eq!(pixel(&png, a.column(0.5), a.row(80.0)), band_colour(1, 2));
        assert_eq!(pixel(&png, a.column(9.5), a.row(10.0)), band_colour(0, 2));
        assert_eq!(pixel(&png, a.column(9.5), a.row(60.0)), band_colour(1, 2));
        assert_eq!(pixel(&png, a.column(5.0), a.row(10.0)), WHITE);
    }

    #[test]
    fn by_age_bars_rise_with_freshness() {
        let text = "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 5
# rounds 900
# mode accessed
# columns start end granule leaf accessed dirty window slot idle_ms unwritten_ms
0x000000000000 0x000001000000 4K 4K 1 - 5 0 0 -
0x000001000000 0x000002000000 4K 4K 0 - 5 0 60000 -
0x000002000000 0x000003000000 4K 4K 0 - 5 0 never -
";
        let (_, runs) = ept_core::procfs::heatmap::parse(text).unwrap();
        let runs: Vec<Run> = runs.collect::<Result<_, _>>().unwrap();
        let pic = |by| Picture {
            title: "VM 1-2".into(),
            heat: Some(HeatPanel {
                runs: runs.clone(),
                window: 5,
                dirty: false,
                note: String::new(),
                by,
            }),
            memslots: vec![(0..48 * M, 0)],
            ..Picture::default()
        };
        let (png, layout) = render(&pic(ColorBy::Age), PictureFormat::Png, 900, 500).unwrap();
        let a = layout.heat.unwrap();
        let minute = bins::freshness(IdleAge::Ms(60_000)) * 100.0;
        // Touched just now: a full bar in the colour of hot.
        assert_eq!(pixel(&png, a.column(8 * M), a.row(95.0)), heat_colour(1.0));
        // Idle a minute: a bar up to the minute's freshness, not above.
        let c = a.column(24 * M);
        assert_eq!(
            pixel(&png, c, a.row(minute - 3.0)),
            heat_colour(minute / 100.0)
        );
        assert_eq!(pixel(&png, c, a.row(minute + 3.0)), heat_colour(0.0));
        // Never: no bar.
        assert_eq!(pixel(&png, a.column(40 * M), a.row(5.0)), heat_colour(0.0));
        // By heat the first run is a fifth of the window.
        let (png, layout) = render(&pic(ColorBy::Heat), PictureFormat::Png, 900, 500).unwrap();
        let a = layout.heat.unwrap();
        assert_eq!(pixel(&png, a.column(8 * M), a.row(15.0)), heat_colour(0.2));
        assert_eq!(pixel(&png, a.column(8 * M), a.row(25.0)), heat_colour(0.0));
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
