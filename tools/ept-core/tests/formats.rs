// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the entry formats and address types, against constants
//! written out from the SDM/APM and KVM's `spte.h`.

mod common;

use common::raw::*;
use ept_core::ept_walk::{AdType, Format, Gfn, GfnRange, Level, PageSize, Spte, FROZEN_SPTE};

#[test]
fn frozen_value_is_kvms() {
    assert_eq!(FROZEN_SPTE, 0x8000_0000_0000_05a0);
    let f = Spte(FROZEN_SPTE);
    assert!(f.is_frozen());
    assert!(!f.is_present());
    // It has both formats' A bits, but is never accessed.
    assert_ne!(FROZEN_SPTE & (1 << 8), 0);
    assert_ne!(FROZEN_SPTE & (1 << 5), 0);
    assert!(!f.is_accessed(Format::Ept));
    assert!(!f.is_accessed(Format::Npt));
    assert!(!Spte(FROZEN_SPTE | 1).is_frozen());
}

#[test]
fn ept_bits() {
    assert_eq!(Format::Ept.accessed_mask(), 0x100);
    assert_eq!(Format::Ept.dirty_mask(), 0x200);
    let s = Spte(leaf(Format::Ept, 1, 0x1234, true, true));
    assert!(s.is_present());
    assert!(s.is_accessed(Format::Ept));
    assert!(s.is_dirty(Format::Ept));
    // The NPT bits are clear in this EPT entry.
    assert!(!s.is_accessed(Format::Npt));
    assert!(!s.is_dirty(Format::Npt));
    assert_eq!(s.pfn(PHYS_MASK), 0x1234);
}

#[test]
fn npt_bits() {
    assert_eq!(Format::Npt.accessed_mask(), 0x20);
    assert_eq!(Format::Npt.dirty_mask(), 0x40);
    let s = Spte(leaf(Format::Npt, 1, 0x99, true, false));
    assert!(s.is_accessed(Format::Npt));
    assert!(!s.is_dirty(Format::Npt));
    assert!(!s.is_accessed(Format::Ept));
}

#[test]
fn present_is_kvms_software_bit_only() {
    // Hardware-usable bits without bit 11: not present to KVM (MMIO etc.).
    assert!(!Spte(0b111 | (1 << 8)).is_present());
    assert!(Spte(1 << 11).is_present());
    assert!(!Spte(NONPRESENT).is_present());
    assert!(!Spte(0).is_present());
    // Not-present entries are never accessed whatever their bits.
    assert!(!Spte(0x1ff).is_accessed(Format::Ept));
}

#[test]
fn ad_types() {
    let base = leaf(Format::Ept, 1, 1, true, true);
    assert_eq!(Spte(base | AD_ENABLED).ad_type(), AdType::Enabled);
    assert_eq!(Spte(base | AD_DISABLED).ad_type(), AdType::Disabled);
    assert_eq!(Spte(base | AD_WRPROT_ONLY).ad_type(), AdType::WrProtOnly);
    assert_eq!(Spte(base | AD_RESERVED).ad_type(), AdType::Reserved);
    assert!(AdType::Enabled.tracks_accessed() && AdType::Enabled.may_clear_dirty());
    assert!(AdType::WrProtOnly.tracks_accessed() && !AdType::WrProtOnly.may_clear_dirty());
    assert!(!AdType::Disabled.tracks_accessed() && !AdType::Disabled.may_clear_dirty());
    assert!(!AdType::Reserved.tracks_accessed() && !AdType::Reserved.may_clear_dirty());
    // A set, but A/D disabled: not accessed.
    assert!(!Spte(base | AD_DISABLED).is_accessed(Format::Ept));
    assert!(Spte(base | AD_WRPROT_ONLY).is_accessed(Format::Ept));
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
    // C-bit (47) outside the 46-bit mask, bit 63, bits 52-53 and low flag
    // bits all stay out of the address.
    let v = (1 << 63) | AD_WRPROT_ONLY | CBIT | 0x0000_2345_6789_a000 | 0xfff;
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
