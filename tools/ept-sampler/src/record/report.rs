// SPDX-License-Identifier: GPL-2.0

//! `report`: the figures of a recording over time, per VM, and the
//! pictures of a whole recording.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bins::hot_bytes;
use crate::model::{HistoryRound, Snapshot, VmSnapshot};
use crate::picture::{HeatPanel, Picture, TimePanel};

/// Bytes in MiB, as the rows show them.
fn mib(bytes: u64) -> f64 {
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
