// SPDX-License-Identifier: GPL-2.0

//! The heat store: one [`Cell`] per granule of a VM's guest-physical span,
//! in storage the caller allocates.
//!
//! The caller computes a [`StoreLayout`] first (pure arithmetic, which also
//! refuses configurations that break the memory bound), allocates
//! [`StoreLayout::words`] `u16` words however it likes (the kernel:
//! `vmalloc`, so that an allocation failure is the `start` command's
//! `-ENOMEM`), and hands them to [`HeatStore::new`].
//!
//! # Memory bound
//!
//! At most 2 bytes per 4 KiB page of the span rounded up to whole granules:
//! a cell of [`Width::bytes`] bytes covers [`Granule::pages`] pages, so a
//! window needing a wider cell than `2 * pages` bytes is refused
//! ([`StoreLayout::max_window`]): 5 rounds at 4 KiB, 13 at 8 KiB, 29 from
//! 16 KiB on. Narrower cells are used whenever the window allows, so a
//! coarse granule costs less than 2 bytes per page.

use core::ops::DerefMut;

use super::cell::{Cell, Observation, Width};
use super::error::HeatError;
use super::granule::Granule;
use super::MAX_GFN;
use crate::ept_walk::{Gfn, GfnRange};

/// Where the cells of a heat store go, and how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLayout {
    /// First GFN of granule 0: the span's start rounded down to a granule.
    base: Gfn,
    /// The span as asked for.
    span: GfnRange,
    granule: Granule,
    window: u8,
    width: Width,
    cells: usize,
    words: usize,
}

impl StoreLayout {
    /// The largest window a store at `granule` may keep within 2 bytes per
    /// 4 KiB page.
    pub const fn max_window(granule: Granule) -> u8 {
        // Bytes a cell may take: 2 per page, capped at the widest cell.
        let budget = granule.pages().saturating_mul(2);
        if budget >= Width::W64.bytes() as u64 {
            Width::W64.history_bits() as u8
        } else if budget >= Width::W32.bytes() as u64 {
            Width::W32.history_bits() as u8
        } else {
            Width::W16.history_bits() as u8
        }
    }

    /// The layout of a store over `span` at `granule` keeping `window`
    /// rounds of history.
    pub fn new(span: GfnRange, granule: Granule, window: u8) -> Result<StoreLayout, HeatError> {
        if span.is_empty() {
            return Err(HeatError::EmptySpan);
        }
        if span.end.0 > MAX_GFN {
            return Err(HeatError::SpanBeyondMax);
        }
        if window == 0 {
            return Err(HeatError::WindowZero);
        }
        let max = Self::max_window(granule);
        let width = match Width::for_window(window) {
            Some(width) if window <= max => width,
            _ => {
                return Err(HeatError::WindowTooLarge {
                    window,
                    max,
                    granule,
                })
            }
        };
        let pages = granule.pages();
        let base = Gfn(span.start.0 & !pages.wrapping_sub(1));
        // `span.end <= MAX_GFN = 2^40`: no overflow below.
        let cells = span.end.0.wrapping_sub(base.0).div_ceil(pages.max(1));
        let cells = usize::try_from(cells).map_err(|_| HeatError::TooLarge)?;
        let words = cells
            .checked_mul(width.words())
            .ok_or(HeatError::TooLarge)?;
        // Bytes must be representable too, for `bytes()`.
        words.checked_mul(2).ok_or(HeatError::TooLarge)?;
        Ok(StoreLayout {
            base,
            span,
            granule,
            window,
            width,
            cells,
            words,
        })
    }

    /// Number of `u16` words of storage needed.
    #[inline]
    pub const fn words(&self) -> usize {
        self.words
    }

    /// Number of bytes of storage needed.
    #[inline]
    pub const fn bytes(&self) -> usize {
        // Checked in `new`.
        self.words.wrapping_mul(2)
    }

    /// Number of cells (granules).
    #[inline]
    pub const fn cells(&self) -> usize {
        self.cells
    }

    /// The granule.
    #[inline]
    pub const fn granule(&self) -> Granule {
        self.granule
    }

    /// The window, in rounds.
    #[inline]
    pub const fn window(&self) -> u8 {
        self.window
    }

    /// The cell width chosen for the window.
    #[inline]
    pub const fn width(&self) -> Width {
        self.width
    }

    /// The span as asked for.
    #[inline]
    pub const fn span(&self) -> GfnRange {
        self.span
    }

    /// First GFN of granule 0.
    #[inline]
    pub const fn base(&self) -> Gfn {
        self.base
    }

    /// The GFNs granule `index` covers (not clipped to the span).
    #[inline]
    pub const fn granule_range(&self, index: usize) -> GfnRange {
        let start = self
            .base
            .0
            .wrapping_add((index as u64).wrapping_shl(self.granule.page_shift()));
        GfnRange::new(Gfn(start), Gfn(start).offset(self.granule.pages()))
    }

    /// The granule holding `gfn`, if it is in the store.
    #[inline]
    pub fn index_of(&self, gfn: Gfn) -> Option<usize> {
        let offset = gfn.0.checked_sub(self.base.0)?;
        let index = usize::try_from(offset.wrapping_shr(self.granule.page_shift())).ok()?;
        (index < self.cells).then_some(index)
    }

    /// The granules `range` touches, as `first..end` indices (possibly
    /// empty), clipped to the store.
    #[inline]
    fn indices(&self, range: GfnRange) -> (usize, usize) {
        let shift = self.granule.page_shift();
        let start = range.start.0.saturating_sub(self.base.0);
        let end = range.end.0.saturating_sub(self.base.0);
        let first = start.wrapping_shr(shift);
        // Round up without overflow: `end` is at most `u64::MAX`.
        let last = end
            .wrapping_shr(shift)
            .wrapping_add(u64::from(end & self.granule.pages().wrapping_sub(1) != 0));
        let clip = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).min(self.cells);
        (clip(first), clip(last))
    }
}

/// Reads the cell stored in `chunk` (its width's words, low word first).
#[inline]
fn load(chunk: &[u16]) -> u64 {
    chunk
        .iter()
        .rev()
        .fold(0u64, |acc, &w| acc.wrapping_shl(16) | u64::from(w))
}

/// Writes `raw` into `chunk` (its width's words, low word first).
#[inline]
fn store(chunk: &mut [u16], raw: u64) {
    let mut raw = raw;
    for w in chunk {
        *w = raw as u16;
        raw = raw.wrapping_shr(16);
    }
}

/// Applies `f` to every cell of `words` (whole cells of `width`).
#[inline]
fn for_each_cell(words: &mut [u16], width: Width, mut f: impl FnMut(&mut Cell)) {
    match width {
        // The common case gets a loop over plain words.
        Width::W16 => {
            for w in words {
                let mut cell = Cell::unpack(u64::from(*w), width);
                f(&mut cell);
                *w = cell.pack(width) as u16;
            }
        }
        Width::W32 | Width::W64 => {
            for chunk in words.chunks_exact_mut(width.words()) {
                let mut cell = Cell::unpack(load(chunk), width);
                f(&mut cell);
                store(chunk, cell.pack(width));
            }
        }
    }
}

/// One cell per granule of a span, in caller-supplied storage `S` (a `Vec`
/// in tests, a `vmalloc` buffer in the kernel).
///
/// # Invariants
///
/// `words.len() >= layout.words()`.
pub struct HeatStore<S> {
    layout: StoreLayout,
    words: S,
    rounds: u64,
}

impl<S: DerefMut<Target = [u16]>> HeatStore<S> {
    /// Storage bytes a store over `span` at `granule` with `window` rounds
    /// needs, or why that configuration is refused.
    pub fn bytes_needed(span: GfnRange, granule: Granule, window: u8) -> Result<usize, HeatError> {
        StoreLayout::new(span, granule, window).map(|l| l.bytes())
    }

    /// A store with `layout` in `storage`, every cell
    /// [`Cell::EMPTY`]. Writes the whole storage once (O(cells)).
    pub fn new(layout: StoreLayout, mut storage: S) -> Result<Self, HeatError> {
        let got = storage.len();
        let Some(words) = storage.get_mut(..layout.words()) else {
            return Err(HeatError::StorageTooSmall {
                needed: layout.words(),
                got,
            });
        };
        // All-zero words are `Cell::EMPTY`.
        words.fill(0);
        // INVARIANT: checked just above.
        Ok(HeatStore {
            layout,
            words: storage,
            rounds: 0,
        })
    }

    /// The store's layout.
    #[inline]
    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }

    /// Number of rounds begun.
    #[inline]
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// The cells, as words.
    #[inline]
    fn words_mut(&mut self) -> &mut [u16] {
        let n = self.layout.words();
        self.words.get_mut(..n).unwrap_or(&mut [])
    }

    /// Opens a round: settles every cell's state from the previous round
    /// and slides the histories by one. O(cells); call it outside
    /// `mmu_lock`.
    pub fn begin_round(&mut self) {
        let width = self.layout.width();
        let window = self.layout.window();
        for_each_cell(self.words_mut(), width, |c| c.next_round(window));
        self.rounds = self.rounds.wrapping_add(1);
    }

    /// Records a visit of the running round over `range` (clipped to the
    /// store). O(granules touched).
    #[inline]
    pub fn observe(&mut self, range: GfnRange, obs: Observation) {
        let (first, end) = self.layout.indices(range);
        if first >= end {
            return;
        }
        let width = self.layout.width();
        let n = width.words();
        let (Some(from), Some(to)) = (first.checked_mul(n), end.checked_mul(n)) else {
            return;
        };
        if let Some(words) = self.words_mut().get_mut(from..to) {
            for_each_cell(words, width, |c| c.observe(obs));
        }
    }

    /// A read-only view for renderers.
    #[inline]
    pub fn view(&self) -> StoreView<'_> {
        let n = self.layout.words();
        StoreView {
            layout: self.layout,
            words: self.words.get(..n).unwrap_or(&[]),
            rounds: self.rounds,
        }
    }
}

/// A read-only view of a [`HeatStore`]: what renderers take, so they are
/// not generic over the storage.
#[derive(Clone, Copy, Debug)]
pub struct StoreView<'a> {
    layout: StoreLayout,
    words: &'a [u16],
    rounds: u64,
}

impl<'a> StoreView<'a> {
    /// A view of `words` laid out as `layout`, `rounds` rounds in: what a
    /// reader of a saved store would build. [`StoreView::cell`] is `None`
    /// for cells beyond `words`.
    pub fn new(layout: StoreLayout, words: &'a [u16], rounds: u64) -> StoreView<'a> {
        StoreView {
            layout,
            words,
            rounds,
        }
    }

    /// The layout.
    #[inline]
    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }

    /// Number of rounds begun.
    #[inline]
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Number of cells.
    #[inline]
    pub fn cells(&self) -> usize {
        self.layout.cells()
    }

    /// Cell `index`, if it exists.
    #[inline]
    pub fn cell(&self, index: usize) -> Option<Cell> {
        let width = self.layout.width();
        let n = width.words();
        let from = index.checked_mul(n)?;
        let chunk = self.words.get(from..from.checked_add(n)?)?;
        Some(Cell::unpack(load(chunk), width))
    }
}
