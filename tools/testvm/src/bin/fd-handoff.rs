// SPDX-License-Identifier: GPL-2.0

//! Test helper: whose credentials decide a write to a file that needs a
//! capability, the opener's or the writer's? `/proc/ept_sampler/control`
//! must answer "the opener's", as the kernel does wherever the confused
//! deputy matters.
//!
//! ```text
//! fd-handoff pass PATH TEXT
//! fd-handoff inherit PATH TEXT
//! ```
//!
//! `pass`: a child without CAP_SYS_ADMIN (root in a container without it)
//! opens PATH for writing and hands the fd over a Unix socket (SCM_RIGHTS) to
//! this process, which has every capability and writes TEXT through it.
//!
//! `inherit`: this process opens PATH; a child inherits the fd, drops
//! CAP_SYS_ADMIN and writes TEXT through it.
//!
//! A child loses CAP_SYS_ADMIN as a container's root does: it is dropped
//! from the bounding set and the child execs this program again, so that the
//! kernel computes root's capabilities without it; the child checks its
//! effective set before going on. TEXT is written with one `write(2)`.
//!
//! Prints one line per step. Exit status: 0 if the write succeeded, 1 if it
//! failed (its errno printed), 2 on any other error.

use std::ffi::OsString;
use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

use clap::{Parser, Subcommand};

use nix::fcntl::{open, OFlag};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::stat::Mode;

/// `CAP_SYS_ADMIN` (include/uapi/linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

#[derive(Parser)]
#[command(about = "Whose credentials decide a write: the opener's or the writer's")]
struct Cli {
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand)]
enum Step {
    /// A child without CAP_SYS_ADMIN opens PATH and hands the fd over; this
    /// process, with every capability, writes TEXT through it.
    Pass { path: PathBuf, text: OsString },
    /// This process opens PATH; a child inherits the fd, drops
    /// CAP_SYS_ADMIN and writes TEXT through it.
    Inherit { path: PathBuf, text: OsString },
    /// The `pass` child, run again without CAP_SYS_ADMIN.
    #[command(hide = true)]
    Opener { sock: RawFd, path: PathBuf },
    /// The `inherit` child, run again without CAP_SYS_ADMIN.
    #[command(hide = true)]
    Writer { fd: RawFd, text: OsString },
}

fn main() {
    let code = match Cli::parse().step {
        Step::Pass { path, text } => pass(&path, &text),
        Step::Inherit { path, text } => inherit(&path, &text),
        Step::Opener { sock, path } => opener(sock, &path),
        Step::Writer { fd, text } => writer(fd, &text),
    };
    exit(code);
}

/// Reports an error other than the write's own and exits 2.
fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("fd-handoff: {what}: {e}");
    exit(2);
}

/// Runs this program again as `args`, without CAP_SYS_ADMIN in its bounding
/// set (hence, root's capabilities being computed at exec, anywhere), and
/// returns its exit status.
fn run_dropped(args: &[OsString]) -> i32 {
    let exe = std::env::current_exe().unwrap_or_else(|e| die("current_exe", e));
    let mut cmd = Command::new(exe);
    cmd.args(args);
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_CAPBSET_DROP,
                CAP_SYS_ADMIN as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap_or_else(|e| die("run the child", e));
    status.code().unwrap_or(2)
}

/// In a child: makes sure CAP_SYS_ADMIN is gone from the effective set
/// (else the test would prove nothing) and says who the child is.
fn check_dropped(role: &str) {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|e| die("/proc/self/status", e));
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or_else(|| die("/proc/self/status", format!("no {key}")))
            .to_string()
    };
    let eff = u64::from_str_radix(&field("CapEff:"), 16)
        .unwrap_or_else(|e| die("/proc/self/status CapEff", e));
    // Real, effective, saved and fs uids.
    let uids = field("Uid:");
    let mut uids = uids.split_whitespace();
    let (uid, euid) = (uids.next().unwrap_or("?"), uids.next().unwrap_or("?"));
    if eff & (1 << CAP_SYS_ADMIN) != 0 {
        die(role, "CAP_SYS_ADMIN is still effective");
    }
    println!("fd-handoff: {role}: uid {uid} (euid {euid}), CapEff {eff:016x}: no CAP_SYS_ADMIN");
}

/// Writes `text` to `file` with one write(2) and reports it.
fn write_once(who: &str, file: &mut File, text: &OsString) -> i32 {
    let bytes = text.as_encoded_bytes();
    match file.write(bytes) {
        Ok(n) => {
            println!("fd-handoff: {who}: write: ok ({n} bytes)");
            0
        }
        Err(e) => {
            println!(
                "fd-handoff: {who}: write: refused: {} ({e})",
                e.raw_os_error()
                    .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
                    .unwrap_or_default()
            );
            1
        }
    }
}

/// `pass`: a child without the capability opens, this process writes.
fn pass(path: &Path, text: &OsString) -> i32 {
    // Not close-on-exec: the child end must reach the re-executed child.
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )
    .unwrap_or_else(|e| die("socketpair", e));
    let child = run_dropped(&[
        "opener".into(),
        theirs.as_raw_fd().to_string().into(),
        path.into(),
    ]);
    drop(theirs);
    if child != 0 {
        die("opener", format!("exit status {child}"));
    }
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        ours.as_raw_fd(),
        &mut iov,
        Some(space.as_mut_slice()),
        MsgFlags::empty(),
    )
    .unwrap_or_else(|e| die("recvmsg", e));
    let fd = msg
        .cmsgs()
        .unwrap_or_else(|e| die("recvmsg", e))
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .unwrap_or_else(|| die("recvmsg", "no fd received"));
    // SAFETY: SCM_RIGHTS just installed `fd` in this process; nothing else
    // owns it.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    println!("fd-handoff: pass: received the fd; writing as full root");
    write_once(
        "pass: root through the unprivileged opener's fd",
        &mut file,
        text,
    )
}

/// The `pass` child: opens `path` and sends the fd over socket `sock`.
fn opener(sock: RawFd, path: &Path) -> i32 {
    check_dropped("opener");
    let file = File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| die("opener: open", e));
    println!("fd-handoff: opener: opened {}", path.display());
    let fds = [file.as_raw_fd()];
    sendmsg::<()>(
        sock,
        &[IoSlice::new(b"f")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap_or_else(|e| die("sendmsg", e));
    0
}

/// `inherit`: this process opens, a child without the capability writes.
fn inherit(path: &Path, text: &OsString) -> i32 {
    // Not close-on-exec: the child inherits it.
    let fd = open(path, OFlag::O_WRONLY, Mode::empty()).unwrap_or_else(|e| die("open", e));
    println!(
        "fd-handoff: inherit: opened {} as full root",
        path.display()
    );
    run_dropped(&[
        "writer".into(),
        fd.as_raw_fd().to_string().into(),
        text.clone(),
    ])
}

/// The `inherit` child: writes `text` through inherited fd `fd`.
fn writer(fd: RawFd, text: &OsString) -> i32 {
    check_dropped("writer");
    // SAFETY: the parent left `fd` open across exec for this process alone.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    write_once("inherit: the child through root's fd", &mut file, text)
}
