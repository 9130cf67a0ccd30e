// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/heatmap`: the heat store as text, one line
//! per run of equal consecutive granules.
//!
//! ```text
//! # ept_sampler heatmap 1
//! # vm 1234-12
//! # granule 4K
//! # window 5
//! # rounds 17
//! # mode both
//! # dirty_partial 0
//! # columns start end granule leaf accessed dirty window slot idle_ms unwritten_ms
//! 0x000000000000 0x0000000a0000 4K 4K 0 0 5 0 800 never
//! 0x0000000a0000 0x0000000c0000 4K hole 0 0 5 - - -
//! 0x0000000c0000 0x000000200000 4K 4K 5 2 5 1 0 100
//! 0x000000200000 0x000040000000 4K 2M 0 0 5 1 never never
//! ```
//!
//! Columns: first guest-physical address of the run and the one after it
//! (hex; clipped to the VM's span, so the last run may end inside a
//! granule); the granule; `leaf`: `4K`, `2M` or `1G` when every leaf seen
//! has that size, `mixed`, `?` (present, but only ever reported idle, so
//! the size is unknown), `hole` (not mapped in any root: holes are listed,
//! not omitted, so that a reader tells them from idle memory) or `unknown`
//! (never walked, or the walker could not judge it); in how many of the
//! last `window` rounds the run was accessed and dirtied (`-` if the mode
//! does not record it; fewer than `window` rounds while `rounds <
//! window`); the window; the memslot of each granule's first page (the
//! `slot` column of `memslots`, `-` for none); `idle_ms` and
//! `unwritten_ms`: how long the run has surely gone without an access and
//! without a write, in ms, a lower bound (`heat::idle`: exact within the
//! window, then on the heat store's log scale), `never` if not since
//! sampling began, `-` if the run is not mapped or the bit's idle time is
//! not known (not sampled by the mode, or not since the latest round
//! without a TLB flush: `heat::idle`; these two columns came later: a heat
//! map without them reads as `-`). A run breaks wherever
//! any column but the addresses changes. Host physical addresses never
//! appear.
//!
//! `dirty_partial` is the latest round whose dirty bits were cut short
//! because dirty logging began (the `stats` key `dirty_partial_rounds`
//! counts them), 0 for none: while it is one of the window's rounds
//! (`dirty_partial > rounds - window`), the dirty counts are true but miss
//! that round's writes after logging began
//! ([`Header::dirty_partial_in_window`]). A heat map without the line (from
//! an older module) is read as 0.
//!
//! The file can be long for a large VM, so besides [`render`] there is
//! [`render_item`], which writes one item (the header, or one run) at a
//! position and returns the next position: what a `seq_file` iterator
//! needs.

use core::fmt;

use super::control::VmId;
use super::fields::{header, Columns, FormatError};
use super::memslots::{Memslot, SlotFinder};
use crate::ept_walk::Gfn;
use crate::heat::{Granule, IdleAge, MapView, State, Trace, Track};

/// The format version in the first header line.
pub const FORMAT_VERSION: u64 = 1;

/// The header of a `heatmap` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The VM.
    pub vm: VmId,
    /// The granule.
    pub granule: Granule,
    /// The window, in rounds.
    pub window: u8,
    /// Rounds begun so far.
    pub rounds: u64,
    /// What the latest round recorded.
    pub mode: Track,
    /// The latest round whose dirty bits were cut short by dirty logging,
    /// 0 for none.
    pub dirty_partial: u64,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# ept_sampler heatmap {FORMAT_VERSION}")?;
        writeln!(f, "# vm {}", self.vm)?;
        writeln!(f, "# granule {}", self.granule)?;
        writeln!(f, "# window {}", self.window)?;
        writeln!(f, "# rounds {}", self.rounds)?;
        writeln!(f, "# mode {}", self.mode.as_str())?;
        writeln!(f, "# dirty_partial {}", self.dirty_partial)?;
        writeln!(
            f,
            "# columns start end granule leaf accessed dirty window slot idle_ms unwritten_ms"
        )
    }
}

/// One line of `heatmap`: a run of equal granules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First guest-physical address.
    pub start: u64,
    /// Guest-physical address after the run.
    pub end: u64,
    /// The granule.
    pub granule: Granule,
    /// What the granules are.
    pub state: State,
    /// Rounds accessed, if recorded.
    pub accessed: Option<u8>,
    /// Rounds dirtied, if recorded.
    pub dirty: Option<u8>,
    /// The window.
    pub window: u8,
    /// Memslot of each granule's first page (see
    /// [`Memslot::slot`]), if any.
    pub slot: Option<u32>,
    /// How long it has surely not been accessed, if recorded.
    pub idle: Option<IdleAge>,
    /// How long it has surely not been written, if recorded.
    pub unwritten: Option<IdleAge>,
}

/// Shows `None` as `-`.
struct Dash<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Dash<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Display for Run {
    /// One line, with its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:#014x} {:#014x} {} {} {} {} {} {} {} {}",
            self.start,
            self.end,
            self.granule,
            self.state.as_str(),
            Dash(self.accessed),
            Dash(self.dirty),
            self.window,
            Dash(self.slot),
            Dash(self.idle),
            Dash(self.unwritten)
        )
    }
}

/// What makes two granules equal for a run.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    state: State,
    accessed: Option<u8>,
    dirty: Option<u8>,
    slot: Option<u32>,
    idle: Option<IdleAge>,
    unwritten: Option<IdleAge>,
}

/// The key of granule `index`, or `None` past the end.
fn key_at(view: &MapView<'_>, slots: &mut SlotFinder<'_>, index: usize) -> Option<Key> {
    let store = &view.store;
    let track = view.track;
    let cell = store.cell(index)?;
    let layout = store.layout();
    let (width, window) = (layout.width(), layout.window());
    let first = layout.granule_range(index).start;
    // Ages of mapped granules only: a hole or an unknown granule has no
    // bits to be idle.
    let present = matches!(cell.current(), State::Present(_));
    let age = |on: bool, trace: Trace, dirty: bool| {
        (on && present)
            .then(|| view.clock.idle_age(trace.idle(width, window), dirty))
            .flatten()
    };
    Some(Key {
        state: cell.current(),
        accessed: track.accessed().then(|| cell.accessed_rounds(window)),
        dirty: track.dirty().then(|| cell.dirty_rounds(window)),
        slot: slots.find(first),
        idle: age(track.accessed(), cell.accessed, false),
        unwritten: age(track.dirty(), cell.dirty, true),
    })
}

/// The run starting at granule `index`, and the index after it.
fn run_at(view: &MapView<'_>, slots: &mut SlotFinder<'_>, index: usize) -> Option<(Run, usize)> {
    let store = &view.store;
    let key = key_at(view, slots, index)?;
    let mut end = index.saturating_add(1);
    while key_at(view, slots, end) == Some(key) {
        end = end.saturating_add(1);
    }
    let layout = store.layout();
    let span = layout.span();
    let start_gfn = layout.granule_range(index).start.max(span.start);
    let end_gfn = layout
        .granule_range(end.saturating_sub(1))
        .end
        .min(span.end);
    Some((
        Run {
            start: start_gfn.gpa(),
            end: end_gfn.gpa(),
            granule: layout.granule(),
            state: key.state,
            accessed: key.accessed,
            dirty: key.dirty,
            window: layout.window(),
            slot: key.slot,
            idle: key.idle,
            unwritten: key.unwritten,
        },
        end,
    ))
}

/// The header of `view` for `vm`.
pub fn header_of(view: &MapView<'_>, vm: VmId) -> Header {
    Header {
        vm,
        granule: view.store.layout().granule(),
        window: view.store.layout().window(),
        rounds: view.store.rounds(),
        mode: view.track,
        dirty_partial: view.totals.dirty_partial_last,
    }
}

/// Writes the item at `pos` and returns the position of the next one
/// (`None` after the last). Position 0 is the header; position `1 + i` is
/// the run that starts at granule `i`. Positions come from this function's
/// own answers; any other value writes the run starting there.
pub fn render_item(
    w: &mut dyn fmt::Write,
    view: &MapView<'_>,
    vm: VmId,
    slots: &[Memslot],
    pos: u64,
) -> Result<Option<u64>, fmt::Error> {
    if pos == 0 {
        write!(w, "{}", header_of(view, vm))?;
        return Ok((view.store.cells() > 0).then_some(1));
    }
    let Ok(index) = usize::try_from(pos.wrapping_sub(1)) else {
        return Ok(None);
    };
    let mut finder = SlotFinder::new(slots);
    let Some((run, next)) = run_at(view, &mut finder, index) else {
        return Ok(None);
    };
    write!(w, "{run}")?;
    Ok((next < view.store.cells()).then(|| (next as u64).wrapping_add(1)))
}

/// Writes the whole `heatmap` file.
pub fn render(
    w: &mut dyn fmt::Write,
    view: &MapView<'_>,
    vm: VmId,
    slots: &[Memslot],
) -> fmt::Result {
    write!(w, "{}", header_of(view, vm))?;
    let mut finder = SlotFinder::new(slots);
    let mut index = 0usize;
    while let Some((run, next)) = run_at(view, &mut finder, index) {
        write!(w, "{run}")?;
        index = next;
    }
    Ok(())
}

impl Header {
    /// Parses the header lines of a `heatmap` text; unknown header keys
    /// are ignored.
    pub fn parse(text: &str) -> Result<Header, FormatError> {
        let version = header(text, "ept_sampler")
            .and_then(|v| v.strip_prefix("heatmap "))
            .ok_or(FormatError::Missing("ept_sampler heatmap"))?;
        let version =
            crate::heat::parse_decimal(version).map_err(|_| FormatError::Bad("version"))?;
        if version != FORMAT_VERSION {
            return Err(FormatError::Version(version));
        }
        let get = |key: &'static str| header(text, key).ok_or(FormatError::Missing(key));
        let number = |key: &'static str| {
            crate::heat::parse_decimal(get(key)?).map_err(|_| FormatError::Bad(key))
        };
        Ok(Header {
            vm: VmId::parse(get("vm")?).map_err(|_| FormatError::Bad("vm"))?,
            granule: Granule::parse(get("granule")?).map_err(|_| FormatError::Bad("granule"))?,
            window: u8::try_from(number("window")?).map_err(|_| FormatError::Bad("window"))?,
            rounds: number("rounds")?,
            mode: Track::parse(get("mode")?).ok_or(FormatError::Bad("mode"))?,
            dirty_partial: match header(text, "dirty_partial") {
                Some(_) => number("dirty_partial")?,
                None => 0,
            },
        })
    }

    /// Whether a round of the window had its dirty bits cut short, so that
    /// the dirty counts miss some of its writes.
    pub fn dirty_partial_in_window(&self) -> bool {
        self.dirty_partial != 0
            && self.dirty_partial > self.rounds.saturating_sub(u64::from(self.window))
    }
}

/// Parses a count column: a number or `-`.
fn count(word: &str) -> Option<Option<u8>> {
    if word == "-" {
        Some(None)
    } else {
        crate::heat::parse_decimal(word)
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .map(Some)
    }
}

/// Parses an age column: `never`, a number or `-`.
fn age(word: &str) -> Option<Option<IdleAge>> {
    if word == "-" {
        Some(None)
    } else {
        IdleAge::parse(word).map(Some)
    }
}

impl Run {
    /// Parses one data line; columns after the known ones are ignored.
    pub fn parse(line: &str) -> Result<Run, FormatError> {
        let mut c = Columns::new(line);
        Ok(Run {
            start: c.hex("start")?,
            end: c.hex("end")?,
            granule: c.parsed("granule", |w| Granule::parse(w).ok())?,
            state: c.parsed("leaf", State::parse)?,
            accessed: c.parsed("accessed", count)?,
            dirty: c.parsed("dirty", count)?,
            window: c.parsed("window", |w| {
                crate::heat::parse_decimal(w)
                    .ok()
                    .and_then(|n| u8::try_from(n).ok())
            })?,
            slot: c.parsed("slot", |w| {
                if w == "-" {
                    Some(None)
                } else {
                    crate::heat::parse_decimal(w)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Some)
                }
            })?,
            idle: c.optional("idle_ms", age)?,
            unwritten: c.optional("unwritten_ms", age)?,
        })
    }

    /// The run's first guest frame.
    pub fn start_gfn(&self) -> Gfn {
        Gfn(self.start >> 12)
    }
}

/// Parses a whole `heatmap` text: its header, and its runs in order.
pub fn parse(
    text: &str,
) -> Result<(Header, impl Iterator<Item = Result<Run, FormatError>> + '_), FormatError> {
    let header = Header::parse(text)?;
    Ok((header, super::fields::data_lines(text).map(Run::parse)))
}
