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

use super::mmu::{KernelTables, MmuReadGuard, RootInfo, SkippedRoots};
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
}

/// The walker's entry format for a vendor.
pub(crate) fn format_of(vendor: Vendor) -> Format {
    match vendor {
        Vendor::Intel => Format::Ept,
        Vendor::Amd => Format::Npt,
    }
}

/// Passes visits through, telling KVM about dirty bits it clears where the
/// kernel needs that (6.12, see `compat`).
struct KeepDirty<V> {
    inner: V,
}

impl<V: Visitor> Visitor for KeepDirty<V> {
    #[inline]
    fn leaf(&mut self, leaf: Leaf) {
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
}

/// The open round of a heat map, root after root, with KVM told about the
/// dirty bits it clears where the kernel needs that.
struct MapSink<'m, C, H> {
    map: &'m mut HeatMap<C, H>,
}

impl<C, H> RootSink for MapSink<'_, C, H>
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    type Visitor<'a>
        = KeepDirty<RoundVisitor<'a, C, H>>
    where
        Self: 'a;

    fn begin_root(&mut self) {
        self.map.begin_root();
    }

    fn visitor(&mut self) -> Self::Visitor<'_> {
        KeepDirty {
            inner: self.map.visitor(),
        }
    }
}

/// Walks every usable root of `vm` once into the open round of `map` (SMM
/// roots too: SMRAM and the normal memory they map are the guest's), then
/// flushes the VM's TLBs if `flush` and anything was cleared.
///
/// Examines at most `budget` entries per hold of the lock
/// ([`DEFAULT_WALK_BUDGET`](crate::procfs::control::DEFAULT_WALK_BUDGET)
/// unless a test tuned it). Process context; takes and yields `mmu_lock`
/// for read. Each root is
/// looked up again after every yield, and before its first chunk
/// ([`walk_roots`]): a root listed before a yield may be freed during it.
pub(crate) fn run<C, H>(
    vm: &Vm<'_>,
    format: Format,
    mode: Mode,
    descent: Descent,
    flush: bool,
    budget: u64,
    map: &mut HeatMap<C, H>,
) -> RoundStats
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    let (roots, skipped) = {
        let mut source = VmRoots {
            // SAFETY: `vm` borrows the file reference that keeps the VM
            // alive; callers only sample VMs whose TDP MMU is on.
            guard: unsafe { MmuReadGuard::lock(vm.raw()) },
            format,
            phys_mask: compat::physical_mask(),
        };
        let skipped = source.guard.skipped_roots();
        let roots = walk_roots(&mut source, mode, descent, budget, &mut MapSink { map });
        // The guard drops here: mmu_lock is released before the flush.
        (roots, skipped)
    };
    let cleared = roots.walk.cleared_accessed != 0
        || roots.walk.cleared_dirty != 0
        || roots.walk.cleared_tables != 0;
    let flushed = flush && cleared && {
        // SAFETY: live VM (see above), process context, mmu_lock dropped.
        unsafe { compat::flush_remote_tlbs(vm.raw().as_ptr()) }
    };
    RoundStats {
        roots,
        skipped,
        flushed,
    }
}
