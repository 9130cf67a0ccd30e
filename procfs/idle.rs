// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/idle`: how much of the VM's mapped memory
//! has gone without an access, and without a write, for at least each of
//! its bins ([`heat::idle`](crate::heat::idle)), as `key value` lines
//! ([`super::kv`]):
//!
//! ```text
//! vm 1234-12
//! rounds 1200
//! sampled_ms 119900
//! mapped_bytes 268435456
//! bins 1s,10s,1m,10m,1h
//! never 1048576 -
//! idle 1s 201326592 -
//! idle 10s 150994944 -
//! idle 1m 134217728 -
//! idle 10m 0 -
//! idle 1h 0 -
//! ```
//!
//! `rounds` is the number of rounds begun, `sampled_ms` at least how long
//! from the first round's start to the latest vouching round's
//! ([`Clock`](crate::heat::Clock)), `mapped_bytes` the memory present in
//! the guest's tables as of the latest round that said. The `never` line
//! and each `idle` line (one per bin, in the order of `bins`) have two
//! columns: bytes not accessed, and bytes not written, for at least that
//! long (`never`: not since sampling began); `-` for a bit whose idle time
//! is not known (not sampled by the mode, or not since a round without a
//! TLB flush). Memory written within a bin is `mapped_bytes` less the
//! second column. Every figure is a lower bound of what the bits show
//! ([`heat::idle`](crate::heat::idle)): a granule counts once it has surely
//! been idle that long, which with the heat store's log scale can be up to
//! twice its true idle age; the memory never accessed counts in every bin
//! not longer than `sampled_ms`.

use core::fmt;

use super::control::VmId;
use super::fields::{data_lines, kv_number, kv_parsed, Columns, FormatError};
use super::kv;
use crate::heat::idle::write_duration;
use crate::heat::{IdleBins, IdleBytes, IdleCounts, MAX_IDLE_BINS};

/// The content of `idle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleFile {
    /// The VM.
    pub vm: VmId,
    /// The counts.
    pub counts: IdleCounts,
}

/// One column: a number, or `-` when the bit is not sampled.
struct Column(Option<u64>);

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Display for IdleFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        kv::write(f, "vm", format_args!("{}", self.vm))?;
        kv::write(f, "rounds", format_args!("{}", c.rounds))?;
        kv::write(f, "sampled_ms", format_args!("{}", c.sampled_ms))?;
        kv::write(f, "mapped_bytes", format_args!("{}", c.mapped))?;
        kv::write(f, "bins", format_args!("{}", c.bins))?;
        let (a, w) = (c.accessed.as_ref(), c.written.as_ref());
        kv::write(
            f,
            "never",
            format_args!(
                "{} {}",
                Column(a.map(|b| b.never)),
                Column(w.map(|b| b.never))
            ),
        )?;
        for (i, &ms) in c.bins.as_slice().iter().enumerate() {
            let at = |b: Option<&IdleBytes>| Column(b.and_then(|b| b.bins.get(i).copied()));
            f.write_str("idle ")?;
            write_duration(f, u64::from(ms))?;
            writeln!(f, " {} {}", at(a), at(w))?;
        }
        Ok(())
    }
}

/// A column as written by [`Column`].
fn column(word: &str) -> Option<Option<u64>> {
    if word == "-" {
        Some(None)
    } else {
        crate::heat::parse_decimal(word).ok().map(Some)
    }
}

impl IdleFile {
    /// Parses the text of `idle`; unknown keys are ignored.
    pub fn parse(text: &str) -> Result<IdleFile, FormatError> {
        let vm = kv_parsed(text, "vm", |v| VmId::parse(v).ok())?;
        let bins = kv_parsed(text, "bins", |v| IdleBins::parse(v).ok())?;
        let never = kv_parsed(text, "never", |v| {
            let mut cols = Columns::new(v);
            Some((
                cols.parsed("never", column).ok()?,
                cols.parsed("never", column).ok()?,
            ))
        })?;
        let mut accessed = never.0.map(|never| IdleBytes {
            never,
            ..IdleBytes::default()
        });
        let mut written = never.1.map(|never| IdleBytes {
            never,
            ..IdleBytes::default()
        });
        let mut seen = 0usize;
        for line in data_lines(text) {
            let Some(rest) = line.strip_prefix("idle ") else {
                continue;
            };
            let mut cols = Columns::new(rest);
            let bin = cols.parsed("idle bin", |w| IdleBins::parse(w).ok())?;
            let want = bins.as_slice().get(seen).copied();
            if bin.as_slice().first().copied() != want || bin.as_slice().len() != 1 {
                return Err(FormatError::Bad("idle bin"));
            }
            for (kind, what) in [
                (&mut accessed, "idle accessed"),
                (&mut written, "idle written"),
            ] {
                let value = cols.parsed(what, column)?;
                match (kind.as_mut(), value) {
                    (Some(b), Some(n)) => {
                        let slot = b.bins.get_mut(seen).ok_or(FormatError::Bad(what))?;
                        *slot = n;
                    }
                    (None, None) => {}
                    _ => return Err(FormatError::Bad(what)),
                }
            }
            seen = seen.saturating_add(1);
        }
        if seen != bins.as_slice().len() || seen > MAX_IDLE_BINS {
            return Err(FormatError::Missing("idle"));
        }
        Ok(IdleFile {
            vm,
            counts: IdleCounts {
                rounds: kv_number(text, "rounds")?,
                sampled_ms: kv_number(text, "sampled_ms")?,
                mapped: kv_number(text, "mapped_bytes")?,
                bins,
                accessed,
                written,
            },
        })
    }
}
