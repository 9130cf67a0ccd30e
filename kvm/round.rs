// SPDX-License-Identifier: GPL-2.0

//! One sampling round of one VM: walk every usable root once, test-and-clear
//! the bits being sampled, then flush the VM's TLBs.

use crate::ept_walk::{
    Descent, Format, GfnRange, Leaf, Mode, Root, Skip, Stats, Stop, Visitor, Walker,
};

use super::compat;
use core::ops::DerefMut;

use crate::heat::HeatMap;

use super::mmu::{MmuReadGuard, RootInfo};
use super::vm::{Vendor, Vm};

/// Entries examined between releases of `mmu_lock`: tens of microseconds
/// of work at most, so writers (vCPU faults that split pages, memslot
/// changes) and the scheduler never wait long behind a sampler.
const BUDGET: u64 = 8192;

/// Roots walked per round at most: KVM keeps a handful (one per address
/// space and paging mode in use); more means something to investigate.
const MAX_ROOTS: usize = 8;

/// What a round did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RoundStats {
    /// The walker's counters, summed over roots and chunks.
    pub(crate) walk: Stats,
    /// Roots walked.
    pub(crate) roots: u32,
    /// Times the lock was dropped for a writer or the scheduler.
    pub(crate) yields: u64,
    /// Roots that went away during a yield (rest of them not walked).
    pub(crate) lost_roots: u32,
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

/// Walks every usable root of `vm` once into the open round of `map` (SMM
/// roots too: SMRAM and the normal memory they map are the guest's), then
/// flushes the VM's TLBs if `flush` and anything was cleared.
///
/// Process context; takes and yields `mmu_lock` for read.
pub(crate) fn run<C, H>(
    vm: &Vm<'_>,
    format: Format,
    mode: Mode,
    descent: Descent,
    flush: bool,
    map: &mut HeatMap<C, H>,
) -> RoundStats
where
    C: DerefMut<Target = [u16]>,
    H: DerefMut<Target = [u64]>,
{
    let mut stats = RoundStats::default();
    let phys_mask = compat::physical_mask();
    {
        // SAFETY: `vm` borrows the file reference that keeps the VM alive;
        // callers only sample VMs whose TDP MMU is on.
        let mut guard = unsafe { MmuReadGuard::lock(vm.raw()) };
        let mut roots: [Option<RootInfo>; MAX_ROOTS] = [None; MAX_ROOTS];
        let mut n = 0;
        guard.for_each_root(|r| {
            if let Some(slot) = roots.get_mut(n) {
                *slot = Some(r);
                n += 1;
            }
        });
        for info in roots.iter().flatten() {
            let Some(root) = Root::new(
                info.table_pa,
                info.levels,
                format,
                compat::KVM_BITS,
                phys_mask,
            ) else {
                continue;
            };
            stats.roots += 1;
            map.begin_root();
            let span = root.span();
            let mut cursor = span.start;
            loop {
                let walker = Walker::new(guard.tables(), root, mode, descent);
                let mut visitor = KeepDirty {
                    inner: map.visitor(),
                };
                let out = walker.walk(GfnRange::new(cursor, span.end), BUDGET, &mut visitor);
                stats.walk.accumulate(&out.stats);
                let Stop::Paused(next) = out.stop else { break };
                cursor = next;
                guard.relax();
                stats.yields += 1;
                // The root may have been freed while the lock was dropped:
                // continue only if it is still a valid root.
                let mut alive = false;
                guard.for_each_root(|r| alive |= r == *info);
                if !alive {
                    stats.lost_roots += 1;
                    break;
                }
            }
        }
    }
    let cleared = stats.walk.cleared_accessed != 0
        || stats.walk.cleared_dirty != 0
        || stats.walk.cleared_tables != 0;
    if flush && cleared {
        // SAFETY: live VM (see above), process context, mmu_lock dropped.
        stats.flushed = unsafe { compat::flush_remote_tlbs(vm.raw().as_ptr()) };
    }
    stats
}
