// SPDX-License-Identifier: GPL-2.0

//! How fast the walker goes compared with simply reading the tables.
//!
//! Not a timed test: a program that builds a synthetic 4K-mapped 64 GiB guest
//! (16.8 M leaves in 32768 leaf tables, 128 MiB of them) and prints ns per
//! leaf for:
//!
//! - the read limit: a plain sum over the same leaf-table bytes, in the same
//!   order (what any walk must at least pay to bring the tables in);
//! - a cold scan: test-and-clear with no A bit set (nothing written), in one
//!   call and in calls of 4096 entries;
//! - an all-hot test-and-clear: every leaf's A set and cleared, next to its
//!   floor (a bare load and `compare_exchange` per leaf);
//! - the same three on the first GiB only, whose tables stay in the cache,
//!   which shows the CPU's share without DRAM;
//! - the upper-level descent (`Descent::AccessedTables`) with 1 % of the
//!   2 MiB regions hot: one accessed page in each (the target's case), and
//!   every page in each (with a full walk of the same state beside it);
//!
//! and the ratios against the targets (cold <= 1.5x the read limit, all-hot
//! <= 8 ns per leaf, upper-level 1 % hot <= 3 % of the full cold scan). Each
//! figure is the best of several rounds (`--runs N`, default 7), each round
//! running every measure once; setting the A bits before a measure is not
//! timed. docs/PERFORMANCE.md records the figures and what they mean.
//!
//! Run with `cargo bench -p ept-core --bench walk` (or `make bench`).

#[path = "../tests/common/arena.rs"]
#[allow(dead_code)]
mod arena;

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arena::Arena;
use ept_core::ept_walk::{
    Descent, Format, Gfn, GfnRange, KvmBits, Leaf, Mode, Root, Skip, Stats, Stop, Visitor, Walker,
};

const GUEST_GIB: usize = 64;
const L2_TABLES: usize = GUEST_GIB; // one per GiB
const L1_PER_L2: usize = 512;
const LEAVES: u64 = (GUEST_GIB as u64) << 18;
const SMALL_LEAVES: u64 = 1 << 18;

const PRESENT: u64 = 1 << 11;
const RWX: u64 = 0b111;
const WB: u64 = 6 << 3; // EPT memory type write-back
const A: u64 = 1 << 8; // EPT accessed
/// Linux 7.3's EPT_SPTE_HOST_WRITABLE, set in every leaf KVM maps writable:
/// the leaves look as KVM 7.3 writes them (and the walker reads them with
/// 7.3's layout, where this bit is not an A/D type).
const HOST_WRITABLE: u64 = 1 << 53;
const KVM_BITS: KvmBits = KvmBits::LINUX_7_3;
const PHYS_MASK: u64 = (1 << 46) - 1;

/// The synthetic guest: ids of its tables in the arena.
struct Guest {
    arena: Arena,
    root: usize,
    l3: usize,
    l2: Vec<usize>,
    /// Leaf tables in GFN order.
    l1: Vec<usize>,
}

fn build() -> Guest {
    let mut arena = Arena::with_capacity(2 + L2_TABLES * (1 + L1_PER_L2));
    let root = arena.alloc(1 << 63);
    let l3 = arena.alloc(1 << 63);
    arena.store(root, 0, PRESENT | RWX | Arena::pa(l3) | A);
    let mut l2 = Vec::with_capacity(L2_TABLES);
    let mut l1 = Vec::with_capacity(L2_TABLES * L1_PER_L2);
    let mut pfn: u64 = 0x10_0000;
    for g in 0..L2_TABLES {
        let t2 = arena.alloc(1 << 63);
        arena.store(l3, g, PRESENT | RWX | Arena::pa(t2) | A);
        l2.push(t2);
        for r in 0..L1_PER_L2 {
            let t1 = arena.alloc(0);
            arena.store(t2, r, PRESENT | RWX | Arena::pa(t1) | A);
            for i in 0..512 {
                arena.store(t1, i, PRESENT | RWX | WB | HOST_WRITABLE | (pfn << 12));
                pfn += 1;
            }
            l1.push(t1);
        }
    }
    Guest {
        arena,
        root,
        l3,
        l2,
        l1,
    }
}

/// A visitor as cheap as the kernel's should be: counts.
#[derive(Default)]
struct Count {
    leaves: u64,
    hot: u64,
    idle_pages: u64,
    cold_pages: u64,
}

impl Visitor for Count {
    #[inline]
    fn leaf(&mut self, leaf: Leaf) {
        self.leaves += 1;
        self.hot += leaf.accessed as u64;
    }
    #[inline]
    fn idle(&mut self, range: GfnRange) {
        self.idle_pages += range.pages();
    }
    #[inline]
    fn hole(&mut self, _range: GfnRange) {}
    #[inline]
    fn cold(&mut self, range: GfnRange) {
        self.cold_pages += range.pages();
    }
    #[inline]
    fn skipped(&mut self, _range: GfnRange, _why: Skip) {}
}

/// Runs `prepare` (untimed), then `pass`; returns how long `pass` took and
/// its result.
fn timed<T>(prepare: impl FnOnce(), pass: impl FnOnce() -> T) -> (Duration, T) {
    prepare();
    let t = Instant::now();
    let r = black_box(pass());
    (t.elapsed(), r)
}

/// Keeps the smaller of `best` and `d` in `best`.
fn keep_best(best: &mut Duration, d: Duration) {
    *best = (*best).min(d);
}

/// One pass over `range`, in calls of `budget` entries.
fn walk(g: &Guest, range: GfnRange, mode: Mode, descent: Descent, budget: u64) -> (Count, Stats) {
    let root = Root::new(Arena::pa(g.root), 4, Format::Ept, KVM_BITS, PHYS_MASK).expect("root");
    // SAFETY: the arena checks every address it is asked for.
    let walker = unsafe { Walker::new(&g.arena, root, mode, descent) };
    let mut count = Count::default();
    let mut total = Stats::default();
    let mut range = range;
    loop {
        let out = walker.walk(range, budget, &mut count);
        total.accumulate(&out.stats);
        match out.stop {
            Stop::Done => return (count, total),
            Stop::Paused(gfn) => range.start = gfn,
        }
    }
}

fn set_all_leaves(g: &Guest, a: bool) {
    set_leaves(g, &g.l1, a);
}

fn set_leaves(g: &Guest, tables: &[usize], a: bool) {
    for &t in tables {
        for e in g.arena.get(t) {
            let v = e.load(Ordering::Relaxed);
            e.store(if a { v | A } else { v & !A }, Ordering::Relaxed);
        }
    }
}

/// Hot regions: every 100th 2 MiB region, offset so they spread over all
/// GiBs (1 %, 328 of 32768).
fn hot_regions() -> Vec<usize> {
    (0..L2_TABLES * L1_PER_L2)
        .filter(|r| r % 100 == 37)
        .collect()
}

/// State after a pass and a TLB flush in which the guest touched the hot
/// regions: A set in the table entries on the way to each hot region and in
/// `pages_per_region` of its leaves (all 512, or one), clear everywhere else.
fn prepare_hot_regions(g: &Guest, hot: &[usize], pages_per_region: usize) {
    set_all_leaves(g, false);
    for &t2 in &g.l2 {
        for e in g.arena.get(t2) {
            e.store(e.load(Ordering::Relaxed) & !A, Ordering::Relaxed);
        }
    }
    for e in g.arena.get(g.l3) {
        e.store(e.load(Ordering::Relaxed) & !A, Ordering::Relaxed);
    }
    let set_a = |id: usize, idx: usize| {
        let e = &g.arena.get(id)[idx];
        e.store(e.load(Ordering::Relaxed) | A, Ordering::Relaxed);
    };
    set_a(g.root, 0);
    for &r in hot {
        set_a(g.l3, r / L1_PER_L2);
        set_a(g.l2[r / L1_PER_L2], r % L1_PER_L2);
        let first = if pages_per_region == 512 {
            0
        } else {
            r * 37 % 512
        };
        for i in first..first + pages_per_region {
            set_a(g.l1[r], i);
        }
    }
}

/// The read limit: a plain sum over the leaf tables' bytes, table by
/// table in GFN order, as plain (vectorisable) loads.
fn read_limit(g: &Guest) -> u64 {
    read_limit_of(g, &g.l1)
}

fn read_limit_of(g: &Guest, tables: &[usize]) -> u64 {
    let mut sum = 0u64;
    for &t in tables {
        let table = g.arena.get(t);
        // SAFETY: `AtomicU64` has the layout of `u64`; nothing writes the
        // tables during this pass (single-threaded benchmark), so plain
        // reads of the 512 entries cannot race.
        let plain: &[u64; 512] = unsafe { &*table.as_ptr().cast::<[u64; 512]>() };
        sum = plain.iter().fold(sum, |s, &v| s.wrapping_add(v));
    }
    sum
}

/// The same sum with one relaxed atomic load per entry, as the walker reads.
fn read_limit_atomic(g: &Guest) -> u64 {
    let mut sum = 0u64;
    for &t in &g.l1 {
        for e in g.arena.get(t) {
            sum = sum.wrapping_add(e.load(Ordering::Relaxed));
        }
    }
    sum
}

/// The floor of a test-and-clear pass: for each leaf, a relaxed load and a
/// `compare_exchange` clearing A, and nothing else.
fn cmpxchg_floor(g: &Guest, tables: &[usize]) -> u64 {
    let mut n = 0u64;
    for &t in tables {
        for e in g.arena.get(t) {
            let v = e.load(Ordering::Relaxed);
            if v & A != 0
                && e.compare_exchange(v, v & !A, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                n += 1;
            }
        }
    }
    n
}

fn ns_per_leaf(d: Duration) -> f64 {
    d.as_nanos() as f64 / LEAVES as f64
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn main() {
    let mut runs = 7usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .expect("--runs needs a positive number");
        }
    }

    let t = Instant::now();
    let g = build();
    println!(
        "ept_walk benchmark: synthetic 4K-mapped {GUEST_GIB} GiB guest, EPT, 4 levels: \
         {LEAVES} leaves in {} leaf tables ({} MiB), built in {:.2} s; best of {runs} runs",
        g.l1.len(),
        (g.l1.len() * 4096) >> 20,
        t.elapsed().as_secs_f64()
    );

    let hot = hot_regions();
    let hot_pages = hot.len() as u64 * 512;

    // Every measure once per round, rounds repeated: a burst of load on the
    // shared machine then spoils one round of every measure rather than
    // every run of one, and the best of each is kept.
    let mut t_read = Duration::MAX;
    let mut t_read_atomic = Duration::MAX;
    let mut t_cold = Duration::MAX;
    let mut t_cold_budget = Duration::MAX;
    let mut t_hot = Duration::MAX;
    let mut t_floor = Duration::MAX;
    let mut t_hot_small = Duration::MAX;
    let mut t_cold_small = Duration::MAX;
    let mut t_read_small = Duration::MAX;
    let mut t_floor_small = Duration::MAX;
    let small = &g.l1[..L1_PER_L2];
    let small_range = GfnRange::new(Gfn(0), Gfn(SMALL_LEAVES));
    let mut t_upper_one = Duration::MAX;
    let mut t_upper_full = Duration::MAX;
    let mut t_full_same = Duration::MAX;
    for _ in 0..runs {
        let (d, sum) = timed(|| {}, || read_limit(&g));
        keep_best(&mut t_read, d);
        let (d, sum2) = timed(|| {}, || read_limit_atomic(&g));
        keep_best(&mut t_read_atomic, d);
        assert_eq!(sum, sum2);

        let (d, (c, s)) = timed(
            || set_all_leaves(&g, false),
            || {
                walk(
                    &g,
                    GfnRange::ALL,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_cold, d);
        assert_eq!((c.idle_pages, c.hot, s.cleared_accessed), (LEAVES, 0, 0));

        let (d, (c, _)) = timed(
            || set_all_leaves(&g, false),
            || {
                walk(
                    &g,
                    GfnRange::ALL,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    4096,
                )
            },
        );
        keep_best(&mut t_cold_budget, d);
        assert_eq!(c.idle_pages, LEAVES);

        let (d, (c, s)) = timed(
            || set_all_leaves(&g, true),
            || {
                walk(
                    &g,
                    GfnRange::ALL,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_hot, d);
        assert_eq!((c.hot, s.cleared_accessed), (LEAVES, LEAVES));

        let (d, n) = timed(|| set_all_leaves(&g, true), || cmpxchg_floor(&g, &g.l1));
        keep_best(&mut t_floor, d);
        assert_eq!(n, LEAVES);

        // The same on the first GiB only, whose 2 MiB of tables stay in the
        // cache: what the CPU spends per leaf, without DRAM.
        let (d, _) = timed(|| {}, || read_limit_of(&g, small));
        keep_best(&mut t_read_small, d);
        let (d, (c, _)) = timed(
            || set_leaves(&g, small, false),
            || {
                walk(
                    &g,
                    small_range,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_cold_small, d);
        assert_eq!(c.idle_pages, SMALL_LEAVES);
        let (d, (c, _)) = timed(
            || set_leaves(&g, small, true),
            || {
                walk(
                    &g,
                    small_range,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_hot_small, d);
        assert_eq!(c.hot, SMALL_LEAVES);
        let (d, n) = timed(|| set_leaves(&g, small, true), || cmpxchg_floor(&g, small));
        keep_best(&mut t_floor_small, d);
        assert_eq!(n, SMALL_LEAVES);

        let (d, (c, s)) = timed(
            || prepare_hot_regions(&g, &hot, 1),
            || {
                walk(
                    &g,
                    GfnRange::ALL,
                    Mode::ClearAccessed,
                    Descent::AccessedTables,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_upper_one, d);
        assert_eq!(c.hot, hot.len() as u64);
        assert_eq!(c.leaves + c.idle_pages + c.cold_pages, LEAVES);
        assert_eq!(s.cold_tables, (L2_TABLES * L1_PER_L2 - hot.len()) as u64);

        let (d, (c, _)) = timed(
            || prepare_hot_regions(&g, &hot, 512),
            || {
                walk(
                    &g,
                    GfnRange::ALL,
                    Mode::ClearAccessed,
                    Descent::AccessedTables,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_upper_full, d);
        assert_eq!(c.hot, hot_pages);

        let (d, (c, _)) = timed(
            || prepare_hot_regions(&g, &hot, 512),
            || {
                walk(
                    &g,
                    GfnRange::ALL,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    u64::MAX,
                )
            },
        );
        keep_best(&mut t_full_same, d);
        assert_eq!((c.hot, c.idle_pages), (hot_pages, LEAVES - hot_pages));
    }

    let read = ns_per_leaf(t_read);
    let cold = ns_per_leaf(t_cold);
    let all_hot = ns_per_leaf(t_hot);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let share = |d: Duration| d.as_secs_f64() / t_cold.as_secs_f64() * 100.0;

    println!();
    println!(
        "{:<52} {:>8} {:>8}  {:<14} target",
        "measure", "ns/leaf", "ms/pass", "ratio"
    );
    let row = |name: &str, d: Duration, ratio: String, target: &str| {
        println!(
            "{:<52} {:>8.3} {:>8.2}  {:<14} {}",
            name,
            ns_per_leaf(d),
            ms(d),
            ratio,
            target
        );
    };
    row(
        "read limit (plain sum of the leaf-table bytes)",
        t_read,
        String::new(),
        "",
    );
    row(
        "  same, one relaxed atomic load per entry",
        t_read_atomic,
        String::new(),
        "",
    );
    row(
        "cold scan (no A set), one call",
        t_cold,
        format!("{:.2}x read", cold / read),
        &format!("<= 1.5x read limit: {}", verdict(cold / read <= 1.5)),
    );
    row(
        "  same, budget 4096 entries per call",
        t_cold_budget,
        format!("{:.2}x read", ns_per_leaf(t_cold_budget) / read),
        "",
    );
    row(
        "all-hot test-and-clear",
        t_hot,
        String::new(),
        &format!("<= 8 ns/leaf: {}", verdict(all_hot <= 8.0)),
    );
    row(
        "  floor: load + compare_exchange per leaf",
        t_floor,
        String::new(),
        "",
    );
    let per_small = |d: Duration| d.as_nanos() as f64 / SMALL_LEAVES as f64;
    println!(
        "{:<52} {:>8.3} {:>8.2}",
        "  read limit, first GiB only (tables in cache)",
        per_small(t_read_small),
        ms(t_read_small)
    );
    println!(
        "{:<52} {:>8.3} {:>8.2}",
        "  cold scan, first GiB only (tables in cache)",
        per_small(t_cold_small),
        ms(t_cold_small)
    );
    println!(
        "{:<52} {:>8.3} {:>8.2}",
        "  all-hot, first GiB only (tables in cache)",
        per_small(t_hot_small),
        ms(t_hot_small)
    );
    println!(
        "{:<52} {:>8.3} {:>8.2}",
        "  floor, first GiB only (tables in cache)",
        per_small(t_floor_small),
        ms(t_floor_small)
    );
    row(
        "upper-level, 1 % of 2M regions hot (1 page each)",
        t_upper_one,
        format!("{:.2}% cold", share(t_upper_one)),
        &format!(
            "<= 3 % of cold scan: {}",
            verdict(share(t_upper_one) <= 3.0)
        ),
    );
    row(
        "upper-level, 1 % of 2M regions hot (all pages)",
        t_upper_full,
        format!("{:.2}% cold", share(t_upper_full)),
        "(168k clears: see docs/PERFORMANCE.md)",
    );
    row(
        "  full walk, same hot set",
        t_full_same,
        format!("{:.2}% cold", share(t_full_same)),
        "",
    );
}
