// SPDX-License-Identifier: GPL-2.0

//! The entries of KVM's two-dimensional page tables ("SPTEs").
//!
//! An entry mixes three layouts: the hardware's (Intel EPT or AMD NPT, see
//! [`Format`]), KVM's software bits that both formats share (the MMU-present
//! bit 11, the A/D type in bits 52-53, see [`AdType`]), and the physical
//! address of the next table or page. This file is the only place that knows
//! bit positions; the walker asks [`Spte`] and [`Format`] questions and
//! matches entries against [`Pattern`]s built here.
//!
//! Which bit is which comes from KVM (`arch/x86/kvm/mmu/spte.h`) and the
//! Intel SDM / AMD APM; none of it is read from the running kernel except the
//! physical-address mask, which the caller passes in (the kernel's exported
//! `physical_mask`, which excludes memory-encryption bits).

use super::addr::Level;

/// KVM's software "shadow present" bit (`SPTE_MMU_PRESENT_MASK`). An entry
/// without it is not a mapping, whatever its hardware bits say: KVM's
/// not-present entries are `0`, `SHADOW_NONPRESENT_VALUE` (bit 63) or MMIO
/// markers.
const MMU_PRESENT: u64 = 1 << 11;

/// Bit 7: in a level-2 or level-3 entry, "this entry maps a 2 MiB / 1 GiB
/// page". In a level-1 entry the same bit is something else (the PAT bit for
/// NPT, ignored by EPT), so it must never be read as "large" there.
const LARGE: u64 = 1 << 7;

/// KVM's A/D type field (`SPTE_TDP_AD_MASK`), bits 52-53.
const AD_TYPE_SHIFT: u32 = 52;
const AD_TYPE_MASK: u64 = 0b11 << AD_TYPE_SHIFT;

/// Address bits 12..=51 of an entry (`SPTE_BASE_ADDR_MASK` before the
/// physical mask is applied).
const ADDR_BITS: u64 = 0x000f_ffff_ffff_f000;

/// The value KVM stores in an entry it is changing without holding `mmu_lock`
/// for write (`FROZEN_SPTE` = `SHADOW_NONPRESENT_VALUE | 0x5a0`). Other
/// threads must not modify it. It has bit 5 (the NPT accessed bit) and bit 8
/// (the EPT accessed bit) set, so it must be recognised before any A test.
pub const FROZEN_SPTE: u64 = (1 << 63) | 0x5a0;

/// The hardware layout of an entry's accessed and dirty bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Intel EPT: read/write/execute in bits 0-2, accessed bit 8, dirty bit 9
    /// (accessed and dirty exist only when the EPTP enables them, KVM's
    /// `eptad`).
    Ept,
    /// AMD NPT: an ordinary x86-64 page table: present bit 0, accessed bit 5,
    /// dirty bit 6.
    Npt,
}

impl Format {
    /// The accessed bit. The CPU sets it in every entry, leaf or not, that it
    /// uses to translate a guest physical address.
    #[inline]
    pub const fn accessed_mask(self) -> u64 {
        match self {
            Format::Ept => 1 << 8,
            Format::Npt => 1 << 5,
        }
    }

    /// The dirty bit. The CPU sets it in a leaf entry on a write through it;
    /// non-leaf entries have none.
    #[inline]
    pub const fn dirty_mask(self) -> u64 {
        match self {
            Format::Ept => 1 << 9,
            Format::Npt => 1 << 6,
        }
    }
}

/// A test that a raw entry matches: `raw & mask == value`.
///
/// The walker's fast paths use one to recognise, with a single AND and
/// compare per entry, the entries it has nothing to do for but report: idle
/// leaves, and table entries it will not enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// Bits that are compared.
    pub mask: u64,
    /// Their required values.
    pub value: u64,
}

impl Pattern {
    /// Whether `raw` matches.
    #[inline(always)]
    pub const fn matches(self, raw: u64) -> bool {
        raw & self.mask == self.value
    }

    /// The pattern of an idle leaf at `level` in `format`: present to KVM,
    /// a leaf (the large bit at levels 2 and 3), A/D type
    /// [`AdType::Enabled`], A clear and, if `with_dirty`, D clear. `None`
    /// above level 3, where there are no leaves.
    ///
    /// Frozen entries never match: they lack the present bit.
    pub const fn idle_leaf(format: Format, level: Level, with_dirty: bool) -> Option<Pattern> {
        let large = match level.get() {
            1 => 0,
            2 | 3 => LARGE,
            _ => return None,
        };
        let dirty = if with_dirty { format.dirty_mask() } else { 0 };
        Some(Pattern {
            mask: MMU_PRESENT | large | AD_TYPE_MASK | format.accessed_mask() | dirty,
            value: MMU_PRESENT | large,
        })
    }

    /// The pattern of a table entry at `level` (2 to 5) in `format` whose A
    /// bit is clear: present to KVM, not large, A/D type
    /// [`AdType::Enabled`], A clear. `None` at level 1, which holds no table
    /// entries.
    pub const fn unaccessed_table(format: Format, level: Level) -> Option<Pattern> {
        if level.get() < 2 {
            return None;
        }
        Some(Pattern {
            mask: MMU_PRESENT | LARGE | AD_TYPE_MASK | format.accessed_mask(),
            value: MMU_PRESENT,
        })
    }
}

/// How KVM uses the A/D bits of one entry (bits 52-53).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdType {
    /// `SPTE_TDP_AD_ENABLED`: the CPU maintains A and D.
    Enabled,
    /// `SPTE_TDP_AD_DISABLED`: no hardware A/D (`eptad=0`, or an L1 that
    /// disabled them for its L2). KVM tracks accesses by removing
    /// permissions instead; the A and D bits mean nothing and are never
    /// written.
    Disabled,
    /// `SPTE_TDP_AD_WRPROT_ONLY`: the CPU maintains A and D, but KVM tracks
    /// dirtiness by write protection (nested PML). A may be cleared; D must be
    /// left alone.
    WrProtOnly,
    /// The fourth encoding, which KVM never writes. Treated like
    /// [`AdType::Disabled`].
    Reserved,
}

impl AdType {
    /// Whether the entry's A bit is maintained by the CPU, so that reading it
    /// and clearing it make sense.
    #[inline]
    pub const fn tracks_accessed(self) -> bool {
        matches!(self, AdType::Enabled | AdType::WrProtOnly)
    }

    /// Whether the entry's D bit may be cleared. Only for
    /// [`AdType::Enabled`]: under [`AdType::WrProtOnly`] KVM relies on write
    /// protection and clearing D would be harmless but pointless, and a
    /// disabled type has no D at all.
    #[inline]
    pub const fn may_clear_dirty(self) -> bool {
        matches!(self, AdType::Enabled)
    }
}

/// One entry of a TDP table, as read from memory.
///
/// An `Spte` is a snapshot: the table entry it was read from may have changed
/// since. Bits are interpreted with the entry's [`Level`] and the table's
/// [`Format`] where they differ between levels or vendors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spte(pub u64);

impl Spte {
    /// Whether KVM considers the entry present (its software bit 11).
    /// [`FROZEN_SPTE`] and MMIO entries are not present.
    #[inline]
    pub const fn is_present(self) -> bool {
        self.0 & MMU_PRESENT != 0
    }

    /// Whether the entry is KVM's frozen marker, which is never accessed and
    /// must never be written by anyone but its owner.
    #[inline]
    pub const fn is_frozen(self) -> bool {
        self.0 == FROZEN_SPTE
    }

    /// The large-page bit 7. Means "large" only at levels 2 and 3; use
    /// [`Spte::is_leaf`].
    #[inline]
    pub const fn large_bit(self) -> bool {
        self.0 & LARGE != 0
    }

    /// Whether a present entry at `level` maps a page rather than a table.
    ///
    /// Level-1 entries always do (bit 7 there is NPT's PAT bit). Above
    /// level 3 the large bit is reserved; an entry with it is
    /// [`Spte::is_malformed_at`] and is neither a leaf nor a table.
    #[inline]
    pub const fn is_leaf(self, level: Level) -> bool {
        level.get() == 1 || (level.get() <= 3 && self.large_bit())
    }

    /// Whether a present entry at `level` has the large bit where no large
    /// page exists (levels 4 and 5). KVM never writes such an entry.
    #[inline]
    pub const fn is_malformed_at(self, level: Level) -> bool {
        level.get() > 3 && self.large_bit()
    }

    /// The entry's A/D type.
    #[inline]
    pub const fn ad_type(self) -> AdType {
        match (self.0 & AD_TYPE_MASK) >> AD_TYPE_SHIFT {
            0 => AdType::Enabled,
            1 => AdType::Disabled,
            2 => AdType::WrProtOnly,
            _ => AdType::Reserved,
        }
    }

    /// Whether the entry's A/D type has a hardware accessed bit
    /// ([`AdType::tracks_accessed`], computed from the bits: the types that
    /// do, 0 and 2, are those with bit 52 clear).
    #[inline]
    pub const fn tracks_accessed(self) -> bool {
        self.0 & (1 << AD_TYPE_SHIFT) == 0
    }

    /// Whether the entry's dirty bit may be cleared
    /// ([`AdType::may_clear_dirty`]: type 0, both bits clear).
    #[inline]
    pub const fn may_clear_dirty(self) -> bool {
        self.0 & AD_TYPE_MASK == 0
    }

    /// Whether the accessed bit of `format` is set and means something (the
    /// entry is present and its A/D type tracks A). False for
    /// [`FROZEN_SPTE`], though it has both formats' A bits.
    #[inline]
    pub const fn is_accessed(self, format: Format) -> bool {
        self.is_present()
            && self.ad_type().tracks_accessed()
            && self.0 & format.accessed_mask() != 0
    }

    /// Whether the dirty bit of `format` is set and means something (as
    /// [`Spte::is_accessed`]). Meaningful for leaves only.
    #[inline]
    pub const fn is_dirty(self, format: Format) -> bool {
        self.is_present() && self.ad_type().tracks_accessed() && self.0 & format.dirty_mask() != 0
    }

    /// The physical address the entry points to (a table, or the start of
    /// the page for a leaf). `phys_mask` is the host's physical-address mask
    /// (the kernel's `physical_mask`), which strips memory-encryption bits;
    /// bits 0-11 and 52-63 are never part of the address.
    #[inline]
    pub const fn addr(self, phys_mask: u64) -> u64 {
        self.0 & phys_mask & ADDR_BITS
    }

    /// The host page frame number the entry points to.
    #[inline]
    pub const fn pfn(self, phys_mask: u64) -> u64 {
        self.addr(phys_mask) >> 12
    }
}
