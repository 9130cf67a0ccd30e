// SPDX-License-Identifier: GPL-2.0

//! `report`: the figures of a recording over time, per VM, and the
//! pictures of a whole recording.

use std::collections::BTreeMap;

use serde::Serialize;

use ept_core::heat::IdleBytes;
use ept_core::procfs::idle::IdleFile;

use crate::bins::hot_bytes;
use crate::model::{HistoryRound, Snapshot, VmSnapshot};
use crate::picture::{HeatPanel, IdlePanel, Picture, TimePanel};

/// Bytes in MiB, as the rows and tables show them.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// One row of a VM's table: the VM in one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// When the snapshot was taken, ms since the Unix epoch.
    pub unix_ms: u64,
    /// Seconds since the recording's first snapshot.
    pub t_s: f64,
    /// Rounds the sampler had done (`stats`).
    pub rounds: Option<u64>,
    /// History rounds first seen in this snapshot (the rounds since the
    /// previous row; every kept round for the first row).
    pub new_rounds: usize,
    /// MiB mapped by pages accessed in at least one round of the heat
    /// map's window.
    pub hot_mib: Option<f64>,
    /// MiB mapped by pages dirtied in at least one round of the window.
    pub dirty_mib: Option<f64>,
    /// Working set: mean MiB accessed per round, over the new rounds.
    pub ws_mib: Option<f64>,
    /// Dirty rate in MB/s (10^6 bytes/s) over the new rounds.
    pub dirty_mb_s: Option<f64>,
    /// Mean walk time of the new rounds, ms.
    pub walk_ms: Option<f64>,
    /// The VM's `idle` file, if the module had one.
    pub idle: Option<IdleRow>,
}

/// A VM's `idle` file in one row: how much memory has gone how long
/// without an access, and without a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdleRow {
    /// The bins, ms, increasing.
    pub bins_ms: Vec<u32>,
    /// Bytes mapped.
    pub mapped_bytes: u64,
    /// Bytes not accessed for at least each bin (as the file says: each
    /// figure counts all memory at least that idle), if accessed bits are
    /// sampled and their idle time is known.
    pub not_accessed: Option<IdleColumn>,
    /// The same for writes.
    pub not_written: Option<IdleColumn>,
}

/// One bit's figures of an [`IdleRow`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdleColumn {
    /// Bytes idle for at least each bin.
    pub at_least: Vec<u64>,
    /// Bytes never found set since sampling began.
    pub never: u64,
}

impl IdleRow {
    /// The row of an `idle` file.
    pub fn of(file: &IdleFile) -> IdleRow {
        let c = &file.counts;
        let bins = c.bins.as_slice();
        let column = |b: &Option<IdleBytes>| {
            b.as_ref().map(|b| IdleColumn {
                at_least: b.bins.iter().take(bins.len()).copied().collect(),
                never: b.never,
            })
        };
        IdleRow {
            bins_ms: bins.to_vec(),
            mapped_bytes: c.mapped,
            not_accessed: column(&c.accessed),
            not_written: column(&c.written),
        }
    }

    /// The histogram of one bit (`written`: of writes): bytes touched
    /// within the first bin, then between each bin and the next, then
    /// idle for at least the last bin; one more entry than bins, adding up
    /// to the mapped bytes. The file's figures are lower bounds, each
    /// counted on its own; a figure larger than the one before it (which
    /// the module does not write) counts as the one before.
    pub fn histogram(&self, written: bool) -> Option<Vec<u64>> {
        let col = if written {
            self.not_written.as_ref()
        } else {
            self.not_accessed.as_ref()
        }?;
        let mut out = Vec::with_capacity(col.at_least.len() + 1);
        let mut above = self.mapped_bytes;
        for &n in &col.at_least {
            let n = n.min(above);
            out.push(above - n);
            above = n;
        }
        out.push(above);
        Some(out)
    }
}

/// The names of a histogram's bands for `bins_ms`: `<1s`, `1s-10s`, ...,
/// `>=1h`.
pub fn band_names(bins_ms: &[u32]) -> Vec<String> {
    let d = |ms: u32| crate::render::text::duration_text(u64::from(ms));
    let mut out = Vec::with_capacity(bins_ms.len() + 1);
    for (i, &ms) in bins_ms.iter().enumerate() {
        out.push(match i.checked_sub(1).and_then(|j| bins_ms.get(j)) {
            None => format!("<{}", d(ms)),
            Some(&lo) => format!("{}-{}", d(lo), d(ms)),
        });
    }
    if let Some(&last) = bins_ms.last() {
        out.push(format!(">={}", d(last)));
    }
    out
}

/// One VM over a recording.
#[derive(Clone, Debug, Serialize)]
pub struct VmSeries {
    /// `<pid>-<fd>`.
    pub vm: String,
    /// Guest memory, bytes (from its last row in `vms`).
    pub memory_bytes: u64,
    /// One row per snapshot in which the VM had a directory.
    pub rows: Vec<Row>,
    /// Every history round seen, oldest first, each once.
    #[serde(skip)]
    pub rounds: Vec<HistoryRound>,
    /// The VM in its last snapshot.
    #[serde(skip)]
    pub last: Option<VmSnapshot>,
}

/// The series of every VM with a directory in some snapshot, in order of
/// first appearance; `only` keeps the named VMs.
pub fn series(snaps: &[Snapshot], only: &[String]) -> Vec<VmSeries> {
    let t0 = snaps.first().map_or(0, |s| s.unix_ms);
    let mut out: Vec<VmSeries> = Vec::new();
    // Rounds already seen per VM, by (start_ns, round): round numbers
    // start again at 1 when sampling restarts, start times do not repeat.
    let mut seen: BTreeMap<String, BTreeMap<(u64, u64), HistoryRound>> = BTreeMap::new();
    for snap in snaps {
        for vm in &snap.vms {
            let id = vm.row.vm.to_string();
            if !only.is_empty() && !only.contains(&id) {
                continue;
            }
            if vm.config.is_none() && vm.stats.is_none() && vm.heatmap.is_none() {
                continue;
            }
            let known = seen.entry(id.clone()).or_default();
            let mut new: Vec<&HistoryRound> = Vec::new();
            // The round before the first new one (start, number), for the
            // interval.
            let mut before: Option<(u64, u64)> = known.keys().next_back().copied();
            if let Some(h) = &vm.history {
                for r in &h.rounds {
                    let key = (r.record.start_ns, r.record.round);
                    if let std::collections::btree_map::Entry::Vacant(e) = known.entry(key) {
                        e.insert(r.clone());
                        new.push(r);
                    }
                }
            }
            new.sort_by_key(|r| r.record.start_ns);
            let ws_mib = (!new.is_empty()).then(|| {
                let pages: u64 = new.iter().map(|r| r.record.accessed_pages).sum();
                mib(pages.saturating_mul(4096)) / new.len() as f64
            });
            let walk_ms = (!new.is_empty()).then(|| {
                new.iter().map(|r| r.record.walk_ns as f64).sum::<f64>() / 1e6 / new.len() as f64
            });
            let dirty_tracked = new.iter().any(|r| r.record.track.dirty());
            let (mut bytes, mut ns) = (0u64, 0u64);
            for r in &new {
                // Only from the round just before: across rounds missing
                // from the recording the interval says nothing.
                let prev = before.filter(|&(start, round)| {
                    start < r.record.start_ns && round.checked_add(1) == Some(r.record.round)
                });
                if let Some((start, _)) = prev {
                    bytes = bytes.saturating_add(r.record.dirty_pages.saturating_mul(4096));
                    ns = ns.saturating_add(r.record.start_ns - start);
                }
                before = Some((r.record.start_ns, r.record.round));
            }
            let dirty_mb_s = (dirty_tracked && ns > 0).then(|| bytes as f64 * 1e3 / ns as f64);
            let (hot_mib, dirty_mib) = match &vm.heatmap {
                // The same figures as `top`'s HOT and DIRTY.
                Some((header, runs)) => (
                    header.mode.accessed().then(|| mib(hot_bytes(runs, false))),
                    header.mode.dirty().then(|| mib(hot_bytes(runs, true))),
                ),
                None => (None, None),
            };
            let row = Row {
                unix_ms: snap.unix_ms,
                t_s: snap.unix_ms.saturating_sub(t0) as f64 / 1e3,
                rounds: vm.stats.as_ref().map(|s| s.rounds),
                new_rounds: new.len(),
                hot_mib,
                dirty_mib,
                ws_mib,
                dirty_mb_s,
                walk_ms,
                idle: vm.idle.as_ref().map(IdleRow::of),
            };
            let i = match out.iter().position(|s| s.vm == id) {
                Some(i) => i,
                None => {
                    out.push(VmSeries {
                        vm: id.clone(),
                        memory_bytes: 0,
                        rows: Vec::new(),
                        rounds: Vec::new(),
                        last: None,
                    });
                    out.len() - 1
                }
            };
            let s = &mut out[i];
            s.memory_bytes = vm.row.memory_bytes;
            s.rows.push(row);
            s.last = Some(vm.clone());
        }
    }
    for s in &mut out {
        if let Some(known) = seen.remove(&s.vm) {
            let mut rounds: Vec<HistoryRound> = known.into_values().collect();
            rounds.sort_by_key(|r| r.record.start_ns);
            s.rounds = rounds;
        }
    }
    out
}

impl VmSeries {
    /// The idle histograms over the recording, of accessed bits if some
    /// snapshot has their ages, else of dirty bits, in the bins of the
    /// last snapshot that has them; snapshots with other bins (sampling
    /// restarted) or without known ages break the bands.
    pub fn idle_panel(&self) -> Option<IdlePanel> {
        let known = |written: bool| {
            self.rows
                .iter()
                .rev()
                .filter_map(|r| r.idle.as_ref())
                .find(|i| i.histogram(written).is_some())
        };
        let (last, written) = match known(false) {
            Some(last) => (last, false),
            None => (known(true)?, true),
        };
        let points = self
            .rows
            .iter()
            .map(|r| {
                let bands = r
                    .idle
                    .as_ref()
                    .filter(|i| i.bins_ms == last.bins_ms)
                    .and_then(|i| i.histogram(written));
                (r.t_s, bands)
            })
            .collect();
        Some(IdlePanel {
            what: if written { "write" } else { "access" },
            bands: band_names(&last.bins_ms),
            points,
        })
    }

    /// The picture of the whole recording: the heat map of the last
    /// snapshot and every history round seen. Rounds whose ring had
    /// another layout (sampling restarted with another span) than the
    /// last snapshot's are left out.
    pub fn picture(&self, name: &str) -> Picture {
        let Some(last) = &self.last else {
            return Picture::default();
        };
        let mut pic = Picture::from_vm(last);
        if let Some(h) = &last.history {
            let regions = h.rounds.last().map_or(0, |r| r.accessed.len());
            let rounds: Vec<HistoryRound> = self
                .rounds
                .iter()
                .filter(|r| r.accessed.len() == regions)
                .cloned()
                .collect();
            pic.history = (!rounds.is_empty()).then(|| TimePanel {
                base: h.header.base,
                region: h.header.region.bytes(),
                rounds,
            });
        }
        pic.idle = self.idle_panel();
        if let Some(HeatPanel { note, .. }) = pic.heat.as_mut() {
            *note = format!("{note} (last snapshot)");
        }
        let span = match (self.rows.first(), self.rows.last()) {
            (Some(a), Some(b)) => b.t_s - a.t_s,
            _ => 0.0,
        };
        pic.title = format!(
            "{}: {name}, {} snapshots over {span:.1} s",
            pic.title,
            self.rows.len()
        );
        pic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    /// An `idle` file as the module writes it (docs/procfs.md).
    fn idle_row(text: &str) -> IdleRow {
        IdleRow::of(&IdleFile::parse(text).unwrap())
    }

    #[test]
    fn a_histogram_splits_the_mapped_memory_by_bin_and_adds_up() {
        let row = idle_row(
            "vm 72-4\nrounds 300\nsampled_ms 30000\nmapped_bytes 104857600\n\
             bins 1s,10s,1m\nnever 10485760 -\n\
             idle 1s 62914560 -\nidle 10s 20971520 -\nidle 1m 0 -\n",
        );
        // 100 MiB mapped: 60 idle >= 1 s, 20 of them >= 10 s, none >= 1 m.
        assert_eq!(
            row.histogram(false),
            Some(vec![40 * M, 40 * M, 20 * M, 0]),
            "<1s, 1s-10s, 10s-1m, >=1m"
        );
        assert_eq!(row.histogram(true), None, "dirty bits not sampled");
        assert_eq!(
            band_names(&row.bins_ms),
            ["<1s", "1s-10s", "10s-1m", ">=1m"]
        );
        assert_eq!(row.not_accessed.as_ref().unwrap().never, 10 * M);
    }

    #[test]
    fn a_histogram_never_goes_negative_on_figures_that_do_not_shrink() {
        let row = IdleRow {
            bins_ms: vec![1000, 2000],
            mapped_bytes: 10 * M,
            not_accessed: Some(IdleColumn {
                at_least: vec![4 * M, 6 * M],
                never: 0,
            }),
            not_written: Some(IdleColumn {
                at_least: vec![12 * M, M],
                never: 0,
            }),
        };
        assert_eq!(row.histogram(false), Some(vec![6 * M, 0, 4 * M]));
        assert_eq!(row.histogram(true), Some(vec![0, 9 * M, M]));
    }

    fn row(t_s: f64, idle: Option<IdleRow>) -> Row {
        Row {
            unix_ms: 0,
            t_s,
            rounds: None,
            new_rounds: 0,
            hot_mib: None,
            dirty_mib: None,
            ws_mib: None,
            dirty_mb_s: None,
            walk_ms: None,
            idle,
        }
    }

    #[test]
    fn the_idle_panel_keeps_the_last_bins_and_breaks_elsewhere() {
        let idle = |bins: Vec<u32>, a: Option<Vec<u64>>, w: Vec<u64>| IdleRow {
            bins_ms: bins,
            mapped_bytes: 8 * M,
            not_accessed: a.map(|at_least| IdleColumn { at_least, never: 0 }),
            not_written: Some(IdleColumn {
                at_least: w,
                never: 0,
            }),
        };
        let series = |rows: Vec<Row>| VmSeries {
            vm: "72-4".into(),
            memory_bytes: 8 * M,
            rows,
            rounds: Vec::new(),
            last: None,
        };
        let s = series(vec![
            // Other bins (sampling restarted): not on this panel.
            row(0.0, Some(idle(vec![500], Some(vec![M]), vec![M]))),
            row(1.0, None),
            row(
                2.0,
                Some(idle(vec![1000, 2000], Some(vec![4 * M, 2 * M]), vec![M, 0])),
            ),
            // Accessed ages unknown here.
            row(3.0, Some(idle(vec![1000, 2000], None, vec![M, 0]))),
            row(
                4.0,
                Some(idle(vec![1000, 2000], Some(vec![6 * M, 3 * M]), vec![M, 0])),
            ),
        ]);
        let p = s.idle_panel().unwrap();
        assert_eq!(p.what, "access");
        assert_eq!(p.bands, ["<1s", "1s-2s", ">=2s"]);
        let points: Vec<(f64, Option<Vec<u64>>)> = vec![
            (0.0, None),
            (1.0, None),
            (2.0, Some(vec![4 * M, 2 * M, 2 * M])),
            (3.0, None),
            (4.0, Some(vec![2 * M, 3 * M, 3 * M])),
        ];
        assert_eq!(p.points, points);
        // The last snapshot without accessed ages: the panel stays of
        // accesses, in the bins of the last snapshot that had them.
        let s = series(vec![
            row(0.0, Some(idle(vec![1000], Some(vec![M]), vec![3 * M]))),
            row(1.0, Some(idle(vec![1000], None, vec![5 * M]))),
        ]);
        let p = s.idle_panel().unwrap();
        assert_eq!(p.what, "access");
        assert_eq!(p.points, vec![(0.0, Some(vec![7 * M, M])), (1.0, None)]);
        // No snapshot with accessed ages: the panel is of writes.
        let s = series(vec![
            row(0.0, Some(idle(vec![1000], None, vec![3 * M]))),
            row(1.0, Some(idle(vec![1000], None, vec![5 * M]))),
        ]);
        let p = s.idle_panel().unwrap();
        assert_eq!(p.what, "write");
        assert_eq!(
            p.points,
            vec![
                (0.0, Some(vec![5 * M, 3 * M])),
                (1.0, Some(vec![3 * M, 5 * M]))
            ]
        );
        assert!(series(vec![row(0.0, None)]).idle_panel().is_none());
    }
}
