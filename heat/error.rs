// SPDX-License-Identifier: GPL-2.0

//! Why a heat map cannot be laid out or built.
//!
//! These are the errors of configuration, found before anything is
//! allocated: the glue turns them into `-EINVAL` (or `-ENOMEM` for
//! [`HeatError::TooLarge`]) for the `start` command that asked.

use core::fmt;

use super::granule::Granule;

/// Why a heat map cannot be laid out or built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeatError {
    /// The GFN span is empty.
    EmptySpan,
    /// The span ends above [`MAX_GFN`](super::MAX_GFN) (a 52-bit guest
    /// physical address space).
    SpanBeyondMax,
    /// A window of zero rounds.
    WindowZero,
    /// The window needs more than 2 bytes per 4 KiB page at this granule.
    WindowTooLarge {
        /// The window asked for.
        window: u8,
        /// The largest window at `granule`.
        max: u8,
        /// The granule.
        granule: Granule,
    },
    /// A history of zero rounds or more than
    /// [`MAX_HISTORY_ROUNDS`](super::MAX_HISTORY_ROUNDS).
    HistoryRounds(u16),
    /// The sizes do not fit in this machine's address space.
    TooLarge,
    /// The storage handed in is shorter than the layout needs.
    StorageTooSmall {
        /// Words the layout needs.
        needed: usize,
        /// Words the storage has.
        got: usize,
    },
}

impl fmt::Display for HeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeatError::EmptySpan => f.write_str("the VM has no guest memory to map"),
            HeatError::SpanBeyondMax => {
                f.write_str("guest memory ends above the 52-bit guest physical address space")
            }
            HeatError::WindowZero => f.write_str("window: 0 is below 1"),
            HeatError::WindowTooLarge {
                window,
                max,
                granule,
            } => write!(
                f,
                "window: {window} is above {max}, the most a {granule} granule allows"
            ),
            HeatError::HistoryRounds(n) => write!(
                f,
                "history: {n} is not in 1..={}",
                super::MAX_HISTORY_ROUNDS
            ),
            HeatError::TooLarge => f.write_str("the heat map would not fit in memory"),
            HeatError::StorageTooSmall { needed, got } => {
                write!(f, "storage of {got} words, {needed} needed")
            }
        }
    }
}

/// Zeroes the first `needed` elements of caller-supplied `storage`, or
/// says it is too short: how the heat store and the history ring take the
/// storage they are given. Elements beyond `needed` are not touched.
pub(crate) fn zero_prefix<T: Copy + Default>(
    storage: &mut [T],
    needed: usize,
) -> Result<(), HeatError> {
    let got = storage.len();
    let words = storage
        .get_mut(..needed)
        .ok_or(HeatError::StorageTooSmall { needed, got })?;
    words.fill(T::default());
    Ok(())
}
