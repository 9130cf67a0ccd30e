// SPDX-License-Identifier: GPL-2.0

//! Waiting for keys without crossterm's reader spinning on a dead terminal.
//!
//! crossterm 0.29's Unix event source loops on `read()` until it returns
//! `WouldBlock`; a terminal that hung up (ssh dropped, tmux server killed)
//! returns 0 or `EIO` forever instead, so `event::poll` never comes back and
//! `top` burns a CPU with no one to see it (it ignores the SIGHUP flag
//! too, since the loop never reaches it). So the loop waits here, with
//! `poll(2)` on the controlling terminal, and hands over to crossterm only
//! when there is input and no hangup.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What the terminal did while we waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Nothing within the timeout.
    Timeout,
    /// Input is waiting.
    Input,
    /// The terminal is gone: leave.
    HangUp,
}

/// The controlling terminal, opened for polling only.
pub struct Tty(File);

impl Tty {
    /// Opens `/dev/tty`: the terminal crossterm reads keys from.
    pub fn open() -> std::io::Result<Tty> {
        File::open("/dev/tty").map(Tty)
    }

    /// Waits up to `timeout` for input or a hangup.
    pub fn wait(&self, timeout: Duration) -> std::io::Result<Wait> {
        let mut fd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fd` is one valid pollfd, and the count passed is 1.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(Wait::Timeout)
            } else {
                Err(e)
            };
        }
        Ok(
            if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                Wait::HangUp
            } else if fd.revents & libc::POLLIN != 0 {
                Wait::Input
            } else {
                Wait::Timeout
            },
        )
    }
}
