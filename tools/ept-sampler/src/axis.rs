// SPDX-License-Identifier: GPL-2.0

//! Which guest-physical addresses a view draws, and where.
//!
//! A guest's memory sits in a few memslots that can be gigabytes apart: a
//! 256 MiB QEMU guest has RAM from 0 and its BIOS just below 4 GiB. Drawn
//! to scale, 94 % of every view would be the hole between them. Every view
//! therefore draws the memslots' addresses only ([`segments`]): holes
//! between memslots longer than [`CUT_HOLE`] of the memory the memslots
//! cover are cut out and marked; short ones (the legacy VGA hole in the
//! first megabyte) stay, to scale.
//!
//! - [`Axis`]: the segments side by side on a line from 0.0 to 1.0 (the
//!   pictures' x axis; [`Axis::columns`] for a line of characters, `top`'s
//!   heat strip).
//! - [`Rows`]: the segments as rows of equal address ranges, a cut line
//!   between two segments (`heatmap` in the terminal, `top`'s detail
//!   pane).

use std::ops::Range;

use ept_core::procfs::heatmap::Run;
use ept_core::procfs::memslots::Memslot;

use crate::bins;
use crate::model::slot_bytes;

/// A hole between memslots is cut out of a view when it is longer than
/// this share of the bytes the memslots cover (the legacy VGA hole in the
/// first megabyte is not; the 3.75 GiB below a 256 MiB guest's BIOS slot
/// at 0xfffc0000 is).
pub const CUT_HOLE: f64 = 1.0 / 16.0;

/// Share of an [`Axis`] each break between two segments takes.
pub const BREAK_WIDTH: f64 = 0.03;

/// Least share of an [`Axis`] a segment takes, however few its bytes: a
/// BIOS slot of 256 KiB next to gibibytes of RAM still shows.
pub const MIN_SEGMENT: f64 = 0.012;

/// The address ranges a view of `covered` draws, in address order:
/// `covered` (in any order, may overlap; empty ranges ignored) merged, and
/// two ranges joined into one, hole included, where the hole between them
/// is at most [`CUT_HOLE`] of the covered bytes. Empty when nothing is
/// covered.
pub fn segments(covered: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = covered
        .iter()
        .filter(|r| r.end > r.start)
        .cloned()
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let covered_bytes: u64 = merged.iter().map(|r| r.end - r.start).sum();
    let cut = (covered_bytes as f64 * CUT_HOLE) as u64;
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in merged {
        match out.last_mut() {
            Some(last) if r.start - last.end <= cut => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// What a view of one VM covers: its memslots' addresses or, without
/// memslots (a file that could not be read), the span of its heat map.
pub fn covered(slots: &[Memslot], runs: &[Run]) -> Vec<Range<u64>> {
    let from_slots: Vec<Range<u64>> = slots.iter().map(slot_bytes).collect();
    if from_slots.iter().any(|r| r.end > r.start) {
        return from_slots;
    }
    bins::span(runs).map(|(s, e)| s..e).into_iter().collect()
}

/// The address ranges a view draws, side by side from 0.0 to 1.0, each
/// stretched linearly, with a break between two ranges that a long hole
/// separates ([`segments`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The ranges drawn, in address order, with where they are drawn.
    pub segments: Vec<Segment>,
}

/// One range of addresses drawn side by side with no break.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Guest-physical addresses.
    pub gpa: Range<u64>,
    /// Where on the axis (0.0..1.0).
    pub at: Range<f64>,
}

impl Segment {
    /// Bytes in the segment.
    pub fn bytes(&self) -> u64 {
        self.gpa.end - self.gpa.start
    }

    /// Axis position of `gpa` (clamped to the segment).
    pub fn position(&self, gpa: u64) -> f64 {
        let f = gpa
            .clamp(self.gpa.start, self.gpa.end)
            .saturating_sub(self.gpa.start) as f64
            / self.bytes().max(1) as f64;
        self.at.start + f * (self.at.end - self.at.start)
    }
}

impl Axis {
    /// The axis drawing [`segments`]`(covered)`. `None` when nothing is
    /// covered.
    pub fn new(covered: &[Range<u64>]) -> Option<Axis> {
        let gpas = segments(covered);
        let total: u64 = gpas.iter().map(|r| r.end - r.start).sum();
        if total == 0 {
            return None;
        }
        // Shares by bytes, small segments raised to MIN_SEGMENT at the
        // expense of the others, after the breaks' room. With many
        // segments the breaks and the least share shrink, so that the
        // breaks keep at most a quarter of the axis and small segments at
        // most half of the rest.
        let n = gpas.len();
        let breaks = (n - 1) as f64;
        let gap = if n > 1 {
            BREAK_WIDTH.min(0.25 / breaks)
        } else {
            0.0
        };
        let room = 1.0 - gap * breaks;
        let least = MIN_SEGMENT.min(0.5 / n as f64);
        let raw: Vec<f64> = gpas
            .iter()
            .map(|r| (r.end - r.start) as f64 / total as f64)
            .collect();
        let small: f64 = raw.iter().filter(|&&f| f < least).count() as f64 * least;
        let large: f64 = raw.iter().filter(|&&f| f >= least).sum();
        let scale = if large > 0.0 {
            (1.0 - small) / large
        } else {
            1.0
        };
        let mut x = 0.0;
        let mut segments = Vec::with_capacity(n);
        for (i, (gpa, f)) in gpas.into_iter().zip(raw).enumerate() {
            let share = if f < least { least } else { f * scale };
            let end = if i + 1 == n { 1.0 } else { x + share * room };
            segments.push(Segment { gpa, at: x..end });
            x = end + gap;
        }
        Some(Axis { segments })
    }

    /// Axis position (0.0..=1.0) of `gpa`; an address in a cut hole is at
    /// the break after the segment before it.
    pub fn position(&self, gpa: u64) -> f64 {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.gpa.start <= gpa)
            .or(self.segments.first());
        seg.map_or(0.0, |s| s.position(gpa))
    }

    /// The address drawn at axis position `x` (`None` in a break).
    pub fn gpa_at(&self, x: f64) -> Option<u64> {
        let s = self
            .segments
            .iter()
            .find(|s| s.at.start - 1e-9 <= x && x <= s.at.end + 1e-9)?;
        let f = ((x - s.at.start) / (s.at.end - s.at.start).max(f64::MIN_POSITIVE)).clamp(0.0, 1.0);
        Some(s.gpa.start + (f * s.bytes() as f64).round() as u64)
    }

    /// The breaks: axis ranges between segments, with the addresses cut.
    pub fn breaks(&self) -> impl Iterator<Item = (Range<f64>, Range<u64>)> + '_ {
        self.segments
            .windows(2)
            .map(|w| (w[0].at.end..w[1].at.start, w[0].gpa.end..w[1].gpa.start))
    }

    /// The axis on a line of `n` characters: each segment's addresses and
    /// how many characters draw them, in order, one character of break
    /// between two segments. Every segment gets at least one character
    /// while `n` allows (`n` at least twice the segments); the counts add
    /// up to `n` less the breaks.
    pub fn columns(&self, n: usize) -> Vec<(Range<u64>, usize)> {
        let k = self.segments.len();
        let room = n.saturating_sub(k.saturating_sub(1));
        if k == 0 || room < k {
            // Too narrow for the breaks: the whole span, to scale.
            let (Some(first), Some(last)) = (self.segments.first(), self.segments.last()) else {
                return Vec::new();
            };
            return vec![(first.gpa.start..last.gpa.end, n)];
        }
        // Each segment's share of the axis without the breaks, in whole
        // characters: the rounded running total, so that the counts add
        // up; at least one each, taken from the widest.
        let drawn: f64 = self.segments.iter().map(|s| s.at.end - s.at.start).sum();
        let mut counts = Vec::with_capacity(k);
        let mut sum = 0.0;
        let mut given = 0usize;
        for s in &self.segments {
            sum += (s.at.end - s.at.start) / drawn.max(f64::MIN_POSITIVE);
            let upto = ((sum * room as f64).round() as usize).min(room);
            counts.push(upto.saturating_sub(given));
            given = upto.max(given);
        }
        if let Some(last) = counts.last_mut() {
            *last += room - given;
        }
        while let Some(i) = counts.iter().position(|&c| c == 0) {
            let Some(widest) = (0..k).max_by_key(|&j| counts[j]) else {
                break;
            };
            if counts[widest] <= 1 {
                break;
            }
            counts[widest] -= 1;
            counts[i] = 1;
        }
        self.segments
            .iter()
            .zip(counts)
            .map(|(s, c)| (s.gpa.clone(), c))
            .collect()
    }
}

/// One row of [`Rows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// Addresses `start..end` in `cells` equal cells. The last row of a
    /// segment ends with it: it has the cells the segment reaches into,
    /// which share what is left of it.
    Cells {
        /// First address.
        start: u64,
        /// Address after the last cell.
        end: u64,
        /// Cells in this row.
        cells: usize,
    },
    /// A hole cut out between two segments.
    Cut(Range<u64>),
}

/// The segments of a view as rows of up to `cols` cells, `row_bytes` a
/// row; each segment starts a row, two segments are separated by a
/// [`Row::Cut`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rows {
    /// Bytes per row (of `cols` cells).
    pub row_bytes: u64,
    /// Cells per row.
    pub cols: usize,
    /// The rows, in address order.
    pub rows: Vec<Row>,
}

impl Rows {
    /// The rows of `segments` (in address order, as [`segments`] gives
    /// them) with the smallest power-of-two cell, at least 4 KiB, that
    /// fits them, cut lines included, into `rows` rows of `cols` cells;
    /// the largest cell when nothing fits (more segments than rows).
    pub fn new(segments: &[Range<u64>], cols: usize, rows: u16) -> Rows {
        let cols = cols.max(1);
        let unit = Self::fit(segments, rows, |cell| cell.saturating_mul(cols as u64));
        Self::cut(segments, cols, unit.saturating_mul(cols as u64))
    }

    /// Like [`Rows::new`], but with a power of two of bytes per *row*
    /// (round labels at any width), at least 4 KiB: `cols` cells share
    /// each row's bytes.
    pub fn per_row(segments: &[Range<u64>], cols: usize, rows: u16) -> Rows {
        Self::cut(segments, cols.max(1), Self::fit(segments, rows, |row| row))
    }

    /// Bytes of a cell (a row's bytes over its cells, rounded up).
    pub fn cell_bytes(&self) -> u64 {
        self.row_bytes.div_ceil(self.cols.max(1) as u64)
    }

    /// The smallest power of two `unit`, at least 4 KiB, with which
    /// `segments` in rows of `row_bytes(unit)`, and a cut line between
    /// two, fit in `rows`.
    fn fit(segments: &[Range<u64>], rows: u16, row_bytes: impl Fn(u64) -> u64) -> u64 {
        let cuts = segments.len().saturating_sub(1) as u64;
        let needed = |per_row: u64| -> u64 {
            segments
                .iter()
                .map(|s| {
                    s.end
                        .saturating_sub(s.start)
                        .div_ceil(per_row.max(1))
                        .max(1)
                })
                .sum::<u64>()
                .saturating_add(cuts)
        };
        let mut unit: u64 = 4096;
        while needed(row_bytes(unit)) > u64::from(rows.max(1)) {
            match unit.checked_mul(2) {
                Some(u) => unit = u,
                None => break,
            }
        }
        unit
    }

    fn cut(segments: &[Range<u64>], cols: usize, row_bytes: u64) -> Rows {
        let row_bytes = row_bytes.max(1);
        let mut out = Vec::new();
        let mut prev: Option<u64> = None;
        for s in segments {
            if let Some(end) = prev {
                out.push(Row::Cut(end..s.start));
            }
            prev = Some(s.end);
            let mut start = s.start;
            loop {
                let left = s.end.saturating_sub(start);
                let row = if left >= row_bytes {
                    Row::Cells {
                        start,
                        end: start.saturating_add(row_bytes),
                        cells: cols,
                    }
                } else {
                    // The segment ends inside this row: the cells it
                    // reaches into share what is left of it (not padded
                    // with addresses outside the segment, which would
                    // water its heat down).
                    let cells = (u128::from(left) * cols as u128)
                        .div_ceil(u128::from(row_bytes))
                        .clamp(1, cols as u128);
                    Row::Cells {
                        start,
                        end: s.end,
                        cells: cells as usize,
                    }
                };
                out.push(row);
                match start.checked_add(row_bytes) {
                    Some(next) if next < s.end => start = next,
                    _ => break,
                }
            }
        }
        Rows {
            row_bytes,
            cols,
            rows: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const BIOS: Range<u64> = 0xfffc_0000..0x1_0000_0000;

    #[test]
    fn long_holes_are_cut_short_ones_kept() {
        // A QEMU guest of 256 MiB: low RAM, the VGA hole, RAM, and the
        // BIOS slot just below 4 GiB.
        let axis = Axis::new(&[0..0xa_0000, 0xc_0000..256 * M, BIOS]).unwrap();
        let gpas: Vec<Range<u64>> = axis.segments.iter().map(|s| s.gpa.clone()).collect();
        assert_eq!(gpas, [0..256 * M, BIOS]);
        let seg = &axis.segments;
        assert_eq!((seg[0].at.start, seg[1].at.end), (0.0, 1.0));
        assert!((seg[1].at.start - seg[0].at.end - BREAK_WIDTH).abs() < 1e-9);
        // The small slot is drawn, not a sliver (its share of the room
        // the break leaves).
        let room = 1.0 - BREAK_WIDTH;
        assert!((seg[1].at.end - seg[1].at.start - MIN_SEGMENT * room).abs() < 1e-9);
        assert_eq!(axis.breaks().count(), 1);
        // An address in the hole is at the break; positions grow.
        assert_eq!(axis.position(1 << 31), seg[0].at.end);
        assert!(axis.position(BIOS.start + 4096) > axis.position(256 * M));
        assert_eq!(axis.gpa_at((seg[0].at.end + seg[1].at.start) / 2.0), None);
        assert_eq!(axis.gpa_at(1.0), Some(BIOS.end));
        // Without the far slot: one segment, to scale.
        let axis = Axis::new(&[0..0xa_0000, 0xc_0000..256 * M]).unwrap();
        assert_eq!(axis.segments.len(), 1);
        assert!((axis.position(128 * M) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn segments_merge_overlaps_and_any_order() {
        // The SMM address space repeats address space 0's slots.
        let s = segments(&[BIOS, 0..M, 0..M, M..2 * M, 5..5, BIOS]);
        assert_eq!(s, [0..2 * M, BIOS]);
        assert!(segments(&[]).is_empty());
        assert!(Axis::new(std::slice::from_ref(&(3..3))).is_none());
    }

    #[test]
    fn many_far_apart_slots_still_fit_the_axis_in_order() {
        // 40 slots of 2 MiB, 1 GiB apart: 39 breaks.
        let slots: Vec<Range<u64>> = (0..40u64).map(|i| i << 30..(i << 30) + 2 * M).collect();
        let axis = Axis::new(&slots).unwrap();
        assert_eq!(axis.segments.len(), 40);
        let mut x = 0.0;
        for s in &axis.segments {
            assert!(s.at.start >= x && s.at.end > s.at.start, "{s:?}");
            x = s.at.end;
        }
        assert!((x - 1.0).abs() < 1e-9);
        let drawn: f64 = axis.segments.iter().map(|s| s.at.end - s.at.start).sum();
        assert!(drawn >= 0.75 - 1e-9, "segments get {drawn} of the axis");
    }

    #[test]
    fn columns_give_every_segment_a_character_and_add_up() {
        let axis = Axis::new(&[0..256 * M, BIOS]).unwrap();
        let c = axis.columns(80);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].0.clone(), c[1].0.clone()), (0..256 * M, BIOS));
        // 79 characters for the segments, one for the break; the BIOS
        // slot its least share (1.2 % of 79 rounds to 1).
        assert_eq!(c[0].1 + c[1].1, 79);
        assert_eq!(c[1].1, 1);
        // One segment: all of it.
        let axis = Axis::new(std::slice::from_ref(&(0..256 * M))).unwrap();
        assert_eq!(axis.columns(50), [(0..256 * M, 50)]);
        // 40 segments on 79 characters: 39 breaks, one character each.
        let slots: Vec<Range<u64>> = (0..40u64).map(|i| i << 30..(i << 30) + 2 * M).collect();
        let axis = Axis::new(&slots).unwrap();
        let c = axis.columns(79);
        assert_eq!(c.len(), 40);
        assert!(c.iter().all(|(_, n)| *n == 1), "{c:?}");
        // Too narrow for the breaks: the whole span on what there is.
        let c = axis.columns(60);
        assert_eq!(c, [(0..(39u64 << 30) + 2 * M, 60)]);
    }

    #[test]
    fn one_segment_gets_the_smallest_cell_that_fits() {
        // 256 MiB on 16 rows of 64 cells: 256K per cell is 16 MiB a row.
        let r = Rows::new(std::slice::from_ref(&(0..256 * M)), 64, 16);
        assert_eq!((r.cell_bytes(), r.cols, r.rows.len()), (256 * 1024, 64, 16));
        let row = |start: u64, end: u64, cells: usize| Row::Cells { start, end, cells };
        assert_eq!(r.rows[1], row(16 * M, 32 * M, 64));
        // 15 rows: the next power of two, 8 rows.
        let r = Rows::new(std::slice::from_ref(&(0..256 * M)), 64, 15);
        assert_eq!((r.cell_bytes(), r.rows.len()), (512 * 1024, 8));
        // A tiny span: a page per cell, the last row short.
        let r = Rows::new(std::slice::from_ref(&(0..10 * 4096)), 4, 8);
        assert_eq!(r.cell_bytes(), 4096);
        assert_eq!(r.rows.last(), Some(&row(8 * 4096, 10 * 4096, 2)));
        // A segment that ends inside a cell: that cell is narrower.
        let r = Rows::new(std::slice::from_ref(&(0..9 * 4096 + 1)), 4, 8);
        assert_eq!(r.rows.last(), Some(&row(8 * 4096, 9 * 4096 + 1, 2)));
    }

    #[test]
    fn a_span_past_2_63_gets_the_largest_cell_not_a_wrapped_one() {
        let r = Rows::new(std::slice::from_ref(&(0..u64::MAX)), 1, 1);
        assert_eq!(r.cell_bytes(), 1 << 63);
        assert_eq!(r.rows.len(), 2);
    }

    #[test]
    fn segments_start_rows_and_cut_lines_separate_them() {
        // RAM, then the BIOS slot after a cut: 16 rows of 64 cells.
        let r = Rows::new(&[0..256 * M, BIOS], 64, 16);
        // 256M needs 14 rows at most, with the cut and BIOS's row: 512K
        // cells, 32 MiB a row, 8 + 1 + 1 rows.
        assert_eq!(r.cell_bytes(), 512 * 1024);
        assert_eq!(r.rows.len(), 10);
        assert_eq!(r.rows[8], Row::Cut(256 * M..BIOS.start));
        // 256 KiB of BIOS: one 512 KiB cell.
        let row = |start: u64, end: u64, cells: usize| Row::Cells { start, end, cells };
        assert_eq!(r.rows[9], row(BIOS.start, BIOS.end, 1));
        // Per row: a power of two of bytes a row, cells sharing it.
        let r = Rows::per_row(&[0..256 * M, BIOS], 90, 12);
        assert_eq!((r.row_bytes, r.rows.len()), (32 * M, 10));
        assert_eq!(r.rows[1], row(32 * M, 64 * M, 90));
        // The BIOS's 256 KiB: ceil(90 / 128) cells of the 32 MiB row.
        assert_eq!(r.rows[9], row(BIOS.start, BIOS.end, 1));
        // More segments than rows: every segment a row anyway.
        let slots: Vec<Range<u64>> = (0..4u64).map(|i| i << 30..(i << 30) + M).collect();
        let r = Rows::new(&slots, 8, 2);
        assert_eq!(r.rows.len(), 7);
    }
}
