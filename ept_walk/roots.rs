// SPDX-License-Identifier: GPL-2.0

//! Walking every root of a VM once, across drops of the lock that keeps
//! roots and tables alive.
//!
//! A walk is split into chunks of a budget of entries; between chunks the
//! caller drops `mmu_lock` so that writers and the scheduler get their turn
//! ([`RootSource::relax`]). While it is dropped KVM may invalidate any root
//! and free its tables (`kvm_mmu_zap_all_fast` on a memslot delete or move,
//! SMRAM open/close), so nothing learnt about a root before a drop may be
//! walked after it: not the root being walked, and not the roots listed at
//! the start of the round and still waiting for their turn.
//!
//! The driver here keeps only a root's identity ([`RootSource::Key`]) across
//! a drop, and before every chunk, the first of each root included, looks the
//! root up again under the current hold of the lock. What a lookup returns,
//! [`Found`], borrows the source, and `relax` needs the source mutably; a
//! `Found` gives no [`Root`] out, only a [`Walker`] over the source's tables,
//! which borrows the source too. So the driver cannot walk a root found
//! before a drop after it: the borrow checker refuses. ([`Root`] itself is
//! a plain value that anyone can build; walking one takes the unsafe
//! [`Walker::new`], whose promise this driver keeps through the unsafe
//! [`RootSource`] contract.)

use super::addr::GfnRange;
use super::table::Tables;
use super::walk::{Descent, Mode, Root, Stats, Stop, Visitor, Walker};

/// Roots walked per round at most: KVM keeps a handful (one per address
/// space and paging mode in use). More are counted in
/// [`RootsStats::overflow`], not walked.
pub const MAX_ROOTS: usize = 8;

/// The roots of one VM under a lock that can be dropped and taken again.
///
/// # Safety
///
/// Every [`Root`] that [`for_each_root`](Self::for_each_root) passes has a
/// table that [`tables`](Self::tables) may be asked for (see
/// [`Tables::table`]) until the next [`relax`](Self::relax): the driver
/// walks it through those tables without further checks.
pub unsafe trait RootSource {
    /// What identifies a root across lock drops: enough that a root freed
    /// and replaced by another one at the same address does not compare
    /// equal (in the kernel: the `kvm_mmu_page`, its table and its role).
    type Key: Copy + Eq;

    /// The tables below the roots, valid while the lock is held.
    type Tables<'s>: Tables
    where
        Self: 's;

    /// Calls `f` with each usable root now, in the source's order.
    fn for_each_root(&self, f: &mut dyn FnMut(Self::Key, Root));

    /// The tables, valid until the next [`relax`](Self::relax).
    fn tables(&self) -> Self::Tables<'_>;

    /// Drops the lock, lets others run, takes it again. Every root may have
    /// gone meanwhile.
    fn relax(&mut self);

    /// Whether the tables' owner keeps the dirty bits for itself now (KVM:
    /// dirty logging is on for a memslot of the VM). Asked under the first
    /// hold of the lock, after every [`relax`](Self::relax) and at the end
    /// of the walk: from the first yes on, the walk leaves dirty bits alone.
    fn dirty_logging(&self) -> bool;
}

/// Where a round's results go: one heat map round, root after root.
pub trait RootSink {
    /// Receives one chunk's visits.
    type Visitor<'a>: Visitor
    where
        Self: 'a;

    /// A root's walk begins (called once per root, before its first chunk).
    fn begin_root(&mut self);

    /// A visitor for the next chunk. A chunk's visits all happen during one
    /// hold of the source's lock (the chunk's walker borrows the source, so
    /// no [`RootSource::relax`] comes between them): a leaf is reported in
    /// the hold in which it was found present and its bits cleared.
    fn visitor(&mut self) -> Self::Visitor<'_>;

    /// The walk has stopped clearing dirty bits part way (dirty logging
    /// began): from now on a leaf's dirty bit says only "written since
    /// mapped", and the round's dirty results are partial. Called at most
    /// once per walk, before the next chunk's visitor.
    fn stop_dirty(&mut self);
}

/// A root as found under the current hold of the lock. It borrows the
/// source: no [`RootSource::relax`] while it lives.
pub struct Found<'s, S> {
    source: &'s S,
    root: Root,
}

impl<'s, S: RootSource> Found<'s, S> {
    /// The GFNs the root maps.
    pub fn span(&self) -> GfnRange {
        self.root.span()
    }

    /// A walker of the root over the source's tables of this hold.
    pub fn walker(self, mode: Mode, descent: Descent) -> Walker<S::Tables<'s>> {
        // `root` came from the source's for_each_root under the current
        // hold (`find`), which lasts while `'s` borrows the source.
        // SAFETY: RootSource's contract makes that root's table one
        // `tables()` may be asked for until the next relax; `'s` rules it out.
        unsafe { Walker::new(self.source.tables(), self.root, mode, descent) }
    }
}

/// Looks `key` up among the source's roots now.
pub fn find<S: RootSource>(source: &S, key: S::Key) -> Option<Found<'_, S>> {
    let mut found = None;
    source.for_each_root(&mut |k, root| {
        if found.is_none() && k == key {
            found = Some(root);
        }
    });
    found.map(|root| Found { source, root })
}

/// What walking the roots did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootsStats {
    /// The walker's counters, summed over roots and chunks.
    pub walk: Stats,
    /// Roots whose walk began.
    pub walked: u32,
    /// Roots listed at the start that KVM invalidated (or freed) during a
    /// drop of the lock before their walk was done (before it began, or
    /// part way).
    pub lost: u32,
    /// Usable roots beyond [`MAX_ROOTS`], not walked.
    pub overflow: u32,
    /// Times the lock was dropped.
    pub yields: u64,
    /// The most entries examined during one hold of the lock (the budget,
    /// plus at most a root's levels less one: see [`Walker::walk`]).
    pub longest_hold: u64,
    /// The walk was to clear dirty bits and stopped doing so because
    /// [`RootSource::dirty_logging`] said yes (at its first hold or after a
    /// drop): its dirty results are partial.
    pub dirty_stopped: bool,
}

/// Walks every usable root of `source` once, in chunks of `budget` entries,
/// dropping the lock between chunks, into `sink`. The budget is per hold of
/// the lock, not per root: a root that begins where another ended gets what
/// that one left, so no hold examines much more than `budget` entries
/// however many roots end within it.
///
/// A root is walked only from what a lookup under the current hold of the
/// lock found; one that has gone since the last drop is counted lost and the
/// rest of it skipped. A root that went and came back with the same key (a
/// page and a table both reused after a grace period during a drop) is
/// walked on from where it stopped: it is a valid root under this hold, so
/// that is safe; its first part goes unwalked this round. Roots that appear
/// during a round wait for the next.
///
/// A `mode` that clears dirty bits is asked of the source again under the
/// first hold, after every drop and at the end ([`RootSource::dirty_logging`]):
/// once the owner logs dirty pages the rest of the walk clears accessed
/// bits only, and the sink is told ([`RootSink::stop_dirty`]).
pub fn walk_roots<S, K>(
    source: &mut S,
    mode: Mode,
    descent: Descent,
    budget: u64,
    sink: &mut K,
) -> RootsStats
where
    S: RootSource,
    K: RootSink,
{
    let mut stats = RootsStats::default();
    let mut keys: [Option<S::Key>; MAX_ROOTS] = [None; MAX_ROOTS];
    let mut n = 0;
    source.for_each_root(&mut |k, _| match keys.get_mut(n) {
        Some(slot) => {
            *slot = Some(k);
            n += 1;
        }
        None => stats.overflow = stats.overflow.saturating_add(1),
    });
    // Entries this hold of the lock may still examine, and has examined.
    // (A zero budget would drop the lock before any work; the walker treats
    // it as 1 anyway.)
    let budget = budget.max(1);
    let mut left = budget;
    let mut held: u64 = 0;
    let mut mode = mode;
    recheck_dirty(source, &mut mode, &mut stats, sink);
    for key in keys.iter().flatten() {
        // Where the walk of this root goes on from; None before it began.
        let mut resume: Option<GfnRange> = None;
        loop {
            if left == 0 {
                source.relax();
                stats.yields = stats.yields.saturating_add(1);
                left = budget;
                held = 0;
                recheck_dirty(source, &mut mode, &mut stats, sink);
            }
            let Some(found) = find(source, *key) else {
                stats.lost = stats.lost.saturating_add(1);
                break;
            };
            let range = match resume {
                Some(r) => r,
                None => {
                    sink.begin_root();
                    stats.walked = stats.walked.saturating_add(1);
                    found.span()
                }
            };
            let out = found
                .walker(mode, descent)
                .walk(range, left, &mut sink.visitor());
            stats.walk.accumulate(&out.stats);
            held = held.saturating_add(out.stats.examined);
            stats.longest_hold = stats.longest_hold.max(held);
            left = left.saturating_sub(out.stats.examined);
            let Stop::Paused(next) = out.stop else { break };
            resume = Some(GfnRange::new(next, range.end));
            // A pause means the budget ran out: the lock is dropped before
            // the next chunk, the root looked up again after.
            left = 0;
        }
    }
    // Logging may have begun during the last hold, its clearing of D bits
    // overlapping the walk's: the results are partial then too.
    recheck_dirty(source, &mut mode, &mut stats, sink);
    stats
}

/// Under a hold of the lock: stops clearing dirty bits if the source's
/// owner logs dirty pages now (see [`walk_roots`]).
fn recheck_dirty<S: RootSource, K: RootSink>(
    source: &S,
    mode: &mut Mode,
    stats: &mut RootsStats,
    sink: &mut K,
) {
    if mode.clears_dirty() && source.dirty_logging() {
        *mode = Mode::ClearAccessed;
        stats.dirty_stopped = true;
        sink.stop_dirty();
    }
}
