// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/heatmap.bin`: the heat store as a binary
//! file of fixed-size records, for large VMs and for tools.
//!
//! # Layout (version 1, all integers little-endian)
//!
//! A 64-byte header:
//!
//! ```text
//! offset size  field
//!  0      8    magic "EPTHEAT\0"
//!  8      2    version (1)
//! 10      2    header size (64): records start here
//! 12      2    record size (4)
//! 14      1    log2 of the granule in bytes (12..=39)
//! 15      1    window, in rounds
//! 16      1    mode: 0 accessed, 1 dirty, 2 both
//! 17      7    zero
//! 24      8    guest-physical address of record 0
//! 32      8    guest-physical address where the VM's span ends
//! 40      8    number of records
//! 48      8    rounds begun
//! 56      8    the latest round whose dirty bits were cut short because
//!              dirty logging began, 0 for none (as `heatmap`'s
//!              `dirty_partial`; zero from an older module)
//! ```
//!
//! then one 4-byte record per granule, record `i` for the granule at
//! `base + i * granule`, so that a reader finds any address with one
//! `pread` at `header size + i * record size`:
//!
//! ```text
//! 0  state: 0 unknown, 1 hole, 2 present (size unseen), 3 present 4K,
//!    4 present 2M, 5 present 1G, 6 present mixed sizes
//! 1  rounds accessed in the window, 0xff if the mode does not record it
//! 2  rounds dirtied in the window, 0xff likewise
//! 3  zero
//! ```
//!
//! Readers check the magic and version, and use the header and record
//! sizes from the header (a later version may append fields to either).
//!
//! [`render`] fills any byte range of the file without building it whole:
//! the `read` handler of the proc file calls it with the file offset.

use super::fields::FormatError;
use core::ops::DerefMut;

use crate::heat::{Cell, Granule, MapView, State, StoreLayout, StoreView, Track};

/// The first 8 bytes.
pub const MAGIC: [u8; 8] = *b"EPTHEAT\0";
/// The format version this code writes.
pub const VERSION: u16 = 1;
/// Bytes of the version-1 header.
pub const HEADER_SIZE: usize = 64;
/// Bytes of a version-1 record.
pub const RECORD_SIZE: usize = 4;
/// A count byte meaning "not recorded".
pub const NOT_RECORDED: u8 = 0xff;

/// The header of `heatmap.bin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinHeader {
    /// Format version.
    pub version: u16,
    /// Offset of record 0.
    pub header_size: u16,
    /// Bytes per record.
    pub record_size: u16,
    /// The granule.
    pub granule: Granule,
    /// The window.
    pub window: u8,
    /// What the latest round recorded.
    pub mode: Track,
    /// Guest-physical address of record 0.
    pub base_gpa: u64,
    /// Guest-physical address where the span ends.
    pub end_gpa: u64,
    /// Number of records.
    pub count: u64,
    /// Rounds begun.
    pub rounds: u64,
    /// The latest round whose dirty bits were cut short by dirty logging,
    /// 0 for none.
    pub dirty_partial: u64,
}

impl BinHeader {
    /// The header of `view`.
    pub fn of(view: &MapView<'_>) -> BinHeader {
        let store = &view.store;
        let layout = store.layout();
        BinHeader {
            version: VERSION,
            header_size: HEADER_SIZE as u16,
            record_size: RECORD_SIZE as u16,
            granule: layout.granule(),
            window: layout.window(),
            mode: view.track,
            base_gpa: layout.base().gpa(),
            end_gpa: layout.span().end.gpa(),
            count: store.cells() as u64,
            rounds: store.rounds(),
            dirty_partial: view.totals.dirty_partial_last,
        }
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        put(&mut b, 0, &MAGIC);
        put(&mut b, 8, &self.version.to_le_bytes());
        put(&mut b, 10, &self.header_size.to_le_bytes());
        put(&mut b, 12, &self.record_size.to_le_bytes());
        put(
            &mut b,
            14,
            &[self.granule.shift() as u8, self.window, self.mode.code()],
        );
        put(&mut b, 24, &self.base_gpa.to_le_bytes());
        put(&mut b, 32, &self.end_gpa.to_le_bytes());
        put(&mut b, 40, &self.count.to_le_bytes());
        put(&mut b, 48, &self.rounds.to_le_bytes());
        put(&mut b, 56, &self.dirty_partial.to_le_bytes());
        b
    }

    /// Parses the start of a `heatmap.bin` file (at least the 64 bytes of a
    /// version-1 header).
    pub fn parse(bytes: &[u8]) -> Result<BinHeader, FormatError> {
        let magic = bytes.get(..8).ok_or(FormatError::Missing("header"))?;
        if magic != MAGIC {
            return Err(FormatError::Bad("magic"));
        }
        let version = u16_at(bytes, 8)?;
        if version != VERSION {
            return Err(FormatError::Version(u64::from(version)));
        }
        let header_size = u16_at(bytes, 10)?;
        let record_size = u16_at(bytes, 12)?;
        if usize::from(header_size) < HEADER_SIZE {
            return Err(FormatError::Bad("header size"));
        }
        if usize::from(record_size) < RECORD_SIZE {
            return Err(FormatError::Bad("record size"));
        }
        let byte = |at: usize| bytes.get(at).copied().ok_or(FormatError::Missing("header"));
        Ok(BinHeader {
            version,
            header_size,
            record_size,
            granule: Granule::from_shift(u32::from(byte(14)?))
                .ok_or(FormatError::Bad("granule"))?,
            window: byte(15)?,
            mode: Track::from_code(byte(16)?).ok_or(FormatError::Bad("mode"))?,
            base_gpa: u64_at(bytes, 24)?,
            end_gpa: u64_at(bytes, 32)?,
            count: u64_at(bytes, 40)?,
            rounds: u64_at(bytes, 48)?,
            dirty_partial: u64_at(bytes, 56)?,
        })
    }

    /// The length of the whole file.
    pub fn file_size(&self) -> u64 {
        u64::from(self.header_size)
            .saturating_add(self.count.saturating_mul(u64::from(self.record_size)))
    }
}

/// Copies `src` into `dst` at `at`, as far as it fits.
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = dst.get_mut(at..) {
        for (d, s) in d.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, FormatError> {
    let s = b
        .get(at..at.wrapping_add(2))
        .ok_or(FormatError::Missing("header"))?;
    let mut a = [0u8; 2];
    put(&mut a, 0, s);
    Ok(u16::from_le_bytes(a))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, FormatError> {
    let s = b
        .get(at..at.wrapping_add(8))
        .ok_or(FormatError::Missing("header"))?;
    let mut a = [0u8; 8];
    put(&mut a, 0, s);
    Ok(u64::from_le_bytes(a))
}

/// One granule's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinRecord {
    /// What the granule is.
    pub state: State,
    /// Rounds accessed in the window, if recorded.
    pub accessed: Option<u8>,
    /// Rounds dirtied in the window, if recorded.
    pub dirty: Option<u8>,
}

impl BinRecord {
    /// The record of `cell` in a store with `window` and `mode`.
    pub fn of(cell: &Cell, window: u8, mode: Track) -> BinRecord {
        BinRecord {
            state: cell.current(),
            accessed: mode.accessed().then(|| cell.accessed_rounds(window)),
            dirty: mode.dirty().then(|| cell.dirty_rounds(window)),
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        [
            self.state.code(),
            self.accessed.unwrap_or(NOT_RECORDED),
            self.dirty.unwrap_or(NOT_RECORDED),
            0,
        ]
    }

    /// Parses a record (its first [`RECORD_SIZE`] bytes).
    pub fn parse(bytes: &[u8]) -> Result<BinRecord, FormatError> {
        let b = |i: usize| bytes.get(i).copied().ok_or(FormatError::Missing("record"));
        let count = |v: u8| (v != NOT_RECORDED).then_some(v);
        Ok(BinRecord {
            state: State::from_code(b(0)?).ok_or(FormatError::Bad("state"))?,
            accessed: count(b(1)?),
            dirty: count(b(2)?),
        })
    }
}

/// The length of `heatmap.bin` for `store`.
pub fn file_size(store: &StoreView<'_>) -> u64 {
    (HEADER_SIZE as u64).saturating_add((store.cells() as u64).saturating_mul(RECORD_SIZE as u64))
}

/// Fills `buf` with the bytes of `heatmap.bin` from `offset` on and returns
/// how many it wrote: `buf.len()`, or less at the end of the file (0 at or
/// past it). Costs O(bytes written), whatever the offset.
pub fn render(view: &MapView<'_>, offset: u64, buf: &mut [u8]) -> usize {
    render_from(&BinHeader::of(view), &view.store, offset, buf)
}

/// `heatmap.bin` as it was at one moment: the header and a copy of the heat
/// store's words. The proc file takes one at open, so that a reader sees
/// one consistent heat map however many `read` calls it takes, while
/// rounds go on; it costs as much memory as the heat store, while the file
/// is open.
pub struct BinSnapshot<W> {
    header: BinHeader,
    layout: StoreLayout,
    rounds: u64,
    words: W,
}

impl<W: DerefMut<Target = [u16]>> BinSnapshot<W> {
    /// Copies `view` into storage that `alloc(n)` gives for `n` words;
    /// `None` if `alloc` fails or gives too few, or if a visit of a
    /// running round is pending (a reader holding the sampler's lock never
    /// sees one).
    pub fn take(view: &MapView<'_>, alloc: impl FnOnce(usize) -> Option<W>) -> Option<Self> {
        let src = view.store.settled_words()?;
        let mut words = alloc(src.len())?;
        words.get_mut(..src.len())?.copy_from_slice(src);
        Some(BinSnapshot {
            header: BinHeader::of(view),
            layout: *view.store.layout(),
            rounds: view.store.rounds(),
            words,
        })
    }

    /// The header.
    pub fn header(&self) -> &BinHeader {
        &self.header
    }

    /// As [`render`], from the copy.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let store = StoreView::new(self.layout, &self.words, self.rounds);
        render_from(&self.header, &store, offset, buf)
    }
}

/// [`render`] with the header given: the records come from `store`, in
/// `header.mode`.
fn render_from(header: &BinHeader, store: &StoreView<'_>, offset: u64, buf: &mut [u8]) -> usize {
    let mode = header.mode;
    let size = file_size(store);
    if offset >= size {
        return 0;
    }
    let len = usize::try_from(size.wrapping_sub(offset))
        .unwrap_or(usize::MAX)
        .min(buf.len());
    let window = store.layout().window();
    let mut written = 0usize;
    let mut pos = offset;
    // Copies `src` to the output and advances; `false` when the output is
    // full.
    let mut emit = |src: &[u8], written: &mut usize, pos: &mut u64| -> bool {
        let Some(out) = buf.get_mut(*written..len) else {
            return false;
        };
        let n = src.len().min(out.len());
        put(out, 0, src);
        *written = written.wrapping_add(n);
        *pos = pos.wrapping_add(n as u64);
        *written < len
    };

    if pos < HEADER_SIZE as u64 {
        let header = header.encode();
        let skip = usize::try_from(pos).unwrap_or(0);
        if !emit(header.get(skip..).unwrap_or(&[]), &mut written, &mut pos) {
            return written;
        }
    }
    loop {
        // `pos >= HEADER_SIZE` here, and below the file's size.
        let rel = pos.wrapping_sub(HEADER_SIZE as u64);
        let index = rel / RECORD_SIZE as u64;
        let skip = (rel % RECORD_SIZE as u64) as usize;
        let cell = usize::try_from(index)
            .ok()
            .and_then(|i| store.cell(i))
            .unwrap_or(Cell::EMPTY);
        let record = BinRecord::of(&cell, window, mode).encode();
        let src = record.get(skip..).unwrap_or(&[]);
        if src.is_empty() || !emit(src, &mut written, &mut pos) {
            return written;
        }
    }
}
