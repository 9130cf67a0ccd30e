// SPDX-License-Identifier: GPL-2.0

//! One sampling round, as the glue reports it ([`RoundEnd`]) and as the
//! heat map keeps it ([`RoundRecord`]).

use super::granule::Track;
use crate::ept_walk::Stats;

/// What the glue measured about a round it has just finished walking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundEnd {
    /// Time spent walking (all roots, all calls, without the flush), ns.
    pub walk_ns: u64,
    /// Time spent flushing the guest's TLBs after the walk (or trying to),
    /// ns; 0 when the round did not try.
    pub flush_ns: u64,
    /// The walker's counters, summed over every call of the round
    /// ([`Stats::accumulate`]).
    pub walk: Stats,
    /// How many times the round dropped `mmu_lock` and restarted the walk
    /// from its cursor.
    pub yields: u64,
    /// The most entries examined during one hold of `mmu_lock`
    /// ([`RootsStats::longest_hold`](crate::ept_walk::RootsStats)).
    pub longest_hold: u64,
    /// Whether the guest's TLBs were flushed after the bits were cleared.
    pub flushed: bool,
    /// Accessed bits cleared in leaves and handed on to the host pages they
    /// map (page_idle, DAMON and reclaim see those accesses).
    pub passed_accessed: u64,
    /// What became of the VM's roots.
    pub roots: RootCounts,
}

/// A round's roots: walked, lost, and not walked by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootCounts {
    /// Roots whose walk began.
    pub walked: u32,
    /// Roots listed at the start that KVM invalidated (or freed) while
    /// `mmu_lock` was dropped, before their walk was done: the rest of them
    /// went unwalked.
    pub lost: u32,
    /// Usable roots beyond the limit of a round, not walked.
    pub over_limit: u32,
    /// Roots not walked because KVM had invalidated them (being torn down).
    pub invalid: u32,
    /// TDX mirror roots (private memory, not walkable), not walked.
    pub mirror: u32,
    /// Roots of a nested guest (`guest_mode`: L2's addresses, not this
    /// guest's), not walked.
    pub guest_mode: u32,
}

/// A finished round, as kept in the history ring and shown in `history`
/// and `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundRecord {
    /// Round number, 1 for the first round of this heat map.
    pub round: u64,
    /// When the round began (the glue's clock, e.g. `ktime_get_ns`), ns.
    pub start_ns: u64,
    /// Walk time, ns ([`RoundEnd::walk_ns`]).
    pub walk_ns: u64,
    /// Present leaves visited ([`Stats::leaves`]).
    pub leaves: u64,
    /// 4 KiB pages of the span accessed in the round (each page once
    /// however many roots map it; see [`History`](super::History)).
    pub accessed_pages: u64,
    /// 4 KiB pages of the span dirtied in the round.
    pub dirty_pages: u64,
    /// A and D bits the walker cleared, in leaves and table entries.
    pub cleared: u64,
    /// Yields of the round ([`RoundEnd::yields`], saturated at `u32::MAX`).
    pub yields: u32,
    /// Whether the guest's TLBs were flushed.
    pub flushed: bool,
    /// What the round recorded.
    pub track: Track,
}

/// `u64` words one [`RoundRecord`] takes in the history ring.
pub const RECORD_WORDS: usize = 8;

impl RoundRecord {
    /// The record as ring words.
    pub fn encode(&self) -> [u64; RECORD_WORDS] {
        let flags = u64::from(self.yields)
            | (u64::from(self.flushed) << 32)
            | (u64::from(self.track.code()) << 33);
        [
            self.round,
            self.start_ns,
            self.walk_ns,
            self.leaves,
            self.accessed_pages,
            self.dirty_pages,
            self.cleared,
            flags,
        ]
    }

    /// The record stored in `words`; missing words read as 0.
    pub fn decode(words: &[u64]) -> RoundRecord {
        let w = |i: usize| words.get(i).copied().unwrap_or(0);
        let flags = w(7);
        RoundRecord {
            round: w(0),
            start_ns: w(1),
            walk_ns: w(2),
            leaves: w(3),
            accessed_pages: w(4),
            dirty_pages: w(5),
            cleared: w(6),
            yields: flags as u32,
            flushed: (flags >> 32) & 1 != 0,
            track: Track::from_code(((flags >> 33) & 3) as u8).unwrap_or(Track::Accessed),
        }
    }
}
