// SPDX-License-Identifier: GPL-2.0

//! The history ring: the last K rounds at a coarse granule (a "region",
//! 2 MiB by default), for address x time pictures.
//!
//! For every round it keeps a [`RoundRecord`] and, per region, the share of
//! the region's 4 KiB pages that were accessed and that were dirtied,
//! quantized to a byte by [`share`]. The counts come straight from the
//! walker's leaves, at 4 KiB resolution whatever the heat store's granule.
//!
//! # Several roots
//!
//! A round walks each root of the VM (normal and SMM address spaces); both
//! may map the same frames. The ring counts pages per root
//! ([`History::begin_root`] starts a root) and keeps, per region, the
//! largest count of any root. That is exact when one root sees all the
//! accesses of a region in the round (the usual case: the SMM root is only
//! used in SMM), and otherwise a lower bound.
//!
//! # Layout
//!
//! One caller-supplied `[u64]` ([`HistoryLayout::words`] words):
//!
//! ```text
//! records   K * RECORD_WORDS words: round records, slot = round index % K
//! counters  2 words per region: [root accessed | root dirty << 32],
//!                               [round accessed | round dirty << 32]
//! rows      K rows of ceil(regions / 4) words: per region one accessed
//!           byte, then per region one dirty byte, little-endian in words
//! ```

use core::ops::DerefMut;

use super::error::{zero_prefix, HeatError};
use super::granule::Granule;
use super::round::{RoundRecord, RECORD_WORDS};
use super::{MAX_GFN, MAX_HISTORY_ROUNDS};
use crate::ept_walk::{Gfn, GfnRange};

/// The byte for `n` of `pages` pages: 0 for none, 255 for all, and for a
/// part `ceil(n * 254 / pages)`, so 1 to 254: a single page of a large
/// region still shows, and only a whole region shows as 255.
#[inline]
pub const fn share(n: u64, pages: u64) -> u8 {
    if n == 0 || pages == 0 {
        0
    } else if n >= pages {
        255
    } else {
        // `n < pages <= 2^27`: the product fits easily.
        let q = n.saturating_mul(254).div_ceil(pages);
        if q > 254 {
            254
        } else {
            q as u8
        }
    }
}

/// Where the parts of a history ring go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLayout {
    /// First GFN of region 0: the span's start rounded down to a region.
    base: Gfn,
    span: GfnRange,
    region: Granule,
    regions: usize,
    rounds: u16,
    row_words: usize,
    counters_at: usize,
    rows_at: usize,
    words: usize,
}

impl HistoryLayout {
    /// The layout of a ring over `span` in regions of `region`, keeping
    /// `rounds` rounds (1 to [`MAX_HISTORY_ROUNDS`]).
    pub fn new(span: GfnRange, region: Granule, rounds: u16) -> Result<HistoryLayout, HeatError> {
        if span.is_empty() {
            return Err(HeatError::EmptySpan);
        }
        if span.end.0 > MAX_GFN {
            return Err(HeatError::SpanBeyondMax);
        }
        if rounds == 0 || rounds > MAX_HISTORY_ROUNDS {
            return Err(HeatError::HistoryRounds(rounds));
        }
        let pages = region.pages();
        let base = Gfn(span.start.0 & !pages.wrapping_sub(1));
        let regions = span.end.0.wrapping_sub(base.0).div_ceil(pages.max(1));
        let regions = usize::try_from(regions).map_err(|_| HeatError::TooLarge)?;
        let k = usize::from(rounds);
        let row_words = regions.div_ceil(4);
        let records = k.checked_mul(RECORD_WORDS).ok_or(HeatError::TooLarge)?;
        let counters = regions.checked_mul(2).ok_or(HeatError::TooLarge)?;
        let rows = k.checked_mul(row_words).ok_or(HeatError::TooLarge)?;
        let rows_at = records.checked_add(counters).ok_or(HeatError::TooLarge)?;
        let words = rows_at.checked_add(rows).ok_or(HeatError::TooLarge)?;
        words.checked_mul(8).ok_or(HeatError::TooLarge)?;
        Ok(HistoryLayout {
            base,
            span,
            region,
            regions,
            rounds,
            row_words,
            counters_at: records,
            rows_at,
            words,
        })
    }

    /// Number of `u64` words of storage needed.
    #[inline]
    pub const fn words(&self) -> usize {
        self.words
    }

    /// Number of bytes of storage needed.
    #[inline]
    pub const fn bytes(&self) -> usize {
        // Checked in `new`.
        self.words.wrapping_mul(8)
    }

    /// The region granule.
    #[inline]
    pub const fn region(&self) -> Granule {
        self.region
    }

    /// Number of regions.
    #[inline]
    pub const fn regions(&self) -> usize {
        self.regions
    }

    /// Rounds kept (K).
    #[inline]
    pub const fn rounds(&self) -> u16 {
        self.rounds
    }

    /// The span as asked for.
    #[inline]
    pub const fn span(&self) -> GfnRange {
        self.span
    }

    /// First GFN of region 0.
    #[inline]
    pub const fn base(&self) -> Gfn {
        self.base
    }

    /// The GFNs of region `index`, clipped to the span: the pages its
    /// shares are fractions of.
    #[inline]
    pub fn region_range(&self, index: usize) -> GfnRange {
        let start = self
            .base
            .0
            .wrapping_add((index as u64).wrapping_shl(self.region.page_shift()));
        let whole = GfnRange::new(Gfn(start), Gfn(start).offset(self.region.pages()));
        whole.intersect(&self.span)
    }
}

/// A word of region counters as (accessed pages, dirty pages).
#[inline]
fn unpack_pair(w: u64) -> (u64, u64) {
    (w & 0xffff_ffff, w >> 32)
}

/// (accessed pages, dirty pages) as a word of region counters, each
/// saturated at `u32::MAX` (regions have at most 2^27 pages).
#[inline]
fn pack_pair(a: u64, d: u64) -> u64 {
    let cap = |v: u64| v.min(0xffff_ffff);
    cap(a) | (cap(d) << 32)
}

/// The ring of the last K rounds, in caller-supplied storage `S`.
///
/// # Invariants
///
/// `words.len() >= layout.words()`; `kept <= layout.rounds()`;
/// `next < layout.rounds()`.
pub struct History<S> {
    layout: HistoryLayout,
    words: S,
    /// Rounds in the ring.
    kept: u16,
    /// Slot the next round goes to.
    next: u16,
}

impl<S: DerefMut<Target = [u64]>> History<S> {
    /// Storage bytes a ring over `span` in regions of `region` keeping
    /// `rounds` rounds needs, or why it is refused.
    pub fn bytes_needed(span: GfnRange, region: Granule, rounds: u16) -> Result<usize, HeatError> {
        HistoryLayout::new(span, region, rounds).map(|l| l.bytes())
    }

    /// An empty ring with `layout` in `storage`. Writes the whole storage
    /// once.
    pub fn new(layout: HistoryLayout, mut storage: S) -> Result<Self, HeatError> {
        zero_prefix(&mut storage, layout.words())?;
        // INVARIANT: length checked above; the ring starts empty at slot 0.
        Ok(History {
            layout,
            words: storage,
            kept: 0,
            next: 0,
        })
    }

    /// The ring's layout.
    #[inline]
    pub fn layout(&self) -> &HistoryLayout {
        &self.layout
    }

    fn counters_mut(&mut self) -> &mut [u64] {
        let from = self.layout.counters_at;
        let to = self.layout.rows_at;
        self.words.get_mut(from..to).unwrap_or(&mut [])
    }

    /// Opens a round: zeroes the per-region counters. O(regions).
    pub fn begin_round(&mut self) {
        self.counters_mut().fill(0);
    }

    /// Starts a root within the round: folds the counts of the previous
    /// root into the round's and zeroes them. O(regions).
    pub fn begin_root(&mut self) {
        let pages_of = self.layout;
        for (i, pair) in self.counters_mut().chunks_exact_mut(2).enumerate() {
            fold(pair, pages_of.region_range(i).pages());
        }
    }

    /// Counts the pages of `range` (clipped to the span) as accessed and/or
    /// dirtied by the current root. O(regions touched).
    #[inline]
    pub fn count(&mut self, range: GfnRange, accessed: bool, dirty: bool) {
        if !accessed && !dirty {
            return;
        }
        let layout = self.layout;
        let range = range.intersect(&layout.span);
        if range.is_empty() {
            return;
        }
        let shift = layout.region.page_shift();
        let first = range
            .start
            .0
            .wrapping_sub(layout.base.0)
            .wrapping_shr(shift);
        let last = range
            .end
            .0
            .wrapping_sub(1)
            .wrapping_sub(layout.base.0)
            .wrapping_shr(shift);
        let (Ok(first), Ok(last)) = (usize::try_from(first), usize::try_from(last)) else {
            return;
        };
        let (Some(from), Some(to)) = (first.checked_mul(2), last.checked_add(1)) else {
            return;
        };
        let Some(to) = to.checked_mul(2) else {
            return;
        };
        let Some(pairs) = self.counters_mut().get_mut(from..to) else {
            return;
        };
        for (i, pair) in pairs.chunks_exact_mut(2).enumerate() {
            let n = layout
                .region_range(first.wrapping_add(i))
                .intersect(&range)
                .pages();
            if let Some(root) = pair.first_mut() {
                let (a, d) = unpack_pair(*root);
                let a = if accessed { a.saturating_add(n) } else { a };
                let d = if dirty { d.saturating_add(n) } else { d };
                *root = pack_pair(a, d);
            }
        }
    }

    /// Forgets the dirty pages counted so far in the current round (its
    /// dirty results turned out partial: see
    /// [`HeatMap::stop_dirty`](super::HeatMap::stop_dirty)). O(regions).
    pub fn forget_dirty(&mut self) {
        for w in self.counters_mut() {
            let (a, _) = unpack_pair(*w);
            *w = pack_pair(a, 0);
        }
    }

    /// Closes the round: fills its row of shares and stores `record` with
    /// its page counts filled in, replacing the oldest round when the ring
    /// is full. Returns the stored record. O(regions).
    pub fn end_round(&mut self, record: RoundRecord) -> RoundRecord {
        let layout = self.layout;
        let k = usize::from(layout.rounds);
        let slot = usize::from(self.next);
        let mut record = record;
        let (mut accessed, mut dirty) = (0u64, 0u64);

        // Split the storage into its three parts, so the counters can be
        // read while the row is written.
        let Some(all) = self.words.get_mut(..layout.words) else {
            return record;
        };
        let (records, rest) = all.split_at_mut(layout.counters_at.min(all.len()));
        let counters_len = layout.rows_at.saturating_sub(layout.counters_at);
        let (counters, rows) = rest.split_at_mut(counters_len.min(rest.len()));
        let row_from = slot.saturating_mul(layout.row_words);
        let row = rows
            .get_mut(row_from..row_from.saturating_add(layout.row_words))
            .unwrap_or(&mut []);
        row.fill(0);

        for (i, pair) in counters.chunks_exact_mut(2).enumerate() {
            let pages = layout.region_range(i).pages();
            fold(pair, pages);
            let (a, d) = unpack_pair(pair.get(1).copied().unwrap_or(0));
            accessed = accessed.saturating_add(a);
            dirty = dirty.saturating_add(d);
            set_byte(row, i, share(a, pages));
            set_byte(row, layout.regions.saturating_add(i), share(d, pages));
        }

        record.accessed_pages = accessed;
        record.dirty_pages = dirty;
        let rec_from = slot.saturating_mul(RECORD_WORDS);
        if let Some(dst) = records.get_mut(rec_from..rec_from.saturating_add(RECORD_WORDS)) {
            for (d, s) in dst.iter_mut().zip(record.encode()) {
                *d = s;
            }
        }
        // INVARIANT: `slot < k`, so `next < k` and `kept <= k`.
        let next = slot.wrapping_add(1).checked_rem(k).unwrap_or(0);
        self.next = u16::try_from(next).unwrap_or(0);
        if usize::from(self.kept) < k {
            self.kept = self.kept.wrapping_add(1);
        }
        record
    }

    /// A read-only view for renderers.
    pub fn view(&self) -> HistoryView<'_> {
        HistoryView {
            layout: self.layout,
            words: self.words.get(..self.layout.words).unwrap_or(&[]),
            kept: self.kept,
            next: self.next,
        }
    }
}

/// Folds the root counts (`pair[0]`) into the round's (`pair[1]`), each at
/// most `pages`, and zeroes the root counts.
#[inline]
fn fold(pair: &mut [u64], pages: u64) {
    if let [root, round] = pair {
        let (ra, rd) = unpack_pair(*root);
        let (a, d) = unpack_pair(*round);
        *round = pack_pair(a.max(ra.min(pages)), d.max(rd.min(pages)));
        *root = 0;
    }
}

/// Sets byte `index` of a row of little-endian words.
#[inline]
fn set_byte(row: &mut [u64], index: usize, value: u8) {
    if let Some(w) = row.get_mut(index / 8) {
        let shift = ((index % 8) as u32).wrapping_mul(8);
        *w = (*w & !(0xffu64.wrapping_shl(shift))) | u64::from(value).wrapping_shl(shift);
    }
}

/// Byte `index` of a row of little-endian words (0 beyond it).
#[inline]
fn get_byte(row: &[u64], index: usize) -> u8 {
    let shift = ((index % 8) as u32).wrapping_mul(8);
    row.get(index / 8)
        .map_or(0, |w| (w.wrapping_shr(shift) & 0xff) as u8)
}

/// A read-only view of a [`History`] ring.
#[derive(Clone, Copy, Debug)]
pub struct HistoryView<'a> {
    layout: HistoryLayout,
    words: &'a [u64],
    kept: u16,
    next: u16,
}

impl HistoryView<'_> {
    /// The ring's layout.
    #[inline]
    pub fn layout(&self) -> &HistoryLayout {
        &self.layout
    }

    /// Number of rounds in the ring (at most K).
    #[inline]
    pub fn kept(&self) -> usize {
        usize::from(self.kept)
    }

    /// The slot of the `age`-th kept round, 0 being the oldest.
    fn slot(&self, age: usize) -> Option<usize> {
        if age >= self.kept() {
            return None;
        }
        let k = usize::from(self.layout.rounds);
        // The oldest is `kept` slots before `next` (`kept <= k`).
        let oldest = usize::from(self.next)
            .wrapping_add(k)
            .wrapping_sub(self.kept())
            .checked_rem(k)?;
        oldest.wrapping_add(age).checked_rem(k)
    }

    /// The `age`-th kept round's record, 0 being the oldest.
    pub fn record(&self, age: usize) -> Option<RoundRecord> {
        let slot = self.slot(age)?;
        let from = slot.checked_mul(RECORD_WORDS)?;
        let words = self.words.get(from..from.checked_add(RECORD_WORDS)?)?;
        Some(RoundRecord::decode(words))
    }

    /// The `age`-th kept round's shares of region `region`: (accessed,
    /// dirty), see [`share`].
    pub fn shares(&self, age: usize, region: usize) -> Option<(u8, u8)> {
        if region >= self.layout.regions {
            return None;
        }
        let slot = self.slot(age)?;
        let from = self
            .layout
            .rows_at
            .checked_add(slot.checked_mul(self.layout.row_words)?)?;
        let row = self
            .words
            .get(from..from.checked_add(self.layout.row_words)?)?;
        Some((
            get_byte(row, region),
            get_byte(row, self.layout.regions.saturating_add(region)),
        ))
    }
}
