// SPDX-License-Identifier: GPL-2.0

//! Finding every KVM VM on the host: the VM files open in each process,
//! with their pids in the caller's pid namespace.
//!
//! `vm_list` and `kvm_lock` are private to KVM, so the sampler looks where
//! an administrator would: each process's fd table (`iterate_fd()` under
//! `task_lock()`, as the kernel itself does), without a kernel patch and
//! without any unexported symbol.

use core::ffi::{c_int, c_uint, c_void};
use core::ptr::{self, NonNull};

use super::file::VmFile;
use super::{bindings, compat};

/// A VM found open in a process.
pub(crate) struct FoundVm {
    /// The process (thread group) id, in the caller's pid namespace.
    pub(crate) pid: i32,
    /// The VM's file descriptor in that process.
    pub(crate) fd: u32,
    /// A reference on the VM's file.
    pub(crate) file: VmFile,
}

/// VM files taken from one fd table per `iterate_fd()` pass: the callback
/// runs under the table's spinlock and cannot allocate.
const BATCH: usize = 8;

struct Batch {
    found: [Option<(u32, VmFile)>; BATCH],
    len: usize,
    /// Where the next pass starts when this one filled up.
    resume_fd: c_uint,
}

/// `iterate_fd()` callback: takes a reference on each VM file.
///
/// # Safety
///
/// Called by `iterate_fd()` with `p` the `Batch` passed to it, under the fd
/// table's `file_lock`, with `file` referenced by the table.
unsafe extern "C" fn collect(p: *const c_void, file: *mut bindings::file, fd: c_uint) -> c_int {
    // SAFETY: `p` is the exclusive `&mut Batch` scan_task() passed in; no
    // other reference to it exists during iterate_fd().
    let batch = unsafe { &mut *(p as *mut Batch) };
    let Some(file) = NonNull::new(file) else {
        return 0;
    };
    // SAFETY: the fd table holds a reference on `file` and its lock is held.
    if !unsafe { compat::is_vm_file(file.as_ptr()) } {
        return 0;
    }
    let Some(slot) = batch.found.get_mut(batch.len) else {
        // Full: stop here and resume from this fd.
        batch.resume_fd = fd;
        return 1;
    };
    // SAFETY: as above, `file` is a live, referenced VM file.
    if let Some(vm) = unsafe { VmFile::get(file) } {
        *slot = Some((fd, vm));
        batch.len += 1;
    }
    0
}

/// Calls `f` for each VM file open in process `nr`.
fn scan_pid(nr: i32, f: &mut impl FnMut(FoundVm)) {
    // SAFETY: find_get_pid() takes RCU itself and returns a counted pid in
    // the current task's namespace, or NULL.
    let pid = unsafe { bindings::find_get_pid(nr) };
    if pid.is_null() {
        return;
    }
    // SAFETY: `pid` is counted; get_pid_task() returns a counted task.
    let task = unsafe { bindings::get_pid_task(pid, bindings::pid_type_PIDTYPE_TGID) };
    // SAFETY: we own the pid reference and drop it once.
    unsafe { bindings::put_pid(pid) };
    if task.is_null() {
        return;
    }
    // SAFETY: `task` is counted, so its flags can be read.
    let kthread = unsafe { (*task).flags } & bindings::PF_KTHREAD != 0;
    if !kthread {
        let mut start: c_uint = 0;
        loop {
            let mut batch = Batch {
                found: [const { None }; BATCH],
                len: 0,
                resume_fd: 0,
            };
            // task_lock() keeps task->files from being switched or released
            // under us; iterate_fd() takes the table's own lock.
            // SAFETY: `task` is counted, so it and its alloc_lock are valid.
            // CAST: `alloc_lock` is the spinlock_t the kernel crate's helper
            // expects; both bindings describe the same C type.
            let lock = unsafe { ptr::addr_of_mut!((*task).alloc_lock) }
                .cast::<kernel::bindings::spinlock_t>();
            // SAFETY: `task` is counted, so its alloc_lock is valid.
            unsafe { kernel::bindings::spin_lock(lock) };
            // SAFETY: task_lock held: `files` is stable (maybe NULL, which
            // iterate_fd() accepts); `collect` matches iterate_fd's contract.
            let stopped = unsafe {
                bindings::iterate_fd(
                    (*task).files,
                    start,
                    Some(collect),
                    ptr::addr_of_mut!(batch).cast(),
                )
            };
            // SAFETY: we took the lock above.
            unsafe { kernel::bindings::spin_unlock(lock) };
            for (fd, file) in batch.found.iter_mut().filter_map(Option::take) {
                f(FoundVm { pid: nr, fd, file });
            }
            if stopped == 0 {
                break;
            }
            start = batch.resume_fd;
        }
    }
    // SAFETY: we own the task reference from get_pid_task().
    unsafe { kernel::bindings::put_task_struct(task.cast()) };
}

/// Calls `f` for each VM of process `pid`, or of every process when `None`.
/// Sleeps; process context only.
pub(crate) fn for_each_vm(pid: Option<i32>, mut f: impl FnMut(FoundVm)) {
    if let Some(pid) = pid {
        scan_pid(pid, &mut f);
        return;
    }
    // The pids in use, in order (threads among them: scan_pid() finds no
    // thread group for those), not every number up to pid_max.
    let mut nr = 1;
    let mut seen: u32 = 0;
    while let Some(found) = compat::next_pid(nr) {
        scan_pid(found, &mut f);
        seen = seen.wrapping_add(1);
        if seen % 256 == 0 {
            compat::cond_resched();
        }
        match found.checked_add(1) {
            Some(next) => nr = next,
            None => break,
        }
    }
}
