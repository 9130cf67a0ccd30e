// SPDX-License-Identifier: GPL-2.0

//! Running totals over every round of a heat map: what `stats` shows.

use super::round::{RoundEnd, RoundRecord};

/// Totals over every finished round of a heat map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Rounds finished.
    pub rounds: u64,
    /// Present leaves visited.
    pub leaves: u64,
    /// A and D bits cleared, in leaves and table entries.
    pub bits_cleared: u64,
    /// Walk time of the last round, ns.
    pub walk_ns_last: u64,
    /// Walk time of all rounds, ns (saturating).
    pub walk_ns_sum: u64,
    /// Longest walk of a round, ns.
    pub walk_ns_max: u64,
    /// Rounds followed by a TLB flush.
    pub flushes: u64,
    /// Time of the last round's flush, ns (0 if it did not try).
    pub flush_ns_last: u64,
    /// Time of all flushes, ns (saturating).
    pub flush_ns_sum: u64,
    /// Rounds not followed by a TLB flush.
    pub unflushed: u64,
    /// Yields (and restarts from the cursor).
    pub yields: u64,
    /// The most entries examined during one hold of `mmu_lock`, any round.
    pub hold_entries_max: u64,
    /// Accessed bits handed on to the host's pages, all rounds.
    pub passed_accessed: u64,
    /// Rounds that were to clear dirty bits and stopped part way because
    /// dirty logging began ([`HeatMap::stop_dirty`](super::HeatMap::stop_dirty)):
    /// their dirty results are partial and were not counted.
    pub dirty_partial_rounds: u64,
    /// The latest of those rounds, numbered as the heat store counts rounds
    /// begun ([`HeatStore::rounds`](super::HeatStore::rounds)); 0 for none.
    pub dirty_partial_last: u64,
    /// Failed `compare_exchange`s on entries (the CPU or KVM raced).
    pub cas_retries: u64,
    /// Frozen entries met (skipped).
    pub frozen: u64,
    /// Leaves without hardware A/D bits met (skipped).
    pub untracked: u64,
    /// Table pointers that led nowhere (skipped).
    pub unreachable: u64,
    /// Malformed entries (skipped).
    pub malformed: u64,
    /// Tables not entered because their parent's A bit was clear.
    pub cold_tables: u64,
    /// Roots walked in the last round.
    pub roots_last: u64,
    /// Roots walked, all rounds ([`RootCounts`](super::RootCounts) summed,
    /// as are the next five).
    pub roots_walked: u64,
    /// Roots KVM invalidated during a round before their walk was done.
    pub roots_lost: u64,
    /// Roots beyond a round's limit, not walked.
    pub roots_over_limit: u64,
    /// Invalid roots not walked.
    pub roots_invalid: u64,
    /// Mirror roots not walked.
    pub roots_mirror: u64,
    /// Nested-guest roots not walked.
    pub roots_guest_mode: u64,
    /// The last finished round.
    pub last: Option<RoundRecord>,
    /// Time from the start of the round before the last to the start of
    /// the last, ns: the time the last round's dirty bits built up in.
    /// `None` until two rounds are done.
    pub interval_ns_last: Option<u64>,
}

impl Totals {
    /// Adds a finished round.
    pub fn add(&mut self, record: &RoundRecord, end: &RoundEnd) {
        let w = &end.walk;
        self.rounds = self.rounds.saturating_add(1);
        self.leaves = self.leaves.saturating_add(w.leaves);
        self.bits_cleared = self.bits_cleared.saturating_add(record.cleared);
        self.walk_ns_last = end.walk_ns;
        self.walk_ns_sum = self.walk_ns_sum.saturating_add(end.walk_ns);
        self.walk_ns_max = self.walk_ns_max.max(end.walk_ns);
        self.flush_ns_last = end.flush_ns;
        self.flush_ns_sum = self.flush_ns_sum.saturating_add(end.flush_ns);
        if end.flushed {
            self.flushes = self.flushes.saturating_add(1);
        } else {
            self.unflushed = self.unflushed.saturating_add(1);
        }
        self.yields = self.yields.saturating_add(end.yields);
        self.hold_entries_max = self.hold_entries_max.max(end.longest_hold);
        self.passed_accessed = self.passed_accessed.saturating_add(end.passed_accessed);
        self.cas_retries = self.cas_retries.saturating_add(w.cas_retries);
        self.frozen = self.frozen.saturating_add(w.frozen);
        self.untracked = self.untracked.saturating_add(w.untracked);
        self.unreachable = self.unreachable.saturating_add(w.unreachable);
        self.malformed = self.malformed.saturating_add(w.malformed);
        self.cold_tables = self.cold_tables.saturating_add(w.cold_tables);
        let r = &end.roots;
        self.roots_last = u64::from(r.walked);
        self.roots_walked = self.roots_walked.saturating_add(u64::from(r.walked));
        self.roots_lost = self.roots_lost.saturating_add(u64::from(r.lost));
        self.roots_over_limit = self
            .roots_over_limit
            .saturating_add(u64::from(r.over_limit));
        self.roots_invalid = self.roots_invalid.saturating_add(u64::from(r.invalid));
        self.roots_mirror = self.roots_mirror.saturating_add(u64::from(r.mirror));
        self.roots_guest_mode = self
            .roots_guest_mode
            .saturating_add(u64::from(r.guest_mode));
        self.interval_ns_last = self
            .last
            .and_then(|prev| record.start_ns.checked_sub(prev.start_ns))
            .filter(|&ns| ns > 0);
        self.last = Some(*record);
    }

    /// Mean walk time per round, ns (0 before the first round).
    pub fn walk_ns_avg(&self) -> u64 {
        self.walk_ns_sum.checked_div(self.rounds).unwrap_or(0)
    }

    /// Mean time of a flush over the rounds that flushed, ns (0 before
    /// the first).
    pub fn flush_ns_avg(&self) -> u64 {
        self.flush_ns_sum.checked_div(self.flushes).unwrap_or(0)
    }

    /// Dirty rate of the last round in hundredths of MB/s (10^6 bytes per
    /// second): its dirty 4 KiB pages over the time they built up in.
    /// `None` until two rounds are done.
    pub fn dirty_rate_centi_mb_s(&self) -> Option<u64> {
        let bytes = self.last?.dirty_pages.saturating_mul(4096);
        // bytes / (ns / 1e9) / 1e6 * 100 = bytes * 1e5 / ns
        mul_div(bytes, 100_000, self.interval_ns_last?)
    }
}

/// `a * b / c`, rounded down, without overflowing where the result fits;
/// `None` if `c` is 0. Saturates where the result does not fit.
pub const fn mul_div(a: u64, b: u64, c: u64) -> Option<u64> {
    if c == 0 {
        return None;
    }
    if let Some(ab) = a.checked_mul(b) {
        return Some(ab / c);
    }
    // a = q*c + r: a*b/c = q*b + r*b/c (the second term exact when r*b
    // fits, which holds while b < 2^32 since r < c; else an approximation).
    let q = a / c;
    let r = a % c;
    let tail = match r.checked_mul(b) {
        Some(rb) => rb / c,
        None => (r / c).saturating_mul(b),
    };
    Some(q.saturating_mul(b).saturating_add(tail))
}
