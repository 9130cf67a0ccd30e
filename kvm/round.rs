// SPDX-License-Identifier: GPL-2.0

//! One sampling round of one VM: walk every usable root once, test-and-clear
//! the bits being sampled, then flush the VM's TLBs.

use crate::ept_walk::{
    walk_roots, Descent, Format, GfnRange, Leaf, Mode, Root, RootSink, RootSource, RootsStats,
    Skip, Visitor,
};

use super::compat;
use core::ops::DerefMut;

use crate::heat::{HeatMap, RoundVisitor};

use super::mmu::{self, KernelTables, MmuReadGuard, RootInfo, SkippedRoots};
use super::time::now_ns;
use super::vm::{Vendor, Vm};

/// What a round did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RoundStats {
    /// The roots' walks: the walker's counters, roots walked, lost and
    /// beyond the limit, yields.
    pub(crate) roots: RootsStats,
    /// Roots on the list at the start of the round that were not walked.
    pub(crate) skipped: SkippedRoots,
    /// Whether the TLBs were flushed after clearing.
    pub(crate) flushed: bool,
    /// Time from taking `mmu_lock` (waiting for it included) to dropping
    /// it for the last time: the walk, the clearing and the hand-over, ns.
    pub(crate) walk_ns: u64,
    /// Time spent flushing the TLBs (or trying to), ns; 0 when no flush
    /// was asked for or nothing was cleared.
    pub(crate) flush_ns: u64,
    /// Accessed bits handed on to the host's pages ([`mmu::pass_accessed`]).
    pub(crate) passed_accessed: u64,
}

/// The walker's entry format for a vendor.
pub(crate) fn format_of(vendor: Vendor) -> Format {
    match vendor {
        Vendor::Intel => Format::Ept,
        Vendor::Amd => Format::Npt,
    }
}

/// Passes visits through, and hands what the walker clears on to the host:
/// every accessed bit (to the page's flags, where page_idle, DAMON and
/// reclaim look for it), and dirty bits where the kernel needs that (6.12,
/// see `compat`).
struct HandOver<'a, V> {
    inner: V,
    /// Whether accessed bits are handed on (the module parameter
    /// `pass_accessed`).
    pass_accessed: bool,
    /// Accessed bits handed on so far this round.
    passed: &'a mut u64,
}

impl<V: Visitor> Visitor for HandOver<'_, V> {
    #[inline]
    fn leaf(&mut self, leaf: Leaf) {
        if self.pass_accessed && leaf.cleared_accessed {
            // The walker reports a leaf during the hold of mmu_lock in which
            // it found it present and cleared its bits (a chunk's visits all
            // happen in one hold: RootSink); the visitor lives one chunk.
            // SAFETY: so `leaf.pfn` is mapped by a present leaf now.
            let passed = unsafe { mmu::pass_accessed(leaf.pfn) };
            if passed {
                *self.passed = self.passed.saturating_add(1);
            }
        }
        if compat::CLEAR_D_NEEDS_SET_PFN_DIRTY && leaf.cleared_dirty {
            compat::set_pfn_dirty(leaf.pfn);
        }
        self.inner.leaf(leaf);
    }
    #[inline]
    fn idle(&mut self, range: GfnRange) {
        self.inner.idle(range);
    }
    #[inline]
    fn hole(&mut self, range: GfnRange) {
        self.inner.hole(range);
    }
    #[inline]
    fn cold(&mut self, range: GfnRange) {
        self.inner.cold(range);
    }
    #[inline]
    fn skipped(&mut self, range: GfnRange, why: Skip) {
        self.inner.skipped(range, why);
    }
}

/// A VM's roots under its `mmu_lock`, as the round driver sees them.
struct VmRoots<'a> {
    guard: MmuReadGuard<'a>,
    vm: &'a Vm<'a>,
    format: Format,
    phys_mask: u64,
}

// SAFETY: for_each_root passes only roots on the VM's list that are valid
// under the current hold of the guard (MmuReadGuard::for_each_root), and
// tables() borrows that guard: a valid root's table, and every table below
// it, stays allocated in the direct map until the guard's RCU section ends,
// which only relax() (or dropping the guard) does.
unsafe impl RootSource for VmRoots<'_> {
    /// The `kvm_mmu_page` with its table and role: a page freed and reused
    /// for another root with another table does not compare equal. (Both
    /// reused for a root of the same role is possible after a grace period
    /// during a yield; the driver then walks that valid root on from the old
    /// cursor: safe, and only the accounting of that round is off. KVM keeps
    /// no generation that could tell them apart: `mmu_valid_gen` only
    /// toggles.)
    type Key = RootInfo;
    type Tables<'s>
        = KernelTables<'s>
    where
        Self: 's;

    fn for_each_root(&self, f: &mut dyn FnMut(RootInfo, Root)) {
        self.guard.for_each_root(|info| {
            // A root whose table the walker could not start from (an
            // unknown level count) is not usable; for_each_root already
            // keeps only 4 and 5 levels.
            if let Some(root) = Root::new(
                info.table_pa,
                info.levels,
                self.format,
                compat::KVM_BITS,
                self.phys_mask,
            ) {
                f(info, root);
            }
        });
    }

    fn tables(&self) -> KernelTables<'_> {
        self.guard.tables()
    }

    fn relax(&mut self) {
        self.guard.relax();
    }

    fn dirty_logging(&self) -> bool {
        // KVM raises this count before it write-protects or clears D bits
        // for the slot (kvm_commit_memory_region, then
        // kvm_mmu_slot_apply_flags, under mmu_lock for read like us): a
        // hold that read 0 may overlap that clearing, which the driver's
        // last look, at the end of the walk, still catches.
        self.vm.dirty_logging()
    }
}

/// The open round of a heat map, root after root, with what the walker
/// clears handed on to the host ([`HandOver`]).
struct MapSink<'m, C, H> {
    map: &'m mut HeatMap<C, H>,
    pass_accessed: bool,
    /// Accessed bits handed on to the host this round.
    passed: u64,
}

impl<C, H> RootSink for MapSink<'_, C, H>
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    type Visitor<'a>
        = HandOver<'a, RoundVisitor<'a, C, H>>
    where
        Self: 'a;

    fn begin_root(&mut self) {
        self.map.begin_root();
    }

    fn visitor(&mut self) -> Self::Visitor<'_> {
        HandOver {
            inner: self.map.visitor(),
            pass_accessed: self.pass_accessed,
            passed: &mut self.passed,
        }
    }

    fn stop_dirty(&mut self) {
        self.map.stop_dirty();
    }
}

/// How a round walks, clears and hands on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan<'a> {
    /// The VM's entry format.
    pub(crate) format: Format,
    /// Which bits are tested and cleared.
    pub(crate) mode: Mode,
    /// Which tables are entered.
    pub(crate) descent: Descent,
    /// The VM's flush, if its TLBs are flushed after a walk that cleared
    /// anything (`flush=round`).
    pub(crate) flush: Option<&'a compat::TlbFlush>,
    /// Hand every accessed bit cleared in a leaf on to the host page it
    /// maps (the module parameter `pass_accessed`, see
    /// [`tunables`](super::tunables); on unless switched off to measure).
    pub(crate) pass_accessed: bool,
    /// Entries examined per hold of the lock
    /// (the module parameter `walk_budget`,
    /// [`DEFAULT_WALK_BUDGET`](crate::procfs::control::DEFAULT_WALK_BUDGET)
    /// unless set).
    pub(crate) budget: u64,
}

/// Walks every usable root of `vm` once into the open round of `map` (SMM
/// roots too: SMRAM and the normal memory they map are the guest's), then
/// flushes the VM's TLBs if the plan says so and anything was cleared.
/// Accessed bits are handed on under the lock, while the leaf is known
/// present.
///
/// Process context; takes and yields `mmu_lock` for read. Each root is
/// looked up again after every yield, and before its first chunk
/// ([`walk_roots`]): a root listed before a yield may be freed during it.
pub(crate) fn run<C, H>(vm: &Vm<'_>, plan: &Plan<'_>, map: &mut HeatMap<C, H>) -> RoundStats
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    let t0 = now_ns();
    let (roots, skipped, passed_accessed) = {
        let mut source = VmRoots {
            guard: MmuReadGuard::lock(vm),
            vm,
            format: plan.format,
            phys_mask: compat::physical_mask(),
        };
        let skipped = source.guard.skipped_roots();
        let mut sink = MapSink {
            map,
            pass_accessed: plan.pass_accessed,
            passed: 0,
        };
        let roots = walk_roots(&mut source, plan.mode, plan.descent, plan.budget, &mut sink);
        // The guard drops here: mmu_lock is released before the flush.
        (roots, skipped, sink.passed)
    };
    let cleared = roots.walk.cleared_accessed != 0
        || roots.walk.cleared_dirty != 0
        || roots.walk.cleared_tables != 0;
    let walked = now_ns();
    let (flushed, flush_ns) = match plan.flush {
        Some(tlb) if cleared => {
            tlb.flush(vm);
            (true, now_ns().saturating_sub(walked))
        }
        _ => (false, 0),
    };
    RoundStats {
        roots,
        skipped,
        flushed,
        walk_ns: walked.saturating_sub(t0),
        flush_ns,
        passed_accessed,
    }
}
