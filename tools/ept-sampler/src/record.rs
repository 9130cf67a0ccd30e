// SPDX-License-Identifier: GPL-2.0

//! `record` and `report`: a series of snapshots saved to a file, and the
//! same views made from it offline.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::model::RawSnapshot;

/// `ept-sampler record`.
#[derive(Clone, Debug, clap::Args)]
pub struct RecordArgs {
    /// Where to write the recording.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

/// `ept-sampler report`.
#[derive(Clone, Debug, clap::Args)]
pub struct ReportArgs {
    /// The recording.
    pub file: PathBuf,
}

/// Reads a recording back, snapshot by snapshot.
pub struct Reader {
    _private: (),
}

impl Reader {
    /// Opens a recording.
    pub fn open(_path: &Path) -> Result<Reader, Error> {
        Err(Error::Other("recordings are not built yet".into()))
    }
}

impl Iterator for Reader {
    type Item = Result<RawSnapshot, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}

/// Runs `record`.
pub fn record(_root: &crate::source::ProcRoot, _args: &RecordArgs) -> Result<(), Error> {
    Err(Error::Other("record is not built yet".into()))
}

/// Runs `report`.
pub fn report(_args: &ReportArgs) -> Result<(), Error> {
    Err(Error::Other("report is not built yet".into()))
}
