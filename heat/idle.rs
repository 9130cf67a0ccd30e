// SPDX-License-Identifier: GPL-2.0

//! Idle ages in time: how much of a VM's mapped memory has gone without an
//! access (a write) for at least each of a few ages, the bins.
//!
//! The heat store says, per granule, how many rounds ago each bit was last
//! found set, as bounds ([`Trace::idle`](super::Trace::idle)). [`Clock`]
//! turns rounds into a lower bound of time from the rounds' start times as
//! measured; [`count`] adds up the granules idle for at least each bin.
//! Every figure is a lower bound, as far as the bits tell: memory is never
//! called idle for longer than the walks have seen it untouched.
//!
//! # From rounds to time
//!
//! A bit last found set in round `r` was cleared in that round's walk, the
//! TLBs flushed, and not found set again since: the memory has been idle
//! at least from the start of round `r + 1` to the start of the latest
//! round that walked every root. The clock keeps the rounds in segments of
//! one period whose starts are at least half a period apart, with the
//! shortest interval measured in each (a round that starts late makes the
//! next interval short, as the glue catches up): a segment's intervals are
//! at least that one. A period change or a restart (`stop`, then `start`)
//! begins a segment, whose start time is kept: the one interval before it
//! counts as nothing. Beyond 8 segments the oldest merge, with their
//! shorter interval, and one more interval counted as nothing.
//!
//! What the bits cannot tell is not guessed:
//!
//! - a round that lost or skipped a root (or that a nested guest's roots
//!   were skipped in) vouches for nothing: idle times run to the latest
//!   round that walked every root;
//! - a round that cleared bits without flushing the TLBs (`flush=none`)
//!   breaks the sampling: an access through a cached translation sets no
//!   bit, so the bits are sampled again only from the round after the
//!   next flush;
//! - a bit not sampled for a while (`mode=dirty`, then `both`; dirty
//!   logging) is idle only since it has been sampled again, and no longer
//!   "never" set.
//!
//! Accessed bits other agers clear (DAMON, MGLRU, reclaim through KVM's
//! aging) are accesses the sampler misses, here as in the heat map: see
//! `docs/procfs.md`.

use core::fmt;

use super::cell::{Idle, State};
use super::granule::{parse_decimal, DecimalError, Track};
use super::store::StoreView;
use crate::ept_walk::GfnRange;

/// The most bins a VM can have.
pub const MAX_IDLE_BINS: usize = 16;

/// The longest bin: a week, in ms.
pub const IDLE_BIN_MAX_MS: u64 = 7 * 24 * 3_600_000;

/// Units of a bin's spelling, largest first.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// The ages a VM's `idle` file counts memory against, in ms, increasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdleBins {
    ms: [u32; MAX_IDLE_BINS],
    len: u8,
}

/// Why a list of bins is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinsError {
    /// No bin, or an empty one between commas.
    Empty,
    /// More than [`MAX_IDLE_BINS`].
    TooMany,
    /// A bin that is not a number and a unit (`ms`, `s`, `m`, `h`).
    BadSpelling,
    /// A bin of 0 or longer than [`IDLE_BIN_MAX_MS`].
    OutOfRange,
    /// Bins not in increasing order, or one repeated.
    NotIncreasing,
}

impl fmt::Display for BinsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinsError::Empty => "an empty bin",
            BinsError::TooMany => "more than 16 bins",
            BinsError::BadSpelling => "a bin is not a number and a unit (ms, s, m, h)",
            BinsError::OutOfRange => "a bin is 0 or longer than a week",
            BinsError::NotIncreasing => "bins must increase",
        })
    }
}

impl IdleBins {
    /// 1 s, 10 s, 1 min, 10 min, 1 h.
    pub const DEFAULT: IdleBins = {
        let mut ms = [0u32; MAX_IDLE_BINS];
        ms[0] = 1_000;
        ms[1] = 10_000;
        ms[2] = 60_000;
        ms[3] = 600_000;
        ms[4] = 3_600_000;
        IdleBins { ms, len: 5 }
    };

    /// The bins, ms, increasing.
    #[inline]
    pub fn as_slice(&self) -> &[u32] {
        self.ms.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Bins from `ms`: 1 to [`MAX_IDLE_BINS`] of them, each 1 ms to
    /// [`IDLE_BIN_MAX_MS`], increasing.
    pub fn new(ms: &[u64]) -> Result<IdleBins, BinsError> {
        if ms.is_empty() {
            return Err(BinsError::Empty);
        }
        let mut bins = IdleBins {
            ms: [0; MAX_IDLE_BINS],
            len: 0,
        };
        let mut last = 0u64;
        for (slot, &v) in bins.ms.iter_mut().zip(ms) {
            if v == 0 || v > IDLE_BIN_MAX_MS {
                return Err(BinsError::OutOfRange);
            }
            if v <= last {
                return Err(BinsError::NotIncreasing);
            }
            last = v;
            // At most a week: fits.
            *slot = v as u32;
        }
        if ms.len() > MAX_IDLE_BINS {
            return Err(BinsError::TooMany);
        }
        // At most 16.
        bins.len = ms.len() as u8;
        Ok(bins)
    }

    /// Parses bins as [`IdleBins`]'s `Display` writes them: comma-separated
    /// durations, each a decimal number (no sign, no leading zero) and a
    /// unit, `ms`, `s`, `m` or `h` (`1s,10s,1m,10m,1h`).
    pub fn parse(text: &str) -> Result<IdleBins, BinsError> {
        let mut ms = [0u64; MAX_IDLE_BINS];
        let mut n = 0usize;
        for word in text.split(',') {
            let slot = ms.get_mut(n).ok_or(BinsError::TooMany)?;
            *slot = parse_duration(word)?;
            n = n.saturating_add(1);
        }
        IdleBins::new(ms.get(..n).unwrap_or(&[]))
    }
}

/// One bin's duration: digits then a unit.
fn parse_duration(word: &str) -> Result<u64, BinsError> {
    if word.is_empty() {
        return Err(BinsError::Empty);
    }
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = (word.get(..digits), word.get(digits..));
    let (Some(number), Some(unit)) = (number, unit) else {
        return Err(BinsError::BadSpelling);
    };
    let scale = UNITS
        .iter()
        .find_map(|&(u, scale)| (u == unit).then_some(scale))
        .ok_or(BinsError::BadSpelling)?;
    let n = parse_decimal(number).map_err(|e| match e {
        DecimalError::Overflow => BinsError::OutOfRange,
        _ => BinsError::BadSpelling,
    })?;
    n.checked_mul(scale).ok_or(BinsError::OutOfRange)
}

/// Writes `ms` in the largest unit that divides it (`90s`, `1m`, `1500ms`).
pub fn write_duration(f: &mut dyn fmt::Write, ms: u64) -> fmt::Result {
    let (unit, scale) = UNITS
        .iter()
        .copied()
        .find(|&(_, scale)| ms.checked_rem(scale) == Some(0))
        .unwrap_or(("ms", 1));
    write!(f, "{}{unit}", ms.checked_div(scale).unwrap_or(ms))
}

impl fmt::Display for IdleBins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &ms) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write_duration(f, u64::from(ms))?;
        }
        Ok(())
    }
}

/// Rounds begun one after another with one period, none of them long
/// after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Segment {
    /// Its first round.
    first: u64,
    /// When its first round began.
    start_ns: u64,
    /// The period its rounds were begun with, ms.
    period_ms: u32,
    /// The shortest interval between two of its consecutive rounds' starts,
    /// ns, as measured (`u64::MAX` while it has one round); every interval
    /// in it is at least this, but `short` of them.
    min_interval_ns: u64,
    /// Intervals that may be shorter (segments merged for room).
    short: u64,
}

/// Segments a clock keeps; older ones are merged.
const SEGMENTS: usize = 8;

/// What a heat map needs to turn rounds into a lower bound of time (module
/// docs, "From rounds to time").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    segments: [Segment; SEGMENTS],
    len: usize,
    /// The period the next round is begun with, ms.
    period_ms: u32,
    /// The latest round begun and its start.
    round: u64,
    start_ns: u64,
    /// The latest round that vouches for the granules' bits (every root
    /// walked) and its start: idle times run to it.
    vouched: u64,
    vouched_ns: u64,
    /// The first round of the bits' current sampling without a gap.
    accessed_since: Option<u64>,
    dirty_since: Option<u64>,
    /// A round cleared bits without flushing the TLBs since: translations
    /// cached before may still be used without setting a bit, so what a
    /// round finds clear proves nothing until a round flushes, and the
    /// bits' sampling begins again after it.
    stale: bool,
}

impl Clock {
    /// Sets the period the next rounds are begun with.
    #[inline]
    pub fn set_period(&mut self, period_ms: u32) {
        self.period_ms = period_ms;
    }

    /// Records that round number `round` began at `start_ns`, sampling
    /// `track`.
    pub fn begin_round(&mut self, round: u64, start_ns: u64, track: Track) {
        let interval = start_ns.saturating_sub(self.start_ns);
        let half_period = u64::from(self.period_ms).saturating_mul(500_000);
        let period_ms = self.period_ms;
        let last = self
            .len
            .checked_sub(1)
            .and_then(|i| self.segments.get_mut(i));
        match last {
            // Rounds of the same period whose starts keep at least half a
            // period apart: the same segment, its shortest interval
            // measured. A shorter one is a restart (`stop`, `start`).
            Some(last) if last.period_ms == period_ms && interval >= half_period.max(1) => {
                last.min_interval_ns = last.min_interval_ns.min(interval);
            }
            _ => {
                if self.len == SEGMENTS {
                    self.merge_oldest();
                }
                if let Some(slot) = self.segments.get_mut(self.len) {
                    *slot = Segment {
                        first: round,
                        start_ns,
                        period_ms,
                        min_interval_ns: u64::MAX,
                        short: 0,
                    };
                    self.len = self.len.saturating_add(1);
                }
            }
        }
        self.round = round;
        self.start_ns = start_ns;
        let stale = self.stale;
        let since = |since: Option<u64>, on: bool| match (since, on, stale) {
            (_, false, _) | (_, _, true) => None,
            (None, true, false) => Some(round),
            (Some(first), true, false) => Some(first),
        };
        self.accessed_since = since(self.accessed_since, track.accessed());
        self.dirty_since = since(self.dirty_since, track.dirty());
    }

    /// Records the end of the latest round: whether it walked every root
    /// (a root lost or skipped leaves granules unvisited, whose bits that
    /// round says nothing about: idle times run to the round before),
    /// whether it cleared any bit, and whether it flushed the TLBs after.
    /// Bits cleared without a flush leave translations cached that an
    /// access may use without setting a bit: the rounds after prove
    /// nothing until one flushes. A round that clears nothing needs no
    /// flush (the glue does none): no translation was cached since the
    /// last flush without setting a bit it would have cleared.
    pub fn end_round(&mut self, complete: bool, cleared: bool, flushed: bool) {
        if complete {
            self.vouched = self.round;
            self.vouched_ns = self.start_ns;
        }
        if flushed {
            self.stale = false;
        } else if cleared {
            self.stale = true;
        }
    }

    /// Makes room: the two oldest segments become one, with the shorter
    /// interval and the one between them counted as possibly short.
    fn merge_oldest(&mut self) {
        let (Some(&a), Some(&b)) = (self.segments.first(), self.segments.get(1)) else {
            return;
        };
        let merged = Segment {
            first: a.first,
            start_ns: a.start_ns,
            period_ms: a.period_ms,
            min_interval_ns: a.min_interval_ns.min(b.min_interval_ns),
            short: a.short.saturating_add(b.short).saturating_add(1),
        };
        self.segments.copy_within(1.., 0);
        if let Some(first) = self.segments.first_mut() {
            *first = merged;
        }
        self.len = self.len.saturating_sub(1);
    }

    /// Dirty bits stop being sampled part way through the running round
    /// ([`HeatMap::stop_dirty`](super::HeatMap::stop_dirty)): not written
    /// since sampling began again, not before.
    #[inline]
    pub fn stop_dirty(&mut self) {
        self.dirty_since = None;
    }

    /// The latest round begun (0 before the first).
    #[inline]
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The latest round that vouches for the bits (0 before the first).
    #[inline]
    pub fn vouched(&self) -> u64 {
        self.vouched
    }

    /// At least how many ms passed from the start of round `from` to the
    /// start of the latest round that vouches ([`Clock::vouched`]; 0 if
    /// `from` is not before it).
    pub fn ms_since(&self, from: u64) -> u64 {
        let to = self.vouched;
        if from >= to {
            return 0;
        }
        let segments = self.segments.get(..self.len).unwrap_or(&[]);
        // The segment holding `from`; a round older than every segment is
        // taken as the oldest segment's first, which is later: less time.
        let k = segments.iter().rposition(|s| s.first <= from).unwrap_or(0);
        let Some(seg) = segments.get(k) else {
            return 0;
        };
        let from = from.max(seg.first);
        let ns = |intervals: u64| {
            intervals
                .saturating_sub(seg.short)
                .saturating_mul(seg.min_interval_ns)
        };
        let ns = match segments.get(k.saturating_add(1)).filter(|n| n.first <= to) {
            // `to` in the same segment: its intervals from `from`.
            None => ns(to.saturating_sub(from)),
            // Its intervals up to its last round, the one to the next
            // segment counted as nothing, then the clock from the next
            // segment's start on.
            Some(next) => ns(next.first.saturating_sub(1).saturating_sub(from))
                .saturating_add(self.vouched_ns.saturating_sub(next.start_ns)),
        };
        ns / 1_000_000
    }

    /// The latest round `from` such that at least `ms` passed from its
    /// start to the latest vouching round's ([`Clock::ms_since`]), if any
    /// round is that old.
    pub fn latest_round_before(&self, ms: u64) -> Option<u64> {
        if self.vouched == 0 || self.ms_since(1) < ms {
            return None;
        }
        // `ms_since` does not increase with `from`: the last `from` in
        // 1..=vouched with `ms_since(from) >= ms`.
        let (mut lo, mut hi) = (1u64, self.vouched);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo).saturating_add(1) / 2);
            if self.ms_since(mid) >= ms {
                lo = mid;
            } else {
                hi = mid.saturating_sub(1);
            }
        }
        Some(lo)
    }

    /// The first round since which the accessed (dirty) bit has been
    /// sampled without a gap, if it is now.
    #[inline]
    pub fn sampled_since(&self, dirty: bool) -> Option<u64> {
        if dirty {
            self.dirty_since
        } else {
            self.accessed_since
        }
    }
}

/// How long a granule's bit has surely not been found set, in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdleAge {
    /// Not since the bit has been sampled.
    Never,
    /// For at least this many ms (0: found set in the latest round, or
    /// too recently to say more).
    Ms(u64),
}

impl fmt::Display for IdleAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdleAge::Never => f.write_str("never"),
            IdleAge::Ms(ms) => write!(f, "{ms}"),
        }
    }
}

impl IdleAge {
    /// Parses [`IdleAge`]'s `Display`: `never` or a decimal number.
    pub fn parse(word: &str) -> Option<IdleAge> {
        if word == "never" {
            Some(IdleAge::Never)
        } else {
            parse_decimal(word).ok().map(IdleAge::Ms)
        }
    }
}

impl Clock {
    /// How long a bit whose trace says `idle` has surely gone unset, if the
    /// bit (`dirty` or accessed) is sampled now.
    pub fn idle_age(&self, idle: Idle, dirty: bool) -> Option<IdleAge> {
        Some(match self.idle_from(idle, dirty)? {
            Since::Never => IdleAge::Never,
            Since::Round(from) => IdleAge::Ms(self.ms_since(from)),
        })
    }

    /// Since the start of which round a bit whose trace says `idle` has
    /// surely gone unset, if the bit (`dirty` or accessed) is sampled now:
    /// what [`Clock::idle_age`] and [`count`] measure from.
    fn idle_from(&self, idle: Idle, dirty: bool) -> Option<Since> {
        let since = self.sampled_since(dirty)?;
        Some(match idle {
            // Never found set, and sampled from the first round on.
            Idle::SinceStart if since <= 1 => Since::Never,
            // Not found set since sampling began again.
            Idle::SinceStart => Since::Round(since),
            // Set at most `min` rounds ago: idle since the start of the
            // round after, and not before the bit was sampled.
            Idle::Rounds { min, .. } => {
                Since::Round(self.round.saturating_sub(min).saturating_add(1).max(since))
            }
        })
    }
}

/// Where a bit's idle time starts ([`Clock::idle_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Since {
    /// Never found set since sampling began: idle since round 1.
    Never,
    /// Idle since the start of this round.
    Round(u64),
}

/// Bytes of mapped memory idle for at least each bin, for one bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleBytes {
    /// Per bin, in the order of the bins.
    pub bins: [u64; MAX_IDLE_BINS],
    /// Never found set since sampling began.
    pub never: u64,
}

/// What a VM's `idle` file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleCounts {
    /// Rounds begun.
    pub rounds: u64,
    /// At least how long sampling has run, ms (first round to latest).
    pub sampled_ms: u64,
    /// Bytes mapped (present in the last round that said).
    pub mapped: u64,
    /// The bins.
    pub bins: IdleBins,
    /// Not accessed for at least each bin, if accessed bits are sampled.
    pub accessed: Option<IdleBytes>,
    /// Not written for at least each bin, if dirty bits are sampled.
    pub written: Option<IdleBytes>,
}

/// What a granule's idle age is compared with: from which round on each
/// bin counts, and since when the bit has been sampled.
struct Limits {
    /// A granule idle since the start of a round at or before `from[b]`
    /// is idle for at least bin `b` (`None`: no round is that old).
    from: [Option<u64>; MAX_IDLE_BINS],
    bins: usize,
}

impl Limits {
    fn new(clock: &Clock, bins: &IdleBins) -> Limits {
        let mut from = [None; MAX_IDLE_BINS];
        for (slot, &ms) in from.iter_mut().zip(bins.as_slice()) {
            *slot = clock.latest_round_before(u64::from(ms));
        }
        Limits {
            from,
            bins: bins.as_slice().len(),
        }
    }

    /// Adds `bytes` idle since `since` to `out`.
    fn add(&self, out: &mut IdleBytes, since: Since, bytes: u64) {
        let from = match since {
            Since::Never => {
                out.never = out.never.saturating_add(bytes);
                1
            }
            Since::Round(from) => from,
        };
        for (count, limit) in out.bins.iter_mut().zip(&self.from).take(self.bins) {
            if limit.is_some_and(|l| from <= l) {
                *count = count.saturating_add(bytes);
            }
        }
    }
}

/// Counts the mapped memory of `view` idle for at least each of `bins`,
/// with `clock`'s times. O(blocks + cells of dense blocks).
pub fn count(view: &StoreView<'_>, clock: &Clock, bins: &IdleBins) -> IdleCounts {
    let layout = *view.layout();
    let width = layout.width();
    let window = layout.window();
    let limits = Limits::new(clock, bins);
    let span = layout.span();
    let mut accessed = clock.sampled_since(false).map(|_| IdleBytes::default());
    let mut written = clock.sampled_since(true).map(|_| IdleBytes::default());
    let mut mapped = 0u64;
    view.for_each_run(|first, cells, cell| {
        if !matches!(cell.current(), State::Present(_)) {
            return;
        }
        let last = first.saturating_add(cells).saturating_sub(1);
        let start = layout.granule_range(first).start.max(span.start);
        let end = layout.granule_range(last).end.min(span.end);
        let bytes = GfnRange::new(start, end).pages().saturating_mul(4096);
        mapped = mapped.saturating_add(bytes);
        for (out, trace, dirty) in [
            (&mut accessed, cell.accessed, false),
            (&mut written, cell.dirty, true),
        ] {
            if let (Some(out), Some(since)) =
                (out, clock.idle_from(trace.idle(width, window), dirty))
            {
                limits.add(out, since, bytes);
            }
        }
    });
    IdleCounts {
        rounds: view.rounds(),
        sampled_ms: clock.ms_since(1),
        mapped,
        bins: *bins,
        accessed,
        written,
    }
}
