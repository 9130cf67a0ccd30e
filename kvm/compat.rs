// SPDX-License-Identifier: GPL-2.0

//! Differences between the supported kernels (6.12 LTS and 7.3), in one
//! place. The cfgs come from `Kbuild`, which decides each by probing the
//! target tree (a declaration in a header, an export in `Module.symvers`),
//! not by its version number, which a backport can make wrong; no other
//! file tests a cfg or a version.

/// Whether clearing an SPTE's dirty bit must be paired with
/// `kvm_set_pfn_dirty()`: before 6.13 KVM dirtied the folio from the D bit
/// when zapping, so a cleared D would lose the page's dirtiness.
#[allow(dead_code)]
pub(crate) const CLEAR_D_NEEDS_SET_PFN_DIRTY: bool = cfg!(ept_kvm_set_pfn_dirty);

/// Whether KVM exports `file_is_kvm()`, `kvm_flush_remote_tlbs()` and
/// friends to KVM's vendor modules only (6.18 and later), so this module
/// must recognise VM files and flush TLBs without them.
#[allow(dead_code)]
pub(crate) const KVM_EXPORTS_INTERNAL_ONLY: bool = cfg!(ept_kvm_internal_exports);

use core::marker::PhantomData;
use core::ptr;

use kernel::task::Task;
use kernel::uaccess::UserSlice;

use super::bindings;
use super::vm::Vm;
use crate::ept_walk::KvmBits;

/// KVM's software SPTE bits as the target kernel's own `spte.h` defines
/// them (`kvm/bindings.h` exposes `SPTE_TDP_AD_SHIFT` and `FROZEN_SPTE`,
/// and asserts what the walker takes as constant). Not a version test:
/// the values come from the tree the module is built against (52 and
/// `0x5a0` on 6.12, 60 and `0x1a0` on 7.3). A layout the walker cannot use
/// fails the build here (the static assertion below).
pub(crate) const KVM_BITS: KvmBits = match HEADER_BITS {
    Some(bits) => bits,
    // Never taken: the assertion below stops the build first.
    None => KvmBits::LINUX_7_3,
};

/// The layout of the target's headers, if the walker can use it.
const HEADER_BITS: Option<KvmBits> = KvmBits::new(
    bindings::EPT_SAMPLER_SPTE_AD_SHIFT,
    (1 << 63) | bindings::EPT_SAMPLER_FROZEN_SPTE_LOW as u64,
);
// KVM's spte.h has an A/D type field or FROZEN_SPTE the walker cannot use.
kernel::static_assert!(HEADER_BITS.is_some());

/// The kernel crate's counted reference to an always-refcounted object,
/// wherever this kernel keeps it.
#[cfg(ept_sync_aref)]
pub(crate) type ARef<T> = kernel::sync::aref::ARef<T>;
/// The kernel crate's counted reference to an always-refcounted object,
/// wherever this kernel keeps it.
#[cfg(not(ept_sync_aref))]
pub(crate) type ARef<T> = kernel::types::ARef<T>;

/// The `task_struct` of a kernel crate `Task` (a transparent wrapper of
/// it; `Task::as_ptr()` is not in 6.12, and its type is the kernel crate's
/// binding, not ours).
pub(crate) fn task_raw(task: &Task) -> *mut bindings::task_struct {
    ptr::from_ref(task).cast_mut().cast()
}

/// The user buffer of `len` bytes at `ptr`, as the kernel crate checks and
/// copies it (`copy_{to,from}_user`); `UserPtr` is an address in 6.12.
pub(crate) fn user_slice(ptr: *const core::ffi::c_char, len: usize) -> UserSlice {
    #[cfg(not(ept_user_ptr_struct))]
    let ptr = ptr as usize;
    #[cfg(ept_user_ptr_struct)]
    let ptr = kernel::uaccess::UserPtr::from_addr(ptr as usize);
    UserSlice::new(ptr, len)
}

/// The mask of physical address bits in page-table entries: the exported
/// `physical_mask` where memory encryption can change it at boot, else the
/// architectural constant (`__PHYSICAL_MASK`).
pub(crate) fn physical_mask() -> u64 {
    #[cfg(CONFIG_DYNAMIC_PHYSICAL_MASK)]
    // SAFETY: `physical_mask` is set during early boot and read-only after.
    let mask = unsafe { core::ptr::addr_of!(bindings::physical_mask).read() };
    #[cfg(not(CONFIG_DYNAMIC_PHYSICAL_MASK))]
    let mask = (1u64 << 52) - 1;
    mask
}

/// `__va()`: the direct-map offset of physical addresses.
pub(crate) fn page_offset_base() -> u64 {
    // SAFETY: set during early boot (KASLR) and read-only after.
    unsafe { core::ptr::addr_of!(bindings::page_offset_base).read() }
}

/// Whether `file` is a KVM VM file (`anon_inode:kvm-vm`).
///
/// Before 6.18 KVM exports `file_is_kvm()` to every module. Since then it
/// exports it to its vendor modules only, so the file is recognised by what
/// KVM gives every VM file: the anonymous inode's name `kvm-vm` and file
/// operations owned by a KVM vendor module (`kvm_vm_fops.owner`).
///
/// # Safety
///
/// `file` is a live file on which a reference is held during the call.
pub(crate) unsafe fn is_vm_file(file: *mut bindings::file) -> bool {
    #[cfg(not(ept_kvm_internal_exports))]
    // SAFETY: `file` is live (caller); file_is_kvm() only compares f_op.
    let is_vm = unsafe { bindings::file_is_kvm(file) };
    #[cfg(ept_kvm_internal_exports)]
    // SAFETY: `file` is live (caller).
    let is_vm = unsafe { vm_file_by_name(file) };
    is_vm
}

/// Whether the module that owns `file`'s operations is called `name`.
///
/// # Safety
///
/// `file` is a live file on which a reference is held during the call (its
/// `f_op` and the owner module then stay alive).
pub(crate) unsafe fn fops_owner_is(file: *mut bindings::file, name: &[u8]) -> bool {
    // SAFETY: `file` is live (caller); f_op is set at open and constant.
    let fops = unsafe { (*file).f_op };
    if fops.is_null() {
        return false;
    }
    // SAFETY: `fops` points to the file's operations, alive while the file.
    let owner = unsafe { (*fops).owner };
    if owner.is_null() {
        return false;
    }
    // The owner module cannot unload while one of its files is open; its
    // name is a NUL-terminated array set at load and never changed.
    // SAFETY: as just said; the slice does not outlive this call.
    let own: &[core::ffi::c_char] = unsafe { &(*owner).name };
    let len = own.iter().position(|&c| c == 0).unwrap_or(own.len());
    own.get(..len).is_some_and(|own| {
        own.len() == name.len() && own.iter().zip(name).all(|(&a, &b)| a as u8 == b)
    })
}

#[cfg(ept_kvm_internal_exports)]
/// # Safety
///
/// As [`is_vm_file`].
unsafe fn vm_file_by_name(file: *mut bindings::file) -> bool {
    // SAFETY: `file` is live (caller).
    let kvm_vendor =
        unsafe { fops_owner_is(file, b"kvm_intel") || fops_owner_is(file, b"kvm_amd") };
    if !kvm_vendor {
        return false;
    }
    // SAFETY: `file` is live; its path and dentry are pinned by the file.
    let name = unsafe {
        (*(*file).__bindgen_anon_1.f_path.dentry)
            .__bindgen_anon_1
            .d_name
            .name
    };
    if name.is_null() {
        return false;
    }
    // Compare byte by byte, stopping at the first difference, so that no
    // byte past the name's NUL is read.
    let want = b"kvm-vm\0";
    for (i, &w) in want.iter().enumerate() {
        // SAFETY: a dentry name is NUL-terminated and stable while the
        // dentry is pinned; bytes up to the first mismatch or NUL exist.
        let got = unsafe { *name.add(i) };
        if got != w {
            return false;
        }
    }
    true
}

/// An RCU read-side critical section, held while the value lives
/// (`rcu_read_lock()` .. `rcu_read_unlock()`). Not `Send`: it must end on
/// the task and CPU that began it.
///
/// # Invariants
///
/// The caller is inside an RCU read-side critical section while it exists.
pub(crate) struct RcuReadGuard {
    /// 6.13 and later: the kernel crate's own guard.
    #[cfg(ept_rust_rcu)]
    _guard: kernel::sync::rcu::Guard,
    _not_send: PhantomData<*mut ()>,
}

impl RcuReadGuard {
    /// Enters an RCU read-side critical section. The holder must not sleep.
    pub(crate) fn new() -> Self {
        #[cfg(ept_rust_rcu)]
        let guard = RcuReadGuard {
            _guard: kernel::sync::rcu::read_lock(),
            _not_send: PhantomData,
        };
        // 6.12's kernel crate has no RCU guard: the module's C helper.
        #[cfg(not(ept_rust_rcu))]
        let guard = {
            // SAFETY: no precondition; ended in drop() on this task (the
            // guard is not Send).
            unsafe { bindings::ept_sampler_rcu_read_lock() };
            RcuReadGuard {
                _not_send: PhantomData,
            }
        };
        // INVARIANT: the critical section began just above.
        guard
    }
}

impl Drop for RcuReadGuard {
    fn drop(&mut self) {
        // 6.13 and later: the kernel crate's guard, a field, ends it.
        #[cfg(not(ept_rust_rcu))]
        // SAFETY: new() began the critical section on this task.
        unsafe {
            bindings::ept_sampler_rcu_read_unlock()
        };
    }
}

/// The first process id at or above `nr` in use in the caller's pid
/// namespace, as `/proc`'s readdir finds the next one (`next_tgid()`): a
/// walk of the namespace's pid IDR, so that enumerating processes costs
/// the pids in use rather than `pid_max` (4194304 where systemd raises
/// it). Thread ids are among them; callers skip the ones that lead no
/// thread group.
pub(crate) fn next_pid(nr: i32) -> Option<i32> {
    let _rcu = RcuReadGuard::new();
    // SAFETY: `current` is a live task; its pid namespace lives at least
    // as long as the task, which outlives this call.
    let ns = unsafe { bindings::task_active_pid_ns(kernel::bindings::get_current().cast()) };
    // SAFETY: under RCU (the guard above), as find_ge_pid() requires; the
    // returned pid, if any, stays allocated until the guard drops.
    let pid = unsafe { bindings::find_ge_pid(nr, ns) };
    if pid.is_null() {
        return None;
    }
    // SAFETY: `pid` is alive under RCU; `ns` as above.
    let found = unsafe { bindings::pid_nr_ns(pid, ns) };
    (found > 0).then_some(found)
}

/// `cond_resched()`: a chance to reschedule in a long loop (a no-op where
/// the kernel preempts anyway), through the C helper so that debug kernels
/// check that the caller may sleep.
pub(crate) fn cond_resched() {
    // SAFETY: process context; callers hold no spinning lock and no RCU
    // read side (MmuReadGuard::relax ends both first), only sleeping locks
    // such as the sampler's state mutex, under which sleeping is allowed.
    unsafe { bindings::ept_sampler_cond_resched() };
}

/// Whether a TDP root is a TDX mirror root (6.14+): it shadows the private
/// (encrypted) half of a TD's memory and is not the guest's own mapping.
pub(crate) fn is_mirror_root(role: &bindings::kvm_mmu_page_role__bindgen_ty_1) -> bool {
    #[cfg(ept_mirror_roots)]
    let mirror = role.is_mirror() != 0;
    #[cfg(not(ept_mirror_roots))]
    let mirror = {
        let _ = role;
        false
    };
    mirror
}

/// How this build flushes a VM's TLBs, as shown in `version` (`none` there
/// when [`TlbFlush::get`] finds no flush).
pub(crate) const FLUSH_MECHANISM: &str = if cfg!(ept_kvm_internal_exports) {
    "symbol_get:kvm_flush_remote_tlbs"
} else {
    "kvm_flush_remote_tlbs"
};

/// How this build recognises VM files, as shown in `version`.
pub(crate) const VM_FILE_MECHANISM: &str = if cfg!(ept_kvm_internal_exports) {
    "anon-inode-name+fops-owner"
} else {
    "file_is_kvm"
};

/// KVM's `kvm_flush_remote_tlbs()`, found and held: an attached VM keeps
/// one, so that every round can flush and none finds the flush gone.
///
/// Without a flush a translation the guest's TLB caches never sets the
/// accessed bit again, and the pages used most read idle: a VM is refused
/// rather than sampled without one (`refused:no-tlb-flush`).
///
/// Since 6.18 the function is exported to KVM's vendor modules only;
/// `symbol_get()` still finds it (an export, in a namespace) when KVM is
/// built as modules, as distributions ship it. With KVM built in it cannot
/// be reached. Before 6.18 it is a plain export, linked directly.
#[derive(Debug)]
pub(crate) struct TlbFlush {
    #[cfg(ept_kvm_internal_exports)]
    flush: unsafe extern "C" fn(*mut bindings::kvm),
    /// Only [`TlbFlush::get`] makes one.
    _found: (),
}

#[cfg(ept_kvm_internal_exports)]
const FLUSH_SYMBOL: &core::ffi::CStr = c"kvm_flush_remote_tlbs";

impl TlbFlush {
    /// The flush, or `None` when this kernel offers none (or the module
    /// parameter `test_no_tlb_flush` says to act so).
    pub(crate) fn get() -> Option<TlbFlush> {
        // SAFETY: reads a module parameter; no preconditions.
        if unsafe { bindings::ept_sampler_test_no_tlb_flush() } {
            return None;
        }
        #[cfg(ept_kvm_internal_exports)]
        {
            // SAFETY: a NUL-terminated name; __symbol_get() returns the
            // address of an exported symbol and takes a reference on its
            // module (dropped in `drop`), or NULL.
            let sym = unsafe { bindings::__symbol_get(bindings::c_str(FLUSH_SYMBOL)) };
            if sym.is_null() {
                return None;
            }
            type FlushFn = unsafe extern "C" fn(*mut bindings::kvm);
            // SAFETY: `sym` is KVM's `void kvm_flush_remote_tlbs(struct kvm
            // *)`, whose prototype our bindings come from (same tree).
            let flush: FlushFn = unsafe { core::mem::transmute(sym) };
            Some(TlbFlush { flush, _found: () })
        }
        #[cfg(not(ept_kvm_internal_exports))]
        Some(TlbFlush { _found: () })
    }

    /// Flushes every TLB entry of `vm` on all its vCPUs, so that the next
    /// guest access to a page whose accessed bit was cleared sets it again.
    /// (KVM calls it from any context it runs in, `mmu_lock` held or not:
    /// it sends requests and IPIs, it does not sleep.)
    pub(crate) fn flush(&self, vm: &Vm<'_>) {
        let kvm = vm.raw().as_ptr();
        #[cfg(ept_kvm_internal_exports)]
        // SAFETY: `self.flush` is KVM's function, whose module `self` holds
        // a reference on; the VM is alive while `vm` is borrowed.
        unsafe {
            (self.flush)(kvm)
        };
        #[cfg(not(ept_kvm_internal_exports))]
        // SAFETY: the VM is alive while `vm` is borrowed.
        unsafe {
            bindings::kvm_flush_remote_tlbs(kvm)
        };
    }
}

impl Drop for TlbFlush {
    fn drop(&mut self) {
        #[cfg(ept_kvm_internal_exports)]
        // SAFETY: drops the module reference `get` took with __symbol_get().
        unsafe {
            bindings::__symbol_put(bindings::c_str(FLUSH_SYMBOL))
        };
    }
}

/// Before 6.13, tells KVM's host side that a page whose dirty bit the
/// sampler cleared is dirty (see [`CLEAR_D_NEEDS_SET_PFN_DIRTY`]).
pub(crate) fn set_pfn_dirty(pfn: u64) {
    #[cfg(ept_kvm_set_pfn_dirty)]
    // SAFETY: kvm_set_pfn_dirty() checks the pfn itself (reserved and
    // non-refcounted pages are ignored) and does not sleep.
    unsafe {
        bindings::kvm_set_pfn_dirty(pfn)
    };
    #[cfg(not(ept_kvm_set_pfn_dirty))]
    let _ = pfn;
}
