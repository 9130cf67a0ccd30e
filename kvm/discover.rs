// SPDX-License-Identifier: GPL-2.0

//! Finding every KVM VM on the host: the VM files open in each process,
//! with their pids in the caller's pid namespace.
//!
//! `vm_list` and `kvm_lock` are private to KVM, so the sampler looks where
//! an administrator would: each process's fd table (`iterate_fd()` under
//! `task_lock()`, as the kernel itself does), without a kernel patch and
//! without any unexported symbol.

use core::ffi::{c_int, c_uint, c_void};
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use kernel::task::Task;

use super::compat::{task_raw, ARef};
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
    // SAFETY: `p` is the exclusive `&mut Batch` scan_pid() passed in; no
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

/// The thread group leader of process `nr` in the current task's pid
/// namespace, counted.
fn thread_group(nr: i32) -> Option<ARef<Task>> {
    // SAFETY: find_get_pid() takes RCU itself and returns a counted pid in
    // the current task's namespace, or NULL.
    let pid = unsafe { bindings::find_get_pid(nr) };
    if pid.is_null() {
        return None;
    }
    // SAFETY: `pid` is counted; get_pid_task() returns a counted task or
    // NULL.
    let task = unsafe { bindings::get_pid_task(pid, bindings::pid_type_PIDTYPE_TGID) };
    // SAFETY: we own the pid reference and drop it once.
    unsafe { bindings::put_pid(pid) };
    // SAFETY: the count get_pid_task() took is handed to the `ARef`, which
    // puts it once; `Task` is a transparent wrapper of `task_struct`.
    NonNull::new(task).map(|t| unsafe { ARef::from_raw(t.cast::<Task>()) })
}

/// Whether `task` is a kernel thread (PF_KTHREAD is set when it is created
/// and never changes).
fn is_kthread(task: &Task) -> bool {
    // SAFETY: `task` is alive (borrowed); READ_ONCE of `flags`, which the
    // task itself may be changing (other bits).
    let flags = unsafe { ptr::read_volatile(ptr::addr_of!((*task_raw(task)).flags)) };
    flags & bindings::PF_KTHREAD != 0
}

/// A task's `alloc_lock` (`task_lock()`), held until dropped: its `files`
/// is neither switched nor released meanwhile.
///
/// # Invariants
///
/// `task`'s `alloc_lock` is held by this guard.
struct TaskLock<'a> {
    task: &'a Task,
    /// A spinlock is released by the task that took it.
    _not_send: PhantomData<*mut ()>,
}

impl<'a> TaskLock<'a> {
    fn lock(task: &'a Task) -> Self {
        // SAFETY: `task` is alive (borrowed), so its alloc_lock is valid; a
        // spinlock, taken in process context.
        unsafe { kernel::bindings::spin_lock(Self::alloc_lock(task)) };
        // INVARIANT: taken just above.
        TaskLock {
            task,
            _not_send: PhantomData,
        }
    }

    fn alloc_lock(task: &Task) -> *mut kernel::bindings::spinlock_t {
        // SAFETY: only the address of a field of a live task is taken.
        // CAST: `alloc_lock` is the spinlock_t the kernel crate's helper
        // expects; both bindings describe the same C type.
        unsafe { ptr::addr_of_mut!((*task_raw(task)).alloc_lock) }.cast()
    }

    /// Collects the VM files of the task's fd table from fd `start` on into
    /// `batch`; returns whether it stopped early (the batch is full).
    fn collect_vm_files(&self, start: c_uint, batch: &mut Batch) -> bool {
        // `files` may be NULL (the task exited), which iterate_fd() accepts.
        // SAFETY: task_lock held (invariant): `files` is stable; `collect`
        // matches iterate_fd's contract; `batch` is exclusively its.
        unsafe {
            bindings::iterate_fd(
                (*task_raw(self.task)).files,
                start,
                Some(collect),
                ptr::from_mut(batch).cast(),
            ) != 0
        }
    }
}

impl Drop for TaskLock<'_> {
    fn drop(&mut self) {
        // SAFETY: held by this guard (invariant).
        unsafe { kernel::bindings::spin_unlock(Self::alloc_lock(self.task)) };
    }
}

/// Calls `f` for each VM file open in process `nr`.
fn scan_pid(nr: i32, f: &mut impl FnMut(FoundVm)) {
    let Some(task) = thread_group(nr) else {
        return;
    };
    if is_kthread(&task) {
        return;
    }
    let mut start: c_uint = 0;
    loop {
        let mut batch = Batch {
            found: [const { None }; BATCH],
            len: 0,
            resume_fd: 0,
        };
        // task_lock() keeps task->files from being switched or released
        // under us; iterate_fd() takes the table's own lock.
        let stopped = TaskLock::lock(&task).collect_vm_files(start, &mut batch);
        for (fd, file) in batch.found.iter_mut().filter_map(Option::take) {
            f(FoundVm { pid: nr, fd, file });
        }
        if !stopped {
            break;
        }
        start = batch.resume_fd;
    }
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
