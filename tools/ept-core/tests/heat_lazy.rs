// SPDX-License-Identifier: GPL-2.0

//! The heat store's uniform blocks (`heat/store.rs`) against the plain
//! semantics: an array with one `Cell` per granule, every round
//! `Cell::next_round` on each, every visit `Cell::observe` on each granule
//! it overlaps. Random rounds whose visits mostly start and end on block
//! boundaries or cover whole blocks (where the store takes its shortcuts),
//! and otherwise anywhere; every cell compared, header and traces
//! included, after every operation. Plus the cost claim: uniform blocks stay uniform;
//! the packed cell operations against the unpacked ones; and the heat
//! map's runs of leaves against one visit per leaf.

use proptest::collection::vec;
use proptest::prelude::*;

use ept_core::ept_walk::{Gfn, GfnRange, Leaf, PageSize, Spte, Visitor};
use ept_core::heat::{
    Cell, Geometry, Granule, HeatMap, HeatStore, Observation, RoundEnd, StoreLayout, Track, Width,
    DEFAULT_REGION,
};

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
        let width = layout.width();
        let mut round = 0u64;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Begin => {
                    store.begin_round();
                    round += 1;
                    for c in &mut plain {
                        c.next_round(width, window, round);
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

    /// The packed operations the store's loops use keep a cell within its
    /// width, and are the unpacked ones.
    #[test]
    fn packed_operations_stay_in_the_width(
        raw in any::<u64>(), w in 0usize..3, window in 1u8..=29, obs in gen_obs(), round in any::<u64>(),
    ) {
        let width = width_of(w);
        let raw = if width.bits() == 64 { raw } else { raw & ((1u64 << width.bits()) - 1) };
        let window = window.min(width.history_bits() as u8);
        let fits = |v: u64| width.bits() == 64 || v >> width.bits() == 0;
        let seen = Cell::observe_packed(raw, width, obs);
        prop_assert!(fits(seen));
        let mut c = Cell::unpack(raw, width);
        c.observe(obs);
        prop_assert_eq!(Cell::unpack(seen, width), c);
        let next = Cell::next_round_packed(raw, width, window, round);
        prop_assert!(fits(next));
        let mut c = Cell::unpack(raw, width);
        c.next_round(width, window, round);
        prop_assert_eq!(Cell::unpack(next, width), c);
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

/// One step of a round fed to a heat map: runs of leaves (each leaf
/// starting where the previous one ended, or after a gap), idle and hole
/// ranges, a new root.
#[derive(Clone, Debug)]
enum Step {
    Leaf {
        gap: u64,
        size: usize,
        a: bool,
        d: bool,
    },
    Idle(u64, u64),
    Hole(u64, u64),
    Root,
    Round,
}

fn gen_step(span: u64) -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (prop_oneof![6 => Just(0u64), 1 => 0..span], prop_oneof![8 => Just(0usize), 1 => 1usize..3], any::<bool>(), any::<bool>())
            .prop_map(|(gap, size, a, d)| Step::Leaf { gap, size, a, d }),
        2 => (0..span, 1..2 * BLOCK).prop_map(|(s, n)| Step::Idle(s, s + n)),
        2 => (0..span, 1..2 * BLOCK).prop_map(|(s, n)| Step::Hole(s, s + n)),
        1 => Just(Step::Root),
        2 => Just(Step::Round),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Leaves recorded in runs read back, at every step (mid-round
    /// included), as one visit per leaf would leave the cells; and each
    /// round's page counts are those of its leaves.
    #[test]
    fn leaf_runs_match_one_visit_per_leaf(
        cells in 1u64..(3 * BLOCK), window in 1u8..=5, both in any::<bool>(),
        steps in vec(gen_step(3 * BLOCK), 1..120),
    ) {
        let span = r(0, cells);
        let track = if both { Track::Both } else { Track::Accessed };
        let layout = Geometry { span, granule: Granule::SIZE_4K, window, region: DEFAULT_REGION, rounds: 4 }
            .layout()
            .unwrap();
        let mut m = HeatMap::new(&layout, vec![0u16; layout.store.words()], vec![0u64; layout.history.words()]).unwrap();
        let mut plain = vec![Cell::EMPTY; layout.store.cells()];
        // Accessed and dirty pages per region, per root and for the round.
        let regions = cells.div_ceil(512) as usize;
        let mut root = (vec![0u64; regions], vec![0u64; regions]);
        let mut round = (vec![0u64; regions], vec![0u64; regions]);
        let fold = |root: &mut (Vec<u64>, Vec<u64>), round: &mut (Vec<u64>, Vec<u64>)| {
            for i in 0..regions {
                let pages = ((i as u64 + 1) * 512).min(cells) - i as u64 * 512;
                round.0[i] = round.0[i].max(root.0[i].min(pages));
                round.1[i] = round.1[i].max(root.1[i].min(pages));
            }
            *root = (vec![0; regions], vec![0; regions]);
        };
        let apply = |plain: &mut Vec<Cell>, s: u64, e: u64, obs: Observation| {
            for (i, c) in plain.iter_mut().enumerate() {
                if (i as u64) < e && s < i as u64 + 1 {
                    c.observe(obs);
                }
            }
        };
        let mut next = 0u64;
        let width = layout.store.width();
        let mut rounds = 1u64;
        m.begin_round(0, track);
        m.begin_root();
        for c in &mut plain {
            c.next_round(width, window, rounds);
        }
        for (k, step) in steps.iter().enumerate() {
            match *step {
                Step::Leaf { gap, size, a, d } => {
                    let size = [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G][size];
                    let pages = size.pages();
                    let gfn = (next + gap) / pages * pages;
                    next = gfn + pages;
                    m.visitor().leaf(Leaf {
                        gfn: Gfn(gfn), size, spte: Spte(0), pfn: 0,
                        accessed: a, dirty: d, cleared_accessed: a, cleared_dirty: d,
                    });
                    let (a, d) = (a && track.accessed(), d && track.dirty());
                    apply(&mut plain, gfn, gfn + pages, Observation::Leaf { size, accessed: a, dirty: d });
                    for i in 0..regions {
                        let o = (gfn + pages).min((i as u64 + 1) * 512).min(cells).saturating_sub(gfn.max(i as u64 * 512));
                        if a { root.0[i] += o; }
                        if d { root.1[i] += o; }
                    }
                }
                Step::Idle(s, e) => {
                    m.visitor().idle(r(s, e));
                    apply(&mut plain, s, e, Observation::Idle);
                }
                Step::Hole(s, e) => {
                    m.visitor().hole(r(s, e));
                    apply(&mut plain, s, e, Observation::Hole);
                }
                Step::Root => {
                    m.begin_root();
                    fold(&mut root, &mut round);
                    next = 0;
                }
                Step::Round => {
                    let rec = m.end_round(&RoundEnd::default());
                    fold(&mut root, &mut round);
                    prop_assert_eq!(rec.accessed_pages, round.0.iter().sum::<u64>(), "step {}", k);
                    prop_assert_eq!(rec.dirty_pages, round.1.iter().sum::<u64>(), "step {}", k);
                    round = (vec![0; regions], vec![0; regions]);
                    m.begin_round(0, track);
                    m.begin_root();
                    rounds += 1;
                    for c in &mut plain {
                        c.next_round(width, window, rounds);
                    }
                    next = 0;
                }
            }
            let view = m.view();
            for (i, want) in plain.iter().enumerate() {
                prop_assert_eq!(view.store.cell(i), Some(*want), "cell {} after step {} {:?}", i, k, step);
            }
        }
    }
}
