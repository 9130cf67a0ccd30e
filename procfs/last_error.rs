// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/last_error`: why the last refused `control` command
//! was refused, in one line.
//!
//! ```text
//! EINVAL period_ms: 5 is below 10
//! ```
//!
//! or `none` before any refusal. The first word is the error the `write`
//! returned, by name; the rest is the message (printable ASCII, at most
//! [`MESSAGE_MAX`] bytes). The glue keeps the message in a [`MessageBuf`],
//! which it can fill with `write!` from a [`ControlError`]'s `Display`
//! without allocating.
//!
//! [`ControlError`]: super::control::ControlError

use core::fmt;

use super::fields::FormatError;

/// The longest message kept, in bytes.
pub const MESSAGE_MAX: usize = 200;

/// The errors `control` returns, with their x86-64 Linux numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// Operation not permitted (no `CAP_SYS_ADMIN`).
    Eperm,
    /// No such VM or process.
    Enoent,
    /// No such process.
    Esrch,
    /// Out of memory (heat map allocation).
    Enomem,
    /// Busy (already attached or in a conflicting state; dirty logging on).
    Ebusy,
    /// Invalid command.
    Einval,
    /// The VM cannot be sampled.
    Eopnotsupp,
}

const ERRNOS: [Errno; 7] = [
    Errno::Eperm,
    Errno::Enoent,
    Errno::Esrch,
    Errno::Enomem,
    Errno::Ebusy,
    Errno::Einval,
    Errno::Eopnotsupp,
];

impl Errno {
    /// The positive error number.
    pub const fn number(self) -> u32 {
        match self {
            Errno::Eperm => 1,
            Errno::Enoent => 2,
            Errno::Esrch => 3,
            Errno::Enomem => 12,
            Errno::Ebusy => 16,
            Errno::Einval => 22,
            Errno::Eopnotsupp => 95,
        }
    }

    /// The C name.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::Eperm => "EPERM",
            Errno::Enoent => "ENOENT",
            Errno::Esrch => "ESRCH",
            Errno::Enomem => "ENOMEM",
            Errno::Ebusy => "EBUSY",
            Errno::Einval => "EINVAL",
            Errno::Eopnotsupp => "EOPNOTSUPP",
        }
    }

    /// The errno with this positive number.
    pub fn from_number(n: u32) -> Option<Errno> {
        ERRNOS.iter().copied().find(|e| e.number() == n)
    }

    /// The errno with this C name.
    pub fn parse(name: &str) -> Option<Errno> {
        ERRNOS.iter().copied().find(|e| e.name() == name)
    }
}

/// The content of `last_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastError<'a> {
    /// What the write returned.
    pub errno: Errno,
    /// Why.
    pub message: &'a str,
}

/// Writes `last_error`: `none`, or the error name and message.
pub fn render(w: &mut dyn fmt::Write, last: Option<&LastError<'_>>) -> fmt::Result {
    match last {
        None => w.write_str("none\n"),
        Some(e) => writeln!(w, "{} {}", e.errno.name(), e.message),
    }
}

/// Parses `last_error`.
pub fn parse(text: &str) -> Result<Option<LastError<'_>>, FormatError> {
    let line = text.lines().next().ok_or(FormatError::Missing("line"))?;
    if line == "none" {
        return Ok(None);
    }
    let (name, message) = line
        .split_once(' ')
        .ok_or(FormatError::Missing("message"))?;
    Ok(Some(LastError {
        errno: Errno::parse(name).ok_or(FormatError::Bad("errno"))?,
        message,
    }))
}

/// A message of at most `N` bytes, filled with `write!`: longer text is cut
/// (at a character boundary, after which nothing more is taken), and any
/// byte that is not printable ASCII becomes `?`, so the message is always
/// one clean line.
pub struct MessageBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> MessageBuf<N> {
    /// An empty message.
    pub const fn new() -> Self {
        MessageBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// The message so far.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Empties the message.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for MessageBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for MessageBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // One byte per char: a multi-byte char becomes one `?`.
        for c in s.chars() {
            let Some(slot) = self.buf.get_mut(self.len) else {
                break;
            };
            *slot = if c == ' ' || c.is_ascii_graphic() {
                c as u8
            } else {
                b'?'
            };
            self.len = self.len.wrapping_add(1);
        }
        // Never an error: a cut message is still a message.
        Ok(())
    }
}
