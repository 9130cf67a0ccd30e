// SPDX-License-Identifier: GPL-2.0

//! What the tool knows about the host at one moment: the raw text of the
//! module's files ([`RawSnapshot`]) and the same text parsed with the
//! module's own parsers ([`Snapshot`]).
//!
//! Everything else in the tool works on a [`Snapshot`]: `list`, `status`
//! and `heatmap` take one from `/proc/ept_sampler`, `top` takes one every
//! refresh, `record` stores the raw text of a series of them and `report`
//! parses them back. Keeping the raw text (not a re-encoding) means a
//! recording is read by exactly the parsers that read `/proc`, so there is
//! no second format to drift.

use std::collections::BTreeMap;

use ept_core::procfs::{config, fields, heatmap, history, idle, memslots, stats, vms};

use crate::error::Error;

/// The files of one attached VM's directory that a snapshot keeps.
pub const VM_FILES: [&str; 6] = ["config", "stats", "heatmap", "history", "memslots", "idle"];

/// The top-level files a snapshot keeps.
pub const TOP_FILES: [&str; 2] = ["version", "vms"];

/// The text of the module's files at one moment, by path relative to
/// `/proc/ept_sampler` (`vms`, `1234-12/heatmap`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawSnapshot {
    /// Milliseconds since the Unix epoch when reading began.
    pub unix_ms: u64,
    /// File text by relative path. A file that could not be read (the VM
    /// went away between `vms` and its directory) is absent.
    pub files: BTreeMap<String, String>,
}

/// One attached VM at one moment, parsed.
#[derive(Clone, Debug)]
pub struct VmSnapshot {
    /// Its line in `vms`.
    pub row: vms::VmRow,
    /// `config`, if the VM has a directory.
    pub config: Option<config::Config>,
    /// `stats`, if the VM has a directory.
    pub stats: Option<stats::StatsFile>,
    /// `heatmap`: header and runs, if the VM has a directory.
    pub heatmap: Option<(heatmap::Header, Vec<heatmap::Run>)>,
    /// `memslots`, if the VM has a directory.
    pub memslots: Vec<memslots::Memslot>,
    /// `history`, if the VM has a directory.
    pub history: Option<History>,
    /// `idle`, if the VM is sampled by a module that has it.
    pub idle: Option<idle::IdleFile>,
}

/// The `history` ring, parsed into owned rows.
#[derive(Clone, Debug)]
pub struct History {
    /// Its header.
    pub header: history::Header,
    /// One entry per kept round, oldest first.
    pub rounds: Vec<HistoryRound>,
}

/// One round of the `history` ring.
#[derive(Clone, Debug)]
pub struct HistoryRound {
    /// The round line.
    pub record: ept_core::heat::RoundRecord,
    /// Accessed share of each region (0 none .. 255 every page).
    pub accessed: Vec<u8>,
    /// Dirty share of each region, empty when the round did not track
    /// dirty bits.
    pub dirty: Vec<u8>,
}

/// Every VM at one moment, parsed.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Milliseconds since the Unix epoch when reading began.
    pub unix_ms: u64,
    /// Every VM in `vms`, attached or not, in the file's order.
    pub vms: Vec<VmSnapshot>,
}

impl RawSnapshot {
    /// The text of `path`, if it was read.
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// The rows of `vms`.
    pub fn vm_rows(&self) -> Result<Vec<vms::VmRow>, Error> {
        let text = self.file("vms").ok_or(Error::Format {
            file: "vms".into(),
            what: "missing".into(),
        })?;
        parse_vms(text)
    }

    /// Parses every file with the module's parsers.
    pub fn parse(&self) -> Result<Snapshot, Error> {
        let vms = self
            .vm_rows()?
            .into_iter()
            .map(|row| self.parse_vm(row))
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            unix_ms: self.unix_ms,
            vms,
        })
    }

    /// Like [`RawSnapshot::parse`], but a VM whose files do not parse
    /// keeps its `vms` row alone (no directory data), with the error: a
    /// file opened as its VM was detached reads empty (docs/procfs.md), and
    /// one VM going away must not cost a reader of the whole host
    /// (`export`) every other VM.
    pub fn parse_each(&self) -> Result<(Snapshot, Vec<Error>), Error> {
        let mut errors = Vec::new();
        let vms = self
            .vm_rows()?
            .into_iter()
            .map(|row| {
                self.parse_vm(row).unwrap_or_else(|e| {
                    errors.push(e);
                    VmSnapshot {
                        row,
                        config: None,
                        stats: None,
                        heatmap: None,
                        memslots: Vec::new(),
                        history: None,
                        idle: None,
                    }
                })
            })
            .collect();
        let snap = Snapshot {
            unix_ms: self.unix_ms,
            vms,
        };
        Ok((snap, errors))
    }

    fn parse_vm(&self, row: vms::VmRow) -> Result<VmSnapshot, Error> {
        let dir = row.vm.to_string();
        let get = |name: &str| {
            let path = format!("{dir}/{name}");
            self.files.get(&path).map(|t| (path, t.as_str()))
        };
        // A VM attached but never started has only a comment in `stats`,
        // `heatmap` and `history` (`# vm P-F is not being sampled`): no
        // data lines, as the module's formats define them, and not a
        // format error.
        let sampled =
            |name: &str| get(name).filter(|(_, t)| fields::data_lines(t).next().is_some());
        let config = get("config")
            .map(|(p, t)| config::Config::parse(t).map_err(|e| Error::format(&p, e)))
            .transpose()?;
        let stats = sampled("stats")
            .map(|(p, t)| stats::StatsFile::parse(t).map_err(|e| Error::format(&p, e)))
            .transpose()?;
        let heatmap = sampled("heatmap")
            .map(|(p, t)| {
                let (header, runs) = heatmap::parse(t).map_err(|e| Error::format(&p, e))?;
                let runs = runs
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::format(&p, e))?;
                Ok::<_, Error>((header, runs))
            })
            .transpose()?;
        let memslots = match get("memslots") {
            Some((p, t)) => memslots::parse(t)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::format(&p, e))?,
            None => Vec::new(),
        };
        let history = sampled("history")
            .map(|(p, t)| History::parse(t).map_err(|e| Error::format(&p, e)))
            .transpose()?;
        let idle = sampled("idle")
            .map(|(p, t)| idle::IdleFile::parse(t).map_err(|e| Error::format(&p, e)))
            .transpose()?;
        Ok(VmSnapshot {
            row,
            config,
            stats,
            heatmap,
            memslots,
            history,
            idle,
        })
    }
}

impl History {
    /// Parses a `history` text into rounds, oldest first.
    pub fn parse(text: &str) -> Result<History, ept_core::procfs::fields::FormatError> {
        use ept_core::procfs::fields::FormatError;
        let (header, lines) = history::parse(text)?;
        let regions = usize::try_from(header.regions).map_err(|_| FormatError::Bad("regions"))?;
        let mut rounds: Vec<HistoryRound> = Vec::new();
        for line in lines {
            match line? {
                history::Line::Round(record) => rounds.push(HistoryRound {
                    record,
                    accessed: vec![0; regions],
                    dirty: Vec::new(),
                }),
                history::Line::Shares {
                    dirty,
                    round,
                    gpa,
                    hex,
                } => {
                    let r = rounds
                        .last_mut()
                        .filter(|r| r.record.round == round)
                        .ok_or(FormatError::Bad("round"))?;
                    let first = gpa
                        .checked_sub(header.base)
                        .map(|off| off / header.region.bytes())
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or(FormatError::Bad("gpa"))?;
                    let target = if dirty {
                        if r.dirty.is_empty() {
                            r.dirty = vec![0; regions];
                        }
                        &mut r.dirty
                    } else {
                        &mut r.accessed
                    };
                    for (i, share) in history::shares(hex).enumerate() {
                        let share = share.ok_or(FormatError::Bad("shares"))?;
                        let slot = first
                            .checked_add(i)
                            .and_then(|j| target.get_mut(j))
                            .ok_or(FormatError::Bad("shares"))?;
                        *slot = share;
                    }
                }
            }
        }
        Ok(History { header, rounds })
    }
}

/// The rows of a `vms` text.
pub fn parse_vms(text: &str) -> Result<Vec<vms::VmRow>, Error> {
    vms::parse(text)
        .map(|row| row.map_err(|e| Error::format("vms", e)))
        .collect()
}

/// The guest-physical bytes a memslot covers, `start..end`, through the
/// module's own frame-to-address conversion.
pub fn slot_bytes(slot: &memslots::Memslot) -> std::ops::Range<u64> {
    let gfns = slot.gfns();
    gfns.start.gpa()..gfns.end.gpa()
}

impl Snapshot {
    /// The VM named `id` (`<pid>-<fd>`).
    pub fn vm(&self, id: &str) -> Option<&VmSnapshot> {
        self.vms.iter().find(|v| v.row.vm.to_string() == id)
    }
}
