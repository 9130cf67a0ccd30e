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
//!
//! # Uniform blocks: rounds cost what was touched
//!
//! A round must not cost O(guest size) when the guest touches a few MiB of
//! it: a 1 GiB guest has 262144 cells at 4 KiB, and the walker reports its
//! unmapped, idle and cold memory as a few large ranges. So the cells are
//! grouped in blocks of [`BLOCK_CELLS`] (512: 2 MiB at 4 KiB, one leaf
//! table), and a block whose cells are all equal is kept *uniform*: its
//! first slot holds a mark ([`Cell::UNIFORM_MARK`], a value no cell takes)
//! and its second slot the one cell they all are; the other slots mean
//! nothing. Every other block is *dense*: every slot holds its cell, as
//! before. This takes no memory beyond the cells, so the bound above is
//! unchanged.
//!
//! Every operation on a cell ([`Cell::next_round`], [`Cell::observe`]) is a
//! function of the cell and its arguments alone, so equal cells stay equal
//! under the same operation, and applying it once to a uniform block's cell
//! is applying it to each of its cells:
//!
//! - [`HeatStore::begin_round`]: O(1) per uniform block; a dense block is
//!   settled cell by cell and made uniform again if its cells have become
//!   equal (a hot block whose every page was accessed; an idle block whose
//!   pages were last accessed in nearby rounds, once their idle ages have
//!   merged: see [`cell`](super::cell), "Idle age").
//! - [`HeatStore::observe`]: a visit covering a uniform block whole, or not
//!   changing its cell, is O(1); one changing part of a uniform block makes
//!   it dense first (O(block)); dense blocks are updated cell by cell. Cold
//!   visits are no-ops.
//! - [`StoreView::cell`] reads a uniform block's cell for any index in it.
//!
//! A round therefore costs O(blocks) (512 per GiB at 4 KiB) plus O(cells)
//! of the blocks that differ inside (touched in the window or not long
//! before it, or mapped only in part), whatever the guest's size. `tests/heat_lazy.rs` checks the
//! cells against a plain array of [`Cell`]s driven by the same operations.

use core::ops::DerefMut;

use super::cell::{Cell, Observation, Width};
use super::error::{zero_prefix, HeatError};
use super::granule::Granule;
use super::MAX_GFN;
use crate::ept_walk::{Gfn, GfnRange};

/// Cells per block, the unit in which the store is lazy: 2 MiB at a 4 KiB
/// granule, what one leaf table maps, so that the walker's holes, idle runs
/// and cold tables cover whole blocks.
pub const BLOCK_CELLS: usize = 512;

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

    /// Number of blocks of [`BLOCK_CELLS`] cells (the last one possibly
    /// shorter).
    #[inline]
    pub const fn blocks(&self) -> usize {
        self.cells.div_ceil(BLOCK_CELLS)
    }

    /// The cells of block `b`, as `first..end` indices.
    #[inline]
    fn block_cells(&self, b: usize) -> Option<(usize, usize)> {
        let first = b.checked_mul(BLOCK_CELLS)?;
        (first < self.cells).then(|| (first, first.saturating_add(BLOCK_CELLS).min(self.cells)))
    }

    /// The words of block `b`, as `first..end` indices.
    #[inline]
    fn block_words(&self, b: usize) -> Option<(usize, usize)> {
        let (first, end) = self.block_cells(b)?;
        let n = self.width.words();
        // `cells * n` fits (checked in `new`).
        Some((first.wrapping_mul(n), end.wrapping_mul(n)))
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

/// Replaces every packed cell `raw` of `words` (whole cells of `width`)
/// with `f(raw)`.
#[inline]
fn for_each_cell(words: &mut [u16], width: Width, mut f: impl FnMut(u64) -> u64) {
    match width {
        // The common case gets a loop over plain words.
        Width::W16 => {
            for w in words {
                *w = f(u64::from(*w)) as u16;
            }
        }
        Width::W32 | Width::W64 => {
            for chunk in words.chunks_exact_mut(width.words()) {
                store(chunk, f(load(chunk)));
            }
        }
    }
}

/// The packed cell a uniform block holds, if `block` (a block's words) is
/// uniform: its first slot is [`Cell::UNIFORM_MARK`] and its second the
/// cell.
#[inline]
fn uniform_of(block: &[u16], width: Width) -> Option<u64> {
    let n = width.words();
    let mark = load(block.get(..n)?);
    let cell = block.get(n..n.checked_mul(2)?)?;
    (mark == Cell::UNIFORM_MARK).then(|| load(cell))
}

/// Makes `block` uniform, every cell the packed `raw`. O(1): the other
/// slots are left as they are and mean nothing until the block is made
/// dense again. Returns `false` (and changes nothing) for a block of one
/// cell, which stays dense.
#[inline]
fn set_uniform(block: &mut [u16], width: Width, raw: u64) -> bool {
    let n = width.words();
    let two = n.wrapping_mul(2);
    if block.len() < two {
        return false;
    }
    if let Some(mark) = block.get_mut(..n) {
        store(mark, Cell::UNIFORM_MARK);
    }
    if let Some(slot) = block.get_mut(n..two) {
        store(slot, raw);
    }
    true
}

/// Writes the packed cell `raw` into every slot of `block`: the dense form
/// of a uniform block. O(block).
#[inline]
fn make_dense(block: &mut [u16], width: Width, raw: u64) {
    match width {
        Width::W16 => block.fill(raw as u16),
        Width::W32 | Width::W64 => {
            for chunk in block.chunks_exact_mut(width.words()) {
                store(chunk, raw);
            }
        }
    }
}

/// Opens a round in a dense block: [`Cell::next_round`] on every cell.
/// Returns the packed cell they all are if they are now all equal (and the
/// block has at least two cells), so the caller can make the block uniform.
#[inline]
fn next_round_dense(block: &mut [u16], width: Width, window: u8, round: u64) -> Option<u64> {
    let mut first: Option<u64> = None;
    let mut same = true;
    let mut count = 0usize;
    for_each_cell(block, width, |raw| {
        let raw = Cell::next_round_packed(raw, width, window, round);
        match first {
            None => first = Some(raw),
            Some(f) => same &= f == raw,
        }
        count = count.wrapping_add(1);
        raw
    });
    first.filter(|_| same && count >= 2)
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
    /// [`Cell::EMPTY`] (every block uniform). Writes the whole storage once
    /// (O(cells)).
    pub fn new(layout: StoreLayout, mut storage: S) -> Result<Self, HeatError> {
        // All-zero words are `Cell::EMPTY`, dense.
        zero_prefix(&mut storage, layout.words())?;
        let mut store = HeatStore {
            layout,
            words: storage,
            rounds: 0,
        };
        let width = layout.width();
        for b in 0..layout.blocks() {
            if let Some(block) = store.block_mut(b) {
                set_uniform(block, width, Cell::EMPTY.pack(width));
            }
        }
        // INVARIANT: checked just above.
        Ok(store)
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

    /// The words of block `b`.
    #[inline]
    fn block_mut(&mut self, b: usize) -> Option<&mut [u16]> {
        let (from, to) = self.layout.block_words(b)?;
        self.words.get_mut(from..to)
    }

    /// Opens a round: settles every cell's state from the previous round
    /// and slides the histories by one. O(1) per uniform block, O(cells)
    /// per dense one; a dense block whose cells have become equal is made
    /// uniform again. Call it outside `mmu_lock`.
    pub fn begin_round(&mut self) {
        let width = self.layout.width();
        let window = self.layout.window();
        self.rounds = self.rounds.wrapping_add(1);
        let round = self.rounds;
        for b in 0..self.layout.blocks() {
            let Some(block) = self.block_mut(b) else {
                continue;
            };
            if let Some(raw) = uniform_of(block, width) {
                let raw = Cell::next_round_packed(raw, width, window, round);
                set_uniform(block, width, raw);
            } else if let Some(raw) = next_round_dense(block, width, window, round) {
                set_uniform(block, width, raw);
            }
        }
    }

    /// Records a visit of the running round over `range` (clipped to the
    /// store). O(1) per uniform block the visit covers whole or does not
    /// change, O(cells touched) elsewhere, plus O(cells) for each uniform
    /// block it changes in part (made dense); a cold visit changes nothing
    /// and costs nothing.
    #[inline]
    pub fn observe(&mut self, range: GfnRange, obs: Observation) {
        if matches!(obs, Observation::Cold) {
            // Says nothing, records nothing (`Cell::observe` would leave
            // every cell as it is).
            return;
        }
        let (first, end) = self.layout.indices(range);
        if end == first.wrapping_add(1) {
            // One granule: a 4 KiB leaf at 4 KiB, the hot path.
            self.observe_one(first, obs);
            return;
        }
        let width = self.layout.width();
        let n = width.words();
        let mut i = first;
        while i < end {
            let b = i / BLOCK_CELLS;
            let Some((bs, be)) = self.layout.block_cells(b) else {
                return;
            };
            let to = end.min(be);
            let Some(block) = self.block_mut(b) else {
                return;
            };
            let (from_w, to_w) = (
                i.wrapping_sub(bs).wrapping_mul(n),
                to.wrapping_sub(bs).wrapping_mul(n),
            );
            let seen = |raw| Cell::observe_packed(raw, width, obs);
            match uniform_of(block, width) {
                Some(raw) => {
                    let after = seen(raw);
                    if after == raw {
                        // Nothing changes in any of its cells.
                    } else if i == bs && to == be {
                        set_uniform(block, width, after);
                    } else {
                        make_dense(block, width, raw);
                        if let Some(part) = block.get_mut(from_w..to_w) {
                            for_each_cell(part, width, seen);
                        }
                    }
                }
                None => {
                    if let Some(part) = block.get_mut(from_w..to_w) {
                        for_each_cell(part, width, seen);
                    }
                }
            }
            i = to;
        }
    }

    /// [`HeatStore::observe`] of one granule, `index < cells`.
    #[inline]
    fn observe_one(&mut self, index: usize, obs: Observation) {
        let width = self.layout.width();
        let n = width.words();
        let Some((from, to)) = self.layout.block_words(index / BLOCK_CELLS) else {
            return;
        };
        let Some(block) = self.words.get_mut(from..to) else {
            return;
        };
        let seen = |raw| Cell::observe_packed(raw, width, obs);
        if let Some(raw) = uniform_of(block, width) {
            if seen(raw) == raw {
                return;
            }
            // A uniform block has at least two cells: this one is a part.
            make_dense(block, width, raw);
        }
        let at = (index % BLOCK_CELLS).wrapping_mul(n);
        if let Some(chunk) = block.get_mut(at..at.wrapping_add(n)) {
            store(chunk, seen(load(chunk)));
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
            pending: None,
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
    /// A visit of the running round not in the words yet: the cells it
    /// covers, `first..end`, and what it says.
    pending: Option<(usize, usize, Observation)>,
}

impl<'a> StoreView<'a> {
    /// A view of `words` laid out as `layout`, `rounds` rounds in: what a
    /// reader of a saved store would build. [`StoreView::cell`] is `None`
    /// for cells beyond `words`; the words are read as the store writes
    /// them, uniform blocks included (module docs).
    pub fn new(layout: StoreLayout, words: &'a [u16], rounds: u64) -> StoreView<'a> {
        StoreView {
            layout,
            words,
            rounds,
            pending: None,
        }
    }

    /// The view with `visit` (a range and what it says) applied to the
    /// cells it covers when they are read, as [`HeatStore::observe`] would
    /// apply it: how a heat map shows a visit it has not recorded yet.
    pub fn with_pending(self, visit: Option<(GfnRange, Observation)>) -> StoreView<'a> {
        StoreView {
            pending: visit.map(|(range, obs)| {
                let (first, end) = self.layout.indices(range);
                (first, end, obs)
            }),
            ..self
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

    /// The words of the layout's cells, as the store holds them, if no
    /// visit is pending ([`StoreView::with_pending`]): what a copy of the
    /// view needs ([`StoreView::new`] over the copy reads the same cells).
    pub fn settled_words(&self) -> Option<&'a [u16]> {
        if self.pending.is_some() {
            return None;
        }
        self.words.get(..self.layout.words())
    }

    /// Number of cells.
    #[inline]
    pub fn cells(&self) -> usize {
        self.layout.cells()
    }

    /// Cell `index`, if it exists (`None` beyond the layout's cells or the
    /// words).
    #[inline]
    pub fn cell(&self, index: usize) -> Option<Cell> {
        let width = self.layout.width();
        let n = width.words();
        let from = index.checked_mul(n)?;
        let chunk = self.words.get(from..from.checked_add(n)?)?;
        if index >= self.layout.cells() {
            return None;
        }
        // A block cut short by the end of `words` is still read by its
        // first two slots.
        let uniform = self
            .layout
            .block_words(index / BLOCK_CELLS)
            .and_then(|(from, to)| {
                uniform_of(self.words.get(from..to.min(self.words.len()))?, width)
            });
        let raw = uniform.unwrap_or_else(|| load(chunk));
        let raw = match self.pending {
            Some((first, end, obs)) if first <= index && index < end => {
                Cell::observe_packed(raw, width, obs)
            }
            _ => raw,
        };
        Some(Cell::unpack(raw, width))
    }

    /// Calls `f(first, count, cell)` for runs of equal cells covering the
    /// view in order: once per uniform block, once per cell elsewhere.
    /// O(blocks + cells of dense blocks), what a reader summing the cells
    /// needs rather than [`StoreView::cell`] for each.
    pub fn for_each_run(&self, mut f: impl FnMut(usize, usize, Cell)) {
        let width = self.layout.width();
        for b in 0..self.layout.blocks() {
            let Some((first, end)) = self.layout.block_cells(b) else {
                return;
            };
            let uniform = self
                .layout
                .block_words(b)
                .and_then(|(from, to)| uniform_of(self.words.get(from..to)?, width));
            match uniform {
                Some(raw) if self.pending.is_none() => {
                    f(first, end.saturating_sub(first), Cell::unpack(raw, width));
                }
                _ => {
                    for i in first..end {
                        if let Some(cell) = self.cell(i) {
                            f(i, 1, cell);
                        }
                    }
                }
            }
        }
    }

    /// Number of dense blocks (the rest are uniform): how much a round
    /// costs beyond O(blocks). O(blocks).
    pub fn dense_blocks(&self) -> usize {
        let width = self.layout.width();
        (0..self.layout.blocks())
            .filter(|&b| {
                self.layout
                    .block_words(b)
                    .and_then(|(from, to)| uniform_of(self.words.get(from..to)?, width))
                    .is_none()
            })
            .count()
    }
}
