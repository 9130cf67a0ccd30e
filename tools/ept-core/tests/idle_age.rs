// SPDX-License-Identifier: GPL-2.0

//! Idle ages (`heat/cell.rs`, "Idle age"): a trace's bounds against the
//! true number of rounds since its bit was last set, simulated round by
//! round; saturation; the log scale's reach; "idle since start"; cells made
//! idle in nearby rounds merging again (what keeps rounds cheap); a new
//! store over an old one's storage starting from nothing.

use proptest::prelude::*;

use ept_core::ept_walk::{Gfn, GfnRange, PageSize};
use ept_core::heat::store::BLOCK_CELLS;
use ept_core::heat::{Cell, Granule, HeatStore, Idle, Observation, StoreLayout, Trace, Width};

const WIDTHS: [Width; 3] = [Width::W16, Width::W32, Width::W64];

fn accessed() -> Observation {
    Observation::Leaf {
        size: PageSize::Size4K,
        accessed: true,
        dirty: false,
    }
}

/// Checks that `trace`, `age` rounds after its bit was last set, says so.
fn holds(trace: Trace, width: Width, window: u8, age: u64) -> Result<(), TestCaseError> {
    match trace.idle(width, window) {
        Idle::Rounds { min, max } => {
            prop_assert!(
                min <= age && age <= max,
                "age {age} outside {min}..={max} ({trace:?})"
            );
        }
        Idle::SinceStart => prop_assert!(false, "set {age} rounds ago, read as never"),
    }
    if age < u64::from(window) {
        prop_assert_eq!(trace, Trace::Recent(1 << age), "exact within the window");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Set in round `t0`, then never again: every later round, the bounds
    /// hold the true age, whatever the round number it was set in (the
    /// steps fall on multiples of the round number).
    #[test]
    fn bounds_hold_the_true_age(
        w in 0usize..3, window in 1u8..=29, t0 in 1u64..100_000, rounds in 1u64..5000,
    ) {
        let width = WIDTHS[w];
        let window = window.min(width.history_bits() as u8);
        let mut t = Trace::Never.set();
        for age in 1..=rounds {
            t = t.next_round(width, window, t0 + age);
            holds(t, width, window, age)?;
        }
    }

    /// The same from every level of a 16-bit cell, over its whole range.
    #[test]
    fn bounds_hold_to_saturation(window in 1u8..=5, t0 in 1u64..1_000_000) {
        let width = Width::W16;
        let mut t = Trace::Never.set();
        let mut age = 0u64;
        while t != Trace::Aged(width.max_level()) {
            age += 1;
            t = t.next_round(width, window, t0 + age);
            holds(t, width, window, age)?;
        }
        // Saturated: it stays, and says "at least" only.
        let (min, max) = width.level_ages(width.max_level(), window);
        prop_assert_eq!(max, u64::MAX);
        prop_assert!(min <= age);
        for _ in 0..1000 {
            age += 1;
            t = t.next_round(width, window, t0 + age);
            prop_assert_eq!(t, Trace::Aged(width.max_level()));
            holds(t, width, window, age)?;
        }
    }

    /// Found set again, from any age: back in the window, the age 0.
    #[test]
    fn a_set_bit_makes_it_recent(w in 0usize..3, level in any::<u32>(), window in 1u8..=29) {
        let width = WIDTHS[w];
        let window = window.min(width.history_bits() as u8);
        for t in [Trace::Never, Trace::Aged(level & width.max_level())] {
            let t = t.set();
            prop_assert_eq!(t, Trace::Recent(1));
            prop_assert_eq!(t.rounds(window), 1);
            prop_assert_eq!(t.idle(width, window), Idle::Rounds { min: 0, max: 0 });
        }
    }
}

#[test]
fn log_scale_reaches_an_hour_at_100_ms() {
    // 36000 rounds: the longest default bin at the default period,
    // below the saturated level, at every window.
    for window in 1..=5 {
        let (min, max) = Width::W16.level_ages(Width::W16.max_level() - 1, window);
        assert!(min > 36_000 && max < u64::MAX, "{min}..{max}");
    }
    // Within a factor of 2 at 16 bits, of 1.5 wider.
    for (width, ratio) in [(Width::W16, 2.0), (Width::W32, 1.5), (Width::W64, 1.5)] {
        for level in 0..width.max_level() {
            let (min, max) = width.level_ages(level, 5);
            assert!(
                max as f64 <= ratio * (min as f64 + 1.0),
                "{width:?} level {level}: {min}..{max}"
            );
        }
    }
    // Exact while counting single rounds (exponent 0).
    assert_eq!(Width::W16.level_ages(0, 5), (5, 5));
    assert_eq!(Width::W16.level_ages(1, 5), (6, 6));
    assert_eq!(Width::W64.level_ages(3, 13), (16, 16));
    // Wider cells stop at exponent 40 whatever their bits, 16-bit ones at
    // the 5 bits' 31.
    assert_eq!(Width::W16.max_level(), 31);
    assert_eq!(Width::W32.max_level(), 41 * 4 - 1);
    assert_eq!(Width::W64.max_level(), 41 * 4 - 1);
    assert_eq!(
        Width::W64.level_ages(Width::W64.max_level(), 29).1,
        u64::MAX
    );
    assert!(Width::W64.level_ages(Width::W64.max_level(), 29).0 > 1 << 42);
}

#[test]
fn never_set_is_idle_since_start() {
    let width = Width::W16;
    let mut c = Cell::EMPTY;
    assert_eq!(c.accessed.idle(width, 5), Idle::SinceStart);
    assert_eq!(Idle::SinceStart.at_least(42), 42);
    for round in 1..100_000 {
        c.next_round(width, 5, round);
        // An idle leaf says the granule is present, nothing of its bits.
        c.observe(Observation::Idle);
    }
    assert_eq!(c.accessed, Trace::Never);
    assert_eq!(c.dirty, Trace::Never);
    // Accessed: the accessed trace starts, the dirty one is still never.
    c.observe(accessed());
    assert_eq!(c.accessed.idle(width, 5), Idle::Rounds { min: 0, max: 0 });
    assert_eq!(c.dirty.idle(width, 5), Idle::SinceStart);
}

/// Pages of one block last accessed one after another over `spread`
/// rounds: the block is dense meanwhile and uniform again (one cell) by
/// 3 x spread + 20 rounds after the last one in 16-bit cells, 8 x spread +
/// 20 in wider ones.
#[test]
fn nearby_ages_merge_and_the_block_is_uniform_again() {
    // (granule, window): 16, 32 and 64-bit cells.
    for (granule, window, factor) in [
        (Granule::SIZE_4K, 5, 3),
        (Granule::from_shift(13).unwrap(), 6, 8),
        (Granule::from_shift(14).unwrap(), 20, 8),
    ] {
        for spread in [1u64, 2, 7, 10, 100, 333, 1000] {
            let pages = BLOCK_CELLS as u64 * granule.pages();
            let layout =
                StoreLayout::new(GfnRange::new(Gfn(0), Gfn(pages)), granule, window).unwrap();
            let mut store = HeatStore::new(layout, vec![0u16; layout.words()]).unwrap();
            let mut round = 0u64;
            for r in 0..spread {
                store.begin_round();
                round += 1;
                // Pages spread evenly over the burst; every page once.
                let from = r * pages / spread;
                let to = (r + 1) * pages / spread;
                store.observe(GfnRange::new(Gfn(from), Gfn(to)), accessed());
            }
            let last = round;
            while store.view().dense_blocks() != 0 {
                assert!(
                    round < last + factor * spread + 20,
                    "{:?} spread {spread}: still dense at round {round}",
                    layout.width()
                );
                store.begin_round();
                round += 1;
            }
            // Past the window, still one cell, aged.
            for _ in 0..window {
                store.begin_round();
            }
            assert_eq!(store.view().dense_blocks(), 0);
            let c = store.view().cell(0).unwrap();
            assert!(matches!(c.accessed, Trace::Aged(_)), "{c:?}");
        }
    }
}

/// Detach and attach: the new store is built over the old one's storage,
/// and knows nothing of the old rounds.
#[test]
fn a_new_store_starts_from_nothing() {
    let span = GfnRange::new(Gfn(0), Gfn(3 * BLOCK_CELLS as u64 + 17));
    let layout = StoreLayout::new(span, Granule::SIZE_4K, 5).unwrap();
    let mut store = HeatStore::new(layout, vec![0u16; layout.words()]).unwrap();
    for _ in 0..50 {
        store.begin_round();
        store.observe(GfnRange::new(Gfn(5), Gfn(900)), accessed());
    }
    for _ in 0..30 {
        store.begin_round();
    }
    assert!(matches!(
        store.view().cell(6).unwrap().accessed,
        Trace::Aged(_)
    ));
    // What the old store left in memory, as a new allocation may hold it.
    let storage = store.view().settled_words().unwrap().to_vec();
    let mut again = HeatStore::new(layout, storage).unwrap();
    again.begin_round();
    let v = again.view();
    for i in 0..layout.cells() {
        let c = v.cell(i).unwrap();
        assert_eq!(
            c.accessed.idle(layout.width(), 5),
            Idle::SinceStart,
            "cell {i}"
        );
        assert_eq!(c.dirty, Trace::Never);
    }
}

// ---------------------------------------------------------------------------
// Bins, the clock and the `idle` counts (`heat/idle.rs`).

use ept_core::ept_walk::{Leaf, Spte, Visitor};
use ept_core::heat::idle::{count, BinsError};
use ept_core::heat::IdleAge;
use ept_core::heat::{Clock, Geometry, HeatMap, IdleBins, RoundEnd, Track, DEFAULT_REGION};

#[test]
fn bins_parse_and_print() {
    let b = IdleBins::parse("1s,10s,1m,10m,1h").unwrap();
    assert_eq!(b, IdleBins::DEFAULT);
    assert_eq!(b.as_slice(), &[1_000, 10_000, 60_000, 600_000, 3_600_000]);
    assert_eq!(b.to_string(), "1s,10s,1m,10m,1h");
    // Any unit in, the largest exact one out.
    let b = IdleBins::parse("500ms,60s,90s,120m").unwrap();
    assert_eq!(b.to_string(), "500ms,1m,90s,2h");
    assert_eq!(IdleBins::parse(&b.to_string()), Ok(b));
    let sixteen: Vec<String> = (1..=16).map(|i| format!("{i}s")).collect();
    assert_eq!(
        IdleBins::parse(&sixteen.join(","))
            .unwrap()
            .as_slice()
            .len(),
        16
    );
    let seventeen: Vec<String> = (1..=17).map(|i| format!("{i}s")).collect();
    for (text, why) in [
        ("", BinsError::Empty),
        ("1s,,2s", BinsError::Empty),
        ("1s,", BinsError::Empty),
        ("0s", BinsError::OutOfRange),
        ("169h", BinsError::OutOfRange),
        ("99999999999999999999h", BinsError::OutOfRange),
        ("2s,1s", BinsError::NotIncreasing),
        ("1s,1000ms", BinsError::NotIncreasing),
        ("1x", BinsError::BadSpelling),
        ("s", BinsError::BadSpelling),
        ("01s", BinsError::BadSpelling),
        ("1.5s", BinsError::BadSpelling),
        ("+1s", BinsError::BadSpelling),
        ("1 s", BinsError::BadSpelling),
        (&seventeen.join(","), BinsError::TooMany),
    ] {
        assert_eq!(IdleBins::parse(text), Err(why), "{text:?}");
    }
}

const MS: u64 = 1_000_000;

/// One round of `c`: begun at `t` ms, ended walking every root and
/// flushing.
fn tick(c: &mut Clock, round: u64, t_ms: u64) {
    c.begin_round(round, t_ms * MS, Track::Both);
    c.end_round(true, true, true);
}

#[test]
fn clock_measures_intervals_and_notices_restarts() {
    let mut c = Clock::default();
    c.set_period(100);
    // Rounds 1..=50 every 100 ms, but round 20 starts 30 ms late and the
    // glue catches up (round 21 on time): the shortest interval is 70 ms.
    let at = |round: u64| round * 100 + if round == 20 { 30 } else { 0 };
    for round in 1..=50 {
        tick(&mut c, round, at(round));
    }
    assert_eq!(c.ms_since(50), 0);
    assert_eq!(c.ms_since(41), 9 * 70);
    assert_eq!(c.ms_since(1), 49 * 70);
    // Never more than the truth.
    for from in 1..=50 {
        assert!(c.ms_since(from) <= at(50) - at(from), "from {from}");
    }
    // A period change: 1 s from round 51 on.
    c.set_period(1000);
    for round in 51..=60 {
        tick(&mut c, round, 5000 + (round - 50) * 1000);
    }
    assert_eq!(c.ms_since(51), 9000);
    // Before the change: the 70 ms intervals to round 50, nothing for the
    // interval to round 51, then the clock from round 51's start.
    assert_eq!(c.ms_since(45), 5 * 70 + 9000);
    assert_eq!(c.latest_round_before(9000), Some(51));
    assert_eq!(c.latest_round_before(9001), Some(49));
    assert_eq!(c.latest_round_before(1_000_000), None);
    // `stop`, then `start` 10 ms later: the short interval counts nothing.
    tick(&mut c, 61, 15_010);
    tick(&mut c, 62, 16_010);
    assert_eq!(c.ms_since(61), 1000);
    assert_eq!(c.ms_since(60), 1000);
    assert_eq!(c.ms_since(59), 2000);
    // A round that lost a root vouches for nothing: times run to the one
    // before.
    c.begin_round(63, 17_010 * MS, Track::Both);
    c.end_round(false, true, true);
    assert_eq!(c.vouched(), 62);
    assert_eq!(c.ms_since(61), 1000);
    tick(&mut c, 64, 18_010);
    assert_eq!(c.ms_since(61), 3000);
}

#[test]
fn unflushed_rounds_and_gaps_restart_the_sampling() {
    let mut c = Clock::default();
    c.set_period(100);
    for round in 1..=5 {
        tick(&mut c, round, round * 100);
    }
    assert_eq!(c.sampled_since(false), Some(1));
    assert_eq!(c.idle_age(Idle::SinceStart, false), Some(IdleAge::Never));
    // A round that clears nothing needs no flush: nothing changes.
    c.begin_round(6, 600 * MS, Track::Both);
    c.end_round(true, false, false);
    tick(&mut c, 7, 700);
    assert_eq!(c.sampled_since(false), Some(1));
    // Round 8 clears bits and does not flush: round 9 proves nothing,
    // not even if it clears nothing, until a round flushes (10); 11
    // begins again.
    c.begin_round(8, 800 * MS, Track::Both);
    c.end_round(true, true, false);
    c.begin_round(9, 900 * MS, Track::Both);
    c.end_round(true, false, false);
    assert_eq!(c.sampled_since(false), None);
    assert_eq!(c.idle_age(Idle::SinceStart, false), None);
    tick(&mut c, 10, 1000);
    assert_eq!(c.sampled_since(false), None);
    tick(&mut c, 11, 1100);
    tick(&mut c, 12, 1200);
    assert_eq!(c.sampled_since(false), Some(11));
    // Not "never" any more: idle since sampling began again.
    assert_eq!(c.idle_age(Idle::SinceStart, false), Some(IdleAge::Ms(100)));
    assert_eq!(
        c.idle_age(Idle::Rounds { min: 5, max: 5 }, false),
        Some(IdleAge::Ms(100))
    );
    // Dirty bits not sampled in round 13: since round 14 only.
    c.begin_round(13, 1300 * MS, Track::Accessed);
    c.end_round(true, true, true);
    tick(&mut c, 14, 1400);
    assert_eq!(c.sampled_since(true), Some(14));
    assert_eq!(c.sampled_since(false), Some(11));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the periods, late starts, restarts, lost roots, unflushed
    /// rounds and merges, the clock never says more time passed than did.
    #[test]
    fn clock_is_a_lower_bound(
        steps in proptest::collection::vec(
            (0usize..4, 0u64..4, 0u64..1500, any::<bool>()), 1..200),
    ) {
        let periods = [10u32, 100, 250, 1000];
        let mut c = Clock::default();
        let mut starts = vec![0u64];
        let mut vouched = 0usize;
        let mut t = 0u64;
        for (i, &(p, kind, jitter, complete)) in steps.iter().enumerate() {
            c.set_period(periods[p]);
            // Any interval: a restart (kind 0), late or early starts.
            t += match kind {
                0 => jitter * MS / 100,
                1 => u64::from(periods[p]) * MS / 2 + jitter * MS / 10,
                _ => u64::from(periods[p]) * MS + jitter * MS / 10,
            };
            starts.push(t);
            let round = i as u64 + 1;
            c.begin_round(round, t, Track::Accessed);
            c.end_round(complete, jitter % 3 != 0, jitter % 7 != 0);
            if complete {
                vouched = i + 1;
            }
        }
        prop_assert_eq!(c.vouched(), vouched as u64);
        for from in 1..=steps.len() {
            let truth = starts[vouched].saturating_sub(starts[from]) / MS;
            prop_assert!(c.ms_since(from as u64) <= truth, "from {}: {} > {}", from, c.ms_since(from as u64), truth);
        }
    }
}

fn leaf(gfn: u64, accessed: bool) -> Leaf {
    Leaf {
        gfn: Gfn(gfn),
        size: PageSize::Size4K,
        spte: Spte(0),
        pfn: 0,
        accessed,
        dirty: false,
        cleared_accessed: accessed,
        cleared_dirty: false,
    }
}

/// 64 pages: pages 0..16 accessed in round 1 only, 16..32 in every round,
/// 32..48 mapped and never accessed, 48..64 holes; a round every 100 ms.
#[test]
fn idle_counts_against_the_truth() {
    let layout = Geometry {
        span: GfnRange::new(Gfn(0), Gfn(64)),
        granule: Granule::SIZE_4K,
        window: 5,
        region: DEFAULT_REGION,
        rounds: 8,
    }
    .layout()
    .unwrap();
    let mut m = HeatMap::new(
        &layout,
        vec![0u16; layout.store.words()],
        vec![0u64; layout.history.words()],
    )
    .unwrap();
    let bins = IdleBins::parse("1s,10s,20s").unwrap();
    let page = 4096u64;
    for round in 1..=400u64 {
        m.set_period(100);
        m.begin_round(round * 100 * MS, Track::Accessed);
        m.begin_root();
        {
            let mut v = m.visitor();
            for gfn in 0..48 {
                v.leaf(leaf(
                    gfn,
                    (gfn < 16 && round == 1) || (16..32).contains(&gfn),
                ));
            }
            v.hole(GfnRange::new(Gfn(48), Gfn(64)));
        }
        m.end_round(&RoundEnd {
            flushed: true,
            ..RoundEnd::default()
        });
        let view = m.view();
        let c = count(&view.store, view.clock, &bins);
        assert_eq!(c.rounds, round);
        assert_eq!(c.mapped, 48 * page);
        assert_eq!(c.written, None, "dirty bits not sampled");
        let a = c.accessed.unwrap();
        assert_eq!(a.never, 16 * page, "round {round}");
        // Pages 0..16, last set in round 1: idle since round 2's start.
        let truth_ms = (round - 2) * 100;
        let sampled_ms = (round - 1) * 100;
        for (b, &bin) in bins.as_slice().iter().enumerate() {
            let bin = u64::from(bin);
            let mut want_max = 0;
            if round >= 2 && truth_ms >= bin {
                want_max += 16 * page;
            }
            if sampled_ms >= bin {
                want_max += 16 * page;
            }
            // Never more than the truth; the never-accessed pages exactly;
            // the idle ones once their lower bound (at least half the age,
            // less a round) reaches the bin.
            assert!(
                a.bins[b] <= want_max,
                "round {round} bin {bin}: {} > {want_max}",
                a.bins[b]
            );
            let mut want_min = if sampled_ms >= bin { 16 * page } else { 0 };
            if round >= 2 && truth_ms / 2 >= bin + 200 {
                want_min += 16 * page;
            }
            assert!(
                a.bins[b] >= want_min,
                "round {round} bin {bin}: {} < {want_min}",
                a.bins[b]
            );
        }
    }
}
