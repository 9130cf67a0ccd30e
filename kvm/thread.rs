// SPDX-License-Identifier: GPL-2.0

//! A kernel thread ([`Thread`]) that runs a [`ThreadMain`] until it is
//! dropped, and the proof of running on it ([`OnThread`]).
//!
//! The `kernel` crate has no kthread abstraction in 6.12 or 7.3: this is the
//! small one the sampler needs, shaped like theirs (a task reference held,
//! a `Drop` that stops the thread).

use core::ffi::{c_int, c_void, CStr};
use core::marker::PhantomData;
use core::ptr;

use kernel::error::{code, Result};
use kernel::task::Task;

use super::bindings;
use super::compat::{task_raw, ARef};
use super::time::ms_to_jiffies;

/// What a [`Thread`] runs.
pub(crate) trait ThreadMain: Sync {
    /// The thread's body: returns once `me.should_stop()`, and sleeps only
    /// through [`OnThread::sleep_ms`] (which `kthread_stop()` cuts short).
    fn run(&self, me: &OnThread);
}

/// Proof of running on a [`Thread`]'s kthread: only the thread's entry
/// point makes one.
///
/// # Invariants
///
/// Exists only on the stack of a kthread started by [`Thread::start`]
/// (`*mut ()` keeps it from being sent or shared).
pub(crate) struct OnThread(PhantomData<*mut ()>);

impl OnThread {
    /// Whether the thread was asked to stop (`kthread_stop()`).
    pub(crate) fn should_stop(&self) -> bool {
        // SAFETY: `current` is a kthread (invariant): kthread_should_stop()
        // reads `to_kthread(current)`, valid only for a kthread.
        unsafe { bindings::kthread_should_stop() }
    }

    /// Sleeps for `ms` milliseconds (at least one jiffy), or until the
    /// thread is asked to stop.
    pub(crate) fn sleep_ms(&self, ms: u64) {
        // SAFETY: a kthread's own context (invariant) may sleep;
        // kthread_stop() wakes an interruptible sleep.
        unsafe { bindings::schedule_timeout_interruptible(ms_to_jiffies(ms)) };
    }
}

/// A running kthread, stopped when dropped.
///
/// # Invariants
///
/// `task` is a kthread running [`entry::<T>`] for the `T` it was started
/// with, not stopped yet; the reference keeps its `task_struct` alive even
/// if it exits.
pub(crate) struct Thread {
    task: ARef<Task>,
}

impl Thread {
    /// Starts a kthread named `name` that runs `main.run()`.
    ///
    /// # Safety
    ///
    /// `main` stays valid until the returned `Thread` is dropped (which
    /// stops the thread), and the `Thread` is dropped, not leaked, and not
    /// on its own kthread (`kthread_stop()` of itself would never return).
    pub(crate) unsafe fn start<T: ThreadMain>(main: &T, name: &'static CStr) -> Result<Self> {
        let data = ptr::from_ref(main).cast_mut().cast::<c_void>();
        // SAFETY: `entry::<T>` takes `data` as the `&T` it is, valid as
        // long as the thread runs (caller); `name` is passed as the
        // argument of a "%s" format, both NUL-terminated.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(entry::<T>),
                data,
                -1,
                bindings::c_str(c"%s"),
                bindings::c_str(name),
            )
        };
        if bindings::is_err(task) {
            return Err(bindings::ptr_err(task));
        }
        let task = ptr::NonNull::new(task).ok_or(code::ENOMEM)?;
        // SAFETY: a task just created, so alive; `Task` is a transparent
        // wrapper of `task_struct`. `ARef::from` takes a reference of our
        // own (get_task_struct).
        let task: ARef<Task> = ARef::from(unsafe { &*task.as_ptr().cast::<Task>() });
        // SAFETY: a freshly created kthread, not yet running.
        unsafe { bindings::wake_up_process(task_raw(&task)) };
        // INVARIANT: created and started above; a reference is held.
        Ok(Thread { task })
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // kthread_stop() wakes the thread and waits for it; the reference
        // is put when `task` drops.
        // SAFETY: a kthread not stopped yet (invariant), whose task our
        // reference keeps alive even if its main returned early.
        unsafe { bindings::kthread_stop(task_raw(&self.task)) };
    }
}

/// The kthread's entry point.
///
/// # Safety
///
/// `data` is a `&T` that outlives the thread (see [`Thread::start`]).
unsafe extern "C" fn entry<T: ThreadMain>(data: *mut c_void) -> c_int {
    // SAFETY: see the function's safety section.
    let main = unsafe { &*data.cast::<T>() };
    // INVARIANT: this is the kthread `Thread::start` made, and `me` stays
    // on its stack.
    let me = OnThread(PhantomData);
    main.run(&me);
    0
}
