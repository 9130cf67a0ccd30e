// SPDX-License-Identifier: GPL-2.0

//! The coordinates of a heat map: its [`Granule`] (how much guest memory one
//! entry summarises) and what a round records ([`Track`]).
//!
//! Both are spelt the same way in the `control` command language, in
//! `config` and in every heat-map header, so their words live here, next to
//! the types, and nowhere else.

use core::fmt;

use crate::ept_walk::Mode;

/// The amount of guest memory one heat-map entry covers: a power of two
/// from 4 KiB to 512 GiB (one level-4 table entry).
///
/// # Invariants
///
/// `shift` is in `Granule::MIN_SHIFT..=Granule::MAX_SHIFT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Granule {
    /// log2 of the size in bytes.
    shift: u8,
}

/// Why a granule word (`4K`, `2M`, `8192`...) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GranuleError {
    /// The word is empty.
    Empty,
    /// The word is not digits followed by at most one of `K`, `M`, `G`.
    NotANumber,
    /// The number has a leading zero (only one spelling is accepted).
    LeadingZero,
    /// The size is not a power of two.
    NotPowerOfTwo,
    /// The size is below 4 KiB.
    TooSmall,
    /// The size is above 512 GiB.
    TooLarge,
}

impl fmt::Display for GranuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GranuleError::Empty => "empty",
            GranuleError::NotANumber => "not a size (digits, then K, M or G)",
            GranuleError::LeadingZero => "leading zero",
            GranuleError::NotPowerOfTwo => "not a power of two",
            GranuleError::TooSmall => "below 4K",
            GranuleError::TooLarge => "above 512G",
        })
    }
}

impl Granule {
    /// log2 of the smallest granule, 4 KiB: one guest page.
    pub const MIN_SHIFT: u32 = 12;
    /// log2 of the largest granule, 512 GiB: what one level-4 entry maps.
    /// Larger granules would say nothing a reader cannot sum up itself.
    pub const MAX_SHIFT: u32 = 39;
    /// 4 KiB, one page: full resolution.
    pub const SIZE_4K: Granule = Granule { shift: 12 };
    /// 2 MiB, a level-2 entry.
    pub const SIZE_2M: Granule = Granule { shift: 21 };
    /// 1 GiB, a level-3 entry.
    pub const SIZE_1G: Granule = Granule { shift: 30 };

    /// The granule of `2^shift` bytes, if that is between 4 KiB and 512 GiB.
    #[inline]
    pub const fn from_shift(shift: u32) -> Option<Granule> {
        if shift >= Self::MIN_SHIFT && shift <= Self::MAX_SHIFT {
            Some(Granule { shift: shift as u8 })
        } else {
            None
        }
    }

    /// The granule of `bytes` bytes, if that is a power of two between 4 KiB
    /// and 512 GiB.
    #[inline]
    pub const fn from_bytes(bytes: u64) -> Option<Granule> {
        if bytes.is_power_of_two() {
            Self::from_shift(bytes.trailing_zeros())
        } else {
            None
        }
    }

    /// log2 of the size in bytes (12 to 39).
    #[inline]
    pub const fn shift(self) -> u32 {
        self.shift as u32
    }

    /// Size in bytes.
    #[inline]
    pub const fn bytes(self) -> u64 {
        1u64.wrapping_shl(self.shift())
    }

    /// log2 of the number of 4 KiB pages covered (0 to 27).
    #[inline]
    pub const fn page_shift(self) -> u32 {
        // The invariant keeps `shift >= 12`.
        self.shift().wrapping_sub(Self::MIN_SHIFT)
    }

    /// Number of 4 KiB pages (GFNs) covered.
    #[inline]
    pub const fn pages(self) -> u64 {
        1u64.wrapping_shl(self.page_shift())
    }

    /// Parses a size: decimal digits, then optionally `K`, `M` or `G`
    /// (binary multiples, upper case), e.g. `4K`, `2M`, `1G`, `8192`. The
    /// result is what [`Granule`]'s `Display` prints back for the canonical
    /// spelling.
    pub fn parse(word: &str) -> Result<Granule, GranuleError> {
        let (digits, unit_shift) = match word.as_bytes().last() {
            None => return Err(GranuleError::Empty),
            Some(b'K') => (word.get(..word.len().wrapping_sub(1)), 10u32),
            Some(b'M') => (word.get(..word.len().wrapping_sub(1)), 20),
            Some(b'G') => (word.get(..word.len().wrapping_sub(1)), 30),
            Some(_) => (Some(word), 0),
        };
        let digits = digits.unwrap_or("");
        let number = match parse_decimal(digits) {
            Ok(n) => n,
            Err(DecimalError::Empty | DecimalError::NotDigits) => {
                return Err(GranuleError::NotANumber)
            }
            Err(DecimalError::LeadingZero) => return Err(GranuleError::LeadingZero),
            Err(DecimalError::Overflow) => return Err(GranuleError::TooLarge),
        };
        if number == 0 {
            return Err(GranuleError::TooSmall);
        }
        if !number.is_power_of_two() {
            return Err(GranuleError::NotPowerOfTwo);
        }
        // A power of two times 2^unit_shift: compare shifts, no overflow.
        let shift = number.trailing_zeros().saturating_add(unit_shift);
        if shift < Self::MIN_SHIFT {
            Err(GranuleError::TooSmall)
        } else {
            Self::from_shift(shift).ok_or(GranuleError::TooLarge)
        }
    }
}

impl fmt::Display for Granule {
    /// The canonical spelling: the largest of `G`, `M`, `K` that divides the
    /// size (`4K`, `64K`, `2M`, `1G`, `512G`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shift = self.shift();
        let (unit, suffix) = if shift >= 30 {
            (30, 'G')
        } else if shift >= 20 {
            (20, 'M')
        } else {
            (10, 'K')
        };
        write!(
            f,
            "{}{}",
            1u64.wrapping_shl(shift.wrapping_sub(unit)),
            suffix
        )
    }
}

/// Why a decimal number was refused by [`parse_decimal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// No digit at all.
    Empty,
    /// A byte other than `0`-`9`.
    NotDigits,
    /// More than one digit and the first is `0`.
    LeadingZero,
    /// Does not fit in a `u64`.
    Overflow,
}

/// Parses a decimal `u64` written the one canonical way: digits only, no
/// sign, no leading zero (except `0` itself). Shared by every parser in
/// ept-sampler that reads numbers from users, so they all refuse the same
/// spellings.
pub fn parse_decimal(digits: &str) -> Result<u64, DecimalError> {
    let bytes = digits.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(DecimalError::Empty);
    };
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(DecimalError::NotDigits);
    }
    if first == b'0' && bytes.len() > 1 {
        return Err(DecimalError::LeadingZero);
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b.wrapping_sub(b'0'))))
            .ok_or(DecimalError::Overflow)
    })
}

/// Which bits a round samples and the heat map records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// Accessed bits only; dirty bits are left alone (and not recorded:
    /// without clearing, D only says "written since mapped").
    Accessed,
    /// Dirty bits only. The walker clears A with D (there is no mode that
    /// clears D alone), but only dirtiness is recorded.
    Dirty,
    /// Accessed and dirty bits.
    Both,
}

impl Track {
    /// Whether accessed bits are recorded.
    #[inline]
    pub const fn accessed(self) -> bool {
        matches!(self, Track::Accessed | Track::Both)
    }

    /// Whether dirty bits are recorded.
    #[inline]
    pub const fn dirty(self) -> bool {
        matches!(self, Track::Dirty | Track::Both)
    }

    /// The walker mode that samples these bits.
    #[inline]
    pub const fn walker_mode(self) -> Mode {
        match self {
            Track::Accessed => Mode::ClearAccessed,
            Track::Dirty | Track::Both => Mode::ClearAccessedDirty,
        }
    }

    /// The word for this value (`mode=` in `control`, `mode` in `config`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Track::Accessed => "accessed",
            Track::Dirty => "dirty",
            Track::Both => "both",
        }
    }

    /// Parses [`Track::as_str`]'s words.
    pub fn parse(word: &str) -> Option<Track> {
        Some(match word {
            "accessed" => Track::Accessed,
            "dirty" => Track::Dirty,
            "both" => Track::Both,
            _ => return None,
        })
    }

    /// A small number for binary records: 0 accessed, 1 dirty, 2 both.
    pub const fn code(self) -> u8 {
        match self {
            Track::Accessed => 0,
            Track::Dirty => 1,
            Track::Both => 2,
        }
    }

    /// The inverse of [`Track::code`].
    pub const fn from_code(code: u8) -> Option<Track> {
        match code {
            0 => Some(Track::Accessed),
            1 => Some(Track::Dirty),
            2 => Some(Track::Both),
            _ => None,
        }
    }
}

impl Default for Track {
    /// Accessed bits: the one mode that never touches D, so is safe while
    /// dirty logging is on.
    fn default() -> Self {
        Track::Accessed
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
