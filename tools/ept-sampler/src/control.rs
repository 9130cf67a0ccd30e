// SPDX-License-Identifier: GPL-2.0

//! Changing the module's state: VM names resolved against `vms`, and
//! commands written to `control` as the module's own `Command` values,
//! with a refusal turned into the module's reason.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};

use ept_core::procfs::control::{Command, VmId};
use ept_core::procfs::last_error::{self, Errno};
use ept_core::procfs::vms::{VmRow, VmState};

use crate::error::Error;
use crate::model::parse_vms;
use crate::source::{io_error, ProcRoot};

/// Every row of `vms`.
pub fn vm_rows(root: &ProcRoot) -> Result<Vec<VmRow>, Error> {
    parse_vms(&root.read("vms")?)
}

/// The VMs of process `pid` in `rows`: all of them, or the one on
/// descriptor `fd`.
pub fn vms_of(rows: &[VmRow], pid: u32, fd: Option<u32>) -> Vec<&VmRow> {
    rows.iter()
        .filter(|r| r.vm.pid == pid && fd.is_none_or(|fd| r.vm.fd == fd))
        .collect()
}

/// The error for a pid that names several VMs; `how` says how to pick
/// one (`name one as <pid>-<fd>`, `pick one with --fd`).
pub fn several_vms(pid: u32, rows: &[&VmRow], how: &str) -> Error {
    let names: Vec<String> = rows.iter().map(|r| r.vm.to_string()).collect();
    Error::Other(format!(
        "pid {pid} has {} VMs ({}): {how}",
        names.len(),
        names.join(", ")
    ))
}

/// Resolves a VM argument: `<pid>-<fd>`, or a bare pid when that process
/// has exactly one VM in `rows`. A `<pid>-<fd>` is taken as it is (the
/// module judges whether it exists).
pub fn resolve(word: &str, rows: &[VmRow]) -> Result<VmId, Error> {
    if word.contains('-') {
        return VmId::parse(word).map_err(|e| Error::Usage(format!("VM '{word}': {e}")));
    }
    let pid: u32 = word
        .parse()
        .map_err(|_| Error::Usage(format!("VM '{word}': not <pid>-<fd> nor a pid")))?;
    match vms_of(rows, pid, None).as_slice() {
        [] => Err(Error::NoVm(format!("of pid {pid}"))),
        [one] => Ok(one.vm),
        many => Err(several_vms(pid, many, "name one as <pid>-<fd>")),
    }
}

/// Resolves a VM argument, reading `vms` only when it is a bare pid.
pub fn resolve_in(root: &ProcRoot, word: &str) -> Result<VmId, Error> {
    if word.contains('-') {
        resolve(word, &[])
    } else {
        resolve(word, &vm_rows(root)?)
    }
}

/// The state of `vm` in `rows` (`None`: not on the host).
pub fn state_of(rows: &[VmRow], vm: VmId) -> Option<VmState> {
    rows.iter().find(|r| r.vm == vm).map(|r| r.state)
}

/// Writes `command` to `control` in one `write(2)`. On failure, the
/// module's reason is read from `last_error`.
pub fn send(root: &ProcRoot, command: &Command) -> Result<(), Error> {
    let line = format!("{command}\n");
    let path = root.path().join("control");
    // Append: the module ignores the position, and a regular file standing
    // in for `control` in tests then keeps every line written.
    let mut file = match OpenOptions::new().append(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::NoModule(root.path().to_path_buf()))
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let err = match file.write(line.as_bytes()) {
        Ok(n) if n == line.len() => return Ok(()),
        Ok(n) => {
            return Err(Error::Other(format!(
                "{}: short write ({n} of {} bytes)",
                path.display(),
                line.len()
            )))
        }
        Err(e) => e,
    };
    Err(refusal(root, command, err))
}

/// The error for a refused write: the write's errno decides the kind when
/// it is one the module returns; the message comes from `last_error` when
/// that names the same errno (otherwise it may be an older refusal).
fn refusal(root: &ProcRoot, command: &Command, err: std::io::Error) -> Error {
    let from_write = err
        .raw_os_error()
        .and_then(|n| u32::try_from(n).ok())
        .and_then(Errno::from_number);
    let text = root.read("last_error").ok();
    let last = text
        .as_deref()
        .and_then(|t| last_error::parse(t).ok().flatten());
    let (errno, message) = match (from_write, last) {
        (Some(w), Some(l)) if l.errno == w => (w, l.message.to_string()),
        (Some(w), _) => (w, err.to_string()),
        // Not an errno of the module's (a stand-in for `control`): trust
        // `last_error` alone.
        (None, Some(l)) => (l.errno, l.message.to_string()),
        (None, None) => {
            return Error::Io {
                path: root.path().join("control"),
                source: err,
            }
        }
    };
    let command = command.to_string();
    match errno {
        Errno::Eperm => Error::Permission(root.path().join("control")),
        Errno::Enoent | Errno::Esrch => Error::NoVmBecause {
            command,
            reason: message,
        },
        _ => Error::Refused {
            command,
            reason: format!("{message} ({})", errno.name()),
        },
    }
}
