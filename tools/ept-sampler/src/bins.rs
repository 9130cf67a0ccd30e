// SPDX-License-Identifier: GPL-2.0

//! A heat map folded onto a fixed number of address bins: what every view
//! draws (a terminal row of cells, a strip in `top`, the x axis of a
//! picture). Pure and exact: a bin's values are the page-weighted means of
//! the runs that overlap it, so a bin half hot and half cold shows half
//! the heat, never "hot".

use ept_core::heat::{IdleAge, State};
use ept_core::procfs::heatmap::Run;

/// One address bin.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bin {
    /// First guest-physical address of the bin.
    pub start: u64,
    /// Address after the bin.
    pub end: u64,
    /// Fraction of the bin's bytes mapped by present leaves (0..=1).
    pub present: f64,
    /// Fraction of the bin's bytes that are holes (not mapped).
    pub hole: f64,
    /// Mean over the bin's bytes of (rounds accessed / window), 0..=1.
    /// Bytes not present count as 0.
    pub accessed: f64,
    /// Same for dirty rounds.
    pub dirty: f64,
    /// Mean [`freshness`] of the accessed bits over the bin's mapped
    /// bytes whose idle age is known; `None` when none is.
    pub fresh_accessed: Option<f64>,
    /// The same for the dirty bits.
    pub fresh_dirty: Option<f64>,
}

/// What the views colour memory by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorBy {
    /// Heat: the share of the window's rounds each page was touched in.
    #[default]
    Heat,
    /// Idle age: how long since each page was last touched (1 h and
    /// longer, or never, as cold).
    Age,
}

/// The idle age at which [`freshness`] reaches 0, ms.
pub const AGE_SCALE_MS: u64 = 3_600_000;

/// The unit of [`freshness`]'s log scale, ms: ages well below it (the
/// latest rounds) all look fresh.
const AGE_UNIT_MS: f64 = 100.0;

/// How fresh memory idle for `age` is, 0..=1: 1 when touched just now,
/// falling with the logarithm of the idle time (1 s about 0.77, 10 s
/// 0.56, 1 min 0.39, 10 min 0.17), 0 at [`AGE_SCALE_MS`] and beyond and
/// for memory never touched: one scale for ages from a round to an hour.
pub fn freshness(age: IdleAge) -> f64 {
    match age {
        IdleAge::Never => 0.0,
        IdleAge::Ms(ms) => {
            let top = (1.0 + AGE_SCALE_MS as f64 / AGE_UNIT_MS).ln();
            (1.0 - (1.0 + ms as f64 / AGE_UNIT_MS).ln() / top).clamp(0.0, 1.0)
        }
    }
}

/// The idle age of [`freshness`] `f` (the inverse, for legends), ms.
pub fn age_of_freshness(f: f64) -> u64 {
    let top = (1.0 + AGE_SCALE_MS as f64 / AGE_UNIT_MS).ln();
    let ms = (((1.0 - f.clamp(0.0, 1.0)) * top).exp() - 1.0) * AGE_UNIT_MS;
    ms.round() as u64
}

impl Bin {
    /// The level the bin shows for one bit (`dirty`) when coloured `by`:
    /// `None` when nothing in it is mapped, or by age when no mapped byte
    /// of it has a known age (never drawn as old: unknown is not idle).
    pub fn level(&self, dirty: bool, by: ColorBy) -> Option<f64> {
        if self.present <= 0.0 {
            return None;
        }
        match (by, dirty) {
            (ColorBy::Heat, false) => Some(self.accessed),
            (ColorBy::Heat, true) => Some(self.dirty),
            (ColorBy::Age, false) => self.fresh_accessed,
            (ColorBy::Age, true) => self.fresh_dirty,
        }
    }
}

/// Folds `runs` onto `n` equal bins over `start..end` (`end > start`,
/// `n > 0`; otherwise no bins). Runs outside the span are ignored.
pub fn fold(runs: &[Run], start: u64, end: u64, n: usize) -> Vec<Bin> {
    if end <= start || n == 0 {
        return Vec::new();
    }
    let span = (end - start) as f64;
    let width = span / n as f64;
    let mut bins: Vec<Bin> = (0..n)
        .map(|i| Bin {
            start: start + (width * i as f64) as u64,
            end: if i + 1 == n {
                end
            } else {
                start + (width * (i + 1) as f64) as u64
            },
            ..Bin::default()
        })
        .collect();
    // Per bin and bit: the sum of freshness x weight, and the weight, of
    // mapped bytes with a known age.
    let mut fresh = vec![[0.0f64; 4]; n];
    for run in runs {
        let (s, e) = (run.start.max(start), run.end.min(end));
        if e <= s {
            continue;
        }
        let window = f64::from(run.window.max(1));
        let acc = run.accessed.map_or(0.0, |a| f64::from(a) / window);
        let dirty = run.dirty.map_or(0.0, |d| f64::from(d) / window);
        let (present, hole) = match run.state {
            State::Present(_) => (1.0, 0.0),
            State::Hole => (0.0, 1.0),
            State::Unknown => (0.0, 0.0),
        };
        let first = (((s - start) as f64) / width) as usize;
        let last = ((((e - start) as f64) / width).ceil() as usize).min(n);
        let ages = [run.idle.map(freshness), run.unwritten.map(freshness)];
        for (bin, fresh) in bins.iter_mut().zip(fresh.iter_mut()).take(last).skip(first) {
            let overlap = e.min(bin.end).saturating_sub(s.max(bin.start));
            if overlap == 0 {
                continue;
            }
            let w = overlap as f64 / (bin.end - bin.start).max(1) as f64;
            bin.present += present * w;
            bin.hole += hole * w;
            bin.accessed += acc * present * w;
            bin.dirty += dirty * present * w;
            for (bit, age) in ages.iter().enumerate() {
                if let Some(f) = age {
                    fresh[2 * bit] += f * present * w;
                    fresh[2 * bit + 1] += present * w;
                }
            }
        }
    }
    for (bin, f) in bins.iter_mut().zip(&fresh) {
        let mean = |sum: f64, weight: f64| (weight > 0.0).then(|| sum / weight);
        bin.fresh_accessed = mean(f[0], f[1]);
        bin.fresh_dirty = mean(f[2], f[3]);
    }
    bins
}

/// Whether any mapped run of `runs` has an idle age for the bit
/// (`dirty`): a heat map from a module with idle ages, sampling that bit.
pub fn has_ages(runs: &[Run], dirty: bool) -> bool {
    runs.iter()
        .filter(|r| matches!(r.state, State::Present(_)))
        .any(|r| if dirty { r.unwritten } else { r.idle }.is_some())
}

/// Bytes of mapped memory accessed (or, with `dirty`, dirtied) in at
/// least one round of the heat map's window: `top`'s HOT and DIRTY MiB.
pub fn hot_bytes(runs: &[Run], dirty: bool) -> u64 {
    runs.iter()
        .filter(|r| matches!(r.state, State::Present(_)))
        .filter(|r| if dirty { r.dirty } else { r.accessed }.is_some_and(|n| n > 0))
        .map(|r| r.end.saturating_sub(r.start))
        .sum()
}

/// The address span a heat map covers: from its first run's start to its
/// last run's end (`None` with no runs).
pub fn span(runs: &[Run]) -> Option<(u64, u64)> {
    Some((runs.first()?.start, runs.last()?.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<Run> {
        let (_, runs) = ept_core::procfs::heatmap::parse(text).expect("heatmap");
        runs.collect::<Result<_, _>>().expect("runs")
    }

    #[test]
    fn hot_bytes_count_mapped_runs_touched_in_the_window() {
        // 1 MiB read, 2 MiB written, a 4 MiB hole, 1 MiB mapped and idle.
        let r = runs(
            "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 5
# rounds 10
# mode both
# columns start end granule leaf accessed dirty window slot
0x000000000000 0x000000100000 4K 4K 5 0 5 0
0x000000100000 0x000000300000 4K 4K 3 2 5 0
0x000000300000 0x000000700000 4K hole 0 0 5 -
0x000000700000 0x000000800000 4K 4K 0 0 5 0
",
        );
        assert_eq!(hot_bytes(&r, false), 3 << 20);
        assert_eq!(hot_bytes(&r, true), 2 << 20);
    }

    #[test]
    fn a_half_hot_bin_shows_half_the_heat() {
        let r = runs(
            "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 4
# rounds 10
# mode accessed
# columns start end granule leaf accessed dirty window slot
0x000000000000 0x000000001000 4K 4K 4 - 4 0
0x000000001000 0x000000002000 4K 4K 0 - 4 0
0x000000002000 0x000000004000 4K hole 0 - 4 -
",
        );
        let b = fold(&r, 0, 0x4000, 2);
        assert_eq!((b[0].start, b[0].end, b[1].end), (0, 0x2000, 0x4000));
        assert_eq!((b[0].present, b[0].accessed), (1.0, 0.5));
        assert_eq!((b[1].present, b[1].hole), (0.0, 1.0));
    }

    #[test]
    fn freshness_falls_with_the_log_of_the_idle_age() {
        let f = |ms: u64| freshness(IdleAge::Ms(ms));
        assert_eq!(f(0), 1.0);
        assert_eq!(freshness(IdleAge::Never), 0.0);
        assert_eq!(f(AGE_SCALE_MS), 0.0);
        assert_eq!(f(u64::MAX), 0.0);
        let mut last = 1.0;
        for ms in [100, 1_000, 10_000, 60_000, 600_000] {
            assert!(f(ms) < last && f(ms) > 0.0, "{ms} ms: {}", f(ms));
            last = f(ms);
            // The legends' inverse gives the age back (to a ms).
            assert!(age_of_freshness(f(ms)).abs_diff(ms) <= 1, "{ms}");
        }
        // Each tenfold of age costs about the same (log scale).
        let (a, b) = (f(1_000) - f(10_000), f(10_000) - f(100_000));
        assert!((a - b).abs() < 0.02, "{a} {b}");
    }

    #[test]
    fn a_bin_of_mixed_ages_shows_their_mean_freshness_and_unknown_ages_do_not_count() {
        let r = runs(
            "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 4
# rounds 10
# mode both
# columns start end granule leaf accessed dirty window slot idle_ms unwritten_ms
0x000000000000 0x000000001000 4K 4K 4 0 4 0 0 never
0x000000001000 0x000000002000 4K 4K 0 0 4 0 never -
0x000000002000 0x000000003000 4K hole 0 0 4 - - -
0x000000003000 0x000000004000 4K 4K 0 0 4 0 - -
",
        );
        let b = fold(&r, 0, 0x4000, 2);
        assert_eq!(b[0].fresh_accessed, Some(0.5), "just now and never");
        assert_eq!(
            b[0].fresh_dirty,
            Some(0.0),
            "only the first page's age is known"
        );
        assert_eq!(b[1].fresh_accessed, None, "a hole and an unknown age");
        assert_eq!(b[1].level(false, ColorBy::Age), None, "unknown is not old");
        assert_eq!(b[0].level(false, ColorBy::Heat), Some(0.5));
        assert!(has_ages(&r, false) && has_ages(&r, true));
        assert!(!has_ages(&r[2..], false));
    }
}
