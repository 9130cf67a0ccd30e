// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the entry formats and address types, against constants
//! written out from the SDM/APM and KVM's `spte.h`.

mod common;

use common::raw::*;
use ept_core::ept_walk::{AdType, Format, Gfn, GfnRange, KvmBits, Level, PageSize, Spte};

#[test]
fn known_layouts_are_the_kernels() {
    // Written out from each kernel's spte.h, not from the tests' Layout.
    assert_eq!(KvmBits::LINUX_6_12.ad_shift(), 52);
    assert_eq!(KvmBits::LINUX_6_12.ad_mask(), 0x0030_0000_0000_0000);
    assert_eq!(KvmBits::LINUX_6_12.frozen(), 0x8000_0000_0000_05a0);
    assert_eq!(KvmBits::LINUX_7_3.ad_shift(), 60);
    assert_eq!(KvmBits::LINUX_7_3.ad_mask(), 0x3000_0000_0000_0000);
    assert_eq!(KvmBits::LINUX_7_3.frozen(), 0x8000_0000_0000_01a0);
    assert_eq!(Layout::Linux612.bits(), KvmBits::LINUX_6_12);
    assert_eq!(Layout::Linux73.bits(), KvmBits::LINUX_7_3);
}

#[test]
fn kvm_bits_are_validated() {
    let frozen = (1 << 63) | 0x5a0;
    // Both A/D type bits within the software bits 52-62.
    assert!(KvmBits::new(51, frozen).is_none());
    assert!(KvmBits::new(52, frozen).is_some());
    assert!(KvmBits::new(61, frozen).is_some());
    assert!(KvmBits::new(62, frozen).is_none());
    assert!(KvmBits::new(63, frozen).is_none());
    assert!(KvmBits::new(200, frozen).is_none());
    // A frozen marker must not look present, to KVM or to the CPU, must
    // hold no address, and must differ from the ordinary not-present values.
    assert!(KvmBits::new(60, frozen | PRESENT).is_none());
    assert!(KvmBits::new(60, frozen | 1).is_none());
    assert!(KvmBits::new(60, frozen | 4).is_none());
    assert!(KvmBits::new(60, frozen | 0x1000).is_none());
    assert!(KvmBits::new(60, frozen | (1 << 51)).is_none());
    assert!(KvmBits::new(60, 0).is_none());
    assert!(KvmBits::new(60, NONPRESENT).is_none());
    assert!(KvmBits::new(60, 0x1a0).is_some());
}

#[test]
fn frozen_value_is_kvms() {
    for l in Layout::ALL {
        let b = l.bits();
        let f = Spte(l.frozen());
        assert!(f.is_frozen(b), "{l:?}");
        assert!(!f.is_present());
        // It has both formats' A bits, but is never accessed.
        assert_ne!(l.frozen() & (1 << 8), 0);
        assert_ne!(l.frozen() & (1 << 5), 0);
        assert!(!f.is_accessed(Format::Ept, b));
        assert!(!f.is_accessed(Format::Npt, b));
        assert!(!Spte(l.frozen() | 1).is_frozen(b));
    }
    // Each kernel's marker is a plain not-present value to the other.
    let (old, new) = (Layout::Linux612, Layout::Linux73);
    assert!(!Spte(old.frozen()).is_frozen(new.bits()));
    assert!(!Spte(new.frozen()).is_frozen(old.bits()));
}

#[test]
fn ept_bits() {
    assert_eq!(Format::Ept.accessed_mask(), 0x100);
    assert_eq!(Format::Ept.dirty_mask(), 0x200);
    for l in Layout::ALL {
        let b = l.bits();
        let s = Spte(leaf(Format::Ept, 1, 0x1234, true, true) | l.host_writable(Format::Ept));
        assert!(s.is_present());
        assert!(s.is_accessed(Format::Ept, b), "{l:?}");
        assert!(s.is_dirty(Format::Ept, b), "{l:?}");
        // The NPT bits are clear in this EPT entry.
        assert!(!s.is_accessed(Format::Npt, b));
        assert!(!s.is_dirty(Format::Npt, b));
        assert_eq!(s.pfn(PHYS_MASK), 0x1234);
    }
}

#[test]
fn npt_bits() {
    assert_eq!(Format::Npt.accessed_mask(), 0x20);
    assert_eq!(Format::Npt.dirty_mask(), 0x40);
    for l in Layout::ALL {
        let b = l.bits();
        let s = Spte(leaf(Format::Npt, 1, 0x99, true, false));
        assert!(s.is_accessed(Format::Npt, b));
        assert!(!s.is_dirty(Format::Npt, b));
        assert!(!s.is_accessed(Format::Ept, b));
    }
}

#[test]
fn present_is_kvms_software_bit_only() {
    // Hardware-usable bits without bit 11: not present to KVM (MMIO etc.).
    assert!(!Spte(0b111 | (1 << 8)).is_present());
    assert!(Spte(1 << 11).is_present());
    assert!(!Spte(NONPRESENT).is_present());
    assert!(!Spte(0).is_present());
    // Not-present entries are never accessed whatever their bits.
    for l in Layout::ALL {
        assert!(!Spte(0x1ff).is_accessed(Format::Ept, l.bits()));
    }
}

#[test]
fn ad_types() {
    for l in Layout::ALL {
        let b = l.bits();
        let base = leaf(Format::Ept, 1, 1, true, true);
        let ty = |t| Spte(base | l.ad(t)).ad_type(b);
        assert_eq!(ty(TYPE_ENABLED), AdType::Enabled, "{l:?}");
        assert_eq!(ty(TYPE_DISABLED), AdType::Disabled, "{l:?}");
        assert_eq!(ty(TYPE_WRPROT_ONLY), AdType::WrProtOnly, "{l:?}");
        assert_eq!(ty(TYPE_RESERVED), AdType::Reserved, "{l:?}");
        for t in 0..=3 {
            let s = Spte(base | l.ad(t));
            assert_eq!(s.tracks_accessed(b), s.ad_type(b).tracks_accessed());
            assert_eq!(s.may_clear_dirty(b), s.ad_type(b).may_clear_dirty());
        }
        // A set, but A/D disabled: not accessed.
        assert!(!Spte(base | l.ad(TYPE_DISABLED)).is_accessed(Format::Ept, b));
        assert!(Spte(base | l.ad(TYPE_WRPROT_ONLY)).is_accessed(Format::Ept, b));
        // The other software bits in 52-63 are not the type.
        let busy = Spte(base | l.free_high_bits());
        assert_eq!(busy.ad_type(b), AdType::Enabled, "{l:?}");
    }
    assert!(AdType::Enabled.tracks_accessed() && AdType::Enabled.may_clear_dirty());
    assert!(AdType::WrProtOnly.tracks_accessed() && !AdType::WrProtOnly.may_clear_dirty());
    assert!(!AdType::Disabled.tracks_accessed() && !AdType::Disabled.may_clear_dirty());
    assert!(!AdType::Reserved.tracks_accessed() && !AdType::Reserved.may_clear_dirty());
}

/// The bug 7.3 brought: its EPT leaves carry host-writable in bit 53, which
/// is the high A/D type bit on 6.12. Read with the right layout, a
/// host-writable 7.3 leaf is type "enabled" (its D may be cleared); the very
/// same bit under 6.12 is "write-protect only".
#[test]
fn host_writable_is_not_an_ad_type_on_7_3() {
    let raw = leaf(Format::Ept, 1, 7, true, true) | (1 << 53);
    assert_eq!(raw & (0b11 << 60), 0);
    let new = KvmBits::LINUX_7_3;
    assert_eq!(Spte(raw).ad_type(new), AdType::Enabled);
    assert!(Spte(raw).may_clear_dirty(new));
    assert!(Spte(raw).is_dirty(Format::Ept, new));
    let old = KvmBits::LINUX_6_12;
    assert_eq!(Spte(raw).ad_type(old), AdType::WrProtOnly);
    assert!(!Spte(raw).may_clear_dirty(old));
}

#[test]
fn leaf_and_large_per_level() {
    let l1 = Level::new(1).unwrap();
    let l2 = Level::new(2).unwrap();
    let l3 = Level::new(3).unwrap();
    let l4 = Level::new(4).unwrap();
    let l5 = Level::new(5).unwrap();
    let small = Spte(PRESENT);
    let large = Spte(PRESENT | LARGE);
    // Level 1 is always a leaf, bit 7 or not (NPT PAT).
    assert!(small.is_leaf(l1) && large.is_leaf(l1));
    assert!(!small.is_leaf(l2) && large.is_leaf(l2));
    assert!(!small.is_leaf(l3) && large.is_leaf(l3));
    assert!(!large.is_leaf(l4) && !large.is_leaf(l5));
    assert!(large.is_malformed_at(l4) && large.is_malformed_at(l5));
    assert!(!large.is_malformed_at(l3) && !small.is_malformed_at(l4));
}

#[test]
fn address_masking() {
    // C-bit (47) outside the 46-bit mask, bit 63, KVM's software bits 52-62
    // and low flag bits all stay out of the address.
    let v = (0xfff << 52) | CBIT | 0x0000_2345_6789_a000 | 0xfff;
    assert_eq!(Spte(v).addr(PHYS_MASK), 0x0000_2345_6789_a000);
    assert_eq!(Spte(v).pfn(PHYS_MASK), 0x0002_3456_789a);
    // With a full mask, bits 52+ still are not address.
    assert_eq!(Spte(u64::MAX).addr(u64::MAX), 0x000f_ffff_ffff_f000);
}

#[test]
fn page_sizes() {
    assert_eq!(PageSize::Size4K.pages(), 1);
    assert_eq!(PageSize::Size2M.pages(), 512);
    assert_eq!(PageSize::Size1G.pages(), 262_144);
    assert_eq!(PageSize::Size4K.shift(), 12);
    assert_eq!(PageSize::Size2M.shift(), 21);
    assert_eq!(PageSize::Size1G.shift(), 30);
    assert_eq!(PageSize::Size2M.bytes(), 2 << 20);
    assert_eq!(PageSize::Size1G.level().get(), 3);
}

#[test]
fn levels() {
    assert_eq!(Level::new(0), None);
    assert_eq!(Level::new(6), None);
    let l = |n| Level::new(n).unwrap();
    assert_eq!(l(1).entry_pages(), 1);
    assert_eq!(l(2).entry_pages(), 512);
    assert_eq!(l(4).entry_pages(), 1 << 27);
    assert_eq!(l(4).table_pages(), 1 << 36);
    assert_eq!(l(5).table_pages(), 1 << 45);
    assert_eq!(l(1).leaf_size(), Some(PageSize::Size4K));
    assert_eq!(l(3).leaf_size(), Some(PageSize::Size1G));
    assert_eq!(l(4).leaf_size(), None);
    assert_eq!(l(1).child(), None);
    assert_eq!(l(5).child(), Some(l(4)));
    let g = Gfn(0x1_0203_0405);
    // 0x405 = 0b100_0000_0101: the low 9 bits are 5.
    assert_eq!(l(1).index(g), 5);
    assert_eq!(l(2).index(g), (0x1_0203_0405 >> 9) & 511);
    assert_eq!(l(3).index(g), (0x1_0203_0405 >> 18) & 511);
    assert_eq!(l(4).index(g), (0x1_0203_0405 >> 27) & 511);
    assert_eq!(l(2).align_down(g), Gfn(0x1_0203_0405 & !511));
}

#[test]
fn gfn_ranges() {
    let r = GfnRange::new(Gfn(10), Gfn(20));
    assert_eq!(r.pages(), 10);
    assert!(r.contains(Gfn(10)) && r.contains(Gfn(19)) && !r.contains(Gfn(20)));
    assert!(GfnRange::new(Gfn(5), Gfn(5)).is_empty());
    assert_eq!(GfnRange::new(Gfn(9), Gfn(3)).pages(), 0);
    let i = r.intersect(&GfnRange::new(Gfn(15), Gfn(100)));
    assert_eq!(i, GfnRange::new(Gfn(15), Gfn(20)));
    assert_eq!(Gfn(u64::MAX).offset(5), Gfn(u64::MAX));
    assert_eq!(Gfn(3).gpa(), 0x3000);
}
