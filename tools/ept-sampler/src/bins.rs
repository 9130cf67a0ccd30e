// SPDX-License-Identifier: GPL-2.0

//! A heat map folded onto a fixed number of address bins: what every view
//! draws (a terminal row of cells, a strip in `top`, the x axis of a
//! picture). Pure and exact: a bin's values are the page-weighted means of
//! the runs that overlap it, so a bin half hot and half cold shows half
//! the heat, never "hot".

use ept_core::heat::State;
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
        for bin in bins.iter_mut().take(last).skip(first) {
            let overlap = e.min(bin.end).saturating_sub(s.max(bin.start));
            if overlap == 0 {
                continue;
            }
            let w = overlap as f64 / (bin.end - bin.start).max(1) as f64;
            bin.present += present * w;
            bin.hole += hole * w;
            bin.accessed += acc * present * w;
            bin.dirty += dirty * present * w;
        }
    }
    bins
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
}
