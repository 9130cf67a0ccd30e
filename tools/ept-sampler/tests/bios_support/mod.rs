// SPDX-License-Identifier: GPL-2.0

//! A fixture VM laid out as a real QEMU guest has it: the tests that check
//! that a far-away memslot is cut out of a view (pictures, `top`) share it.

#![allow(dead_code)]

use ept_sampler::model::VmSnapshot;

/// Where QEMU maps SeaBIOS: 256 KiB just below 4 GiB.
pub const BIOS: std::ops::Range<u64> = 0xfffc_0000..0x1_0000_0000;

/// Adds to VM 72-4 of the `npt-7.3` fixtures (256 MiB at 0) a read-only
/// BIOS slot at [`BIOS`], accessed in every round: its heat map runs on
/// through the hole to it, its history's 2 MiB regions up to 4 GiB, the
/// BIOS in the last with accessed share `share`.
pub fn add_bios_slot(vm: &mut VmSnapshot, share: u8) {
    vm.memslots.extend(
        ept_core::procfs::memslots::parse(
            "# slot as_id id base size flags\n1 0 1 0xfffc0000 0x40000 readonly\n",
        )
        .map(Result::unwrap),
    );
    let (_, runs) = ept_core::procfs::heatmap::parse(
        "# ept_sampler heatmap 1\n# vm 72-4\n# granule 4K\n# window 5\n# rounds 126\n# mode both\n\
         # columns start end granule leaf accessed dirty window slot\n\
         0x000010000000 0x0000fffc0000 4K hole 0 0 5 -\n\
         0x0000fffc0000 0x000100000000 4K 4K 5 0 5 1\n",
    )
    .unwrap();
    let (_, heat) = vm.heatmap.as_mut().unwrap();
    assert_eq!(heat.last().unwrap().end, 256 << 20);
    heat.extend(runs.map(Result::unwrap));
    let history = vm.history.as_mut().unwrap();
    assert_eq!(history.header.regions, 128);
    history.header.regions = 2048;
    for r in &mut history.rounds {
        assert_eq!(r.accessed.len(), 128);
        r.accessed.resize(2048, 0);
        r.accessed[2047] = share;
    }
}
