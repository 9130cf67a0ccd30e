// SPDX-License-Identifier: GPL-2.0

//! The `key value` line format of `/proc/ept_sampler/version` and of the
//! per-VM `config` and `stats` files.
//!
//! One entry per line: a key (`[a-z0-9_]+`), one space, the value (the rest
//! of the line). Readers must ignore keys they do not know, so that new keys
//! can be added without breaking them. Shared by the module (which writes)
//! and the userspace tool (which parses), so the two cannot drift.

use core::fmt;

/// Writes one `key value` line.
pub fn write(w: &mut dyn fmt::Write, key: &str, value: fmt::Arguments<'_>) -> fmt::Result {
    w.write_str(key)?;
    w.write_char(' ')?;
    w.write_fmt(value)?;
    w.write_char('\n')
}

/// Why a line is not a `key value` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line has no space after the key.
    NoValue,
    /// The key is empty or has a byte outside `[a-z0-9_]`.
    BadKey,
}

/// Splits one line into key and value.
pub fn split(line: &str) -> Result<(&str, &str), LineError> {
    let (key, value) = line.split_once(' ').ok_or(LineError::NoValue)?;
    let key_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if key_ok {
        Ok((key, value))
    } else {
        Err(LineError::BadKey)
    }
}

/// The value of `key` in a whole `key value` text, if present.
pub fn get<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|line| split(line).ok())
        .find_map(|(k, v)| (k == key).then_some(v))
}
