// SPDX-License-Identifier: GPL-2.0

//! The heat store's uniform blocks (`heat/store.rs`) against the plain
//! semantics: an array with one `Cell` per granule, every round
//! `Cell::next_round` on each, every visit `Cell::observe` on each granule
//! it overlaps. Random rounds whose visits mostly start and end on block
//! boundaries or cover whole blocks (where the store takes its shortcuts),
//! and otherwise anywhere; every cell compared, round field included,
//! after every operation. Plus the cost claim: uniform blocks stay uniform.

use proptest::collection::vec;
use proptest::prelude::*;

use ept_core::ept_walk::{Gfn, GfnRange, PageSize};
use ept_core::heat::{Cell, Granule, HeatStore, Observation, StoreLayout, Width};

const BLOCK: u64 = ept_core::heat::store::BLOCK_CELLS as u64;

#[derive(Clone, Debug)]
enum Op {
    Begin,
    Visit(u64, u64, Observation),
}

fn gen_obs() -> impl Strategy<Value = Observation> {
    prop_oneof![
        3 => (0usize..3, any::<bool>(), any::<bool>()).prop_map(|(s, accessed, dirty)| {
            Observation::Leaf {
                size: [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G][s],
                accessed,
                dirty,
            }
        }),
        3 => Just(Observation::Idle),
        3 => Just(Observation::Hole),
        1 => Just(Observation::Cold),
        1 => Just(Observation::Unknown),
    ]
}

/// A visit over pages of a span of `pages` pages starting at `start`,
/// `gp` pages per granule: on block boundaries or anywhere.
fn gen_op(start: u64, pages: u64, gp: u64) -> impl Strategy<Value = Op> {
    let bp = BLOCK * gp;
    let blocks = pages.div_ceil(bp) + 1;
    let aligned =
        (0..blocks, 1..=blocks, -2i64..=2, gen_obs()).prop_map(move |(b, n, jitter, o)| {
            // Whole blocks, sometimes a granule or two off at either end.
            let s = (b * bp).saturating_add_signed(jitter * gp as i64);
            let e = ((b + n) * bp).saturating_add_signed(-jitter * gp as i64);
            Op::Visit(start / bp * bp + s, start / bp * bp + e.max(s + 1), o)
        });
    let anywhere = (0..pages + bp, 1..2 * bp, gen_obs())
        .prop_map(move |(s, n, o)| Op::Visit(start + s, start + s + n, o));
    prop_oneof![2 => Just(Op::Begin), 5 => aligned, 3 => anywhere]
}

fn gen_case() -> impl Strategy<Value = (u64, u64, u32, u8, Vec<Op>)> {
    (0u32..4, 0u64..3000, 1u64..(4 * BLOCK + 40)).prop_flat_map(|(gshift, start, cells)| {
        let gp = 1u64 << gshift;
        let pages = cells * gp - gp / 2;
        let max = StoreLayout::max_window(Granule::from_shift(12 + gshift).unwrap());
        (
            Just(start),
            Just(pages),
            Just(gshift),
            1..=max,
            vec(gen_op(start, pages, gp), 1..60),
        )
    })
}

fn r(start: u64, end: u64) -> GfnRange {
    GfnRange::new(Gfn(start), Gfn(end))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn uniform_blocks_match_plain_cells((start, pages, gshift, window, ops) in gen_case()) {
        let granule = Granule::from_shift(12 + gshift).unwrap();
        let layout = StoreLayout::new(r(start, start + pages), granule, window).unwrap();
        // Garbage in the storage: `new` must clear it.
        let mut store = HeatStore::new(layout, vec![0xffffu16; layout.words()]).unwrap();
        let mut plain = vec![Cell::EMPTY; layout.cells()];
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Begin => {
                    store.begin_round();
                    for c in &mut plain {
                        c.next_round(window);
                    }
                }
                Op::Visit(s, e, obs) => {
                    store.observe(r(s, e), obs);
                    for (i, c) in plain.iter_mut().enumerate() {
                        let g = layout.granule_range(i);
                        if g.start.0 < e && s < g.end.0 {
                            c.observe(obs);
                        }
                    }
                }
            }
            let view = store.view();
            for (i, want) in plain.iter().enumerate() {
                prop_assert_eq!(view.cell(i), Some(*want), "cell {} after op {} {:?}", i, step, op);
            }
            prop_assert_eq!(view.cell(plain.len()), None);
        }
    }
}

fn width_of(code: usize) -> Width {
    [Width::W16, Width::W32, Width::W64][code]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The packed operations the store's loops use are the unpacked ones.
    #[test]
    fn packed_operations_are_the_cell_operations(
        raw in any::<u64>(), w in 0usize..3, window in 1u8..=29, obs in gen_obs(),
    ) {
        let width = width_of(w);
        let raw = if width.bits() == 64 { raw } else { raw & ((1u64 << width.bits()) - 1) };
        let window = window.min(width.history_bits() as u8);
        let mut seen = Cell::unpack(raw, width);
        seen.observe(obs);
        prop_assert_eq!(Cell::observe_packed(raw, width, obs), seen.pack(width));
        let mut next = Cell::unpack(raw, width);
        next.next_round(window);
        prop_assert_eq!(Cell::next_round_packed(raw, width, window), next.pack(width));
    }
}

/// A 1 GiB store fed what the walker reports for a mostly unmapped guest:
/// only blocks that differ inside are dense, whatever the guest's size.
#[test]
fn uniform_blocks_stay_uniform() {
    let pages = 1u64 << 18;
    let layout = StoreLayout::new(r(0, pages), Granule::SIZE_4K, 5).unwrap();
    let mut store = HeatStore::new(layout, vec![0u16; layout.words()]).unwrap();
    assert_eq!(layout.blocks(), 512);
    assert_eq!(store.view().dense_blocks(), 0);
    let leaf = |accessed| Observation::Leaf {
        size: PageSize::Size4K,
        accessed,
        dirty: false,
    };
    for round in 0..8 {
        store.begin_round();
        // Block 3: every page hot, one leaf at a time. Block 9: one hot
        // page among idle ones. The rest: holes.
        store.observe(r(0, 3 * 512), Observation::Hole);
        for p in 3 * 512..4 * 512 {
            store.observe(r(p, p + 1), leaf(true));
        }
        store.observe(r(4 * 512, 9 * 512), Observation::Hole);
        store.observe(r(9 * 512, 9 * 512 + 7), Observation::Idle);
        store.observe(r(9 * 512 + 7, 9 * 512 + 8), leaf(true));
        store.observe(r(9 * 512 + 8, 10 * 512), Observation::Idle);
        store.observe(r(10 * 512, pages), Observation::Hole);
        // Blocks 3 and 9 were written cell by cell this round; block 3
        // becomes uniform again at the next `begin_round`, block 9 never
        // does (its hot page differs from its idle ones).
        assert_eq!(store.view().dense_blocks(), 2, "round {round}");
        let v = store.view();
        let c = v.cell(3 * 512 + 100).unwrap();
        assert_eq!(c.accessed_rounds(5), (round + 1).min(5));
        assert_eq!(
            v.cell(9 * 512 + 7).unwrap().accessed_rounds(5),
            (round + 1).min(5)
        );
        assert_eq!(v.cell(9 * 512 + 6).unwrap().accessed_rounds(5), 0);
    }
    store.begin_round();
    assert_eq!(store.view().dense_blocks(), 1);
}
