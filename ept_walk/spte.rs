// SPDX-License-Identifier: GPL-2.0

//! The entries of KVM's two-dimensional page tables ("SPTEs").
//!
//! An entry mixes three layouts: the hardware's (Intel EPT or AMD NPT, see
//! [`Format`]), KVM's software bits that both formats share (the MMU-present
//! bit 11, the A/D type field and the frozen marker, see [`KvmBits`] and
//! [`AdType`]), and the physical address of the next table or page. This
//! file is the only place that knows bit positions; the walker asks
//! [`Spte`] and [`Format`] questions and matches entries against
//! [`Pattern`]s built here.
//!
//! Which bit is which comes from KVM (`arch/x86/kvm/mmu/spte.h`) and the
//! Intel SDM / AMD APM. Two things are not constants here, because KVM moved
//! them between the supported kernels: where the A/D type field lies and
//! the value of the frozen marker ([`KvmBits`], which the kernel side builds
//! from the target kernel's own `spte.h`), and the physical-address mask
//! (the kernel's exported `physical_mask`, which excludes memory-encryption
//! bits). The caller passes both in.

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

/// Address bits 12..=51 of an entry (`SPTE_BASE_ADDR_MASK` before the
/// physical mask is applied).
const ADDR_BITS: u64 = 0x000f_ffff_ffff_f000;

/// Bits 0-2: EPT read/write/execute, NPT present/writable/user. An entry with
/// none of them is not present to the CPU.
const HW_PERMS: u64 = 0b111;

/// Bit 63: KVM's usual not-present value on x86-64
/// (`SHADOW_NONPRESENT_VALUE`), and part of the frozen marker.
const NONPRESENT: u64 = 1 << 63;

/// KVM's software bits whose position depends on the kernel: where the A/D
/// type field lies (`SPTE_TDP_AD_SHIFT`) and the frozen marker
/// (`FROZEN_SPTE`).
///
/// KVM keeps them in bits the hardware ignores, and reshuffled those bits
/// between the two supported kernels (`arch/x86/kvm/mmu/spte.h`):
///
/// | | 6.12 | 7.3 |
/// |---|---|---|
/// | `SPTE_TDP_AD_SHIFT` | 52 | 60 |
/// | `FROZEN_SPTE` | `SHADOW_NONPRESENT_VALUE \| 0x5a0ULL` | `SHADOW_NONPRESENT_VALUE \| 0x1a0ULL` |
/// | `EPT_SPTE_HOST_WRITABLE` | bit 57 | bit 53 |
/// | `SHADOW_ACC_TRACK_SAVED_BITS_SHIFT` | 54 | 52 |
///
/// So on 7.3 every host-writable EPT leaf has bit 53 set, which read with
/// 6.12's layout is the A/D type "write-protect only": a reader with the
/// wrong layout never clears D and fails to recognise frozen entries. The
/// kernel module takes the values from the target tree's own `spte.h` at
/// build time (`kvm/compat.rs`); [`KvmBits::LINUX_6_12`] and
/// [`KvmBits::LINUX_7_3`] are the two known layouts, for tests and
/// benchmarks.
///
/// What did not move, and is a constant here: the MMU-present bit 11
/// (`SPTE_MMU_PRESENT_MASK`), bit 63 as `SHADOW_NONPRESENT_VALUE`, the
/// large bit 7 and the address bits 12-51 (the kernel side checks the first
/// two at build time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KvmBits {
    /// First bit of the two-bit A/D type field; 52..=61.
    ad_shift: u32,
    /// The whole frozen marker.
    frozen: u64,
}

impl KvmBits {
    /// Linux 6.12: `#define SPTE_TDP_AD_SHIFT 52`,
    /// `#define FROZEN_SPTE (SHADOW_NONPRESENT_VALUE | 0x5a0ULL)`.
    pub const LINUX_6_12: KvmBits = KvmBits {
        ad_shift: 52,
        frozen: NONPRESENT | 0x5a0,
    };

    /// Linux 7.3: `#define SPTE_TDP_AD_SHIFT 60`,
    /// `#define FROZEN_SPTE (SHADOW_NONPRESENT_VALUE | 0x1a0ULL)`.
    pub const LINUX_7_3: KvmBits = KvmBits {
        ad_shift: 60,
        frozen: NONPRESENT | 0x1a0,
    };

    /// A layout with the A/D type field at bits `ad_shift` and
    /// `ad_shift + 1` and the frozen marker `frozen`.
    ///
    /// Returns `None` unless both A/D type bits lie in the bits 52-62 that
    /// both formats leave to software in a present entry, and `frozen`
    /// cannot be taken for anything else: it must have neither the
    /// MMU-present bit nor a hardware permission bit nor an address bit
    /// (KVM's own `static_assert`s), and must differ from KVM's ordinary
    /// not-present values `0` and bit 63.
    pub const fn new(ad_shift: u32, frozen: u64) -> Option<KvmBits> {
        if ad_shift < 52 || ad_shift > 61 {
            return None;
        }
        if frozen & (MMU_PRESENT | HW_PERMS | ADDR_BITS) != 0 || frozen & !NONPRESENT == 0 {
            return None;
        }
        Some(KvmBits { ad_shift, frozen })
    }

    /// First bit of the A/D type field (`SPTE_TDP_AD_SHIFT`).
    #[inline]
    pub const fn ad_shift(self) -> u32 {
        self.ad_shift
    }

    /// The A/D type field (`SPTE_TDP_AD_MASK`).
    #[inline]
    pub const fn ad_mask(self) -> u64 {
        // `ad_shift` <= 61 (`new`); wrapping only keeps the compiler from
        // adding an overflow check.
        0b11u64.wrapping_shl(self.ad_shift)
    }

    /// The value KVM stores in an entry it is changing without holding
    /// `mmu_lock` for write (`FROZEN_SPTE`). Other threads must not modify
    /// it. In both known layouts it has bit 5 (the NPT accessed bit) and bit
    /// 8 (the EPT accessed bit) set, so it must be recognised before any A
    /// test.
    #[inline]
    pub const fn frozen(self) -> u64 {
        self.frozen
    }
}

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

    /// The pattern of an idle leaf at `level` in `format` with KVM's `bits`:
    /// present to KVM, a leaf (the large bit at levels 2 and 3), A/D type
    /// [`AdType::Enabled`], A clear and, if `with_dirty`, D clear. `None`
    /// above level 3, where there are no leaves.
    ///
    /// Frozen entries never match: they lack the present bit.
    pub const fn idle_leaf(
        format: Format,
        bits: KvmBits,
        level: Level,
        with_dirty: bool,
    ) -> Option<Pattern> {
        let large = match level.get() {
            1 => 0,
            2 | 3 => LARGE,
            _ => return None,
        };
        let dirty = if with_dirty { format.dirty_mask() } else { 0 };
        Some(Pattern {
            mask: MMU_PRESENT | large | bits.ad_mask() | format.accessed_mask() | dirty,
            value: MMU_PRESENT | large,
        })
    }

    /// The pattern of a table entry at `level` (2 to 5) in `format` with
    /// KVM's `bits` whose A bit is clear: present to KVM, not large, A/D
    /// type [`AdType::Enabled`], A clear. `None` at level 1, which holds no
    /// table entries.
    pub const fn unaccessed_table(format: Format, bits: KvmBits, level: Level) -> Option<Pattern> {
        if level.get() < 2 {
            return None;
        }
        Some(Pattern {
            mask: MMU_PRESENT | LARGE | bits.ad_mask() | format.accessed_mask(),
            value: MMU_PRESENT,
        })
    }
}

/// How KVM uses the A/D bits of one entry (its A/D type field, where
/// [`KvmBits`] says).
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
    /// Frozen and MMIO entries are not present.
    #[inline]
    pub const fn is_present(self) -> bool {
        self.0 & MMU_PRESENT != 0
    }

    /// Whether the entry is KVM's frozen marker ([`KvmBits::frozen`]),
    /// which is never accessed and must never be written by anyone but its
    /// owner.
    #[inline]
    pub const fn is_frozen(self, bits: KvmBits) -> bool {
        self.0 == bits.frozen
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

    /// The entry's A/D type, read where `bits` puts the field.
    #[inline]
    pub const fn ad_type(self, bits: KvmBits) -> AdType {
        match self.0.wrapping_shr(bits.ad_shift) & 0b11 {
            0 => AdType::Enabled,
            1 => AdType::Disabled,
            2 => AdType::WrProtOnly,
            _ => AdType::Reserved,
        }
    }

    /// Whether the entry's A/D type has a hardware accessed bit
    /// ([`AdType::tracks_accessed`], computed from the bits: the types that
    /// do, 0 and 2, are those with the field's low bit clear).
    #[inline]
    pub const fn tracks_accessed(self, bits: KvmBits) -> bool {
        self.0 & 1u64.wrapping_shl(bits.ad_shift) == 0
    }

    /// Whether the entry's dirty bit may be cleared
    /// ([`AdType::may_clear_dirty`]: type 0, both bits of the field clear).
    #[inline]
    pub const fn may_clear_dirty(self, bits: KvmBits) -> bool {
        self.0 & bits.ad_mask() == 0
    }

    /// Whether the accessed bit of `format` is set and means something (the
    /// entry is present and its A/D type tracks A). False for the frozen
    /// marker, though it has both formats' A bits.
    #[inline]
    pub const fn is_accessed(self, format: Format, bits: KvmBits) -> bool {
        self.is_present() && self.tracks_accessed(bits) && self.0 & format.accessed_mask() != 0
    }

    /// Whether the dirty bit of `format` is set and means something (as
    /// [`Spte::is_accessed`]). Meaningful for leaves only.
    #[inline]
    pub const fn is_dirty(self, format: Format, bits: KvmBits) -> bool {
        self.is_present() && self.tracks_accessed(bits) && self.0 & format.dirty_mask() != 0
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
