// SPDX-License-Identifier: GPL-2.0

//! The tests' own encoding of entries, written from the Intel SDM, the AMD
//! APM and KVM's `spte.h`, not from `ept_walk::spte`: expectations must not
//! be derived from the code under test.

use ept_core::ept_walk::{Format, KvmBits};

/// KVM's software present bit.
pub const PRESENT: u64 = 1 << 11;
/// Large-page bit at levels 2 and 3 (IPAT / PAT at level 1).
pub const LARGE: u64 = 1 << 7;

/// A/D type values (`SPTE_TDP_AD_*` >> `SPTE_TDP_AD_SHIFT`).
pub const TYPE_ENABLED: u8 = 0;
pub const TYPE_DISABLED: u8 = 1;
pub const TYPE_WRPROT_ONLY: u8 = 2;
pub const TYPE_RESERVED: u8 = 3;

/// KVM's software-bit layout of one supported kernel, written out from its
/// `arch/x86/kvm/mmu/spte.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 6.12: `SPTE_TDP_AD_SHIFT 52`, `FROZEN_SPTE` low bits `0x5a0`,
    /// `EPT_SPTE_HOST_WRITABLE` bit 57.
    Linux612,
    /// 7.3: `SPTE_TDP_AD_SHIFT 60`, `FROZEN_SPTE` low bits `0x1a0`,
    /// `EPT_SPTE_HOST_WRITABLE` bit 53.
    Linux73,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Linux612, Layout::Linux73];

    /// `SPTE_TDP_AD_SHIFT`.
    pub fn ad_shift(self) -> u32 {
        match self {
            Layout::Linux612 => 52,
            Layout::Linux73 => 60,
        }
    }

    /// The A/D type field holding type `t` (0..=3).
    pub fn ad(self, t: u8) -> u64 {
        u64::from(t) << self.ad_shift()
    }

    /// `SPTE_TDP_AD_MASK`.
    pub fn ad_mask(self) -> u64 {
        self.ad(3)
    }

    /// `FROZEN_SPTE`.
    pub fn frozen(self) -> u64 {
        match self {
            Layout::Linux612 => (1 << 63) | 0x5a0,
            Layout::Linux73 => (1 << 63) | 0x1a0,
        }
    }

    /// The bit KVM sets in every leaf it maps writable for the host
    /// (`shadow_host_writable_mask`): `EPT_SPTE_HOST_WRITABLE` for EPT,
    /// `DEFAULT_SPTE_HOST_WRITABLE` (bit 9, both kernels) for NPT.
    pub fn host_writable(self, f: Format) -> u64 {
        match (f, self) {
            (Format::Ept, Layout::Linux612) => 1 << 57,
            (Format::Ept, Layout::Linux73) => 1 << 53,
            (Format::Npt, _) => 1 << 9,
        }
    }

    /// The walker's value for this layout, built from the numbers above
    /// (not from `KvmBits`'s named constants, which a test compares).
    pub fn bits(self) -> KvmBits {
        KvmBits::new(self.ad_shift(), self.frozen()).expect("a valid layout")
    }

    /// High software bits (52-63) that mean nothing to the walker under
    /// this layout: all but the A/D type field.
    pub fn free_high_bits(self) -> u64 {
        (0xfff << 52) & !self.ad_mask()
    }
}

/// KVM's usual not-present value on x86-64.
pub const NONPRESENT: u64 = 1 << 63;
/// The host physical-address mask the tests pass: 46 bits.
pub const PHYS_MASK: u64 = (1 << 46) - 1;
/// A memory-encryption bit outside `PHYS_MASK` (like SME's C-bit), set in
/// some entries; must not end up in addresses.
pub const CBIT: u64 = 1 << 47;

/// Accessed bit.
pub fn a_bit(f: Format) -> u64 {
    match f {
        Format::Ept => 1 << 8,
        Format::Npt => 1 << 5,
    }
}

/// Dirty bit.
pub fn d_bit(f: Format) -> u64 {
    match f {
        Format::Ept => 1 << 9,
        Format::Npt => 1 << 6,
    }
}

/// Hardware permission bits of a usable entry: EPT R|W|X, NPT P|RW|US.
pub fn perms(_f: Format) -> u64 {
    0b111
}

/// Bits a test may set at random in a leaf without changing what it means
/// to the walker under layout `l`: permissions, memory type,
/// software-available and high bits other than the A/D type (so KVM's
/// host-writable and saved bits too), and bit 7 at level 1 (NPT PAT,
/// ignored by EPT).
pub fn leaf_extra_mask(f: Format, l: Layout, level: u8) -> u64 {
    let common = 0b111 | (1 << 10) | l.free_high_bits();
    let fmt = match f {
        // Bits 3-5: EPT memory type; bit 6: ignore PAT.
        Format::Ept => 0b111_1000,
        // Bits 3-4 (PWT/PCD), 8 (G), 9 (available).
        Format::Npt => 0b1_1000 | (1 << 8) | (1 << 9),
    };
    let l1 = if level == 1 { LARGE } else { 0 };
    common | fmt | l1
}

/// Bits a test may set at random in a table entry under layout `l` (high
/// bits 52-62 other than the A/D type).
pub fn table_extra_mask(f: Format, l: Layout) -> u64 {
    let high = l.free_high_bits() & !(1 << 63);
    match f {
        Format::Ept => (1 << 10) | high,
        Format::Npt => (0b11 << 3) | (1 << 9) | (1 << 10) | high,
    }
}

/// Pages covered by one entry at `level`.
pub fn entry_pages(level: u8) -> u64 {
    1u64 << (9 * (level as u32 - 1))
}

/// A present leaf at `level` mapping host frame `pfn`.
pub fn leaf(f: Format, level: u8, pfn: u64, a: bool, d: bool) -> u64 {
    let mut v = PRESENT | perms(f) | (pfn << 12);
    if level > 1 {
        v |= LARGE;
    }
    if a {
        v |= a_bit(f);
    }
    if d {
        v |= d_bit(f);
    }
    v
}

/// A present table entry pointing to the table at `pa`.
pub fn table(f: Format, pa: u64, a: bool) -> u64 {
    let mut v = PRESENT | perms(f) | pa;
    if a {
        v |= a_bit(f);
    }
    v
}
