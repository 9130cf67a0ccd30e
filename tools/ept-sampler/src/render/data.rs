// SPDX-License-Identifier: GPL-2.0

//! `heatmap --format json|csv`: the runs of a heat map as records, for
//! scripts and spreadsheets. Addresses are decimal numbers; a value the
//! module shows as `-` (not tracked, no slot) is empty in CSV and `null`
//! in JSON.

use ept_core::heat::IdleAge;
use ept_core::procfs::heatmap::{Header, Run};
use ept_core::procfs::memslots::Memslot;

use crate::error::Error;
use crate::model::slot_bytes;

/// One run of equal granules.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// First guest-physical address.
    pub start: u64,
    /// Address after the run.
    pub end: u64,
    /// The heat map's granule (`4K`, `2M`, ...).
    pub granule: String,
    /// Leaf sizes mapping it (`4K`, `2M`, `4K+2M`), `hole` or `unknown`.
    pub leaf: String,
    /// Rounds of the window it was accessed in (none when not tracked).
    pub accessed: Option<u8>,
    /// Rounds of the window it was dirtied in (none when not tracked).
    pub dirty: Option<u8>,
    /// Rounds the window counts.
    pub window: u8,
    /// Memslot (none outside every slot).
    pub slot: Option<u32>,
    /// At least how long it has not been accessed, ms, or `never` (none
    /// when not tracked, or from a module without idle ages).
    pub idle_ms: Option<AgeRecord>,
    /// The same for writes.
    pub unwritten_ms: Option<AgeRecord>,
}

/// An idle age: a number of ms, or the word `never` (not since sampling
/// began).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum AgeRecord {
    /// At least this many ms.
    Ms(u64),
    /// `never`.
    Word(String),
}

impl From<IdleAge> for AgeRecord {
    fn from(age: IdleAge) -> Self {
        match age {
            IdleAge::Ms(ms) => AgeRecord::Ms(ms),
            IdleAge::Never => AgeRecord::Word("never".into()),
        }
    }
}

impl From<&Run> for RunRecord {
    fn from(r: &Run) -> Self {
        RunRecord {
            start: r.start,
            end: r.end,
            granule: r.granule.to_string(),
            leaf: r.state.as_str().to_string(),
            accessed: r.accessed,
            dirty: r.dirty,
            window: r.window,
            slot: r.slot,
            idle_ms: r.idle.map(AgeRecord::from),
            unwritten_ms: r.unwritten.map(AgeRecord::from),
        }
    }
}

/// One memslot in JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotRecord {
    /// `as_id << 16 | id`.
    pub slot: u32,
    /// First guest-physical address.
    pub start: u64,
    /// Address after it.
    pub end: u64,
    /// Dirty logging on.
    pub dirty_log: bool,
    /// Read-only.
    pub readonly: bool,
}

/// The whole heat map in JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeatmapRecord {
    /// `<pid>-<fd>`.
    pub vm: String,
    /// Granule.
    pub granule: String,
    /// Window.
    pub window: u8,
    /// Rounds done.
    pub rounds: u64,
    /// `accessed`, `dirty` or `both`.
    pub mode: String,
    /// The latest round whose dirty bits were cut short because dirty
    /// logging began, 0 for none (the header's `dirty_partial`).
    #[serde(default)]
    pub dirty_partial: u64,
    /// The memslots.
    pub memslots: Vec<SlotRecord>,
    /// The runs, by address.
    pub runs: Vec<RunRecord>,
}

/// The heat map as one JSON object.
pub fn json(header: &Header, runs: &[Run], slots: &[Memslot]) -> Result<String, Error> {
    let rec = HeatmapRecord {
        vm: header.vm.to_string(),
        granule: header.granule.to_string(),
        window: header.window,
        rounds: header.rounds,
        mode: header.mode.as_str().to_string(),
        dirty_partial: header.dirty_partial,
        memslots: slots
            .iter()
            .map(|s| SlotRecord {
                slot: s.slot(),
                start: slot_bytes(s).start,
                end: slot_bytes(s).end,
                dirty_log: s.flags.dirty_log,
                readonly: s.flags.readonly,
            })
            .collect(),
        runs: runs.iter().map(RunRecord::from).collect(),
    };
    let mut s = serde_json::to_string_pretty(&rec).map_err(|e| Error::Other(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// The CSV columns, in [`RunRecord`]'s order.
pub const COLUMNS: [&str; 10] = [
    "start",
    "end",
    "granule",
    "leaf",
    "accessed",
    "dirty",
    "window",
    "slot",
    "idle_ms",
    "unwritten_ms",
];

/// The runs as CSV with a header row.
pub fn csv(runs: &[Run]) -> Result<String, Error> {
    // The header row by hand, so that a map with no runs still has one.
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(COLUMNS)
        .map_err(|e| Error::Other(e.to_string()))?;
    for run in runs {
        w.serialize(RunRecord::from(run))
            .map_err(|e| Error::Other(e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Other(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| Error::Other(e.to_string()))
}
