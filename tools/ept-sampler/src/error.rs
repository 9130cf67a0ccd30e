// SPDX-License-Identifier: GPL-2.0

//! The tool's errors, each with a sentence a person can act on and an exit
//! code (documented in `ept-sampler --help` and the man page).

use std::path::PathBuf;

/// Exit codes. 0 is success; clap itself exits 2 on a bad flag.
pub mod exit {
    /// Something failed that fits no other code.
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The module is not loaded (`/proc/ept_sampler` is missing).
    pub const NO_MODULE: u8 = 3;
    /// Not allowed: not root, or no CAP_SYS_ADMIN for `control`.
    pub const PERMISSION: u8 = 4;
    /// The VM does not exist (any more), is not attached, or (for what
    /// needs a heat map) is not being sampled.
    pub const NO_VM: u8 = 5;
    /// The module refused the command (the VM cannot be sampled, or a
    /// setting is out of range); the module's reason is printed.
    pub const REFUSED: u8 = 6;
    /// A file the module or a recording wrote could not be parsed.
    pub const FORMAT: u8 = 7;
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/ept_sampler` does not exist.
    #[error(
        "the ept_sampler module is not loaded ({} is missing): as root, load it with `insmod out/<kernel>/ept_sampler.ko` (built by `make` in the source tree)",
        .0.display()
    )]
    NoModule(PathBuf),
    /// A file could not be opened for lack of rights.
    #[error("{}: permission denied: ept-sampler needs root (CAP_SYS_ADMIN to change anything)", .0.display())]
    Permission(PathBuf),
    /// The VM is not on the host (any more).
    #[error("no VM {0} on this host (see `ept-sampler list`)")]
    NoVm(String),
    /// `report --vm` named a VM that the recording does not hold.
    #[error("no VM {vm} in the recording {} (it holds: {holds})", .file.display())]
    NotRecorded {
        /// The VM as resolved (`<pid>-<fd>`, or "of pid P").
        vm: String,
        /// The recording.
        file: PathBuf,
        /// Its VMs, or "none".
        holds: String,
    },
    /// The module found no such VM for a command (`ENOENT`/`ESRCH`).
    #[error("no such VM: the module refused `{command}`: {reason} (see `ept-sampler list`)")]
    NoVmBecause {
        /// The control line that was written.
        command: String,
        /// What the module said.
        reason: String,
    },
    /// The VM is on the host but not attached, so it has no files.
    #[error("VM {0} is not attached: `ept-sampler attach --pid <pid>` or `ept-sampler start --pid <pid>` first")]
    NotAttached(String),
    /// The VM is attached but not being sampled: it has no heat map.
    #[error("VM {0} is not being sampled: `ept-sampler start {0}` first")]
    NotSampling(String),
    /// A bad argument found after clap's checks (a VM name, a setting the
    /// module would refuse).
    #[error("{0}")]
    Usage(String),
    /// The module refused a command; `reason` is its `last_error` message.
    #[error("the module refused `{command}`: {reason}")]
    Refused {
        /// The control line that was written.
        command: String,
        /// What the module said.
        reason: String,
    },
    /// A file did not parse.
    #[error("{file}: cannot parse: {what}")]
    Format {
        /// The file (a /proc path or a recording).
        file: String,
        /// What was wrong.
        what: String,
    },
    /// Any other I/O error.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something else, already phrased for a person.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A parse error of `file`, in the parser's words ("missing rounds",
    /// "bad granule"), not its Debug form.
    pub fn format(file: &str, e: impl std::fmt::Display) -> Error {
        Error::Format {
            file: file.to_string(),
            what: e.to_string(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NoModule(_) => exit::NO_MODULE,
            Error::Permission(_) => exit::PERMISSION,
            Error::NoVm(_)
            | Error::NotRecorded { .. }
            | Error::NoVmBecause { .. }
            | Error::NotAttached(_)
            | Error::NotSampling(_) => exit::NO_VM,
            Error::Usage(_) => exit::USAGE,
            Error::Refused { .. } => exit::REFUSED,
            Error::Format { .. } => exit::FORMAT,
            Error::Io { .. } | Error::Other(_) => exit::FAILURE,
        }
    }
}
