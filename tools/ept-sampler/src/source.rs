// SPDX-License-Identifier: GPL-2.0

//! Reading `/proc/ept_sampler` (or a copy of it: tests point the tool at a
//! directory of fixture files with `--proc`).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ept_core::procfs::control::VmId;

use crate::error::Error;
use crate::model::{RawSnapshot, TOP_FILES, VM_FILES};

/// Where the module's files are.
pub const DEFAULT_ROOT: &str = "/proc/ept_sampler";

/// The module's directory.
#[derive(Clone, Debug)]
pub struct ProcRoot {
    root: PathBuf,
}

impl ProcRoot {
    /// The directory at `root`; fails with [`Error::NoModule`] if it does
    /// not exist.
    pub fn open(root: impl Into<PathBuf>) -> Result<ProcRoot, Error> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(_) => Ok(ProcRoot { root }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::NoModule(root)),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(Error::Permission(root)),
            Err(source) => Err(Error::Io { path: root, source }),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Reads one file, relative to the root.
    pub fn read(&self, rel: &str) -> Result<String, Error> {
        let path = self.root.join(rel);
        std::fs::read_to_string(&path).map_err(|e| io_error(path, e))
    }

    /// Reads one file; `None` if it does not exist (a VM that went away).
    pub fn read_optional(&self, rel: &str) -> Result<Option<String>, Error> {
        match self.read(rel) {
            Ok(t) => Ok(Some(t)),
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The raw text of `version`, `vms` and every attached VM's files.
    pub fn snapshot(&self) -> Result<RawSnapshot, Error> {
        self.snapshot_of(|_| true, &VM_FILES)
    }

    /// The raw text of `version`, `vms` and, of each VM in `vms` that
    /// `which` picks, the `files` of its directory (those of
    /// [`VM_FILES`] it has: a VM not attached has none). The one way the
    /// tool reads the module's files together.
    pub fn snapshot_of(
        &self,
        which: impl Fn(VmId) -> bool,
        files: &[&str],
    ) -> Result<RawSnapshot, Error> {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut raw = RawSnapshot {
            unix_ms,
            ..RawSnapshot::default()
        };
        for name in TOP_FILES {
            raw.files.insert(name.to_string(), self.read(name)?);
        }
        for vm in raw
            .vm_rows()?
            .into_iter()
            .map(|r| r.vm)
            .filter(|&vm| which(vm))
        {
            for name in VM_FILES.iter().filter(|f| files.contains(f)) {
                let rel = format!("{vm}/{name}");
                if let Some(text) = self.read_optional(&rel)? {
                    raw.files.insert(rel, text);
                }
            }
        }
        Ok(raw)
    }
}

/// Turns an I/O error on `path` into the tool's error.
pub fn io_error(path: PathBuf, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::PermissionDenied => Error::Permission(path),
        _ => Error::Io { path, source: e },
    }
}
