// SPDX-License-Identifier: GPL-2.0

//! The module-wide settings: how many entries a round examines per hold of
//! `mmu_lock`, and whether the accessed bits the sampler clears are handed
//! on to the host's pages. They are the module parameters `walk_budget`
//! and `pass_accessed` (declared in kvm/helpers.c, which calls the
//! `extern "C"` functions here), so that an operator sets them in
//! `/etc/modprobe.d` and reads them in `/sys/module/ept_sampler/parameters`;
//! `tune` in the control file sets the same values. Each tick of the
//! sampling thread reads them once, so a change applies from the rounds of
//! the next tick on.
//!
//! The values are atomics: sysfs writes (under the kernel's parameter
//! lock), `tune` and the sampling thread share no lock, and each value
//! stands alone (one tick may see one key of a two-key `tune` and not the
//! other, which is harmless).

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::procfs::control::{DEFAULT_WALK_BUDGET, WALK_BUDGET_MAX, WALK_BUDGET_MIN};

static WALK_BUDGET: AtomicU32 = AtomicU32::new(DEFAULT_WALK_BUDGET);
static PASS_ACCESSED: AtomicBool = AtomicBool::new(true);

/// Entries a round examines per hold of `mmu_lock`.
pub(crate) fn walk_budget() -> u32 {
    WALK_BUDGET.load(Ordering::Relaxed)
}

/// Sets the walk budget if `n` is in
/// [`WALK_BUDGET_MIN`]`..=`[`WALK_BUDGET_MAX`]; returns whether it did.
pub(crate) fn set_walk_budget(n: u32) -> bool {
    if !(WALK_BUDGET_MIN..=WALK_BUDGET_MAX).contains(&u64::from(n)) {
        return false;
    }
    WALK_BUDGET.store(n, Ordering::Relaxed);
    true
}

/// Whether cleared accessed bits are handed on to the host's pages.
pub(crate) fn pass_accessed() -> bool {
    PASS_ACCESSED.load(Ordering::Relaxed)
}

/// Sets whether cleared accessed bits are handed on.
pub(crate) fn set_pass_accessed(pass: bool) {
    PASS_ACCESSED.store(pass, Ordering::Relaxed);
}

// The module parameters' accessors (kvm/helpers.h), for kvm/helpers.c.

#[no_mangle]
extern "C" fn ept_sampler_walk_budget() -> u32 {
    walk_budget()
}

#[no_mangle]
extern "C" fn ept_sampler_set_walk_budget(n: u32) -> bool {
    set_walk_budget(n)
}

#[no_mangle]
extern "C" fn ept_sampler_pass_accessed_on() -> bool {
    pass_accessed()
}

#[no_mangle]
extern "C" fn ept_sampler_set_pass_accessed(pass: bool) {
    set_pass_accessed(pass)
}
