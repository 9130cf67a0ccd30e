// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/memslots`: the VM's memory slots, as the
//! glue copies them out of KVM into [`Memslot`]s, one line each.
//!
//! ```text
//! # slot as_id id base size flags
//! 0 0 0 0x0 0xa0000 -
//! 1 0 1 0xc0000 0x3ff40000 dirty_log
//! 65536 1 0 0x0 0xa0000 readonly
//! ```
//!
//! `slot` is the number userspace gave the slot in
//! `KVM_SET_USER_MEMORY_REGION` (`as_id << 16 | id`), which is also what the
//! heat map's `slot` column shows; `base` and `size` are guest-physical, in
//! bytes; `flags` is `-` or a comma-separated list of `dirty_log` and
//! `readonly`. Host addresses are never shown.

use core::fmt;

use super::fields::{Columns, FormatError};
use crate::ept_walk::{Gfn, GfnRange};

/// The flags of a memslot the sampler cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemslotFlags {
    /// Dirty logging is on (`KVM_MEM_LOG_DIRTY_PAGES`): KVM owns the dirty
    /// bits of this slot's pages, the sampler leaves them alone.
    pub dirty_log: bool,
    /// The guest cannot write the slot (`KVM_MEM_READONLY`).
    pub readonly: bool,
}

/// One memslot of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Memslot {
    /// Address space: 0 normal, 1 SMM.
    pub as_id: u16,
    /// Slot id within the address space.
    pub id: u16,
    /// First guest frame.
    pub base_gfn: u64,
    /// Number of 4 KiB pages.
    pub npages: u64,
    /// Flags.
    pub flags: MemslotFlags,
}

impl Memslot {
    /// The slot number userspace uses: `as_id << 16 | id`.
    #[inline]
    pub const fn slot(&self) -> u32 {
        ((self.as_id as u32) << 16) | self.id as u32
    }

    /// The guest frames of the slot.
    #[inline]
    pub const fn gfns(&self) -> GfnRange {
        GfnRange::new(Gfn(self.base_gfn), Gfn(self.base_gfn).offset(self.npages))
    }
}

impl fmt::Display for MemslotFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.dirty_log, self.readonly) {
            (false, false) => f.write_str("-"),
            (true, false) => f.write_str("dirty_log"),
            (false, true) => f.write_str("readonly"),
            (true, true) => f.write_str("dirty_log,readonly"),
        }
    }
}

impl MemslotFlags {
    /// Parses the `flags` column; unknown flags are ignored (new ones may be
    /// added).
    pub fn parse(word: &str) -> MemslotFlags {
        let mut flags = MemslotFlags::default();
        if word != "-" {
            for flag in word.split(',') {
                match flag {
                    "dirty_log" => flags.dirty_log = true,
                    "readonly" => flags.readonly = true,
                    _ => {}
                }
            }
        }
        flags
    }
}

/// The header line of `memslots`.
pub const HEADER: &str = "# slot as_id id base size flags\n";

impl fmt::Display for Memslot {
    /// One line of `memslots`, with its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} {} {:#x} {:#x} {}",
            self.slot(),
            self.as_id,
            self.id,
            Gfn(self.base_gfn).gpa(),
            Gfn(self.npages).gpa(),
            self.flags
        )
    }
}

/// Writes the whole `memslots` file.
pub fn render(w: &mut dyn fmt::Write, slots: &[Memslot]) -> fmt::Result {
    w.write_str(HEADER)?;
    for slot in slots {
        write!(w, "{slot}")?;
    }
    Ok(())
}

/// Parses one data line of `memslots`.
pub fn parse_line(line: &str) -> Result<Memslot, FormatError> {
    let mut c = Columns::new(line);
    let slot = c.number("slot")?;
    let as_id = u16::try_from(c.number("as_id")?).map_err(|_| FormatError::Bad("as_id"))?;
    let id = u16::try_from(c.number("id")?).map_err(|_| FormatError::Bad("id"))?;
    let base = c.hex("base")?;
    let size = c.hex("size")?;
    let flags = MemslotFlags::parse(c.word("flags")?);
    if base & 0xfff != 0 {
        return Err(FormatError::Bad("base"));
    }
    if size & 0xfff != 0 {
        return Err(FormatError::Bad("size"));
    }
    let m = Memslot {
        as_id,
        id,
        base_gfn: base >> 12,
        npages: size >> 12,
        flags,
    };
    if u64::from(m.slot()) != slot {
        return Err(FormatError::Bad("slot"));
    }
    Ok(m)
}

/// Parses a whole `memslots` file, one result per slot.
pub fn parse(text: &str) -> impl Iterator<Item = Result<Memslot, FormatError>> + '_ {
    super::fields::data_lines(text).map(parse_line)
}

/// Finds the memslot of GFNs visited in increasing order, in
/// O(slots) per slot boundary crossed rather than per lookup.
///
/// Address space 0 is preferred: in the SMM address space (1) KVM maps
/// SMRAM and aliases the rest of memory, so a frame mapped in both belongs
/// to its normal slot.
pub struct SlotFinder<'a> {
    slots: &'a [Memslot],
    /// The answer for GFNs in `valid`.
    cached: Option<u32>,
    valid: GfnRange,
}

impl<'a> SlotFinder<'a> {
    /// A finder over `slots` (in any order).
    pub fn new(slots: &'a [Memslot]) -> SlotFinder<'a> {
        SlotFinder {
            slots,
            cached: None,
            valid: GfnRange::default(),
        }
    }

    /// The slot number (see [`Memslot::slot`]) holding `gfn`, if any.
    pub fn find(&mut self, gfn: Gfn) -> Option<u32> {
        if self.valid.contains(gfn) {
            return self.cached;
        }
        // The best slot holding `gfn`, and the nearest boundary above
        // `gfn` of any slot, up to which the answer cannot change.
        let mut best: Option<&Memslot> = None;
        let mut start = Gfn(0);
        let mut end = Gfn(u64::MAX);
        for s in self.slots {
            let r = s.gfns();
            if r.contains(gfn) {
                let better = match best {
                    None => true,
                    Some(b) => (s.as_id, s.id) < (b.as_id, b.id),
                };
                if better {
                    best = Some(s);
                }
                end = end.min(r.end);
                start = start.max(r.start);
            } else if r.start > gfn {
                end = end.min(r.start);
            } else if r.end <= gfn && !r.is_empty() {
                start = start.max(r.end);
            }
        }
        self.cached = best.map(Memslot::slot);
        self.valid = GfnRange::new(start, end);
        self.cached
    }
}
