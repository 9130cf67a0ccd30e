// SPDX-License-Identifier: GPL-2.0

//! What the text formats of `/proc/ept_sampler/` have in common, for their
//! parsers: columns separated by one space, `#` header lines, `0x` hex
//! numbers, `yes`/`no`, and [`FormatError`].
//!
//! Stability rule for every table: readers ignore columns after the ones
//! they know (new columns are only ever added at the end) and `# key value`
//! header keys they do not know.

use core::fmt;

use crate::heat::parse_decimal;

/// Why a text (or binary) file of `/proc/ept_sampler/` could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// A column, key or header line is missing.
    Missing(&'static str),
    /// A column or key has a value this parser does not accept.
    Bad(&'static str),
    /// The file's format version is not one this parser reads.
    Version(u64),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Missing(what) => write!(f, "missing {what}"),
            FormatError::Bad(what) => write!(f, "bad {what}"),
            FormatError::Version(v) => write!(f, "unsupported format version {v}"),
        }
    }
}

/// Parses `0x` followed by 1 to 16 lower- or upper-case hex digits.
pub fn hex(word: &str) -> Option<u64> {
    let digits = word.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Parses `yes` / `no`.
pub fn yes_no(word: &str) -> Option<bool> {
    match word {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// `yes` / `no`.
pub const fn yes_no_str(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

/// The lines of a text that carry data: not empty, not `#` comments or
/// headers.
pub fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The value of header `# key value` in `text`, if present.
pub fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter_map(|l| l.split_once(' '))
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// The space-separated columns of one line, taken in order.
pub struct Columns<'a> {
    rest: core::str::Split<'a, char>,
}

impl<'a> Columns<'a> {
    /// The columns of `line`.
    pub fn new(line: &'a str) -> Columns<'a> {
        Columns {
            rest: line.split(' '),
        }
    }

    /// The next column, called `what` in errors.
    pub fn word(&mut self, what: &'static str) -> Result<&'a str, FormatError> {
        match self.rest.next() {
            Some(w) if !w.is_empty() => Ok(w),
            _ => Err(FormatError::Missing(what)),
        }
    }

    /// The next column as a decimal number.
    pub fn number(&mut self, what: &'static str) -> Result<u64, FormatError> {
        parse_decimal(self.word(what)?).map_err(|_| FormatError::Bad(what))
    }

    /// The next column as a `0x` hex number.
    pub fn hex(&mut self, what: &'static str) -> Result<u64, FormatError> {
        hex(self.word(what)?).ok_or(FormatError::Bad(what))
    }

    /// The next column parsed by `f` into an option, `None` if the line has
    /// no more columns (one added to a table later, absent from an older
    /// module's files).
    pub fn optional<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&'a str) -> Option<Option<T>>,
    ) -> Result<Option<T>, FormatError> {
        match self.rest.next() {
            None => Ok(None),
            Some(w) => f(w).ok_or(FormatError::Bad(what)),
        }
    }

    /// The next column parsed by `f`.
    pub fn parsed<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&'a str) -> Option<T>,
    ) -> Result<T, FormatError> {
        f(self.word(what)?).ok_or(FormatError::Bad(what))
    }
}

/// A number from a `key value` text.
pub fn kv_number(text: &str, key: &'static str) -> Result<u64, FormatError> {
    let v = super::kv::get(text, key).ok_or(FormatError::Missing(key))?;
    parse_decimal(v).map_err(|_| FormatError::Bad(key))
}

/// A value from a `key value` text, parsed by `f`.
pub fn kv_parsed<'a, T>(
    text: &'a str,
    key: &'static str,
    f: impl FnOnce(&'a str) -> Option<T>,
) -> Result<T, FormatError> {
    let v = super::kv::get(text, key).ok_or(FormatError::Missing(key))?;
    f(v).ok_or(FormatError::Bad(key))
}

/// A hundredths fixed-point number, shown `X.YY` (for derived values in
/// `stats`: the kernel has no floating point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Centi(pub u64);

impl fmt::Display for Centi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Centi {
    /// Parses `X.YY` (exactly two decimals).
    pub fn parse(word: &str) -> Option<Centi> {
        let (int, frac) = word.split_once('.')?;
        if frac.len() != 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = parse_decimal(int).ok()?;
        let frac = parse_decimal(frac.trim_start_matches('0'))
            .ok()
            .or_else(|| (frac == "00").then_some(0))?;
        int.checked_mul(100)?.checked_add(frac).map(Centi)
    }
}
