// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/history`: the history ring as text, oldest
//! round first; for address x time pictures.
//!
//! ```text
//! # ept_sampler history 1
//! # vm 1234-12
//! # region 2M
//! # base 0x0
//! # regions 512
//! # capacity 64
//! # kept 2
//! # share 00: no page, ff: every page, 01-fe: ceil(254 * pages / region pages)
//! round 7 start_ns 812000000 walk_ns 91000 leaves 262144 accessed_pages 3 dirty_pages 1 cleared 4 yields 0 flush yes mode both
//! accessed 7 0x0 ff01000000...
//! dirty 7 0x0 0001000000...
//! round 8 ...
//! ```
//!
//! Per round: one `round` line of `key value` pairs (unknown pairs are to
//! be ignored by readers), then its shares in chunks of [`CHUNK`] regions:
//! `accessed <round> <GPA of the chunk's first region> <2 hex digits per
//! region>`, and the same for `dirty`. Lines of a kind the round's `mode`
//! does not record are left out. The last region may be shorter than the
//! others (the span's end): its shares are fractions of its own pages.
//!
//! [`render_item`] writes one item at a position, for a `seq_file`
//! iterator: position 0 is the header, then each kept round has
//! `1 + 2 * chunks` positions (its round line, accessed chunks, dirty
//! chunks).

use core::fmt;

use super::control::VmId;
use super::fields::{header, hex, yes_no, yes_no_str, Columns, FormatError};
use crate::ept_walk::Gfn;
use crate::heat::{parse_decimal, Granule, HistoryView, MapView, RoundRecord, Track};

/// The format version in the first header line.
pub const FORMAT_VERSION: u64 = 1;
/// Regions per share line.
pub const CHUNK: usize = 256;

/// The header of a `history` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The VM.
    pub vm: VmId,
    /// The region granule.
    pub region: Granule,
    /// Guest-physical address of region 0.
    pub base: u64,
    /// Number of regions.
    pub regions: u64,
    /// Rounds the ring can keep.
    pub capacity: u64,
    /// Rounds in the ring now.
    pub kept: u64,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# ept_sampler history {FORMAT_VERSION}")?;
        writeln!(f, "# vm {}", self.vm)?;
        writeln!(f, "# region {}", self.region)?;
        writeln!(f, "# base {:#x}", self.base)?;
        writeln!(f, "# regions {}", self.regions)?;
        writeln!(f, "# capacity {}", self.capacity)?;
        writeln!(f, "# kept {}", self.kept)?;
        writeln!(
            f,
            "# share 00: no page, ff: every page, 01-fe: ceil(254 * pages / region pages)"
        )
    }
}

impl Header {
    /// The header of `history` for `vm`.
    pub fn of(history: &HistoryView<'_>, vm: VmId) -> Header {
        let layout = history.layout();
        Header {
            vm,
            region: layout.region(),
            base: layout.base().gpa(),
            regions: layout.regions() as u64,
            capacity: u64::from(layout.rounds()),
            kept: history.kept() as u64,
        }
    }

    /// Parses the header lines of a `history` text.
    pub fn parse(text: &str) -> Result<Header, FormatError> {
        let version = header(text, "ept_sampler")
            .and_then(|v| v.strip_prefix("history "))
            .ok_or(FormatError::Missing("ept_sampler history"))?;
        let version = parse_decimal(version).map_err(|_| FormatError::Bad("version"))?;
        if version != FORMAT_VERSION {
            return Err(FormatError::Version(version));
        }
        let get = |key: &'static str| header(text, key).ok_or(FormatError::Missing(key));
        let number =
            |key: &'static str| parse_decimal(get(key)?).map_err(|_| FormatError::Bad(key));
        Ok(Header {
            vm: VmId::parse(get("vm")?).map_err(|_| FormatError::Bad("vm"))?,
            region: Granule::parse(get("region")?).map_err(|_| FormatError::Bad("region"))?,
            base: hex(get("base")?).ok_or(FormatError::Bad("base"))?,
            regions: number("regions")?,
            capacity: number("capacity")?,
            kept: number("kept")?,
        })
    }
}

/// Writes a round line, with its newline.
fn write_round(w: &mut dyn fmt::Write, r: &RoundRecord) -> fmt::Result {
    writeln!(
        w,
        "round {} start_ns {} walk_ns {} leaves {} accessed_pages {} dirty_pages {} cleared {} yields {} flush {} mode {}",
        r.round,
        r.start_ns,
        r.walk_ns,
        r.leaves,
        r.accessed_pages,
        r.dirty_pages,
        r.cleared,
        r.yields,
        yes_no_str(r.flushed),
        r.track.as_str()
    )
}

/// Number of share chunks per kind and round.
fn chunks(view: &HistoryView<'_>) -> usize {
    view.layout().regions().div_ceil(CHUNK)
}

/// Writes the item at `pos` and returns the position of the next one
/// (`None` after the last). Items of a kind the round does not record
/// write nothing.
pub fn render_item(
    w: &mut dyn fmt::Write,
    view: &MapView<'_>,
    vm: VmId,
    pos: u64,
) -> Result<Option<u64>, fmt::Error> {
    let h = &view.history;
    let chunks = chunks(h);
    let per_round = chunks.saturating_mul(2).saturating_add(1);
    let total = (per_round as u64)
        .saturating_mul(h.kept() as u64)
        .saturating_add(1);
    if pos == 0 {
        write!(w, "{}", Header::of(h, vm))?;
    } else if pos < total {
        let item = usize::try_from(pos.wrapping_sub(1)).unwrap_or(usize::MAX);
        // `per_round >= 1`.
        let age = item.checked_div(per_round).unwrap_or(usize::MAX);
        let j = item.checked_rem(per_round).unwrap_or(0);
        let Some(record) = h.record(age) else {
            return Ok(None);
        };
        if j == 0 {
            write_round(w, &record)?;
        } else {
            let dirty = j > chunks;
            let chunk = if dirty { j.wrapping_sub(chunks) } else { j }.wrapping_sub(1);
            let wanted = if dirty {
                record.track.dirty()
            } else {
                record.track.accessed()
            };
            if wanted {
                write_chunk(w, h, age, record.round, chunk, dirty)?;
            }
        }
    }
    let next = pos.saturating_add(1);
    Ok((next < total).then_some(next))
}

/// Writes one share line.
fn write_chunk(
    w: &mut dyn fmt::Write,
    h: &HistoryView<'_>,
    age: usize,
    round: u64,
    chunk: usize,
    dirty: bool,
) -> fmt::Result {
    let layout = h.layout();
    let first = chunk.saturating_mul(CHUNK);
    let end = first.saturating_add(CHUNK).min(layout.regions());
    let gpa = layout.region_range(first).start.gpa();
    // Region 0's range is clipped to the span's start; the chunk is named
    // by its unclipped first address.
    let gpa = if first == 0 { layout.base().gpa() } else { gpa };
    let kind = if dirty { "dirty" } else { "accessed" };
    write!(w, "{kind} {round} {gpa:#x} ")?;
    for region in first..end {
        let (a, d) = h.shares(age, region).unwrap_or((0, 0));
        write!(w, "{:02x}", if dirty { d } else { a })?;
    }
    w.write_char('\n')
}

/// Writes the whole `history` file.
pub fn render(w: &mut dyn fmt::Write, view: &MapView<'_>, vm: VmId) -> fmt::Result {
    let mut pos = 0u64;
    while let Some(next) = render_item(w, view, vm, pos)? {
        pos = next;
    }
    Ok(())
}

/// One data line of `history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A round line.
    Round(RoundRecord),
    /// A chunk of shares.
    Shares {
        /// `true` for dirty shares, `false` for accessed.
        dirty: bool,
        /// The round.
        round: u64,
        /// Guest-physical address of the chunk's first region.
        gpa: u64,
        /// Two hex digits per region (see [`shares`]).
        hex: &'a str,
    },
}

/// The shares of a share line, one per region; `None` for a pair of
/// characters that is not hex.
pub fn shares(hex: &str) -> impl Iterator<Item = Option<u8>> + '_ {
    hex.as_bytes().chunks(2).map(|pair| {
        let s = core::str::from_utf8(pair).ok()?;
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u8::from_str_radix(s, 16).ok()
    })
}

/// The value after `key` in a round line's pairs.
fn pair<'a>(line: &'a str, key: &'static str) -> Result<&'a str, FormatError> {
    let mut words = line.split(' ');
    while let Some(k) = words.next() {
        let v = words.next();
        if k == key {
            return v.ok_or(FormatError::Missing(key));
        }
    }
    Err(FormatError::Missing(key))
}

impl<'a> Line<'a> {
    /// Parses one data line.
    pub fn parse(line: &'a str) -> Result<Line<'a>, FormatError> {
        let num = |key| parse_decimal(pair(line, key)?).map_err(|_| FormatError::Bad(key));
        if line.starts_with("round ") {
            return Ok(Line::Round(RoundRecord {
                round: num("round")?,
                start_ns: num("start_ns")?,
                walk_ns: num("walk_ns")?,
                leaves: num("leaves")?,
                accessed_pages: num("accessed_pages")?,
                dirty_pages: num("dirty_pages")?,
                cleared: num("cleared")?,
                yields: u32::try_from(num("yields")?).map_err(|_| FormatError::Bad("yields"))?,
                flushed: yes_no(pair(line, "flush")?).ok_or(FormatError::Bad("flush"))?,
                track: Track::parse(pair(line, "mode")?).ok_or(FormatError::Bad("mode"))?,
            }));
        }
        let mut c = Columns::new(line);
        let dirty = match c.word("kind")? {
            "accessed" => false,
            "dirty" => true,
            _ => return Err(FormatError::Bad("kind")),
        };
        Ok(Line::Shares {
            dirty,
            round: c.number("round")?,
            gpa: c.hex("gpa")?,
            hex: c.word("shares")?,
        })
    }
}

/// Parses a whole `history` text: its header and its lines in order.
pub fn parse(
    text: &str,
) -> Result<
    (
        Header,
        impl Iterator<Item = Result<Line<'_>, FormatError>> + '_,
    ),
    FormatError,
> {
    let header = Header::parse(text)?;
    Ok((header, super::fields::data_lines(text).map(Line::parse)))
}

/// The first guest frame of a share line's region `i`, given the header.
pub fn region_gfn(header: &Header, chunk_gpa: u64, i: usize) -> Gfn {
    let offset = (i as u64).saturating_mul(header.region.pages());
    Gfn((chunk_gpa >> 12).saturating_add(offset))
}
