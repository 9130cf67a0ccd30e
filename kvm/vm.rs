// SPDX-License-Identifier: GPL-2.0

//! Reading a VM's state that the sampler reports: vCPUs, memslots, dirty
//! logging, and which two-dimensional paging it uses.

use core::marker::PhantomData;
use core::mem::{offset_of, size_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicI32, Ordering};

use super::file::VmFile;
use super::{bindings, compat};

/// How many address spaces a VM has on x86: normal and SMM.
pub(crate) const ADDRESS_SPACES: usize = 2;

/// One memslot, as the sampler shows it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SlotInfo {
    /// KVM's slot id (low 16 bits of KVM_SET_USER_MEMORY_REGION's slot).
    pub(crate) id: u16,
    /// Address space: 0 normal, 1 SMM.
    pub(crate) as_id: u16,
    /// First guest frame.
    pub(crate) base_gfn: u64,
    /// Number of 4 KiB pages.
    pub(crate) npages: u64,
    /// KVM_MEM_* flags.
    pub(crate) flags: u32,
}

/// The KVM vendor module that runs a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vendor {
    /// `kvm_intel`: EPT.
    Intel,
    /// `kvm_amd`: NPT.
    Amd,
}

/// A VM, borrowed from the file reference that keeps it alive.
pub(crate) struct Vm<'a> {
    file: &'a VmFile,
}

/// Reads an `atomic_t`.
///
/// # Safety
///
/// `p` points to a live `atomic_t`.
unsafe fn atomic_read(p: *mut bindings::atomic_t) -> i32 {
    // SAFETY: a live atomic_t is an aligned int only accessed atomically.
    unsafe { AtomicI32::from_ptr(ptr::addr_of_mut!((*p).counter)) }.load(Ordering::Relaxed)
}

impl<'a> Vm<'a> {
    /// The VM behind `file`.
    pub(crate) fn new(file: &'a VmFile) -> Self {
        Vm { file }
    }

    fn kvm(&self) -> *mut bindings::kvm {
        self.file.kvm().as_ptr()
    }

    /// The raw VM, for the MMU code. Valid while `self` is.
    pub(crate) fn raw(&self) -> NonNull<bindings::kvm> {
        self.file.kvm()
    }

    /// Number of vCPUs created.
    pub(crate) fn vcpus(&self) -> u32 {
        // SAFETY: the VM is alive while its file is (VmFile invariant).
        let n = unsafe { atomic_read(ptr::addr_of_mut!((*self.kvm()).online_vcpus)) };
        u32::try_from(n).unwrap_or(0)
    }

    /// Whether any memslot has dirty logging on. The sampler then leaves
    /// dirty bits alone: KVM's dirty logging owns them.
    pub(crate) fn dirty_logging(&self) -> bool {
        // SAFETY: as in `vcpus`.
        unsafe { atomic_read(ptr::addr_of_mut!((*self.kvm()).nr_memslots_dirty_logging)) > 0 }
    }

    /// KVM's type of the VM (`kvm->arch.vm_type`, KVM_CREATE_VM's
    /// argument) and whether it may have private memory
    /// (`kvm->arch.has_private_mem`): both fixed when the VM is created.
    pub(crate) fn vm_type(&self) -> (u8, bool) {
        // Both fields are written only during KVM_CREATE_VM (kvm_arch_init_vm,
        // then the vendor's vm_init), before fd_install() publishes the file.
        // SAFETY: the VM is alive while its file is (VmFile invariant).
        unsafe {
            (
                (*self.kvm()).arch.vm_type,
                (*self.kvm()).arch.has_private_mem,
            )
        }
    }

    /// The vendor module whose file operations the VM file has.
    pub(crate) fn vendor(&self) -> Option<Vendor> {
        let file = self.file.raw();
        // SAFETY: we hold a reference on the file.
        if unsafe { compat::fops_owner_is(file, b"kvm_intel") } {
            return Some(Vendor::Intel);
        }
        // SAFETY: as above.
        if unsafe { compat::fops_owner_is(file, b"kvm_amd") } {
            return Some(Vendor::Amd);
        }
        None
    }

    /// Calls `f` with each memslot of both address spaces, in GFN order per
    /// address space. Takes the VM's `slots_lock` (sleeps).
    pub(crate) fn for_each_slot(&self, mut f: impl FnMut(SlotInfo)) {
        let kvm = self.kvm();
        let held = SlotsLock::lock(self);
        for as_id in 0..ADDRESS_SPACES {
            // SAFETY: slots_lock held: the active memslots of each address
            // space cannot be swapped or freed under us.
            let slots = unsafe { (*kvm).memslots.get(as_id).copied() }.unwrap_or(ptr::null_mut());
            if slots.is_null() {
                continue;
            }
            // SAFETY: `slots` is live under slots_lock.
            let (root, idx) = unsafe { (ptr::addr_of_mut!((*slots).gfn_tree), (*slots).node_idx) };
            let Ok(idx) = usize::try_from(idx) else {
                continue;
            };
            // Each slot sits in two gfn trees (double buffering); this
            // set's nodes are gfn_node[node_idx].
            let Some(node_off) = idx
                .checked_mul(size_of::<bindings::rb_node>())
                .and_then(|o| o.checked_add(offset_of!(bindings::kvm_memory_slot, gfn_node)))
            else {
                continue;
            };
            // SAFETY: `root` is the gfn tree of the active memslots, which
            // slots_lock (held by `held`, which the iterator borrows) keeps
            // from changing.
            for node in unsafe { RbNodes::new(root, &held) } {
                // CAST: container_of(node, struct kvm_memory_slot,
                // gfn_node[idx]).
                let slot = node
                    .as_ptr()
                    .cast::<u8>()
                    .wrapping_sub(node_off)
                    .cast::<bindings::kvm_memory_slot>();
                // SAFETY: `node` is gfn_node[idx] of a live memslot.
                let info = unsafe {
                    SlotInfo {
                        id: (*slot).id as u16,
                        as_id: (*slot).as_id,
                        base_gfn: (*slot).base_gfn,
                        npages: (*slot).npages,
                        flags: (*slot).flags,
                    }
                };
                f(info);
            }
        }
    }
}

/// A VM's `slots_lock`, held until dropped: memslots are neither swapped
/// nor freed meanwhile.
///
/// # Invariants
///
/// `lock` is the `slots_lock` of a VM alive for `'a`, held by this task
/// (the raw pointer also keeps the guard on the task that took it).
struct SlotsLock<'a> {
    lock: *mut bindings::mutex,
    _vm: PhantomData<&'a VmFile>,
}

impl<'a> SlotsLock<'a> {
    /// Takes `vm`'s `slots_lock` (process context: it sleeps).
    fn lock(vm: &Vm<'a>) -> Self {
        // SAFETY: the VM is alive while its file is (VmFile invariant),
        // for `'a`; only the address of its lock is taken.
        let lock = unsafe { ptr::addr_of_mut!((*vm.kvm()).slots_lock) };
        // SAFETY: `lock` is the VM's slots_lock, a mutex; every caller is
        // in process context (a command, a proc read or open, the thread).
        // CAST: both bindings describe the same `struct mutex`.
        unsafe { kernel::bindings::mutex_lock(lock.cast()) };
        // INVARIANT: taken just above, of a VM that lives for `'a`.
        SlotsLock {
            lock,
            _vm: PhantomData,
        }
    }
}

impl Drop for SlotsLock<'_> {
    fn drop(&mut self) {
        // SAFETY: this task holds the lock, of a live VM (invariant).
        // CAST: as in `lock`.
        unsafe { kernel::bindings::mutex_unlock(self.lock.cast()) };
    }
}

/// The nodes of an rbtree in order: `rb_first()` then `rb_next()` (inline
/// functions since 6.16, so written out here).
///
/// # Invariants
///
/// `next` is NULL or a node of a valid tree that does not change while
/// this lives (`'a`, a borrow of the lock that keeps it so).
struct RbNodes<'a> {
    next: *mut bindings::rb_node,
    _held: PhantomData<&'a ()>,
}

impl<'a> RbNodes<'a> {
    /// The nodes of the tree at `root`.
    ///
    /// # Safety
    ///
    /// `root` is a valid tree that `held` keeps from changing.
    unsafe fn new(root: *mut bindings::rb_root, held: &'a SlotsLock<'_>) -> Self {
        let _ = held;
        // SAFETY: valid tree (caller).
        let mut node = unsafe { (*root).rb_node };
        if !node.is_null() {
            // SAFETY: every node of a valid tree is valid.
            while let Some(left) = NonNull::new(unsafe { (*node).rb_left }) {
                node = left.as_ptr();
            }
        }
        // INVARIANT: NULL or the leftmost node of the tree.
        RbNodes {
            next: node,
            _held: PhantomData,
        }
    }
}

impl Iterator for RbNodes<'_> {
    type Item = NonNull<bindings::rb_node>;

    fn next(&mut self) -> Option<Self::Item> {
        let node = NonNull::new(self.next)?;
        // The in-order successor. The low two bits of __rb_parent_color
        // hold the colour.
        // SAFETY: every node reached below is in the tree (invariant).
        let parent_of = |n: *mut bindings::rb_node| unsafe {
            ((*n).__rb_parent_color & !3) as *mut bindings::rb_node
        };
        // SAFETY: as above.
        self.next = if let Some(right) = NonNull::new(unsafe { (*node.as_ptr()).rb_right }) {
            let mut n = right.as_ptr();
            // SAFETY: as above.
            while let Some(left) = NonNull::new(unsafe { (*n).rb_left }) {
                n = left.as_ptr();
            }
            n
        } else {
            let mut n = node.as_ptr();
            let mut parent = parent_of(n);
            // SAFETY: as above.
            while !parent.is_null() && ptr::eq(n, unsafe { (*parent).rb_right }) {
                n = parent;
                parent = parent_of(n);
            }
            parent
        };
        // INVARIANT: the successor in the same tree, or NULL.
        Some(node)
    }
}
