// SPDX-License-Identifier: GPL-2.0

//! Walking KVM's two-dimensional page tables and sampling their A/D bits.
//!
//! With Intel EPT or AMD NPT, KVM maps guest physical memory through its own
//! page tables (the TDP MMU). The CPU sets an accessed bit in every entry it
//! uses to translate a guest access and a dirty bit in the leaf on a write.
//! This module reads those bits, and test-and-clears them, for one root at a
//! time:
//!
//! - [`addr`]: [`Gfn`], [`GfnRange`], [`PageSize`], [`Level`].
//! - [`spte`]: the entry formats ([`Format`], [`Spte`], [`AdType`], KVM's
//!   kernel-dependent software bits [`KvmBits`], the fast paths'
//!   [`Pattern`]s); the only place that knows bit positions.
//! - [`table`]: [`Tables`], how a table's physical address becomes 512
//!   atomic entries (`__va` in the kernel, an arena in tests).
//! - [`walk`]: the [`Walker`], which reports the leaves, idle ranges, holes
//!   and skipped ranges of a GFN range to a [`Visitor`], in GFN order, within
//!   a budget of entries, and can be resumed from where it stopped.
//! - [`roots`]: [`walk_roots`], every root of a VM in chunks across drops of
//!   the lock, each root looked up again before every chunk.
//!
//! The code uses only `core`: no allocation, no locks, no kernel crate. The
//! kernel module compiles these files into itself and a userspace crate
//! (`tools/ept-core`) compiles the very same files for tests and benchmarks.
//! Inside this directory, modules refer to each other through `super::`,
//! never `crate::`, because the crate root differs between the two.
//!
//! Nothing here panics: arithmetic on values read from tables is masked,
//! wrapping or saturating, and tables are indexed with `get`. The only
//! `unsafe` is one `asm!` prefetch hint on x86_64.

pub mod addr;
pub mod roots;
pub mod spte;
pub mod table;
pub mod walk;

pub use addr::{Gfn, GfnRange, Level, PageSize, ENTRIES_PER_TABLE};
pub use roots::{walk_roots, RootSink, RootSource, RootsStats, MAX_ROOTS};
pub use spte::{AdType, Format, KvmBits, Pattern, Spte};
pub use table::{Table, Tables};
pub use walk::{
    Descent, Leaf, Mode, Outcome, Root, Skip, Stats, Stop, Visitor, Walker, MAX_CAS_ATTEMPTS,
};
