// SPDX-License-Identifier: GPL-2.0

//! The monotonic clock, sleeping in process context, and the kernel's
//! printk rate limit: the few timing calls the sampler makes, as safe
//! functions (the `kernel` crate's time API differs between 6.12 and 7.3).

use super::bindings;

/// The monotonic clock, in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: ktime_get() reads the monotonic clock; no preconditions.
    u64::try_from(unsafe { bindings::ktime_get() }).unwrap_or(0)
}

/// Milliseconds to jiffies, rounded up, at least one.
pub(crate) fn ms_to_jiffies(ms: u64) -> core::ffi::c_long {
    let hz = u64::from(bindings::HZ);
    let j = ms.saturating_mul(hz).div_ceil(1000).max(1);
    core::ffi::c_long::try_from(j).unwrap_or(core::ffi::c_long::MAX)
}

/// Sleeps for `ms` milliseconds (at least one jiffy), whatever signals
/// come: for short waits on another task's progress.
///
/// Process context only, outside any spinlock or RCU read side: it sleeps.
/// As with the kernel crate's own sleeping functions, types do not check
/// that; every caller here is a command's write, the sampler's thread or
/// the module's unload, and none holds an `MmuReadGuard` or RCU guard.
pub(crate) fn sleep_ms(ms: u64) {
    // SAFETY: schedule_timeout_uninterruptible() needs a context that may
    // sleep, which every caller of this function is (see above).
    unsafe { bindings::schedule_timeout_uninterruptible(ms_to_jiffies(ms)) };
}

/// Whether a rate-limited message may be printed now (`printk_ratelimit()`).
pub(crate) fn printk_ratelimit() -> bool {
    // SAFETY: __printk_ratelimit() only touches its own state; the name is
    // a static C string.
    unsafe { bindings::__printk_ratelimit(bindings::c_str(c"ept_sampler")) != 0 }
}
