// SPDX-License-Identifier: GPL-2.0

//! How the walker reaches a table from its physical address.
//!
//! Entries hold physical addresses; the walker needs references. The kernel
//! side translates with the direct map (`__va`), while it holds whatever keeps
//! the tables alive (RCU plus `mmu_lock` for read: KVM frees TDP table pages
//! through `call_rcu`). Tests translate with an arena of synthetic tables.
//! Keeping the translation behind a trait is what lets the same walker run in
//! both.

use core::sync::atomic::AtomicU64;

use super::addr::ENTRIES_PER_TABLE;

/// One 4 KiB table: 512 entries that other CPUs may change at any time.
///
/// Entries are atomics because the CPU sets A/D bits and KVM replaces entries
/// (with `cmpxchg` under `mmu_lock` held for read) while the walker reads
/// them. The walker reads them only with relaxed loads (the kernel's
/// `READ_ONCE`) and writes them only with `compare_exchange`.
pub type Table = [AtomicU64; ENTRIES_PER_TABLE];

/// Maps the physical address of a table to the table.
pub trait Tables {
    /// Returns the table whose first byte is at physical address `pa`
    /// (4 KiB aligned, already masked with the caller's physical mask), or
    /// `None` if there is no such table.
    ///
    /// The walker calls this once per table it enters and keeps the
    /// reference only for the rest of that call to [`Walker::walk`]. An
    /// implementation must return a reference that stays valid that long; in
    /// the kernel that means the caller of `walk` holds the locks that keep
    /// table pages from being freed (RCU read lock).
    ///
    /// # Safety
    ///
    /// `pa` is the table of a root that is valid for these tables (what the
    /// caller of [`Walker::new`] vouches for), or the address in a present,
    /// non-leaf entry of a table this `Tables` returned, read while the
    /// same borrow of `self` lasts. An implementation that translates any
    /// address into a reference (the kernel's direct map) relies on this; one
    /// that checks every address (the tests' arena) does not need it.
    ///
    /// [`Walker::walk`]: super::Walker::walk
    /// [`Walker::new`]: super::Walker::new
    unsafe fn table(&self, pa: u64) -> Option<&Table>;
}

impl<T: Tables + ?Sized> Tables for &T {
    #[inline]
    unsafe fn table(&self, pa: u64) -> Option<&Table> {
        // SAFETY: the caller's promise, passed on unchanged.
        unsafe { (**self).table(pa) }
    }
}
