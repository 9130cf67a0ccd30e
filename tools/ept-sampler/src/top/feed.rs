// SPDX-License-Identifier: GPL-2.0

//! Where `top` gets its snapshots: the module's directory, read at every
//! refresh, or a recording, stepped one snapshot per refresh.

use std::path::{Path, PathBuf};

use ept_core::procfs::control::Command;

use crate::error::Error;
use crate::model::Snapshot;
use crate::record::Reader;
use crate::source::ProcRoot;

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
            Feed::Live(root) => match root.snapshot() {
                Ok(raw) => Ok(Step::Snapshot(raw.parse()?)),
                // The directory went away under us: the module was
                // unloaded, which deserves its own sentence.
                Err(_) if !root.path().exists() => Err(Error::NoModule(root.path().to_path_buf())),
                Err(e) => Err(e),
            },
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

    /// Writes `command` to `control` (with the tool's one writer, which
    /// turns a refusal into the module's `last_error` reason).
    pub fn control(&self, command: &Command) -> Result<(), Error> {
        let Feed::Live(root) = self else {
            return Err(Error::Other(
                "replaying a recording: nothing to write to".into(),
            ));
        };
        crate::control::send(root, command)
    }
}
