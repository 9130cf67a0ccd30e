// SPDX-License-Identifier: GPL-2.0

//! The tests' own encoding of entries, written from the Intel SDM, the AMD
//! APM and KVM's `spte.h`, not from `ept_walk::spte`: expectations must not
//! be derived from the code under test.

use ept_core::ept_walk::Format;

/// KVM's software present bit.
pub const PRESENT: u64 = 1 << 11;
/// Large-page bit at levels 2 and 3 (IPAT / PAT at level 1).
pub const LARGE: u64 = 1 << 7;
/// A/D type field values, bits 52-53.
pub const AD_ENABLED: u64 = 0;
pub const AD_DISABLED: u64 = 1 << 52;
pub const AD_WRPROT_ONLY: u64 = 2 << 52;
pub const AD_RESERVED: u64 = 3 << 52;
/// KVM's frozen marker.
pub const FROZEN: u64 = (1 << 63) | 0x5a0;
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
/// to the walker: permissions, memory type, software-available and high
/// bits, and bit 7 at level 1 (NPT PAT, ignored by EPT).
pub fn leaf_extra_mask(f: Format, level: u8) -> u64 {
    let common = 0b111 | (1 << 10) | (0x3ff << 54);
    let fmt = match f {
        // Bits 3-5: EPT memory type; bit 6: ignore PAT.
        Format::Ept => 0b111_1000,
        // Bits 3-4 (PWT/PCD), 8 (G), 9 (available).
        Format::Npt => 0b1_1000 | (1 << 8) | (1 << 9),
    };
    let l1 = if level == 1 { LARGE } else { 0 };
    common | fmt | l1
}

/// Bits a test may set at random in a table entry.
pub fn table_extra_mask(f: Format) -> u64 {
    match f {
        Format::Ept => (1 << 10) | (0x1ff << 54),
        Format::Npt => (0b11 << 3) | (1 << 9) | (1 << 10) | (0x1ff << 54),
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
