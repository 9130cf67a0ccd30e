// SPDX-License-Identifier: GPL-2.0

//! How much longer a VM's `heatmap` gets from its idle-age columns: lines
//! (runs of granules alike in every column) with `idle_ms` and
//! `unwritten_ms`, and the same runs merged where only those columns
//! differ, as a module without idle ages would have written them.
//!
//! Not a timed test: a program that prints figures (docs/PERFORMANCE.md,
//! "Heat map lines"). A synthetic 1 GiB guest (262144 pages of 4 KiB, all
//! mapped), sampled at 100 ms for 600 rounds (a minute) through the heat
//! map the module uses (`HeatMap`, fed leaf by leaf as the walker's visitor
//! is, accessed and dirty), rendered by the module's own `heatmap`
//! renderer. Access patterns:
//!
//! - *steady*: the same 32 MiB every round;
//! - *moving*: a 64 MiB window that moves on by 1 MiB every round, as a
//!   scan or a log does (every page ends up with its own last-touch time);
//! - *scattered*: 32 MiB every round, and 2048 pages (8 MiB) picked at
//!   random over the whole GiB each round (page cache, allocator churn):
//!   the worst case, ages all different page by page.
//!
//! Run with `cargo bench -p ept-core --bench runs`.

use ept_core::ept_walk::{Gfn, GfnRange, Leaf, PageSize, Spte, Visitor};
use ept_core::heat::{
    Geometry, Granule, HeatMap, RoundEnd, Track, DEFAULT_HISTORY_ROUNDS, DEFAULT_REGION,
    DEFAULT_WINDOW,
};
use ept_core::procfs::control::VmId;
use ept_core::procfs::heatmap::{render, Run};

const PAGES: u64 = 1 << 18; // 1 GiB of 4 KiB pages
const ROUNDS: u64 = 600;
const PERIOD_MS: u32 = 100;

/// A small, fixed pseudo-random sequence (xorshift64): the same figures
/// on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The pages touched in `round` (sorted, distinct).
fn touched(pattern: &str, round: u64, rng: &mut Rng) -> Vec<u64> {
    const MIB: u64 = 256; // pages
    let mut pages: Vec<u64> = match pattern {
        "steady" => (64 * MIB..96 * MIB).collect(),
        "moving" => {
            let start = (round * MIB) % PAGES;
            (start..start + 64 * MIB).map(|p| p % PAGES).collect()
        }
        _ => (64 * MIB..96 * MIB)
            .chain((0..2048).map(|_| rng.next() % PAGES))
            .collect(),
    };
    pages.sort_unstable();
    pages.dedup();
    pages
}

fn leaf(gfn: u64) -> Leaf {
    Leaf {
        gfn: Gfn(gfn),
        size: PageSize::Size4K,
        spte: Spte(0),
        pfn: gfn,
        accessed: true,
        dirty: true,
        cleared_accessed: true,
        cleared_dirty: true,
    }
}

/// The `heatmap` text after `ROUNDS` rounds of `pattern`.
fn heatmap_text(pattern: &str) -> String {
    let layout = Geometry {
        span: GfnRange::new(Gfn(0), Gfn(PAGES)),
        granule: Granule::SIZE_4K,
        window: DEFAULT_WINDOW,
        region: DEFAULT_REGION,
        rounds: DEFAULT_HISTORY_ROUNDS,
    }
    .layout()
    .expect("layout");
    let mut map = HeatMap::new(
        &layout,
        vec![0u16; layout.store.words()],
        vec![0u64; layout.history.words()],
    )
    .expect("map");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..ROUNDS {
        map.set_period(PERIOD_MS);
        map.begin_round(round * u64::from(PERIOD_MS) * 1_000_000, Track::Both);
        map.begin_root();
        let mut v = map.visitor();
        let mut next = 0;
        for gfn in touched(pattern, round, &mut rng) {
            if gfn > next {
                v.idle(GfnRange::new(Gfn(next), Gfn(gfn)));
            }
            v.leaf(leaf(gfn));
            next = gfn + 1;
        }
        if next < PAGES {
            v.idle(GfnRange::new(Gfn(next), Gfn(PAGES)));
        }
        let mut end = RoundEnd {
            flushed: true,
            ..RoundEnd::default()
        };
        end.walk.cleared_accessed = 1;
        map.end_round(&end);
    }
    let mut text = String::new();
    render(&mut text, &map.view(), VmId { pid: 1, fd: 2 }, &[]).expect("render");
    text
}

/// Runs of `runs` merged where only the idle-age columns differ.
fn without_ages(runs: &[Run]) -> usize {
    let mut n = 0;
    let mut last: Option<&Run> = None;
    for r in runs {
        let same = last.is_some_and(|l| {
            l.end == r.start
                && (l.granule, l.state, l.accessed, l.dirty, l.slot)
                    == (r.granule, r.state, r.accessed, r.dirty, r.slot)
        });
        if !same {
            n += 1;
        }
        last = Some(r);
    }
    n
}

fn main() {
    println!(
        "| pattern (1 GiB, 4K, {ROUNDS} rounds) | lines | without the idle columns | heatmap bytes |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for pattern in ["steady", "moving", "scattered"] {
        let text = heatmap_text(pattern);
        let runs: Vec<Run> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| Run::parse(l).expect("run"))
            .collect();
        println!(
            "| {pattern} | {} | {} | {} |",
            runs.len(),
            without_ages(&runs),
            text.len()
        );
    }
}
