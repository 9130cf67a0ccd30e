// SPDX-License-Identifier: GPL-2.0

//! The heat store and history ring: hand-written scenarios with expected
//! values written out, a naive reference model driven by random rounds
//! (several roots, leaves of every size, idle, holes, cold and skipped
//! ranges, rounds split across visitors as after a yield), the memory bound
//! for every accepted configuration, and one round over real tables with
//! the real walker.

mod common;

use proptest::collection::vec;
use proptest::prelude::*;

use common::arena::Arena;
use common::raw::*;
use ept_core::ept_walk::{
    Descent, Format, Gfn, GfnRange, Leaf, PageSize, Root, Skip, Spte, Stats, Visitor, Walker,
};
use ept_core::heat::{
    share, Cell, Geometry, Granule, GranuleError, Header, HeatError, HeatMap, HeatStore,
    HistoryLayout, RootCounts, RoundEnd, Sizes, State, StoreLayout, Trace, Track, Width,
    DEFAULT_REGION,
};

type Map = HeatMap<Vec<u16>, Vec<u64>>;

fn r(start: u64, end: u64) -> GfnRange {
    GfnRange::new(Gfn(start), Gfn(end))
}

fn g(bytes: u64) -> Granule {
    Granule::from_bytes(bytes).unwrap()
}

fn new_map(span_pages: u64, granule: Granule, window: u8, region: Granule, rounds: u16) -> Map {
    let layout = Geometry {
        span: r(0, span_pages),
        granule,
        window,
        region,
        rounds,
    }
    .layout()
    .unwrap();
    HeatMap::new(
        &layout,
        vec![0xffff; layout.store.words()],
        vec![u64::MAX; layout.history.words()],
    )
    .unwrap()
}

fn wleaf(gfn: u64, size: PageSize, a: bool, d: bool) -> Leaf {
    Leaf {
        gfn: Gfn(gfn),
        size,
        spte: Spte(0),
        pfn: 0,
        accessed: a,
        dirty: d,
        cleared_accessed: a,
        cleared_dirty: d,
    }
}

fn end() -> RoundEnd {
    RoundEnd {
        walk_ns: 1000,
        flush_ns: 0,
        walk: Stats::default(),
        yields: 0,
        longest_hold: 0,
        flushed: true,
        passed_accessed: 0,
        roots: RootCounts::default(),
    }
}

/// (state, accessed rounds, dirty rounds) of granule `i`.
fn heat(map: &Map, i: usize) -> (State, u8, u8) {
    let v = map.view();
    let c = v.store.cell(i).unwrap();
    let w = v.store.layout().window();
    (c.current(), c.accessed_rounds(w), c.dirty_rounds(w))
}

const P4K: State = State::Present(Sizes::One(PageSize::Size4K));
const P2M: State = State::Present(Sizes::One(PageSize::Size2M));
const P1G: State = State::Present(Sizes::One(PageSize::Size1G));
const MIXED: State = State::Present(Sizes::Mixed);
const UNSEEN: State = State::Present(Sizes::Unseen);

// ---------------------------------------------------------------------------
// Granules and layouts.

#[test]
fn granule_words() {
    let ok = [
        ("4K", 4096u64, "4K"),
        ("4096", 4096, "4K"),
        ("8K", 8192, "8K"),
        ("64K", 65536, "64K"),
        ("1024K", 1 << 20, "1M"),
        ("2M", 2 << 20, "2M"),
        ("1G", 1 << 30, "1G"),
        ("512G", 512 << 30, "512G"),
        ("2097152", 2 << 20, "2M"),
    ];
    for (word, bytes, canon) in ok {
        let gr = Granule::parse(word).unwrap();
        assert_eq!(gr.bytes(), bytes, "{word}");
        assert_eq!(gr.to_string(), canon, "{word}");
        assert_eq!(Granule::parse(canon), Ok(gr));
    }
    let bad = [
        ("", GranuleError::Empty),
        ("K", GranuleError::NotANumber),
        ("4k", GranuleError::NotANumber),
        ("4KB", GranuleError::NotANumber),
        ("-4K", GranuleError::NotANumber),
        ("+4K", GranuleError::NotANumber),
        (" 4K", GranuleError::NotANumber),
        ("04K", GranuleError::LeadingZero),
        ("3K", GranuleError::NotPowerOfTwo),
        ("12K", GranuleError::NotPowerOfTwo),
        ("2K", GranuleError::TooSmall),
        ("2048", GranuleError::TooSmall),
        ("0", GranuleError::TooSmall),
        ("1024G", GranuleError::TooLarge),
        ("99999999999999999999999", GranuleError::TooLarge),
        ("9223372036854775808G", GranuleError::TooLarge),
    ];
    for (word, err) in bad {
        assert_eq!(Granule::parse(word), Err(err), "{word:?}");
    }
}

#[test]
fn windows_and_widths() {
    // 2 bytes per 4 KiB page: a 16-bit cell at 4K, 32 bits at 8K, 64 from
    // 16K on; 6 bits of each cell are state.
    assert_eq!(StoreLayout::max_window(g(4096)), 5);
    assert_eq!(StoreLayout::max_window(g(8192)), 13);
    assert_eq!(StoreLayout::max_window(g(16384)), 29);
    assert_eq!(StoreLayout::max_window(Granule::SIZE_2M), 29);
    assert_eq!(Width::for_window(0), None);
    assert_eq!(Width::for_window(5), Some(Width::W16));
    assert_eq!(Width::for_window(6), Some(Width::W32));
    assert_eq!(Width::for_window(13), Some(Width::W32));
    assert_eq!(Width::for_window(14), Some(Width::W64));
    assert_eq!(Width::for_window(29), Some(Width::W64));
    assert_eq!(Width::for_window(30), None);
}

#[test]
fn bytes_needed_for_one_gib() {
    let gib = r(0, 262_144);
    let b = |gr, w| HeatStore::<Vec<u16>>::bytes_needed(gib, gr, w);
    assert_eq!(b(g(4096), 5), Ok(524_288));
    assert_eq!(b(g(8192), 5), Ok(262_144));
    assert_eq!(b(g(8192), 13), Ok(524_288));
    assert_eq!(b(g(16384), 29), Ok(524_288));
    assert_eq!(b(Granule::SIZE_2M, 5), Ok(1024));
    assert_eq!(b(Granule::SIZE_2M, 29), Ok(4096));
    assert_eq!(b(Granule::SIZE_1G, 5), Ok(2));
    assert_eq!(
        b(g(4096), 6),
        Err(HeatError::WindowTooLarge {
            window: 6,
            max: 5,
            granule: g(4096)
        })
    );
    assert_eq!(b(g(4096), 0), Err(HeatError::WindowZero));
    assert_eq!(
        HeatStore::<Vec<u16>>::bytes_needed(r(5, 5), g(4096), 5),
        Err(HeatError::EmptySpan)
    );
    assert_eq!(
        HeatStore::<Vec<u16>>::bytes_needed(r(0, (1 << 40) + 1), g(4096), 5),
        Err(HeatError::SpanBeyondMax)
    );
    // A span that is not a whole number of granules rounds up.
    assert_eq!(
        HeatStore::<Vec<u16>>::bytes_needed(r(0, 513), Granule::SIZE_2M, 5),
        Ok(4)
    );
    // History: 512 regions of 2M, 64 rounds: 64 records of 8 words, 2
    // counter words per region, 64 rows of 128 words.
    let h = HistoryLayout::new(gib, DEFAULT_REGION, 64).unwrap();
    assert_eq!(h.regions(), 512);
    assert_eq!(h.words(), 64 * 8 + 512 * 2 + 64 * 128);
    assert_eq!(
        HistoryLayout::new(gib, DEFAULT_REGION, 0),
        Err(HeatError::HistoryRounds(0))
    );
    assert_eq!(
        HistoryLayout::new(gib, DEFAULT_REGION, 1025),
        Err(HeatError::HistoryRounds(1025))
    );
}

#[test]
fn storage_too_small_is_an_error() {
    let layout = Geometry {
        span: r(0, 100),
        granule: g(4096),
        window: 5,
        region: DEFAULT_REGION,
        rounds: 4,
    }
    .layout()
    .unwrap();
    let err = HeatMap::new(&layout, vec![0u16; 99], vec![0u64; layout.history.words()]);
    assert!(matches!(
        err,
        Err(HeatError::StorageTooSmall {
            needed: 100,
            got: 99
        })
    ));
    // Longer storage is fine; the extra is not touched.
    let mut cells = vec![7u16; 101];
    cells[100] = 0xabcd;
    let map = HeatMap::new(&layout, cells, vec![0u64; layout.history.words()]).unwrap();
    assert_eq!(map.view().store.cells(), 100);
}

// ---------------------------------------------------------------------------
// Cells.

proptest! {
    #[test]
    fn cells_pack_and_unpack(
        header in 0u8..16,
        a in (0u8..3, any::<u32>()), d in (0u8..3, any::<u32>()), width in 0usize..3,
    ) {
        let width = [Width::W16, Width::W32, Width::W64][width];
        let mask = (1u32 << width.history_bits()) - 1;
        let trace = |(kind, v): (u8, u32)| match (kind, v & mask) {
            (1, v) if v != 0 => Trace::Recent(v),
            (2, v) => Trace::Aged(v),
            _ => Trace::Never,
        };
        let cell = Cell {
            header: Header::from_code(header),
            accessed: trace(a),
            dirty: trace(d),
        };
        let raw = cell.pack(width);
        prop_assert!(width.bits() == 64 || raw >> width.bits() == 0);
        prop_assert_eq!(Cell::unpack(raw, width), cell);
    }

    #[test]
    fn any_bits_unpack(raw in any::<u64>(), width in 0usize..3) {
        let width = [Width::W16, Width::W32, Width::W64][width];
        // Never panics, whatever the storage held.
        let c = Cell::unpack(raw, width);
        let _ = c.current();
        let _ = c.accessed_rounds(29);
    }
}

#[test]
fn state_combination_and_resolution() {
    use State::*;
    // Present beats unknown beats hole, in either order.
    for (a, b, want) in [
        (Hole, P4K, P4K),
        (Unknown, P2M, P2M),
        (Hole, Unknown, Unknown),
        (Hole, Hole, Hole),
        (P4K, P4K, P4K),
        (P4K, P2M, MIXED),
        (UNSEEN, P1G, P1G),
        (UNSEEN, UNSEEN, UNSEEN),
        (MIXED, P4K, MIXED),
        (UNSEEN, Hole, UNSEEN),
    ] {
        assert_eq!(a.combine(b), want, "{a:?} + {b:?}");
        assert_eq!(b.combine(a), want, "{b:?} + {a:?}");
    }
    // Nothing seen: keep. Idle only: keep the known size. Else: the round.
    assert_eq!(State::resolve(P2M, None), P2M);
    assert_eq!(State::resolve(Hole, None), Hole);
    assert_eq!(State::resolve(P2M, Some(UNSEEN)), P2M);
    assert_eq!(State::resolve(MIXED, Some(UNSEEN)), MIXED);
    assert_eq!(State::resolve(Hole, Some(UNSEEN)), UNSEEN);
    assert_eq!(State::resolve(Unknown, Some(UNSEEN)), UNSEEN);
    assert_eq!(State::resolve(P2M, Some(P4K)), P4K);
    assert_eq!(State::resolve(P2M, Some(Hole)), Hole);
    assert_eq!(State::resolve(P2M, Some(Unknown)), Unknown);
}

// ---------------------------------------------------------------------------
// Scenarios, expected values written out.

#[test]
fn one_round_at_4k() {
    let mut m = new_map(64, g(4096), 5, DEFAULT_REGION, 4);
    // Before any round: all unknown, nothing counted.
    assert_eq!(heat(&m, 0), (State::Unknown, 0, 0));
    m.begin_round(1_000, Track::Both);
    m.begin_root();
    {
        let mut v = m.visitor();
        v.leaf(wleaf(0, PageSize::Size4K, true, true));
        v.leaf(wleaf(1, PageSize::Size4K, true, false));
        v.idle(r(2, 4));
        v.hole(r(4, 10));
        v.skipped(r(10, 11), Skip::Frozen);
        v.cold(r(11, 12));
        v.leaf(wleaf(12, PageSize::Size4K, false, true));
    }
    let rec = m.end_round(&end());
    assert_eq!(heat(&m, 0), (P4K, 1, 1));
    assert_eq!(heat(&m, 1), (P4K, 1, 0));
    assert_eq!(heat(&m, 2), (UNSEEN, 0, 0));
    assert_eq!(heat(&m, 3), (UNSEEN, 0, 0));
    assert_eq!(heat(&m, 4), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 9), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 10), (State::Unknown, 0, 0));
    // Cold with nothing before: still unknown.
    assert_eq!(heat(&m, 11), (State::Unknown, 0, 0));
    assert_eq!(heat(&m, 12), (P4K, 0, 1));
    assert_eq!(heat(&m, 13), (State::Unknown, 0, 0));
    assert_eq!(rec.round, 1);
    assert_eq!(rec.start_ns, 1_000);
    assert_eq!(rec.accessed_pages, 2);
    assert_eq!(rec.dirty_pages, 2);
    // 2 of the region's 64 pages (the span ends at 64): ceil(2*254/64) = 8.
    assert_eq!(m.view().history.shares(0, 0), Some((8, 8)));
}

/// Dirty logging began part way through a round: its dirty pages are not
/// counted, the round is recorded as tracking accessed bits only and
/// counted partial; what was seen before the stop stays in the granules.
#[test]
fn a_round_whose_dirty_results_stopped_part_way() {
    let mut m = new_map(64, g(4096), 5, DEFAULT_REGION, 4);
    m.begin_round(1_000, Track::Both);
    m.begin_root();
    m.visitor().leaf(wleaf(0, PageSize::Size4K, true, true));
    m.visitor().leaf(wleaf(1, PageSize::Size4K, true, true));
    m.stop_dirty();
    m.stop_dirty();
    // After the stop a leaf's D only says "written since mapped".
    m.visitor().leaf(wleaf(2, PageSize::Size4K, true, true));
    let rec = m.end_round(&end());
    assert_eq!(rec.track, Track::Accessed);
    assert_eq!((rec.accessed_pages, rec.dirty_pages), (3, 0));
    assert_eq!(m.totals().dirty_partial_rounds, 1);
    assert_eq!(heat(&m, 0), (P4K, 1, 1));
    assert_eq!(heat(&m, 2), (P4K, 1, 0));
    // The next round is whole again.
    m.begin_round(2_000, Track::Both);
    m.begin_root();
    m.visitor().leaf(wleaf(2, PageSize::Size4K, true, true));
    let rec = m.end_round(&end());
    assert_eq!((rec.track, rec.dirty_pages), (Track::Both, 1));
    assert_eq!(m.totals().dirty_partial_rounds, 1);
    // An accessed-only round has nothing to stop.
    m.begin_round(3_000, Track::Accessed);
    m.stop_dirty();
    m.end_round(&end());
    assert_eq!(m.totals().dirty_partial_rounds, 1);
}

#[test]
fn window_slides() {
    let mut m = new_map(8, g(4096), 3, DEFAULT_REGION, 2);
    // Accessed in rounds 1-4, idle in 5-8.
    let mut seen = vec![];
    for round in 1..=8u64 {
        m.begin_round(round * 100, Track::Accessed);
        m.begin_root();
        if round <= 4 {
            m.visitor().leaf(wleaf(0, PageSize::Size4K, true, true));
        } else {
            m.visitor().idle(r(0, 1));
        }
        m.end_round(&end());
        seen.push(heat(&m, 0).1);
    }
    assert_eq!(seen, [1, 2, 3, 3, 2, 1, 0, 0]);
    // Dirty is not tracked in this mode: never counted.
    assert_eq!(heat(&m, 0).2, 0);
    // The ring keeps the last 2 rounds.
    let h = m.view().history;
    assert_eq!(h.kept(), 2);
    assert_eq!(h.record(0).unwrap().round, 7);
    assert_eq!(h.record(1).unwrap().round, 8);
    assert!(h.record(2).is_none());
    // Totals.
    let t = m.totals();
    assert_eq!(t.rounds, 8);
    assert_eq!(t.interval_ns_last, Some(100));
    assert_eq!(t.last.unwrap().start_ns, 800);
}

#[test]
fn roots_combine_in_any_order() {
    for order in [[0, 1], [1, 0]] {
        let mut m = new_map(16, g(4096), 5, DEFAULT_REGION, 2);
        m.begin_round(0, Track::Both);
        for root in order {
            m.begin_root();
            let mut v = m.visitor();
            if root == 0 {
                v.hole(r(0, 1));
                v.leaf(wleaf(1, PageSize::Size4K, false, false));
                v.skipped(r(2, 3), Skip::Untracked);
                v.hole(r(3, 4));
                v.leaf(wleaf(4, PageSize::Size4K, true, false));
            } else {
                v.leaf(wleaf(0, PageSize::Size4K, true, false));
                v.hole(r(1, 2));
                v.hole(r(2, 3));
                v.skipped(r(3, 4), Skip::Frozen);
                v.leaf(wleaf(4, PageSize::Size4K, true, true));
            }
        }
        m.end_round(&end());
        assert_eq!(heat(&m, 0), (P4K, 1, 0), "{order:?}");
        assert_eq!(heat(&m, 1), (P4K, 0, 0), "{order:?}");
        assert_eq!(heat(&m, 2), (State::Unknown, 0, 0), "{order:?}");
        assert_eq!(heat(&m, 3), (State::Unknown, 0, 0), "{order:?}");
        // Accessed in both roots: counted once.
        assert_eq!(heat(&m, 4), (P4K, 1, 1), "{order:?}");
        let rec = m.view().history.record(0).unwrap();
        // Pages 0 and 4 accessed (max over roots: 2 in each), 4 dirtied.
        assert_eq!((rec.accessed_pages, rec.dirty_pages), (2, 1));
    }
}

#[test]
fn cold_and_idle_keep_what_is_known() {
    // 2M granule, 4 granules.
    let mut m = new_map(2048, Granule::SIZE_2M, 5, DEFAULT_REGION, 4);
    let round = |m: &mut Map, f: &dyn Fn(&mut dyn Visitor)| {
        m.begin_round(0, Track::Accessed);
        m.begin_root();
        f(&mut m.visitor());
        m.end_round(&end());
    };
    round(&mut m, &|v| {
        v.leaf(wleaf(0, PageSize::Size2M, true, false));
        v.leaf(wleaf(512, PageSize::Size4K, true, false));
        v.idle(r(513, 1024));
        v.hole(r(1024, 1536));
        v.leaf(wleaf(1536, PageSize::Size2M, false, false));
    });
    assert_eq!(heat(&m, 0), (P2M, 1, 0));
    assert_eq!(heat(&m, 1), (P4K, 1, 0));
    assert_eq!(heat(&m, 2), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 3), (P2M, 0, 0));
    round(&mut m, &|v| {
        // Idle: sizes not reported; cold: nothing learnt.
        v.idle(r(0, 512));
        v.cold(r(512, 1024));
        v.cold(r(1024, 1536));
        v.idle(r(1536, 2048));
    });
    assert_eq!(heat(&m, 0), (P2M, 1, 0));
    assert_eq!(heat(&m, 1), (P4K, 1, 0));
    assert_eq!(heat(&m, 2), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 3), (P2M, 0, 0));
    round(&mut m, &|v| {
        // The 2M page was split: idle 4K leaves first, then an accessed
        // one: the size is the one reported, not a mix with the old.
        v.idle(r(0, 10));
        v.leaf(wleaf(10, PageSize::Size4K, true, false));
        v.idle(r(11, 512));
        // Cold then a hole in one granule: the hole is what is known.
        v.cold(r(512, 600));
        v.hole(r(600, 1024));
        // Granules 2 and 3 are not visited at all: kept.
    });
    assert_eq!(heat(&m, 0), (P4K, 2, 0));
    assert_eq!(heat(&m, 1), (State::Hole, 1, 0));
    assert_eq!(heat(&m, 2), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 3), (P2M, 0, 0));
}

#[test]
fn one_gib_leaf_at_4k() {
    let mut m = new_map(1 << 19, g(4096), 5, DEFAULT_REGION, 2);
    m.begin_round(0, Track::Both);
    m.begin_root();
    m.visitor()
        .leaf(wleaf(1 << 18, PageSize::Size1G, true, true));
    let rec = m.end_round(&end());
    assert_eq!(heat(&m, (1 << 18) - 1), (State::Unknown, 0, 0));
    assert_eq!(heat(&m, 1 << 18), (P1G, 1, 1));
    assert_eq!(heat(&m, (1 << 19) - 1), (P1G, 1, 1));
    assert_eq!(rec.accessed_pages, 1 << 18);
    let h = m.view().history;
    assert_eq!(h.shares(0, 511), Some((0, 0)));
    assert_eq!(h.shares(0, 512), Some((255, 255)));
    assert_eq!(h.shares(0, 1023), Some((255, 255)));
    assert_eq!(h.shares(0, 1024), None);
}

#[test]
fn leaves_outside_the_span_are_ignored() {
    let mut m = new_map(100, g(4096), 5, DEFAULT_REGION, 2);
    m.begin_round(0, Track::Both);
    m.begin_root();
    {
        let mut v = m.visitor();
        v.leaf(wleaf(100, PageSize::Size4K, true, true));
        v.leaf(wleaf(u64::MAX - 511, PageSize::Size2M, true, true));
        v.hole(r(u64::MAX - 1, u64::MAX));
        v.hole(r(50, 40));
    }
    let rec = m.end_round(&end());
    assert_eq!(rec.accessed_pages, 0);
    for i in 0..100 {
        assert_eq!(heat(&m, i), (State::Unknown, 0, 0));
    }
}

#[test]
fn shares_quantize() {
    // Written out: 0 = none, 255 = all, else ceil(n * 254 / pages).
    assert_eq!(share(0, 512), 0);
    assert_eq!(share(1, 512), 1);
    assert_eq!(share(2, 512), 1);
    assert_eq!(share(3, 512), 2);
    assert_eq!(share(256, 512), 127);
    assert_eq!(share(511, 512), 254);
    assert_eq!(share(512, 512), 255);
    assert_eq!(share(600, 512), 255);
    assert_eq!(share(1, 1), 255);
    assert_eq!(share(1, 262_144), 1);
    assert_eq!(share(0, 0), 0);
}

#[test]
fn end_without_begin_does_nothing() {
    let mut m = new_map(8, g(4096), 5, DEFAULT_REGION, 2);
    let rec = m.end_round(&end());
    assert_eq!(rec.round, 0);
    assert_eq!(m.totals().rounds, 0);
    assert_eq!(m.view().history.kept(), 0);
}

// ---------------------------------------------------------------------------
// Against a naive model.

/// One generated visit.
#[derive(Clone, Debug)]
enum Gen {
    Leaf(u64, u8, bool, bool),
    Idle(u64, u64),
    Hole(u64, u64),
    Cold(u64, u64),
    Skip(u64, u64),
}

#[derive(Clone, Debug)]
struct GenRound {
    track: u8,
    roots: Vec<Vec<Gen>>,
    /// Where the visits of each root are split between visitors.
    split: usize,
}

fn gen_visit(span: u64) -> impl Strategy<Value = Gen> {
    let at = 0..span + span / 4 + 2;
    prop_oneof![
        3 => (at.clone(), 0u8..3, any::<bool>(), any::<bool>()).prop_map(|(gfn, size, a, d)| {
            let pages = [1u64, 512, 262_144][size as usize];
            Gen::Leaf(gfn / pages * pages, size, a, d)
        }),
        2 => (at.clone(), 1u64..300).prop_map(|(s, n)| Gen::Idle(s, s + n)),
        2 => (at.clone(), 1u64..300).prop_map(|(s, n)| Gen::Hole(s, s + n)),
        1 => (at.clone(), 1u64..600).prop_map(|(s, n)| Gen::Cold(s, s + n)),
        1 => (at, 1u64..50).prop_map(|(s, n)| Gen::Skip(s, s + n)),
    ]
}

fn gen_case() -> impl Strategy<Value = (u64, u32, u8, u32, u16, Vec<GenRound>)> {
    (1u64..3000, 0u32..6, 0u32..4, 1u16..5).prop_flat_map(|(span, gshift, rshift, k)| {
        let max = StoreLayout::max_window(Granule::from_shift(12 + gshift).unwrap());
        let round = (0u8..3, vec(vec(gen_visit(span), 0..25), 1..3), 0usize..25).prop_map(
            |(track, roots, split)| GenRound {
                track,
                roots,
                split,
            },
        );
        (
            Just(span),
            Just(gshift),
            1..=max,
            Just(rshift),
            Just(k),
            vec(round, 1..9),
        )
    })
}

fn size_of(code: u8) -> PageSize {
    [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G][code as usize]
}

fn track_of(code: u8) -> Track {
    [Track::Accessed, Track::Dirty, Track::Both][code as usize]
}

/// What the model knows about one granule.
#[derive(Clone, Debug)]
struct ModelGranule {
    state: State,
    accessed: Vec<bool>,
    dirty: Vec<bool>,
}

/// The model's state of a granule after a round, from the previous state
/// and what the round's visits said, in order, by the rules of
/// `heat::cell` ("Rules") spelt out one by one: presence does not depend on
/// the order; the size is that of the leaves reported with one, else the
/// previous one if the round's first word on the granule was an idle leaf,
/// else unseen; a previous `mixed` met first by an idle leaf stays (the
/// two losses the rules list).
fn model_state(prev: State, said: &[Gen]) -> State {
    let mut sizes = vec![];
    let (mut present, mut unknown, mut hole) = (false, false, false);
    for v in said {
        match *v {
            Gen::Leaf(_, s, _, _) => {
                present = true;
                sizes.push(s);
            }
            Gen::Idle(..) => present = true,
            Gen::Skip(..) => unknown = true,
            Gen::Hole(..) => hole = true,
            Gen::Cold(..) => {}
        }
    }
    let idle_first = matches!(
        said.iter().find(|v| !matches!(v, Gen::Cold(..))),
        Some(Gen::Idle(..))
    );
    sizes.sort();
    sizes.dedup();
    if present {
        if idle_first && prev == State::Present(Sizes::Mixed) {
            return prev;
        }
        match sizes.len() {
            0 => match prev {
                State::Present(s) if idle_first => State::Present(s),
                _ => State::Present(Sizes::Unseen),
            },
            1 => State::Present(Sizes::One(size_of(sizes[0]))),
            _ => State::Present(Sizes::Mixed),
        }
    } else if unknown {
        State::Unknown
    } else if hole {
        State::Hole
    } else {
        prev
    }
}

fn visit_range(v: &Gen) -> (u64, u64) {
    match *v {
        Gen::Leaf(gfn, s, _, _) => (gfn, gfn + [1u64, 512, 262_144][s as usize]),
        Gen::Idle(s, e) | Gen::Hole(s, e) | Gen::Cold(s, e) | Gen::Skip(s, e) => (s, e),
    }
}

fn feed(v: &mut dyn Visitor, visit: &Gen) {
    match *visit {
        Gen::Leaf(gfn, s, a, d) => v.leaf(wleaf(gfn, size_of(s), a, d)),
        Gen::Idle(s, e) => v.idle(r(s, e)),
        Gen::Hole(s, e) => v.hole(r(s, e)),
        Gen::Cold(s, e) => v.cold(r(s, e)),
        Gen::Skip(s, e) => v.skipped(r(s, e), Skip::Frozen),
    }
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn store_and_ring_match_the_model(
        (span, gshift, window, rshift, k, rounds) in gen_case()
    ) {
        let granule = Granule::from_shift(12 + gshift).unwrap();
        let region = Granule::from_shift(12 + 9 * rshift / 2).unwrap();
        let mut m = new_map(span, granule, window, region, k);
        let gp = 1u64 << gshift;
        let cells = span.div_ceil(gp) as usize;
        let rp = region.pages();
        let regions = span.div_ceil(rp) as usize;
        let mut model = vec![
            ModelGranule { state: State::Unknown, accessed: vec![], dirty: vec![] };
            cells
        ];
        // (round number, accessed pages per region, dirty pages per region)
        let mut ring: Vec<(u64, Vec<u64>, Vec<u64>)> = vec![];

        for (n, round) in rounds.iter().enumerate() {
            let track = track_of(round.track);
            m.begin_round(n as u64 * 10, track);
            for visits in &round.roots {
                m.begin_root();
                let (a, b) = visits.split_at(round.split.min(visits.len()));
                // Two visitors per root, as around a yield.
                for part in [a, b] {
                    let mut v = m.visitor();
                    for visit in part {
                        feed(&mut v, visit);
                    }
                }
            }
            m.end_round(&end());

            // The model, granule by granule.
            for (i, mg) in model.iter_mut().enumerate() {
                let gr = (i as u64 * gp, (i as u64 + 1) * gp);
                let said: Vec<Gen> = round.roots.iter().flatten()
                    .filter(|v| overlap(visit_range(v), gr) > 0)
                    .cloned()
                    .collect();
                mg.state = model_state(mg.state, &said);
                let bit = |want_d: bool| said.iter().any(|v| match *v {
                    Gen::Leaf(_, _, a, d) =>
                        if want_d { d && track.dirty() } else { a && track.accessed() },
                    _ => false,
                });
                mg.accessed.push(bit(false));
                mg.dirty.push(bit(true));
            }
            // The model ring: per region and root, accessed pages (at most
            // the region's pages), the max over roots.
            let mut acc = vec![0u64; regions];
            let mut dirty = vec![0u64; regions];
            for visits in &round.roots {
                for (ri, (ra, rd)) in acc.iter_mut().zip(dirty.iter_mut()).enumerate() {
                    let reg = (ri as u64 * rp, ((ri as u64 + 1) * rp).min(span));
                    let (mut a, mut d) = (0u64, 0u64);
                    for v in visits {
                        if let Gen::Leaf(_, _, va, vd) = *v {
                            let o = overlap(visit_range(v), reg);
                            if va && track.accessed() { a += o; }
                            if vd && track.dirty() { d += o; }
                        }
                    }
                    let pages = reg.1 - reg.0;
                    *ra = (*ra).max(a.min(pages));
                    *rd = (*rd).max(d.min(pages));
                }
            }
            ring.push((n as u64 + 1, acc, dirty));

            // Compare every granule.
            let view = m.view();
            for (i, mg) in model.iter().enumerate() {
                let c = view.store.cell(i).unwrap();
                let count = |h: &[bool]| h.iter().rev().take(window as usize).filter(|b| **b).count() as u8;
                prop_assert_eq!(c.current(), mg.state, "granule {} round {}", i, n + 1);
                prop_assert_eq!(c.accessed_rounds(window), count(&mg.accessed), "accessed, granule {}", i);
                prop_assert_eq!(c.dirty_rounds(window), count(&mg.dirty), "dirty, granule {}", i);
            }
            prop_assert!(view.store.cell(cells).is_none());
        }

        // Compare the ring: the last k rounds.
        let h = m.view().history;
        let kept = ring.len().min(k as usize);
        prop_assert_eq!(h.kept(), kept);
        for age in 0..kept {
            let (round_no, acc, dirty) = &ring[ring.len() - kept + age];
            let rec = h.record(age).unwrap();
            prop_assert_eq!(rec.round, *round_no);
            prop_assert_eq!(rec.accessed_pages, acc.iter().sum::<u64>());
            prop_assert_eq!(rec.dirty_pages, dirty.iter().sum::<u64>());
            for ri in 0..regions {
                let pages = ((ri as u64 + 1) * rp).min(span) - ri as u64 * rp;
                let q = |n: u64| -> u8 {
                    if n == 0 { 0 } else if n == pages { 255 } else { ((n * 254).div_ceil(pages)) as u8 }
                };
                prop_assert_eq!(h.shares(age, ri), Some((q(acc[ri]), q(dirty[ri]))), "region {} age {}", ri, age);
            }
        }
    }

    #[test]
    fn memory_bound_holds(
        start in 0u64..(1 << 20), len in 1u64..(1 << 24),
        gshift in 12u32..=39, window in 0u8..40,
    ) {
        let granule = Granule::from_shift(gshift).unwrap();
        let span = r(start, start + len);
        match StoreLayout::new(span, granule, window) {
            Ok(l) => {
                let pages = granule.pages();
                // Whole granules cover the span.
                let covered = l.cells() as u64 * pages;
                prop_assert!(l.base().0 <= start && l.base().0 + covered >= start + len);
                prop_assert!(covered < len + 2 * pages);
                // At most 2 bytes per page of the covered span.
                prop_assert!(l.bytes() as u64 <= 2 * covered, "{} bytes for {} pages", l.bytes(), covered);
                // And storage of exactly that size is accepted.
                let store = HeatStore::new(l, vec![0u16; l.words()]);
                prop_assert!(store.is_ok());
                prop_assert!(window >= 1 && window <= StoreLayout::max_window(granule));
            }
            Err(HeatError::WindowZero) => prop_assert_eq!(window, 0),
            Err(HeatError::WindowTooLarge { max, .. }) => {
                prop_assert!(window > max);
                prop_assert_eq!(max, StoreLayout::max_window(granule));
            }
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }
}

// ---------------------------------------------------------------------------
// With the real walker.

#[test]
fn a_round_over_real_tables() {
    for l in Layout::ALL {
        round_over_real_tables(l);
    }
}

/// With layout `l`, leaves host-writable as KVM maps RAM (bit 53 on 7.3
/// EPT): dirty bits are cleared in round 1, so round 2 sees none.
fn round_over_real_tables(l: Layout) {
    let f = Format::Ept;
    let hw = l.host_writable(f);
    let mut arena = Arena::new();
    arena.alloc(NONPRESENT); // root (4 levels)
    let t3 = arena.alloc(NONPRESENT);
    arena.store(0, 0, table(f, Arena::pa(t3), true));
    let t2 = arena.alloc(NONPRESENT);
    arena.store(t3, 0, table(f, Arena::pa(t2), true));
    // 0..2M: a table of 4K leaves: 0 accessed+dirty, 1 accessed, 2..8
    // idle, 8.. holes.
    let t1 = arena.alloc(NONPRESENT);
    arena.store(t2, 0, table(f, Arena::pa(t1), true));
    arena.store(t1, 0, leaf(f, 1, 0x100, true, true) | hw);
    arena.store(t1, 1, leaf(f, 1, 0x101, true, false) | hw);
    for i in 2..8 {
        arena.store(t1, i, leaf(f, 1, 0x100 + i as u64, false, false) | hw);
    }
    // 2M..4M: an accessed 2M leaf; 4M..6M: an idle one.
    arena.store(t2, 1, leaf(f, 2, 0x200, true, false) | hw);
    arena.store(t2, 2, leaf(f, 2, 0x400, false, false) | hw);
    // 6M..8M: a frozen entry.
    arena.store(t2, 3, l.frozen());

    let root = Root::new(Arena::pa(0), 4, f, l.bits(), PHYS_MASK).unwrap();
    let mut m = new_map(2048, g(4096), 5, DEFAULT_REGION, 4);
    for round in 0..2 {
        m.begin_round(round, Track::Both);
        m.begin_root();
        // SAFETY: the arena checks every address it is asked for.
        let walker =
            unsafe { Walker::new(&arena, root, Track::Both.walker_mode(), Descent::EveryTable) };
        let mut stats = Stats::default();
        // A small budget: the walk pauses and resumes, with a fresh
        // visitor each time.
        let mut start = Gfn(0);
        loop {
            let out = walker.walk(GfnRange::new(start, Gfn(2048)), 3, &mut m.visitor());
            stats.accumulate(&out.stats);
            match out.stop {
                ept_core::ept_walk::Stop::Done => break,
                ept_core::ept_walk::Stop::Paused(next) => start = next,
            }
        }
        m.end_round(&RoundEnd {
            walk_ns: 5,
            flush_ns: 0,
            walk: stats,
            yields: 0,
            longest_hold: 0,
            flushed: true,
            passed_accessed: 0,
            roots: RootCounts::default(),
        });
    }
    // Bits were cleared in round 1, so round 2 saw nothing accessed.
    assert_eq!(heat(&m, 0), (P4K, 1, 1));
    assert_eq!(heat(&m, 1), (P4K, 1, 0));
    // Idle from the start: the walker never said their size.
    assert_eq!(heat(&m, 2), (UNSEEN, 0, 0));
    assert_eq!(heat(&m, 7), (UNSEEN, 0, 0));
    assert_eq!(heat(&m, 8), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 511), (State::Hole, 0, 0));
    assert_eq!(heat(&m, 512), (P2M, 1, 0));
    assert_eq!(heat(&m, 1023), (P2M, 1, 0));
    // Never reported with its size: present, size unseen.
    assert_eq!(heat(&m, 1024), (UNSEEN, 0, 0));
    assert_eq!(heat(&m, 1536), (State::Unknown, 0, 0));
    let h = m.view().history;
    let first = h.record(0).unwrap();
    assert_eq!(first.accessed_pages, 2 + 512);
    assert_eq!(first.dirty_pages, 1);
    let second = h.record(1).unwrap();
    assert_eq!(second.accessed_pages, 0);
    assert_eq!(m.totals().frozen, 2);
}
