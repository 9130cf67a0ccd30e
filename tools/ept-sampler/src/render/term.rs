// SPDX-License-Identifier: GPL-2.0

//! `heatmap` in the terminal: the VM's guest-physical span folded onto a
//! grid of cells, row after row like a hex dump (each row labelled with its
//! first address), one grid for accessed heat and one for dirty heat when
//! the map tracks it. Heat is a background colour where the terminal has
//! colour, a character ramp elsewhere; a legend and the memslots follow.

use std::fmt::Write;

use crossterm::style::{Color, ResetColor, SetBackgroundColor};
use ept_core::procfs::heatmap::{Header, Run};
use ept_core::procfs::memslots::Memslot;

use super::{human_bytes, text};
use crate::axis::{self, Row, Rows};
use crate::bins::{self, age_of_freshness, Bin, ColorBy, AGE_SCALE_MS};
use crate::model::slot_bytes;

/// Characters for heat without colour: [`RAMP`]`[0]` is mapped and never
/// touched, the last is touched in every round of the window. Unmapped
/// cells are blank.
pub const RAMP: [char; 9] = ['.', ':', '-', '=', '+', '*', '#', '%', '@'];

/// The character of a cell with nothing mapped.
pub const UNMAPPED: char = ' ';

/// How heat is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Palette {
    /// Characters ([`RAMP`]): no colour, or not a terminal.
    Ramp,
    /// xterm 256-colour backgrounds.
    Ansi256,
    /// 24-bit backgrounds.
    TrueColor,
}

impl Palette {
    /// The palette for standard output: `Ramp` unless `color` is set,
    /// 24-bit when `COLORTERM` says the terminal has it.
    pub fn detect(color: bool) -> Palette {
        if !color {
            return Palette::Ramp;
        }
        match std::env::var("COLORTERM").as_deref() {
            Ok("truecolor" | "24bit") => Palette::TrueColor,
            _ => Palette::Ansi256,
        }
    }
}

/// Whether colour is wanted on standard output: a terminal, `NO_COLOR`
/// unset or empty (<https://no-color.org>), `TERM` not `dumb`.
pub fn color_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// The terminal's width in columns, or 80 when it has none.
pub fn terminal_columns() -> u16 {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        if let Ok((cols, _)) = crossterm::terminal::size() {
            if cols >= 40 {
                return cols;
            }
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c >= 40)
        .unwrap_or(80)
}

/// The shape of the view.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Width of the whole view in columns.
    pub columns: u16,
    /// Rows of cells per grid.
    pub rows: u16,
    /// How heat is drawn.
    pub palette: Palette,
    /// What the colours show.
    pub by: ColorBy,
}

/// Columns kept right of a row for memslot marks.
const MARK_WIDTH: usize = 10;

/// Cells per row for a view `columns` wide with labels `label` wide.
pub fn cells_per_row(columns: u16, label: usize) -> usize {
    // "label |cells| mark"
    usize::from(columns)
        .saturating_sub(label + 3 + MARK_WIDTH)
        .max(8)
}

/// A heat level 0..=1 as an index into [`RAMP`]: 0 only for no heat at
/// all, so a cell with any touched page never looks cold.
pub fn level_index(level: f64, steps: usize) -> usize {
    if level <= 0.0 || steps < 2 {
        0
    } else {
        let top = steps - 1;
        1 + ((level.min(1.0) * (top as f64 - 1e-9)).floor() as usize).min(top - 1)
    }
}

/// Cold to hot, xterm 256 colours: 236 is mapped but cold, then blue,
/// purple, red, orange, yellow.
const ANSI: [u8; 12] = [236, 17, 19, 21, 57, 93, 129, 165, 197, 202, 208, 226];

/// The xterm 256-colour index of heat `level` (0..=1): the one colour
/// ramp of the terminal views (`heatmap` backgrounds, `top` foregrounds).
pub fn ansi256(level: f64) -> u8 {
    ANSI[level_index(level, ANSI.len())]
}

/// The character of heat `level` ([`UNMAPPED`] for `None`, nothing
/// mapped).
pub fn ramp_char(level: Option<f64>) -> char {
    level.map_or(UNMAPPED, |l| RAMP[level_index(l, RAMP.len())])
}

/// Cold to hot, 24-bit (after matplotlib's "inferno").
const RGB: [(u8, u8, u8); 6] = [
    (40, 40, 48),
    (40, 11, 84),
    (101, 21, 110),
    (188, 55, 84),
    (249, 142, 9),
    (252, 255, 164),
];

fn rgb(level: f64) -> Color {
    let (r, g, b) = ramp_rgb(&RGB, level);
    Color::Rgb { r, g, b }
}

/// The colour of heat `level` (0..=1) on a continuous ramp of `stops`
/// (at least two): `stops[0]` only for no heat at all, as
/// [`level_index`] keeps index 0 for it, and the other stops spread over
/// the rest, so a touched page never looks cold. The 24-bit terminal
/// ramp and the pictures' colour scale both map heat this way.
pub fn ramp_rgb(stops: &[(u8, u8, u8)], level: f64) -> (u8, u8, u8) {
    let (Some(&cold), Some(&hot)) = (stops.first(), stops.last()) else {
        return (0, 0, 0);
    };
    if level.is_nan() || level <= 0.0 || stops.len() < 3 {
        return if level > 0.0 { hot } else { cold };
    }
    let x = level.min(1.0) * (stops.len() - 2) as f64;
    let i = (x.floor() as usize).min(stops.len() - 3);
    let t = x - i as f64;
    let (a, b) = (stops[i + 1], stops[i + 2]);
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * t).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Draws cells, writing a colour only when it changes.
struct Painter {
    palette: Palette,
    last: Option<String>,
}

impl Painter {
    fn new(palette: Palette) -> Painter {
        Painter {
            palette,
            last: None,
        }
    }

    /// One cell of heat `level` (`None`: nothing mapped).
    fn cell(&mut self, out: &mut String, level: Option<f64>) {
        let escape = match (self.palette, level) {
            (Palette::Ramp, _) => return out.push(ramp_char(level)),
            (_, None) => ResetColor.to_string(),
            (Palette::Ansi256, Some(l)) => {
                SetBackgroundColor(Color::AnsiValue(ansi256(l))).to_string()
            }
            (Palette::TrueColor, Some(l)) => SetBackgroundColor(rgb(l)).to_string(),
        };
        if self.last.as_ref() != Some(&escape) {
            out.push_str(&escape);
            self.last = Some(escape);
        }
        out.push(' ');
    }

    /// Back to the terminal's colours.
    fn reset(&mut self, out: &mut String) {
        if self.last.take().is_some() {
            let _ = write!(out, "{ResetColor}");
        }
    }
}

/// The view of one heat map.
pub fn heatmap(header: &Header, runs: &[Run], slots: &[Memslot], opts: &Options) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "VM {}  mode {}  granule {}  window {}  rounds {}",
        header.vm,
        header.mode.as_str(),
        header.granule,
        header.window,
        header.rounds
    );
    let segments = axis::segments(&axis::covered(slots, runs));
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        let _ = writeln!(o, "(empty heat map)");
        return o;
    };
    let (start, end) = (first.start, last.end);
    let label = format!("{end:#x}").len();
    let layout = Rows::new(&segments, cells_per_row(opts.columns, label), opts.rows);
    let cut: u64 = layout
        .rows
        .iter()
        .map(|r| match r {
            Row::Cut(hole) => hole.end - hole.start,
            Row::Cells { .. } => 0,
        })
        .sum();
    let _ = writeln!(
        o,
        "{start:#x}..{end:#x} ({}{}): {} per cell, {} per row",
        human_bytes(end - start),
        if cut > 0 {
            format!(", {} of it between memslots cut out", human_bytes(cut))
        } else {
            String::new()
        },
        human_bytes(layout.cell_bytes()),
        human_bytes(layout.row_bytes),
    );
    // Each row's cells, folded once for both grids.
    let rows: Vec<Option<Vec<Bin>>> = layout
        .rows
        .iter()
        .map(|r| match *r {
            Row::Cells { start, end, cells } => Some(bins::fold(runs, start, end, cells)),
            Row::Cut(_) => None,
        })
        .collect();
    let cols = layout.cols;
    let mut grids = vec![("accessed", false)];
    if header.mode.dirty() {
        grids.push(("dirty", true));
    }
    if !header.mode.accessed() {
        grids.remove(0);
    }
    for (name, dirty) in grids {
        match opts.by {
            ColorBy::Heat => {
                let _ = writeln!(
                    o,
                    "{name}: share of the last {} rounds each page was {name} in",
                    header.window
                );
            }
            ColorBy::Age if !bins::has_ages(runs, dirty) => {
                // Not drawn as old: nothing is known.
                let _ = writeln!(
                    o,
                    "{name}: no idle ages for this bit yet (no round has vouched for them: see `ept-sampler status`)"
                );
                continue;
            }
            ColorBy::Age => {
                let _ = writeln!(
                    o,
                    "{name}: time since each page was last {} (log scale; {} and longer, or never, as cold)",
                    if dirty { "written" } else { "accessed" },
                    text::duration_text(AGE_SCALE_MS)
                );
            }
        }
        if dirty && header.dirty_partial_in_window() {
            let _ = writeln!(
                o,
                "dirty: partial: dirty logging began in round {}, and that round's writes after it are not counted",
                header.dirty_partial
            );
        }
        for (spec, row) in layout.rows.iter().zip(&rows) {
            let (Some(row), Row::Cells { start, end, .. }) = (row, spec) else {
                if let Row::Cut(hole) = spec {
                    // The hole between two memslots, not drawn.
                    let _ = writeln!(
                        o,
                        "{:>label$} ~{:~^cols$}~",
                        "",
                        format!(
                            " {} cut out: {:#x}..{:#x} ",
                            human_bytes(hole.end - hole.start),
                            hole.start,
                            hole.end
                        ),
                    );
                }
                continue;
            };
            let _ = write!(o, "{:>label$} |", format!("{start:#x}"));
            let mut painter = Painter::new(opts.palette);
            for bin in row {
                painter.cell(&mut o, bin.level(dirty, opts.by));
            }
            painter.reset(&mut o);
            // The last row of a segment may be short: it ends there.
            o.extend(std::iter::repeat_n(' ', cols.saturating_sub(row.len())));
            o.push('|');
            // Memslot boundaries: the slots that begin in this row (not
            // the SMM copies of address space 0's slots).
            let starting: Vec<String> = slots
                .iter()
                .filter(|s| !smm_copy(s, slots))
                .filter(|s| (*start..*end).contains(&slot_bytes(s).start))
                .map(|s| s.slot().to_string())
                .collect();
            if !starting.is_empty() {
                let _ = write!(o, " <slot {}", starting.join(","));
            }
            o.push('\n');
        }
    }
    legend(&mut o, opts.palette, opts.by);
    for s in slots.iter().filter(|s| !smm_copy(s, slots)) {
        let bytes = slot_bytes(s);
        let _ = writeln!(
            o,
            "memslot {}: {:#x}..{:#x} ({}){}{}",
            s.slot(),
            bytes.start,
            bytes.end,
            human_bytes(bytes.end - bytes.start),
            if s.flags.dirty_log {
                ", dirty logging"
            } else {
                ""
            },
            if s.flags.readonly { ", read-only" } else { "" },
        );
    }
    let copies: Vec<String> = slots
        .iter()
        .filter(|s| smm_copy(s, slots))
        .map(|s| s.slot().to_string())
        .collect();
    if !copies.is_empty() {
        let _ = writeln!(
            o,
            "memslots {}: address space {} (SMM), the same ranges as address space 0",
            copies.join(","),
            slots
                .iter()
                .find(|s| smm_copy(s, slots))
                .map_or(1, |s| s.as_id)
        );
    }
    o
}

/// Whether `s` is a slot of another address space than 0 (SMM, with QEMU)
/// that maps the same addresses, with the same flags, as a slot of address
/// space 0: QEMU gives SMM a copy of every slot, shown once.
fn smm_copy(s: &Memslot, slots: &[Memslot]) -> bool {
    s.as_id != 0
        && slots
            .iter()
            .any(|z| z.as_id == 0 && slot_bytes(z) == slot_bytes(s) && z.flags == s.flags)
}

fn legend(o: &mut String, palette: Palette, by: ColorBy) {
    o.push_str("legend: ");
    let mut painter = Painter::new(palette);
    painter.cell(o, None);
    painter.reset(o);
    match by {
        ColorBy::Heat => {
            o.push_str(" unmapped  ");
            let steps = [0.0, 0.125, 0.25, 0.5, 0.75, 1.0];
            for (i, l) in steps.iter().enumerate() {
                painter.cell(o, Some(*l));
                painter.reset(o);
                let _ = write!(o, " {:.0}%", l * 100.0);
                if i + 1 < steps.len() {
                    o.push(' ');
                }
            }
            o.push_str(" of rounds\n");
        }
        ColorBy::Age => {
            // Every step of the palette with the ages it covers: a level
            // in ((k-1)/top, k/top] is step k (level_index).
            o.push_str(" unmapped or age unknown\n        ");
            let steps = match palette {
                Palette::Ansi256 => ANSI.len(),
                Palette::Ramp | Palette::TrueColor => RAMP.len(),
            };
            let top = (steps - 1) as f64;
            painter.cell(o, Some(0.0));
            painter.reset(o);
            let _ = write!(o, " >={} or never", text::age_text(AGE_SCALE_MS));
            for k in 1..steps {
                let (lo, hi) = ((k - 1) as f64 / top, k as f64 / top);
                o.push(' ');
                painter.cell(o, Some((lo + hi) / 2.0));
                painter.reset(o);
                let (young, old) = (age_of_freshness(hi), age_of_freshness(lo));
                if young == 0 {
                    let _ = write!(o, " <{}", text::age_text(old));
                } else {
                    let _ = write!(o, " {}-{}", text::age_text(young), text::age_text(old));
                }
            }
            o.push_str(" since last touched\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bins::freshness;
    use ept_core::heat::IdleAge;

    #[test]
    fn by_age_a_page_touched_just_now_is_hot_and_one_never_touched_is_cold() {
        // 4 MiB: 1M accessed in the latest round but idle in most of the
        // window (heat 1/5), 1M idle for 10 s, 1M never touched, 1M
        // idle 2 h.
        let text = "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 5
# rounds 900
# mode accessed
# columns start end granule leaf accessed dirty window slot idle_ms unwritten_ms
0x000000000000 0x000000100000 4K 4K 1 - 5 0 0 -
0x000000100000 0x000000200000 4K 4K 0 - 5 0 10000 -
0x000000200000 0x000000300000 4K 4K 0 - 5 0 never -
0x000000300000 0x000000400000 4K 4K 0 - 5 0 7200000 -
";
        let (header, runs) = ept_core::procfs::heatmap::parse(text).unwrap();
        let runs: Vec<Run> = runs.collect::<Result<_, _>>().unwrap();
        let view = |by: ColorBy| {
            let opts = Options {
                columns: 40,
                rows: 1,
                palette: Palette::Ramp,
                by,
            };
            heatmap(&header, &runs, &[], &opts)
        };
        let cells = |v: &str| -> String {
            let row = v.lines().find(|l| l.contains(" |")).unwrap();
            let inner = row.split('|').nth(1).unwrap();
            inner.to_string()
        };
        let age = view(ColorBy::Age);
        let c: Vec<char> = cells(&age).chars().collect();
        let quarter = c.len() / 4;
        let at = |q: usize| c[q * quarter + quarter / 2];
        assert_eq!(at(0), *RAMP.last().unwrap(), "just now: {age}");
        let ten_s = RAMP[level_index(freshness(IdleAge::Ms(10_000)), RAMP.len())];
        assert_eq!(at(1), ten_s, "{age}");
        assert_eq!((at(2), at(3)), (RAMP[0], RAMP[0]), "never, 2 h: {age}");
        assert!(
            age.contains("time since each page was last accessed"),
            "{age}"
        );
        // Every character of the ramp in the legend, with the ages it
        // covers: the youngest up to a few hundred ms, the oldest an hour.
        let legend = &age[age.find("legend:").unwrap()..];
        assert!(legend.contains(". >=1h or never"), "{legend}");
        for c in &RAMP[1..] {
            assert!(legend.contains(&format!(" {c} ")), "{c}: {legend}");
        }
        assert!(legend.contains("@ <271ms"), "{legend}");
        // 10 s is in the range of its own character.
        let entry = legend.split(&format!(" {ten_s} ")).nth(1).unwrap();
        assert!(entry.starts_with("5s-19s"), "{legend}");
        // By heat the first quarter is a fifth of the window.
        let heat = view(ColorBy::Heat);
        let c: Vec<char> = cells(&heat).chars().collect();
        assert_eq!(c[quarter / 2], RAMP[level_index(0.2, RAMP.len())], "{heat}");
    }

    #[test]
    fn the_first_stop_is_only_for_no_heat() {
        let stops = [(0, 0, 0), (10, 10, 10), (110, 110, 110)];
        assert_eq!(ramp_rgb(&stops, 0.0), (0, 0, 0));
        assert_eq!(ramp_rgb(&stops, f64::NAN), (0, 0, 0));
        assert_eq!(ramp_rgb(&stops, -1.0), (0, 0, 0));
        // The least heat is the second stop, not a shade of the first.
        assert_eq!(ramp_rgb(&stops, 1e-9), (10, 10, 10));
        assert_eq!(ramp_rgb(&stops, 0.5), (60, 60, 60));
        assert_eq!(ramp_rgb(&stops, 1.0), (110, 110, 110));
        assert_eq!(ramp_rgb(&stops, 7.0), (110, 110, 110));
    }
}
