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
    // Within a factor of 2 at 16 bits, of 1.004 at 32, exact at 64 up to
    // 2^25 rounds.
    for (width, ratio) in [
        (Width::W16, 2.0),
        (Width::W32, 1.004),
        (Width::W64, 1.000_001),
    ] {
        for level in (0..width.max_level()).step_by(1 + width.max_level() as usize / 4096) {
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
    assert_eq!(
        Width::W64.level_ages(1 << 20, 3),
        (3 + (1 << 20), 3 + (1 << 20))
    );
    let exact = (1 << 25) - 1;
    assert_eq!(
        Width::W64.level_ages(exact, 3),
        (3 + exact as u64, 3 + exact as u64)
    );
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
/// 3 x spread + 20 rounds after the last one.
#[test]
fn nearby_ages_merge_and_the_block_is_uniform_again() {
    for spread in [1u64, 2, 7, 10, 100, 333, 1000] {
        let layout = StoreLayout::new(
            GfnRange::new(Gfn(0), Gfn(BLOCK_CELLS as u64)),
            Granule::SIZE_4K,
            5,
        )
        .unwrap();
        let mut store = HeatStore::new(layout, vec![0u16; layout.words()]).unwrap();
        let mut round = 0u64;
        for r in 0..spread {
            store.begin_round();
            round += 1;
            // Pages spread evenly over the burst; every page once.
            let from = r * BLOCK_CELLS as u64 / spread;
            let to = (r + 1) * BLOCK_CELLS as u64 / spread;
            store.observe(GfnRange::new(Gfn(from), Gfn(to)), accessed());
        }
        assert_eq!(store.view().dense_blocks(), usize::from(spread > 1));
        let last = round;
        while store.view().dense_blocks() != 0 {
            assert!(
                round < last + 3 * spread + 20,
                "spread {spread}: still dense at round {round}"
            );
            store.begin_round();
            round += 1;
        }
        // Past the window, still one cell, aged.
        for _ in 0..5 {
            store.begin_round();
        }
        assert_eq!(store.view().dense_blocks(), 0);
        let c = store.view().cell(0).unwrap();
        assert!(matches!(c.accessed, Trace::Aged(_)), "{c:?}");
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
