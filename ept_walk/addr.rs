// SPDX-License-Identifier: GPL-2.0

//! Guest frame numbers, page sizes and paging levels.
//!
//! These are the coordinates of a walk. A [`Gfn`] names a 4 KiB guest page; a
//! [`Level`] names a table in the hierarchy (1 holds 4 KiB leaves, 4 or 5 is
//! the root); a [`PageSize`] is what a leaf at level 1, 2 or 3 maps.
//!
//! All arithmetic here is on values bounded by construction (a level is at
//! most 5, so a shift is at most 45 and a GFN below a root is below 2^45). It
//! is written with masks and `wrapping_*`/`saturating_*` operations anyway,
//! so that the kernel's overflow checks generate no panic path.

/// Number of entries in one table of any level.
pub const ENTRIES_PER_TABLE: usize = 512;

/// Bits of a GFN consumed by one level of tables (log2 of
/// [`ENTRIES_PER_TABLE`]).
const BITS_PER_LEVEL: u32 = 9;

/// A guest frame number: a guest physical address shifted right by 12.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gfn(pub u64);

impl Gfn {
    /// The GFN `pages` pages above this one, saturating at `u64::MAX`.
    #[inline]
    pub const fn offset(self, pages: u64) -> Gfn {
        Gfn(self.0.saturating_add(pages))
    }

    /// The guest physical address of the start of this page.
    ///
    /// Saturates for GFNs that have no 64-bit address (none below a root do).
    #[inline]
    pub const fn gpa(self) -> u64 {
        if self.0 > (u64::MAX >> 12) {
            u64::MAX
        } else {
            self.0 << 12
        }
    }
}

/// A half-open range of guest frames, `start..end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GfnRange {
    /// First GFN in the range.
    pub start: Gfn,
    /// First GFN after the range.
    pub end: Gfn,
}

impl GfnRange {
    /// The range `start..end`.
    #[inline]
    pub const fn new(start: Gfn, end: Gfn) -> GfnRange {
        GfnRange { start, end }
    }

    /// Every GFN a 64-bit address space can hold; clipped to the root's span
    /// by the walker.
    pub const ALL: GfnRange = GfnRange {
        start: Gfn(0),
        end: Gfn(u64::MAX),
    };

    /// Number of pages in the range (0 if `end <= start`).
    #[inline]
    pub const fn pages(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }

    /// Whether the range holds no page.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.end.0 <= self.start.0
    }

    /// Whether `gfn` lies in the range.
    #[inline]
    pub const fn contains(&self, gfn: Gfn) -> bool {
        self.start.0 <= gfn.0 && gfn.0 < self.end.0
    }

    /// The part of this range that lies inside `other` (possibly empty).
    #[inline]
    pub fn intersect(&self, other: &GfnRange) -> GfnRange {
        GfnRange {
            start: Gfn(self.start.0.max(other.start.0)),
            end: Gfn(self.end.0.min(other.end.0)),
        }
    }
}

/// The size of a page mapped by one leaf entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB, mapped by a level-1 entry.
    Size4K,
    /// 2 MiB, mapped by a level-2 entry with the large bit.
    Size2M,
    /// 1 GiB, mapped by a level-3 entry with the large bit.
    Size1G,
}

impl PageSize {
    /// log2 of the page size in bytes: 12, 21 or 30.
    #[inline]
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// Size in bytes.
    #[inline]
    pub const fn bytes(self) -> u64 {
        1u64.wrapping_shl(self.shift())
    }

    /// Number of 4 KiB pages (GFNs) covered: 1, 512 or 262144.
    #[inline]
    pub const fn pages(self) -> u64 {
        1u64.wrapping_shl(self.shift().wrapping_sub(12))
    }

    /// The level whose leaf entries map pages of this size.
    #[inline]
    pub const fn level(self) -> Level {
        match self {
            PageSize::Size4K => Level(1),
            PageSize::Size2M => Level(2),
            PageSize::Size1G => Level(3),
        }
    }
}

/// A level in the table hierarchy, 1 (4 KiB leaves) to 5 (a 5-level root).
///
/// # Invariants
///
/// The wrapped value is in `1..=5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(u8);

impl Level {
    /// Level 1: the tables that hold 4 KiB leaves.
    pub const PTE: Level = Level(1);
    /// Level 2: entries map 2 MiB, as a leaf or a level-1 table.
    pub const PMD: Level = Level(2);
    /// Level 3: entries map 1 GiB, as a leaf or a level-2 table.
    pub const PUD: Level = Level(3);
    /// Root level of 4-level tables (48-bit guest physical addresses).
    pub const ROOT4: Level = Level(4);
    /// Root level of 5-level tables (57-bit guest physical addresses).
    pub const ROOT5: Level = Level(5);

    /// The level numbered `n`, if `1 <= n <= 5`.
    #[inline]
    pub const fn new(n: u8) -> Option<Level> {
        if n >= 1 && n <= 5 {
            Some(Level(n))
        } else {
            None
        }
    }

    /// The level number, 1 to 5.
    #[inline]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The level of the tables this level's entries point to; `None` at
    /// level 1.
    #[inline]
    pub const fn child(self) -> Option<Level> {
        if self.0 > 1 {
            Some(Level(self.0.wrapping_sub(1)))
        } else {
            None
        }
    }

    /// log2 of the number of pages one entry at this level covers.
    #[inline]
    pub const fn entry_shift(self) -> u32 {
        // `1 <= self.0 <= 5` by the type invariant: at most 36.
        (self.0 as u32).wrapping_sub(1).wrapping_mul(BITS_PER_LEVEL)
    }

    /// Number of 4 KiB pages one entry at this level covers (1, 512, ...).
    #[inline]
    pub const fn entry_pages(self) -> u64 {
        1u64.wrapping_shl(self.entry_shift())
    }

    /// Number of 4 KiB pages a whole table at this level covers.
    #[inline]
    pub const fn table_pages(self) -> u64 {
        1u64.wrapping_shl(self.entry_shift().wrapping_add(BITS_PER_LEVEL))
    }

    /// Index of the entry at this level that translates `gfn`.
    #[inline]
    pub const fn index(self, gfn: Gfn) -> usize {
        (gfn.0.wrapping_shr(self.entry_shift()) & (ENTRIES_PER_TABLE as u64 - 1)) as usize
    }

    /// `gfn` rounded down to the start of the entry at this level that
    /// translates it.
    #[inline]
    pub const fn align_down(self, gfn: Gfn) -> Gfn {
        Gfn(gfn.0 & !self.entry_pages().wrapping_sub(1))
    }

    /// The size of a leaf at this level; `None` above level 3, where entries
    /// can only point to tables.
    #[inline]
    pub const fn leaf_size(self) -> Option<PageSize> {
        match self.0 {
            1 => Some(PageSize::Size4K),
            2 => Some(PageSize::Size2M),
            3 => Some(PageSize::Size1G),
            _ => None,
        }
    }
}
