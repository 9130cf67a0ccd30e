// SPDX-License-Identifier: GPL-2.0

//! Where `top` gets its snapshots: the module's directory, read at every
//! refresh, or a recording, stepped one snapshot per refresh.

use std::io::Write;
use std::path::{Path, PathBuf};

use ept_core::procfs::control::Command;
use ept_core::procfs::last_error;

use crate::error::Error;
use crate::model::Snapshot;
use crate::record::Reader;
use crate::source::{io_error, ProcRoot};

/// A source of snapshots.
pub enum Feed {
    /// `/proc/ept_sampler` or a copy of it.
    Live(ProcRoot),
    /// A recording.
    Replay {
        /// The file, for messages.
        path: PathBuf,
        /// Its snapshots, not yet shown.
        reader: Reader,
        /// Snapshots shown so far.
        shown: u64,
        /// Whether the reader is exhausted.
        ended: bool,
    },
}

/// What one step of a feed gave.
pub enum Step {
    /// A new snapshot.
    Snapshot(Snapshot),
    /// Nothing new: the recording has ended.
    Ended,
}

impl Feed {
    /// A feed reading a recording.
    pub fn replay(path: &Path) -> Result<Feed, Error> {
        Ok(Feed::Replay {
            path: path.to_path_buf(),
            reader: Reader::open(path)?,
            shown: 0,
            ended: false,
        })
    }

    /// The next snapshot.
    pub fn step(&mut self) -> Result<Step, Error> {
        match self {
            Feed::Live(root) => Ok(Step::Snapshot(root.snapshot()?.parse()?)),
            Feed::Replay {
                reader,
                shown,
                ended,
                ..
            } => {
                if *ended {
                    return Ok(Step::Ended);
                }
                match reader.next() {
                    Some(raw) => {
                        *shown += 1;
                        Ok(Step::Snapshot(raw?.parse()?))
                    }
                    None => {
                        *ended = true;
                        Ok(Step::Ended)
                    }
                }
            }
        }
    }

    /// "snapshot N" of a replay, for the title.
    pub fn position(&self) -> Option<(u64, bool, &Path)> {
        match self {
            Feed::Live(_) => None,
            Feed::Replay {
                path, shown, ended, ..
            } => Some((*shown, *ended, path.as_path())),
        }
    }

    /// Writes `command` to `control`. When the module refuses it, the
    /// error carries the module's `last_error` message.
    pub fn control(&self, command: &Command) -> Result<(), Error> {
        let Feed::Live(root) = self else {
            return Err(Error::Other(
                "replaying a recording: nothing to write to".into(),
            ));
        };
        write_control(root, command)
    }
}

/// Writes one command as one `write(2)`, as the control file requires.
pub fn write_control(root: &ProcRoot, command: &Command) -> Result<(), Error> {
    let path = root.path().join("control");
    let line = format!("{command}\n");
    // No `create`: the file is the module's; a missing one is an error,
    // not something to make.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| io_error(path.clone(), e))?;
    match file.write(line.as_bytes()) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(Error::Other(format!(
            "{}: short write ({n} of {} bytes)",
            path.display(),
            line.len()
        ))),
        Err(e) => {
            // The module says why in last_error; without it, the errno
            // is all there is.
            let reason = root
                .read("last_error")
                .ok()
                .and_then(|text| {
                    last_error::parse(&text)
                        .ok()
                        .flatten()
                        .map(|l| format!("{} {}", l.errno.name(), l.message))
                })
                .unwrap_or_else(|| e.to_string());
            Err(Error::Refused {
                command: command.to_string(),
                reason,
            })
        }
    }
}
