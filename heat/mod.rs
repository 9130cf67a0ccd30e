// SPDX-License-Identifier: GPL-2.0

//! Heat maps: what the sampler learns about a VM's memory, round by round.
//!
//! Each sampling round walks the VM's roots with [`ept_walk`](crate::ept_walk)
//! and feeds what the walker reports to a [`HeatMap`] through its
//! [`RoundVisitor`]. The map keeps:
//!
//! - [`store`]: per granule (4 KiB to 512 GiB, [`Granule`]), whether it is
//!   mapped, by leaves of which size, and in how many of the last `window`
//!   rounds it was accessed and dirtied; at most 2 bytes per 4 KiB page
//!   ([`cell`] has the layout and the rules). Blocks of 512 equal cells are
//!   kept as one cell ([`store`], "Uniform blocks"), so that a round costs
//!   what the guest touched and the walker reported in pieces, not the
//!   guest's size: a mostly idle or unmapped 1 GiB guest is 512 blocks, not
//!   262144 cells, per round.
//! - [`history`]: the last K rounds at a coarse region granule, the share
//!   of each region's pages accessed and dirtied in each round, plus each
//!   round's [`RoundRecord`].
//! - [`totals`]: counters over all rounds, for `stats`.
//! - [`idle`]: the rounds' periods and starts ([`Clock`]), which turn the
//!   store's idle ages into time: the bytes idle for at least each of a
//!   VM's bins, for its `idle` file.
//!
//! Like `ept_walk`, this is pure `core` code, compiled into the module and
//! into `tools/ept-core`: storage comes from the caller (`vmalloc` in the
//! kernel, `Vec` in tests), sizes are computed first by [`Geometry::layout`]
//! so that the glue can allocate exactly and fail cleanly, and nothing here
//! panics (arithmetic on spans and counts is checked or saturating, slices
//! are reached with `get`). Modules here name each other with `super::`
//! and reach the walker's types as `crate::ept_walk`, a path both crates
//! have.

pub mod cell;
pub mod error;
pub mod granule;
pub mod history;
pub mod idle;
pub mod map;
pub mod round;
pub mod store;
pub mod totals;

pub use cell::{Cell, Header, Idle, Observation, Sizes, State, Trace, Width};
pub use error::HeatError;
pub use granule::{parse_decimal, DecimalError, Granule, GranuleError, Track};
pub use history::{share, History, HistoryLayout, HistoryView};
pub use idle::{Clock, IdleAge, IdleBins, IdleBytes, IdleCounts, MAX_IDLE_BINS};
pub use map::{Geometry, HeatMap, Layout, MapView, RoundVisitor};
pub use round::{RootCounts, RoundEnd, RoundRecord, RECORD_WORDS};
pub use store::{HeatStore, StoreLayout, StoreView};
pub use totals::Totals;

/// One past the largest GFN a heat map may cover: a 52-bit guest physical
/// address space (the architectural maximum on x86-64).
pub const MAX_GFN: u64 = 1 << 40;

/// The most rounds a history ring keeps.
pub const MAX_HISTORY_ROUNDS: u16 = 1024;

/// Rounds a history ring keeps unless told otherwise.
pub const DEFAULT_HISTORY_ROUNDS: u16 = 64;

/// The history ring's region granule unless told otherwise: 2 MiB, the
/// size of a huge page and of a level-1 table.
pub const DEFAULT_REGION: Granule = Granule::SIZE_2M;

/// The window of a heat store unless told otherwise: 5 rounds, the most a
/// 4 KiB granule allows, so that a default window means the same at every
/// granule.
pub const DEFAULT_WINDOW: u8 = 5;
