// SPDX-License-Identifier: GPL-2.0

//! [`HeatMap`]: a VM's heat store, history ring and totals, fed one round
//! at a time by the walker through a [`RoundVisitor`].
//!
//! The glue's round, with the calls in order:
//!
//! ```text
//! map.begin_round(now_ns, track)        outside mmu_lock: O(blocks + cells
//!                                       of blocks that differ inside)
//! for each valid root (normal, SMM):
//!     map.begin_root()                  O(regions)
//!     loop {                            mmu_lock (read) + RCU held
//!         walker.walk(range, budget, &mut map.visitor())
//!         ... drop the locks, cond_resched, retake, resume at the cursor
//!     }
//! flush TLBs
//! map.end_round(&RoundEnd { .. })       O(regions)
//! ```
//!
//! A visitor may be created afresh for each `walk` call: what it holds
//! between calls (a run of leaves not recorded yet) lives in the map. Readers ([`HeatMap::view`]) must not run while a round is in
//! progress if they want whole rounds: the glue keeps the map behind the
//! VM's lock for the round, and Rust's borrows keep a view from living
//! across a mutation.

use core::ops::DerefMut;

use super::cell::Observation;
use super::error::HeatError;
use super::granule::{Granule, Track};
use super::history::{History, HistoryLayout, HistoryView};
use super::idle::Clock;
use super::round::{RoundEnd, RoundRecord};
use super::store::{HeatStore, StoreLayout, StoreView};
use super::totals::Totals;
use crate::ept_walk::{GfnRange, Leaf, PageSize, Skip, Visitor};

/// Everything that decides a heat map's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The guest's GFNs: `0..` one past the last GFN of its memslots.
    pub span: GfnRange,
    /// The heat store's granule.
    pub granule: Granule,
    /// The heat store's window, in rounds.
    pub window: u8,
    /// The history ring's region granule (default
    /// [`DEFAULT_REGION`](super::DEFAULT_REGION)).
    pub region: Granule,
    /// Rounds the history ring keeps (default
    /// [`DEFAULT_HISTORY_ROUNDS`](super::DEFAULT_HISTORY_ROUNDS)).
    pub rounds: u16,
}

/// The layouts of a heat map's two storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The heat store: [`StoreLayout::words`] `u16` words.
    pub store: StoreLayout,
    /// The history ring: [`HistoryLayout::words`] `u64` words.
    pub history: HistoryLayout,
}

impl Geometry {
    /// The layouts, or why this geometry is refused.
    pub fn layout(&self) -> Result<Layout, HeatError> {
        Ok(Layout {
            store: StoreLayout::new(self.span, self.granule, self.window)?,
            history: HistoryLayout::new(self.span, self.region, self.rounds)?,
        })
    }
}

impl Layout {
    /// Bytes of both storages together.
    pub fn bytes(&self) -> usize {
        self.store.bytes().saturating_add(self.history.bytes())
    }
}

/// A VM's heat map: store, history ring and totals.
///
/// `C` holds the store's `u16` words, `H` the ring's `u64` words; both are
/// allocated by the caller from a [`Layout`].
pub struct HeatMap<C, H> {
    store: HeatStore<C>,
    history: History<H>,
    totals: Totals,
    track: Track,
    /// Rounds to time, for idle ages.
    clock: Clock,
    /// Leaves the visitor has seen but not recorded yet (see
    /// [`RoundVisitor`]).
    run: Option<LeafRun>,
    /// The running (or last) round's number and start.
    round: u64,
    start_ns: u64,
    in_round: bool,
    /// The running round stopped recording dirty bits part way.
    dirty_partial: bool,
}

impl<C, H> HeatMap<C, H>
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    /// A heat map laid out as `layout` in `cells` (at least
    /// `layout.store.words()` words) and `history` (at least
    /// `layout.history.words()` words). O(storage).
    pub fn new(layout: &Layout, cells: C, history: H) -> Result<Self, HeatError> {
        Ok(HeatMap {
            store: HeatStore::new(layout.store, cells)?,
            history: History::new(layout.history, history)?,
            totals: Totals::default(),
            track: Track::default(),
            clock: Clock::default(),
            run: None,
            round: 0,
            start_ns: 0,
            in_round: false,
            dirty_partial: false,
        })
    }

    /// Opens a round that began at `start_ns` and records `track`. Settles
    /// the previous round and slides every window: O(blocks) plus the cells
    /// of blocks that differ inside ([`HeatStore::begin_round`]), outside
    /// `mmu_lock`.
    pub fn begin_round(&mut self, start_ns: u64, track: Track) {
        self.record_run();
        self.store.begin_round();
        self.history.begin_round();
        self.clock.begin_round(self.store.rounds(), start_ns, track);
        self.track = track;
        self.round = self.round.wrapping_add(1);
        self.start_ns = start_ns;
        self.in_round = true;
        self.dirty_partial = false;
    }

    /// Sets the period the next rounds are begun with: rounds of one period
    /// are one segment of the clock that turns idle ages in rounds into
    /// time ([`idle`](super::idle)), which measures the intervals between
    /// their starts.
    #[inline]
    pub fn set_period(&mut self, period_ms: u32) {
        self.clock.set_period(period_ms);
    }

    /// The running round stops recording dirty bits: the walk stopped
    /// clearing them part way (dirty logging began, so KVM owns them). Its
    /// dirty pages are not counted (the history, the dirty rate,
    /// `dirty_pages_last`: the round is recorded as tracking accessed bits
    /// only) and the round is counted in [`Totals::dirty_partial_rounds`].
    /// The granules' dirty windows keep what was seen before the stop: true,
    /// but incomplete for this round. O(regions).
    pub fn stop_dirty(&mut self) {
        if !self.in_round || !self.track.dirty() {
            return;
        }
        // The pending run goes to the store and the counters first.
        self.record_run();
        self.history.forget_dirty();
        self.clock.stop_dirty();
        self.track = Track::Accessed;
        self.dirty_partial = true;
    }

    /// Starts walking another root in the running round. Call it before
    /// the first walk of every root, the first one included.
    pub fn begin_root(&mut self) {
        // The run's pages count for the root that saw them.
        self.record_run();
        self.history.begin_root();
    }

    /// Records the pending run of leaves, if any.
    #[inline]
    fn record_run(&mut self) {
        if let Some(run) = self.run.take() {
            self.store.observe(run.range, run.observation());
            self.history.count(run.range, run.accessed, run.dirty);
        }
    }

    /// The visitor to pass to `Walker::walk` during the round.
    #[inline]
    pub fn visitor(&mut self) -> RoundVisitor<'_, C, H> {
        RoundVisitor {
            store: &mut self.store,
            history: &mut self.history,
            track: self.track,
            run: &mut self.run,
        }
    }

    /// Closes the running round with what the glue measured, and returns
    /// its record (as also kept in the ring and in the totals). Does
    /// nothing but return the last record if no round is running.
    pub fn end_round(&mut self, end: &RoundEnd) -> RoundRecord {
        if !self.in_round {
            return self.totals.last.unwrap_or_default();
        }
        self.record_run();
        self.in_round = false;
        // Granules of a root lost, over the limit, or run by a nested
        // guest (whose accesses set bits in roots not walked), or of a
        // root being replaced (vCPUs may still run on it), were not all
        // visited: this round vouches for no granule's idleness.
        let r = &end.roots;
        let complete = r.lost == 0 && r.over_limit == 0 && r.guest_mode == 0 && r.invalid == 0;
        let cleared = end.walk.cleared_accessed != 0 || end.walk.cleared_dirty != 0;
        self.clock.end_round(complete, cleared, end.flushed);
        let w = &end.walk;
        let record = self.history.end_round(RoundRecord {
            round: self.round,
            start_ns: self.start_ns,
            walk_ns: end.walk_ns,
            leaves: w.leaves,
            accessed_pages: 0,
            dirty_pages: 0,
            cleared: w
                .cleared_accessed
                .saturating_add(w.cleared_dirty)
                .saturating_add(w.cleared_tables),
            yields: u32::try_from(end.yields).unwrap_or(u32::MAX),
            flushed: end.flushed,
            track: self.track,
        });
        self.totals.add(&record, end);
        if self.dirty_partial {
            self.totals.dirty_partial_rounds = self.totals.dirty_partial_rounds.saturating_add(1);
            self.totals.dirty_partial_last = self.store.rounds();
        }
        record
    }

    /// Whether a round is open.
    #[inline]
    pub fn in_round(&self) -> bool {
        self.in_round
    }

    /// What the running (or last) round records.
    #[inline]
    pub fn track(&self) -> Track {
        self.track
    }

    /// The totals.
    #[inline]
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// A read-only view for renderers.
    pub fn view(&self) -> MapView<'_> {
        MapView {
            store: self
                .store
                .view()
                .with_pending(self.run.map(|r| (r.range, r.observation()))),
            history: self.history.view(),
            totals: &self.totals,
            track: self.track,
            clock: &self.clock,
        }
    }
}

/// Everything renderers read of a heat map.
#[derive(Clone, Copy, Debug)]
pub struct MapView<'a> {
    /// The heat store.
    pub store: StoreView<'a>,
    /// The history ring.
    pub history: HistoryView<'a>,
    /// The totals.
    pub totals: &'a Totals,
    /// What the latest round recorded.
    pub track: Track,
    /// Rounds to time, for idle ages.
    pub clock: &'a Clock,
}

/// Records what the walker reports into a [`HeatMap`]'s running round.
///
/// Runs on the walker's hot path, under `mmu_lock`: allocation-free, never
/// sleeps, and every call is O(blocks + regions touched) plus the cells it
/// changes in blocks that differ inside ([`HeatStore::observe`]). A hole,
/// idle run or large leaf covering whole blocks of equal cells costs O(1)
/// per block (512 cells at 4 KiB); a cold range costs nothing.
///
/// Leaves are recorded in runs: a leaf that continues the previous one
/// (next GFN, same size, same bits) only extends the run the map keeps,
/// which is recorded in the store and the ring when a leaf breaks it, at
/// the next [`HeatMap::begin_root`] and at [`HeatMap::end_round`];
/// [`HeatMap::view`] shows it meanwhile. The run is also recorded before
/// any other visit but a cold one, so that the store sees visits in the
/// walker's order (which the size word depends on in two cases:
/// [`cell`](super::cell), "Rules"; the ring adds page counts per root). This records what one visit per
/// leaf would, and a leaf table of hot pages becomes one visit covering its
/// block.
pub struct RoundVisitor<'a, C, H> {
    store: &'a mut HeatStore<C>,
    history: &'a mut History<H>,
    track: Track,
    run: &'a mut Option<LeafRun>,
}

/// Contiguous leaves of one size with the same recorded bits.
#[derive(Clone, Copy, Debug)]
struct LeafRun {
    range: GfnRange,
    size: PageSize,
    accessed: bool,
    dirty: bool,
}

impl LeafRun {
    #[inline]
    fn observation(&self) -> Observation {
        Observation::Leaf {
            size: self.size,
            accessed: self.accessed,
            dirty: self.dirty,
        }
    }
}

impl<C, H> RoundVisitor<'_, C, H>
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    /// Records a visit other than a leaf's, after the pending run.
    #[inline]
    fn observe(&mut self, range: GfnRange, obs: Observation) {
        if let Some(run) = self.run.take() {
            self.store.observe(run.range, run.observation());
            self.history.count(run.range, run.accessed, run.dirty);
        }
        self.store.observe(range, obs);
    }
}

impl<C, H> Visitor for RoundVisitor<'_, C, H>
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    #[inline]
    fn leaf(&mut self, leaf: Leaf) {
        let range = GfnRange::new(leaf.gfn, leaf.gfn.offset(leaf.size.pages()));
        // Bits the round does not track are dropped here: D without
        // clearing only says "written since mapped".
        let accessed = leaf.accessed && self.track.accessed();
        let dirty = leaf.dirty && self.track.dirty();
        if let Some(run) = self.run.as_mut() {
            if run.range.end == range.start
                && run.size == leaf.size
                && run.accessed == accessed
                && run.dirty == dirty
            {
                run.range.end = range.end;
                return;
            }
        }
        let next = LeafRun {
            range,
            size: leaf.size,
            accessed,
            dirty,
        };
        if let Some(run) = self.run.replace(next) {
            self.store.observe(run.range, run.observation());
            self.history.count(run.range, run.accessed, run.dirty);
        }
    }

    #[inline]
    fn idle(&mut self, range: GfnRange) {
        self.observe(range, Observation::Idle);
    }

    #[inline]
    fn hole(&mut self, range: GfnRange) {
        self.observe(range, Observation::Hole);
    }

    #[inline]
    fn cold(&mut self, _range: GfnRange) {
        // Says nothing about any granule: the run may go on after it.
    }

    #[inline]
    fn skipped(&mut self, range: GfnRange, _why: Skip) {
        // The reason is counted in the walker's `Stats`.
        self.observe(range, Observation::Unknown);
    }
}
