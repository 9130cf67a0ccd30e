// SPDX-License-Identifier: GPL-2.0

//! What one sampling round costs in userspace, split between the walker and
//! the heat map, on a 1 GiB guest with 8 MiB hot.
//!
//! Not a timed test: a program that prints figures (docs/PERFORMANCE.md,
//! "Heat map rounds", records them and what they mean). Two synthetic 1 GiB
//! guests (262144 pages at 4 KiB), EPT format, 4 levels:
//!
//! - *full*: every page mapped by a 4 KiB leaf (512 leaf tables);
//! - *sparse*: 24 MiB mapped (12 leaf tables), the rest holes at the
//!   level-2 table: what the e2e accuracy scenario's anonymous-memory guest
//!   looks like, since KVM maps only the pages the guest touched.
//!
//! In both, 8 MiB (four 2 MiB regions, 2048 pages) are hot: before every
//! pass (untimed), their leaves get A and D set, and so do the table
//! entries on the way to them, as a guest's accesses after a TLB flush
//! leave them. The rest is idle (A clear everywhere else after the first
//! pass).
//!
//! For each guest and each descent (`walk=leaf`, `walk=upper`), with
//! `mode=both` (`Mode::ClearAccessedDirty`), a 4 KiB granule and a window
//! of 5 (the e2e scenario's settings), it times:
//!
//! - *walker*: the walk alone, into a visitor that only counts;
//! - *begin*: `HeatMap::begin_round` alone (the kernel does it before it
//!   starts its walk clock);
//! - *walk+store*: the walk into the map's `RoundVisitor` (what the
//!   kernel's `walk_ns` measures, without the flush);
//! - *end*: `HeatMap::end_round` alone;
//! - *round*: the three together, and the store's share: round minus
//!   walker.
//!
//! Last, one hot 4 KiB leaf without the walker: through the store alone,
//! the history ring alone, and `RoundVisitor::leaf`.
//!
//! Each figure is the best of several passes (`--runs N`, default 9), the
//! measures interleaved so that a burst of load spoils one pass of each.
//! Run with `cargo bench -p ept-core --bench heat`.

#[path = "../tests/common/arena.rs"]
#[allow(dead_code)]
mod arena;

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arena::Arena;
use std::cell::RefCell;

use ept_core::ept_walk::{
    Descent, Format, Gfn, GfnRange, KvmBits, Leaf, Mode, PageSize, Root, Skip, Spte, Stop, Visitor,
    Walker,
};
use ept_core::heat::{
    Geometry, Granule, HeatMap, HeatStore, History, HistoryLayout, Observation, RoundEnd,
    StoreLayout, Track, DEFAULT_REGION,
};

const PAGES: u64 = 1 << 18; // 1 GiB of 4 KiB pages
const REGIONS: usize = 512; // 2 MiB regions in 1 GiB
const PRESENT: u64 = 1 << 11;
const NONPRESENT: u64 = 1 << 63; // KVM's non-present EPT value (suppress #VE)
const RWX: u64 = 0b111;
const WB: u64 = 6 << 3;
const A: u64 = 1 << 8;
const D: u64 = 1 << 9;
/// Linux 7.3's EPT_SPTE_HOST_WRITABLE, in every leaf KVM maps writable;
/// the walker reads the leaves with 7.3's layout.
const HOST_WRITABLE: u64 = 1 << 53;
const PHYS_MASK: u64 = (1 << 46) - 1;
const BUDGET: u64 = 8192; // the kernel's entries per lock hold

/// Hot 2 MiB regions (8 MiB), spread over the GiB.
const HOT: [usize; 4] = [8, 40, 200, 400];

struct Guest {
    name: &'static str,
    arena: Arena,
    root: usize,
    l3: usize,
    l2: usize,
    /// Leaf table of each 2 MiB region, if mapped.
    l1: Vec<Option<usize>>,
}

fn build(name: &'static str, mapped: impl Fn(usize) -> bool) -> Guest {
    let mut arena = Arena::new();
    let root = arena.alloc(NONPRESENT);
    let l3 = arena.alloc(NONPRESENT);
    let l2 = arena.alloc(NONPRESENT);
    arena.store(root, 0, PRESENT | RWX | Arena::pa(l3) | A);
    arena.store(l3, 0, PRESENT | RWX | Arena::pa(l2) | A);
    let mut l1 = vec![None; REGIONS];
    for (r, slot) in l1.iter_mut().enumerate() {
        if !mapped(r) {
            continue;
        }
        let t = arena.alloc(NONPRESENT);
        arena.store(l2, r, PRESENT | RWX | Arena::pa(t) | A);
        for i in 0..512 {
            let pfn = 0x10_0000 + (r as u64) * 512 + i as u64;
            arena.store(t, i, PRESENT | RWX | WB | HOST_WRITABLE | (pfn << 12));
        }
        *slot = Some(t);
    }
    Guest {
        name,
        arena,
        root,
        l3,
        l2,
        l1,
    }
}

/// The hot regions' accesses since the last pass: A and D in their leaves,
/// A in the table entries on the way.
fn touch_hot(g: &Guest) {
    let or = |id: usize, idx: usize, bits: u64| {
        let e = &g.arena.get(id)[idx];
        e.store(e.load(Ordering::Relaxed) | bits, Ordering::Relaxed);
    };
    or(g.root, 0, A);
    or(g.l3, 0, A);
    for r in HOT {
        let t = g.l1[r].expect("hot regions are mapped");
        or(g.l2, r, A);
        for i in 0..512 {
            or(t, i, A | D);
        }
    }
}

#[derive(Default)]
struct Count {
    leaves: u64,
    idle: u64,
}

impl Visitor for Count {
    #[inline]
    fn leaf(&mut self, _leaf: Leaf) {
        self.leaves += 1;
    }
    #[inline]
    fn idle(&mut self, range: GfnRange) {
        self.idle += range.pages();
    }
    #[inline]
    fn hole(&mut self, _range: GfnRange) {}
    #[inline]
    fn cold(&mut self, _range: GfnRange) {}
    #[inline]
    fn skipped(&mut self, _range: GfnRange, _why: Skip) {}
}

/// One pass over the root in calls of `BUDGET` entries, as the kernel's
/// round does.
fn walk(g: &Guest, descent: Descent, v: &mut impl Visitor) -> u64 {
    let root = Root::new(
        Arena::pa(g.root),
        4,
        Format::Ept,
        KvmBits::LINUX_7_3,
        PHYS_MASK,
    )
    .expect("root");
    // SAFETY: the arena checks every address it is asked for.
    let walker = unsafe { Walker::new(&g.arena, root, Mode::ClearAccessedDirty, descent) };
    let span = root.span();
    let mut range = GfnRange::new(span.start, span.end);
    let mut leaves = 0;
    loop {
        let out = walker.walk(range, BUDGET, v);
        leaves += out.stats.leaves;
        match out.stop {
            Stop::Done => return leaves,
            Stop::Paused(gfn) => range.start = gfn,
        }
    }
}

type Map = HeatMap<Vec<u16>, Vec<u64>>;

fn new_map() -> Map {
    let layout = Geometry {
        span: GfnRange::new(Gfn(0), Gfn(PAGES)),
        granule: Granule::SIZE_4K,
        window: 5,
        region: DEFAULT_REGION,
        rounds: 64,
    }
    .layout()
    .expect("layout");
    HeatMap::new(
        &layout,
        vec![0; layout.store.words()],
        vec![0; layout.history.words()],
    )
    .expect("map")
}

/// Best times of one guest and descent.
#[derive(Clone, Copy)]
struct Best {
    walker: Duration,
    begin: Duration,
    walk_store: Duration,
    end: Duration,
    round: Duration,
}

impl Best {
    fn new() -> Best {
        let max = Duration::MAX;
        Best {
            walker: max,
            begin: max,
            walk_store: max,
            end: max,
            round: max,
        }
    }
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

/// One pass of every measure for `g` with `descent`, into `best`.
fn pass(g: &Guest, descent: Descent, map: &mut Map, round_no: &mut u64, best: &mut Best) {
    let keep = |b: &mut Duration, d: Duration| *b = (*b).min(d);
    // The walker alone.
    touch_hot(g);
    let d = time(|| walk(g, descent, &mut Count::default()));
    keep(&mut best.walker, d);

    // A heat-map round, in parts.
    touch_hot(g);
    *round_no += 1;
    let t_begin = time(|| map.begin_round(*round_no, Track::Both));
    let t_walk = time(|| {
        map.begin_root();
        walk(g, descent, &mut map.visitor())
    });
    let t_end = time(|| map.end_round(&RoundEnd::default()));
    keep(&mut best.begin, t_begin);
    keep(&mut best.walk_store, t_walk);
    keep(&mut best.end, t_end);
    keep(&mut best.round, t_begin + t_walk + t_end);
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    let mut runs = 9usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs);
        }
    }
    let full = build("full", |_| true);
    let sparse = build("sparse", |r| HOT.contains(&r) || (r % 64 == 1));
    println!("1 GiB guest, 4K granule, window 5, mode both, 8 MiB hot; best of {runs} passes (ms)");
    println!(
        "| guest | walk | walker | begin | walk+store | end | round | store share |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for g in [&full, &sparse] {
        for (name, descent) in [
            ("leaf", Descent::EveryTable),
            ("upper", Descent::AccessedTables),
        ] {
            let mut map = new_map();
            let mut n = 0;
            let mut best = Best::new();
            // Warm up: the first pass clears the A bits the tables were
            // built with, and fills the map once.
            pass(g, descent, &mut map, &mut n, &mut Best::new());
            pass(g, descent, &mut map, &mut n, &mut Best::new());
            for _ in 0..runs {
                pass(g, descent, &mut map, &mut n, &mut best);
            }
            let store = best.round.saturating_sub(best.walker);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} % |",
                g.name,
                name,
                ms(best.walker),
                ms(best.begin),
                ms(best.walk_store),
                ms(best.end),
                ms(best.round),
                100.0 * store.as_secs_f64() / best.round.as_secs_f64().max(1e-12),
            );
            // What the map saw, so a broken round does not go unnoticed.
            let v = map.view();
            let hot = (0..v.store.cells())
                .filter(|&i| v.store.cell(i).is_some_and(|c| c.accessed_rounds(5) == 5))
                .count();
            assert_eq!(hot, HOT.len() * 512, "{} {}: hot pages", g.name, name);
        }
    }
    hot_leaf_costs(runs);
}

/// What one hot 4 KiB leaf costs the heat map, without the walker: the
/// store's part, the history ring's, and the whole `RoundVisitor::leaf`.
fn hot_leaf_costs(runs: usize) {
    let span = GfnRange::new(Gfn(0), Gfn(PAGES));
    let obs = Observation::Leaf {
        size: PageSize::Size4K,
        accessed: true,
        dirty: true,
    };
    let layout = StoreLayout::new(span, Granule::SIZE_4K, 5).expect("layout");
    let store = RefCell::new(HeatStore::new(layout, vec![0u16; layout.words()]).expect("store"));
    let store_ns = per_hot_page(
        runs,
        || store.borrow_mut().begin_round(),
        |gfn| {
            store
                .borrow_mut()
                .observe(GfnRange::new(Gfn(gfn), Gfn(gfn + 1)), obs)
        },
    );
    let hl = HistoryLayout::new(span, DEFAULT_REGION, 64).expect("layout");
    let ring = RefCell::new(History::new(hl, vec![0u64; hl.words()]).expect("ring"));
    let ring_ns = per_hot_page(
        runs,
        || ring.borrow_mut().begin_round(),
        |gfn| {
            ring.borrow_mut()
                .count(GfnRange::new(Gfn(gfn), Gfn(gfn + 1)), true, true)
        },
    );
    let map = RefCell::new(new_map());
    let mut n = 0;
    let visitor_ns = per_hot_page(
        runs,
        || {
            n += 1;
            let mut m = map.borrow_mut();
            m.end_round(&RoundEnd::default());
            m.begin_round(n, Track::Both);
            m.begin_root();
        },
        |gfn| {
            map.borrow_mut().visitor().leaf(Leaf {
                gfn: Gfn(gfn),
                size: PageSize::Size4K,
                spte: Spte(0),
                pfn: 0,
                accessed: true,
                dirty: true,
                cleared_accessed: true,
                cleared_dirty: true,
            })
        },
    );
    println!(
        "\nper hot 4K leaf, without the walker (ns): store {store_ns:.1}, history ring {ring_ns:.1}, RoundVisitor::leaf {visitor_ns:.1}"
    );
}

/// ns per call of `f` over the 2048 hot pages, best of `runs` rounds, each
/// round opened with `begin` (untimed).
fn per_hot_page(runs: usize, mut begin: impl FnMut(), mut f: impl FnMut(u64)) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        begin();
        let t = Instant::now();
        for r in HOT {
            for i in 0..512u64 {
                f(r as u64 * 512 + i);
            }
        }
        best = best.min(t.elapsed());
    }
    best.as_nanos() as f64 / (HOT.len() * 512) as f64
}
