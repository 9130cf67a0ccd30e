// SPDX-License-Identifier: GPL-2.0

//! KVM's TDP MMU seen from outside, under the rules its own walkers follow
//! (`arch/x86/kvm/mmu/tdp_mmu.c`):
//!
//! - `mmu_lock` (an rwlock on x86) is held for read. KVM itself changes
//!   SPTEs with cmpxchg while it holds the lock for read and with plain
//!   writes only while it holds it for write, so under the read lock a
//!   cmpxchg on an SPTE is exactly as safe as KVM's own.
//! - TDP table pages and roots are freed through `call_rcu()`
//!   (`tdp_mmu_free_sp_rcu_callback`), and the roots list is RCU-protected.
//!   The guard holds an RCU read-side critical section inside the lock, as
//!   KVM's walkers do (`rcu_read_lock()` after taking `mmu_lock`), so every
//!   table reachable from a root, and every root on the list, stays
//!   allocated while the guard lives. Holding the rwlock is not relied on
//!   for that: on PREEMPT_RT it does not disable preemption.
//! - Work is bounded: callers walk a budget of entries, then yield
//!   ([`MmuReadGuard::relax`]): the RCU section ends and the lock is
//!   dropped, so that a waiting writer (the qrwlock is fair to writers, and
//!   PREEMPT_RT's rwlock lets a waiting writer in first too), a grace period
//!   and the scheduler get their turn; then roots are looked up again and
//!   walks resume from their GFN cursor.
//! - The lock is the plain `read_lock()`, through kvm/helpers.c: the only
//!   form that exists on every kernel (PREEMPT_RT has no `_bh` variant, and
//!   non-preemptible kernels inline `read_unlock()`), and the one lockdep
//!   sees KVM take.
//! - Process context only: taking `mmu_lock` for read in a timer or softirq
//!   could deadlock against a writer on the same CPU.

use core::marker::PhantomData;
use core::mem::offset_of;
use core::ptr::{self, NonNull};

use crate::ept_walk::{Table, Tables};

use super::vm::Vm;
use super::{bindings, compat};

/// `mmu_lock` held for read, with an RCU read-side critical section inside.
///
/// # Invariants
///
/// `kvm` is the VM of a [`Vm`] borrowed for `'a` (so alive for `'a`),
/// whose `mmu_lock` this guard holds for read, and the task is inside an
/// RCU read-side critical section it began after taking the lock.
pub(crate) struct MmuReadGuard<'a> {
    kvm: NonNull<bindings::kvm>,
    /// The borrow of the `Vm`; not Send (the lock and the RCU section end
    /// on the task that began them).
    _vm: PhantomData<(&'a Vm<'a>, *mut ())>,
}

/// Roots on a VM's list that are not walked, by why.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SkippedRoots {
    /// Invalidated (being torn down), or without a walkable table.
    pub(crate) invalid: u32,
    /// TDX mirror roots.
    pub(crate) mirror: u32,
    /// Roots of a nested guest.
    pub(crate) guest_mode: u32,
}

/// A root on the list, as [`MmuReadGuard::for_each_listed`] sees it.
enum Listed {
    Usable(RootInfo),
    Invalid,
    Mirror,
    GuestMode,
}

/// A valid TDP root of the guest's own address spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RootInfo {
    /// Identity of the root (`struct kvm_mmu_page *`), for looking it up
    /// again after the lock was dropped; never dereferenced outside the lock.
    pub(crate) id: usize,
    /// Physical address of the root table.
    pub(crate) table_pa: u64,
    /// Paging levels: 4 or 5.
    pub(crate) levels: u8,
    /// The SMM address space (address space 1).
    pub(crate) smm: bool,
}

impl<'a> MmuReadGuard<'a> {
    /// Takes `vm`'s `mmu_lock` for read, then enters an RCU read-side
    /// critical section; the guard borrows `vm`, whose file reference keeps
    /// the VM alive. May spin, or sleep on PREEMPT_RT: process context only,
    /// and not while this task holds the lock already (as for any lock).
    ///
    /// Any VM will do: a VM without the TDP MMU has an empty roots list
    /// (KVM allocates `struct kvm` zeroed and initialises the list only for
    /// the TDP MMU; a NULL `next` ends [`Self::for_each_root`] at once), so
    /// nothing is walked.
    pub(crate) fn lock(vm: &'a Vm<'_>) -> Self {
        let kvm = vm.raw();
        // SAFETY: the VM is alive while `vm` is borrowed, so its mmu_lock is
        // (an rwlock on x86); taking it for read has no other precondition
        // (the context is the caller's duty, as for any lock; see above).
        unsafe { bindings::ept_sampler_read_lock(ptr::addr_of_mut!((*kvm.as_ptr()).mmu_lock)) };
        // SAFETY: no precondition; ended in relax() or drop() on this task
        // (the guard is not Send).
        unsafe { bindings::ept_sampler_rcu_read_lock() };
        // INVARIANT: the lock and the RCU section were taken just above.
        MmuReadGuard {
            kvm,
            _vm: PhantomData,
        }
    }

    /// Ends the RCU section, drops the lock, offers to reschedule, and takes
    /// both again. Tables and roots may have been freed meanwhile: roots
    /// must be looked up again ([`KernelTables`] borrows the guard, so no
    /// table reference survives this call).
    pub(crate) fn relax(&mut self) {
        let lock = self.rwlock();
        // SAFETY: by the invariant this task is inside the RCU section it
        // began after taking the lock, which it holds for read.
        unsafe {
            bindings::ept_sampler_rcu_read_unlock();
            bindings::ept_sampler_read_unlock(lock);
        }
        compat::cond_resched();
        // SAFETY: the VM is alive for 'a (invariant); retaking both in the
        // same order restores the invariant.
        unsafe {
            bindings::ept_sampler_read_lock(lock);
            bindings::ept_sampler_rcu_read_lock();
        }
    }

    fn rwlock(&self) -> *mut bindings::rwlock_t {
        // SAFETY: the VM is alive (invariant); the lock does not move.
        unsafe { ptr::addr_of_mut!((*self.kvm.as_ptr()).mmu_lock) }
    }

    /// Calls `f` with each valid root of the guest's own address spaces.
    ///
    /// Skipped: invalid roots (being torn down), roots of a nested guest
    /// (`guest_mode`: they map L2's addresses, not this guest's), and on
    /// kernels with TDX mirror roots, those (private memory, not walkable).
    pub(crate) fn for_each_root(&self, mut f: impl FnMut(RootInfo)) {
        self.for_each_listed(|listed| {
            if let Listed::Usable(info) = listed {
                f(info);
            }
        });
    }

    /// How many roots on the list are not walked, by why.
    pub(crate) fn skipped_roots(&self) -> SkippedRoots {
        let mut s = SkippedRoots::default();
        self.for_each_listed(|listed| {
            let n = match listed {
                Listed::Usable(_) => return,
                Listed::Invalid => &mut s.invalid,
                Listed::Mirror => &mut s.mirror,
                Listed::GuestMode => &mut s.guest_mode,
            };
            *n = n.saturating_add(1);
        });
        s
    }

    /// Calls `f` with every root on the list, classified.
    fn for_each_listed(&self, mut f: impl FnMut(Listed)) {
        let kvm = self.kvm.as_ptr();
        // SAFETY: the VM is alive (invariant); the list head does not move.
        let head = unsafe { ptr::addr_of_mut!((*kvm).arch.tdp_mmu_roots) };
        // The roots list is RCU-protected for readers (KVM adds and removes
        // roots under tdp_mmu_pages_lock with list_add_rcu/list_del_rcu),
        // and the guard holds the RCU read side.
        // SAFETY: `head` is valid; READ_ONCE of the next pointer.
        let mut node = unsafe { ptr::read_volatile(ptr::addr_of!((*head).next)) };
        let base = compat::page_offset_base();
        while !node.is_null() && !ptr::eq(node, head) {
            // CAST: container_of(node, struct kvm_mmu_page, link).
            let sp = node
                .cast::<u8>()
                .wrapping_sub(offset_of!(bindings::kvm_mmu_page, link))
                .cast::<bindings::kvm_mmu_page>();
            // SAFETY: `sp` is a root on the list, alive while the guard's
            // RCU section lasts; its role does not change while mmu_lock is
            // held (KVM sets `invalid` only with it held for write).
            let role = unsafe { (*sp).role.__bindgen_anon_1 };
            // SAFETY: as above; `spt` is set when the root is created.
            let spt = unsafe { (*sp).spt };
            let levels = role.level();
            let listed = if role.invalid() != 0 || spt.is_null() || !(levels == 4 || levels == 5) {
                // No table, or a shape the walker cannot start from: not
                // a root KVM could enter either.
                Listed::Invalid
            } else if compat::is_mirror_root(&role) {
                Listed::Mirror
            } else if role.guest_mode() != 0 {
                Listed::GuestMode
            } else {
                Listed::Usable(RootInfo {
                    id: sp as usize,
                    // __pa() of a direct-map address.
                    table_pa: (spt as u64).wrapping_sub(base),
                    levels: levels as u8,
                    smm: role.smm() != 0,
                })
            };
            f(listed);
            // SAFETY: as above; READ_ONCE of the next pointer.
            node = unsafe { ptr::read_volatile(ptr::addr_of!((*node).next)) };
        }
    }

    /// The tables below this VM's roots, reachable while the guard lives
    /// and is not relaxed.
    pub(crate) fn tables(&self) -> KernelTables<'_> {
        KernelTables {
            base: compat::page_offset_base(),
            _guard: PhantomData,
        }
    }
}

impl Drop for MmuReadGuard<'_> {
    fn drop(&mut self) {
        let lock = self.rwlock();
        // SAFETY: by the invariant this task is inside the RCU section it
        // began after taking the lock, which it holds for read.
        unsafe {
            bindings::ept_sampler_rcu_read_unlock();
            bindings::ept_sampler_read_unlock(lock);
        }
    }
}

/// [`Tables`] over the direct map (`__va`), valid while an
/// [`MmuReadGuard`] is held.
pub(crate) struct KernelTables<'g> {
    base: u64,
    _guard: PhantomData<&'g ()>,
}

impl Tables for KernelTables<'_> {
    #[inline]
    unsafe fn table(&self, pa: u64) -> Option<&Table> {
        let va = pa.checked_add(self.base)?;
        // `pa` comes from a present non-leaf SPTE, or is the table of a root
        // found valid under the current hold (the caller's promise, kept by
        // the round driver, which looks roots up again after every relax),
        // of a VM whose mmu_lock is held for
        // read (the guard this borrows), so it is a page-aligned TDP table
        // page in the direct map that was live at some point in the guard's
        // current RCU section; KVM frees such pages only after a grace
        // period (call_rcu), which cannot end before that section does.
        // SAFETY: as just said; entries are only accessed atomically.
        Some(unsafe { &*(va as *const Table) })
    }
}

/// Hands the accessed bit the walker has just cleared in a leaf on to the
/// host page the leaf maps (`ept_sampler_pass_accessed` in kvm/helpers.c):
/// the SPTE's accessed bit is the host's only record of the guest's
/// accesses, and KVM's aging notifiers, through which page_idle, DAMON and
/// reclaim read it, would otherwise find warm guest memory idle. Returns
/// whether the page was marked (not for memory that mm does not track:
/// reserved pages, device memory, a driver's pages).
///
/// # Safety
///
/// `pfn` is the first frame of a leaf SPTE that the caller found present
/// (and cleared the accessed bit of) during the current hold of an
/// [`MmuReadGuard`] on its VM, and the hold has not ended. Until it ends
/// neither an MMU-notifier invalidation (the VMM's mapping of the page) nor
/// a guest_memfd invalidation (private memory) can complete: KVM takes
/// `mmu_lock` for write for both. So the page stays where the SPTE says,
/// and allocated.
pub(crate) unsafe fn pass_accessed(pfn: u64) -> bool {
    // SAFETY: the page stays allocated for the whole call (the caller's
    // contract), and the helper checks that the frame has a struct page,
    // and that mm tracks it, before it touches its flags.
    unsafe { bindings::ept_sampler_pass_accessed(pfn) }
}
