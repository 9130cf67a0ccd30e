// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/stats`: counters of a VM's sampling, as
//! `key value` lines ([`super::kv`]).
//!
//! ```text
//! rounds 42
//! leaves 11010048
//! leaves_last 262144
//! bits_cleared 5300
//! accessed_passed 2650
//! walk_ns_last 812345
//! walk_ns_avg 790001
//! walk_ns_max 1200400
//! walk_ns_total 33180042
//! flushes 42
//! unflushed_rounds 0
//! flush_last yes
//! flush_ns_last 91000
//! flush_ns_avg 88000
//! flush_ns_total 3696000
//! yields 3
//! hold_entries_max 8194
//! cas_retries 0
//! frozen 0
//! untracked 0
//! unreachable 0
//! malformed 0
//! cold_tables 0
//! roots_last 2
//! roots_walked 84
//! roots_lost 0
//! roots_over_limit 0
//! roots_invalid 0
//! roots_mirror 0
//! roots_guest_mode 0
//! store_bytes 524288
//! history_bytes 66048
//! accessed_pages_last 2048
//! dirty_pages_last 512
//! interval_ns_last 100000000
//! dirty_partial_rounds 0
//! dirty tracked
//! accessed_mib_last 8.00
//! dirty_mib_last 2.00
//! dirty_mb_s 20.97
//! ```
//!
//! The last three lines are derived from the others (two decimals,
//! rounded down; `-` while undefined) and are for people: the parser
//! reads the integers. `interval_ns_last` and `flush_last` are `-` until
//! they are defined. The `roots_` keys, `hold_entries_max`,
//! `accessed_passed`, the `flush_ns_` keys and `dirty_partial_rounds` came
//! later than the others: a file without them (an older module's) reads as
//! 0 for each. `walk_ns_total` and `flush_ns_total` (the time of every
//! round's walk and flush, for a rate of the sampler's cost; the averages
//! times the counts lose up to a count of ns and are not monotonic) came
//! last: absent in an older module's file, and read as `None` then, not
//! as 0, since a reader turning them into a counter must not see one go
//! back.

use core::fmt;

use super::fields::{kv_number, kv_parsed, yes_no, yes_no_str, Centi, FormatError};
use super::kv;
use crate::heat::totals::mul_div;
use crate::heat::Totals;

/// What happens to a VM's dirty bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirtyStatus {
    /// Sampled and cleared each round.
    Tracked,
    /// Not sampled: the mode is `accessed`.
    Off,
    /// Not sampled although asked for: dirty logging is on for the VM
    /// (migration or a VMM's own tracking owns the bits).
    DirtyLogging,
}

impl DirtyStatus {
    /// The word for this value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DirtyStatus::Tracked => "tracked",
            DirtyStatus::Off => "off",
            DirtyStatus::DirtyLogging => "refused:dirty-logging",
        }
    }

    /// Parses [`DirtyStatus::as_str`]'s words.
    pub fn parse(word: &str) -> Option<DirtyStatus> {
        Some(match word {
            "tracked" => DirtyStatus::Tracked,
            "off" => DirtyStatus::Off,
            "refused:dirty-logging" => DirtyStatus::DirtyLogging,
            _ => return None,
        })
    }
}

/// The content of `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsFile {
    /// Rounds finished.
    pub rounds: u64,
    /// Present leaves visited, all rounds.
    pub leaves: u64,
    /// Present leaves visited in the last round.
    pub leaves_last: u64,
    /// A and D bits cleared, all rounds.
    pub bits_cleared: u64,
    /// Accessed bits cleared in leaves and handed on to the host pages they
    /// map, all rounds.
    pub accessed_passed: u64,
    /// Walk time of the last round, ns.
    pub walk_ns_last: u64,
    /// Mean walk time per round, ns.
    pub walk_ns_avg: u64,
    /// Longest walk time of a round, ns.
    pub walk_ns_max: u64,
    /// Walk time of every round, ns (`None`: an older module's file).
    pub walk_ns_total: Option<u64>,
    /// Rounds followed by a TLB flush.
    pub flushes: u64,
    /// Rounds not followed by a TLB flush.
    pub unflushed_rounds: u64,
    /// Whether the last round was flushed (`None` before the first).
    pub flush_last: Option<bool>,
    /// Time of the last round's flush, ns (0 if it did not flush).
    pub flush_ns_last: u64,
    /// Mean time of a flush, ns, over the rounds that flushed.
    pub flush_ns_avg: u64,
    /// Time of every flush, ns (`None`: an older module's file).
    pub flush_ns_total: Option<u64>,
    /// Yields and restarts, all rounds.
    pub yields: u64,
    /// The most entries examined during one hold of `mmu_lock`, any round:
    /// at most the walk budget plus a root's levels less one.
    pub hold_entries_max: u64,
    /// Failed exchanges on entries, all rounds.
    pub cas_retries: u64,
    /// Frozen entries met.
    pub frozen: u64,
    /// Leaves without A/D bits met.
    pub untracked: u64,
    /// Unresolvable table pointers met.
    pub unreachable: u64,
    /// Malformed entries met.
    pub malformed: u64,
    /// Tables skipped as cold.
    pub cold_tables: u64,
    /// Roots walked in the last round.
    pub roots_last: u64,
    /// Roots walked, all rounds.
    pub roots_walked: u64,
    /// Roots KVM invalidated during a round before their walk was done
    /// (the rest of each went unwalked), all rounds.
    pub roots_lost: u64,
    /// Roots beyond a round's limit, not walked, all rounds.
    pub roots_over_limit: u64,
    /// Roots not walked because KVM had invalidated them, all rounds.
    pub roots_invalid: u64,
    /// TDX mirror roots not walked, all rounds.
    pub roots_mirror: u64,
    /// Nested-guest (`guest_mode`) roots not walked, all rounds.
    pub roots_guest_mode: u64,
    /// Bytes of the heat store.
    pub store_bytes: u64,
    /// Bytes of the history ring.
    pub history_bytes: u64,
    /// 4 KiB pages accessed in the last round.
    pub accessed_pages_last: u64,
    /// 4 KiB pages dirtied in the last round.
    pub dirty_pages_last: u64,
    /// Time the last round's dirty bits built up in, ns (`None` until two
    /// rounds are done).
    pub interval_ns_last: Option<u64>,
    /// Rounds whose dirty results are partial and were not counted: dirty
    /// logging began while they were clearing dirty bits.
    pub dirty_partial_rounds: u64,
    /// What happens to dirty bits.
    pub dirty: DirtyStatus,
}

impl StatsFile {
    /// The file for a heat map's `totals`, its storage sizes, and the
    /// dirty status the glue decided.
    pub fn new(
        totals: &Totals,
        store_bytes: u64,
        history_bytes: u64,
        dirty: DirtyStatus,
    ) -> StatsFile {
        let last = totals.last;
        StatsFile {
            rounds: totals.rounds,
            leaves: totals.leaves,
            leaves_last: last.map_or(0, |r| r.leaves),
            bits_cleared: totals.bits_cleared,
            accessed_passed: totals.passed_accessed,
            walk_ns_last: totals.walk_ns_last,
            walk_ns_avg: totals.walk_ns_avg(),
            walk_ns_max: totals.walk_ns_max,
            walk_ns_total: Some(totals.walk_ns_sum),
            flushes: totals.flushes,
            unflushed_rounds: totals.unflushed,
            flush_last: last.map(|r| r.flushed),
            flush_ns_last: totals.flush_ns_last,
            flush_ns_avg: totals.flush_ns_avg(),
            flush_ns_total: Some(totals.flush_ns_sum),
            yields: totals.yields,
            hold_entries_max: totals.hold_entries_max,
            cas_retries: totals.cas_retries,
            frozen: totals.frozen,
            untracked: totals.untracked,
            unreachable: totals.unreachable,
            malformed: totals.malformed,
            cold_tables: totals.cold_tables,
            roots_last: totals.roots_last,
            roots_walked: totals.roots_walked,
            roots_lost: totals.roots_lost,
            roots_over_limit: totals.roots_over_limit,
            roots_invalid: totals.roots_invalid,
            roots_mirror: totals.roots_mirror,
            roots_guest_mode: totals.roots_guest_mode,
            store_bytes,
            history_bytes,
            accessed_pages_last: last.map_or(0, |r| r.accessed_pages),
            dirty_pages_last: last.map_or(0, |r| r.dirty_pages),
            interval_ns_last: totals.interval_ns_last,
            dirty_partial_rounds: totals.dirty_partial_rounds,
            dirty,
        }
    }

    /// MiB accessed in the last round, in hundredths (`None` before the
    /// first round).
    pub fn accessed_mib_last(&self) -> Option<Centi> {
        (self.rounds > 0).then(|| pages_to_centi_mib(self.accessed_pages_last))
    }

    /// MiB dirtied in the last round, in hundredths.
    pub fn dirty_mib_last(&self) -> Option<Centi> {
        (self.rounds > 0).then(|| pages_to_centi_mib(self.dirty_pages_last))
    }

    /// The dirty rate in hundredths of MB/s (10^6 bytes/s): the last
    /// round's dirty pages times 4096 over `interval_ns_last`.
    pub fn dirty_mb_s(&self) -> Option<Centi> {
        let bytes = self.dirty_pages_last.saturating_mul(4096);
        mul_div(bytes, 100_000, self.interval_ns_last?).map(Centi)
    }
}

/// 4 KiB pages as hundredths of MiB (256 pages per MiB).
fn pages_to_centi_mib(pages: u64) -> Centi {
    Centi(mul_div(pages, 100, 256).unwrap_or(0))
}

/// Shows `None` as `-`.
struct Opt<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Display for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |f: &mut fmt::Formatter<'_>, k: &str, v: u64| kv::write(f, k, format_args!("{v}"));
        n(f, "rounds", self.rounds)?;
        n(f, "leaves", self.leaves)?;
        n(f, "leaves_last", self.leaves_last)?;
        n(f, "bits_cleared", self.bits_cleared)?;
        n(f, "accessed_passed", self.accessed_passed)?;
        n(f, "walk_ns_last", self.walk_ns_last)?;
        n(f, "walk_ns_avg", self.walk_ns_avg)?;
        n(f, "walk_ns_max", self.walk_ns_max)?;
        if let Some(total) = self.walk_ns_total {
            n(f, "walk_ns_total", total)?;
        }
        n(f, "flushes", self.flushes)?;
        n(f, "unflushed_rounds", self.unflushed_rounds)?;
        let flush_last = Opt(self.flush_last.map(yes_no_str));
        kv::write(f, "flush_last", format_args!("{flush_last}"))?;
        n(f, "flush_ns_last", self.flush_ns_last)?;
        n(f, "flush_ns_avg", self.flush_ns_avg)?;
        if let Some(total) = self.flush_ns_total {
            n(f, "flush_ns_total", total)?;
        }
        n(f, "yields", self.yields)?;
        n(f, "hold_entries_max", self.hold_entries_max)?;
        n(f, "cas_retries", self.cas_retries)?;
        n(f, "frozen", self.frozen)?;
        n(f, "untracked", self.untracked)?;
        n(f, "unreachable", self.unreachable)?;
        n(f, "malformed", self.malformed)?;
        n(f, "cold_tables", self.cold_tables)?;
        n(f, "roots_last", self.roots_last)?;
        n(f, "roots_walked", self.roots_walked)?;
        n(f, "roots_lost", self.roots_lost)?;
        n(f, "roots_over_limit", self.roots_over_limit)?;
        n(f, "roots_invalid", self.roots_invalid)?;
        n(f, "roots_mirror", self.roots_mirror)?;
        n(f, "roots_guest_mode", self.roots_guest_mode)?;
        n(f, "store_bytes", self.store_bytes)?;
        n(f, "history_bytes", self.history_bytes)?;
        n(f, "accessed_pages_last", self.accessed_pages_last)?;
        n(f, "dirty_pages_last", self.dirty_pages_last)?;
        let interval = Opt(self.interval_ns_last);
        kv::write(f, "interval_ns_last", format_args!("{interval}"))?;
        n(f, "dirty_partial_rounds", self.dirty_partial_rounds)?;
        kv::write(f, "dirty", format_args!("{}", self.dirty.as_str()))?;
        let derived = [
            ("accessed_mib_last", self.accessed_mib_last()),
            ("dirty_mib_last", self.dirty_mib_last()),
            ("dirty_mb_s", self.dirty_mb_s()),
        ];
        for (key, value) in derived {
            kv::write(f, key, format_args!("{}", Opt(value)))?;
        }
        Ok(())
    }
}

impl StatsFile {
    /// Parses the text of `stats`; unknown keys, and the derived ones, are
    /// ignored.
    pub fn parse(text: &str) -> Result<StatsFile, FormatError> {
        let n = |key| kv_number(text, key);
        // Keys an older module did not write: 0 when absent.
        let later = |key| match kv::get(text, key) {
            None => Ok(0),
            Some(_) => kv_number(text, key),
        };
        let opt_number = |key: &'static str| match kv::get(text, key) {
            Some("-") => Ok(None),
            _ => kv_number(text, key).map(Some),
        };
        // Keys an older module did not write, and that must not read as 0.
        let newest = |key| match kv::get(text, key) {
            None => Ok(None),
            Some(_) => kv_number(text, key).map(Some),
        };
        let flush_last = || match kv::get(text, "flush_last") {
            Some("-") => Ok(None),
            _ => kv_parsed(text, "flush_last", yes_no).map(Some),
        };
        // Fields are read in the file's order, so a truncated file names
        // its first missing key.
        Ok(StatsFile {
            rounds: n("rounds")?,
            leaves: n("leaves")?,
            leaves_last: n("leaves_last")?,
            bits_cleared: n("bits_cleared")?,
            accessed_passed: later("accessed_passed")?,
            walk_ns_last: n("walk_ns_last")?,
            walk_ns_avg: n("walk_ns_avg")?,
            walk_ns_max: n("walk_ns_max")?,
            walk_ns_total: newest("walk_ns_total")?,
            flushes: n("flushes")?,
            unflushed_rounds: n("unflushed_rounds")?,
            flush_last: flush_last()?,
            flush_ns_last: later("flush_ns_last")?,
            flush_ns_avg: later("flush_ns_avg")?,
            flush_ns_total: newest("flush_ns_total")?,
            yields: n("yields")?,
            hold_entries_max: later("hold_entries_max")?,
            cas_retries: n("cas_retries")?,
            frozen: n("frozen")?,
            untracked: n("untracked")?,
            unreachable: n("unreachable")?,
            malformed: n("malformed")?,
            cold_tables: n("cold_tables")?,
            roots_last: later("roots_last")?,
            roots_walked: later("roots_walked")?,
            roots_lost: later("roots_lost")?,
            roots_over_limit: later("roots_over_limit")?,
            roots_invalid: later("roots_invalid")?,
            roots_mirror: later("roots_mirror")?,
            roots_guest_mode: later("roots_guest_mode")?,
            store_bytes: n("store_bytes")?,
            history_bytes: n("history_bytes")?,
            accessed_pages_last: n("accessed_pages_last")?,
            dirty_pages_last: n("dirty_pages_last")?,
            interval_ns_last: opt_number("interval_ns_last")?,
            dirty_partial_rounds: later("dirty_partial_rounds")?,
            dirty: kv_parsed(text, "dirty", DirtyStatus::parse)?,
        })
    }
}
