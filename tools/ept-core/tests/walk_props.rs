// SPDX-License-Identifier: GPL-2.0

//! Property tests: random tables (EPT and NPT, 4 and 5 levels, 4K/2M/1G
//! leaves, holes, frozen entries, random A/D and A/D types, encryption bits,
//! dangling and malformed entries) walked by the real walker and by the
//! naive reference in `common::model`.

mod common;

use std::collections::BTreeSet;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use common::model::{gen_mode, gen_world, pick_range, reference, Slot, WEntry, World};
use common::record::{coalesce, Event, Recorder};
use ept_core::ept_walk::{Descent, Gfn, GfnRange, Mode, Stats, Stop, Walker};

/// Walks `start..end` in calls of `budget` entries until done. Returns the
/// events of all calls (uncoalesced), the summed counters and the number of
/// calls. Checks the per-call contract on the way.
fn run(
    world: &World,
    start: u64,
    end: u64,
    mode: Mode,
    descent: Descent,
    budget: u64,
) -> (Vec<Event>, Stats, usize) {
    // SAFETY: the arena checks every address it is asked for.
    let walker = unsafe { Walker::new(&world.arena, world.root(), mode, descent) };
    let mut rec = Recorder::default();
    let mut total = Stats::default();
    let mut at = start;
    let mut calls = 0;
    loop {
        let out = walker.walk(GfnRange::new(Gfn(at), Gfn(end)), budget, &mut rec);
        calls += 1;
        total.accumulate(&out.stats);
        assert!(
            out.stats.examined <= budget.max(1).saturating_add(world.levels as u64 - 1),
            "call read {} entries on a budget of {budget}",
            out.stats.examined
        );
        match out.stop {
            Stop::Done => break,
            Stop::Paused(g) => {
                assert!(g.0 > at, "no progress: paused at {} from {at}", g.0);
                assert!(g.0 < end.min(world.span()), "paused at the end");
                at = g.0;
            }
        }
    }
    (rec.events, total, calls)
}

fn range_of(world: &World, whole: bool, a: Index, b: Index, da: i8, db: i8) -> (u64, u64) {
    if whole {
        (0, u64::MAX)
    } else {
        pick_range(world, a, b, da, db)
    }
}

fn descent_of(upper: bool) -> Descent {
    if upper {
        Descent::AccessedTables
    } else {
        Descent::EveryTable
    }
}

/// Stats that do not depend on how the walk was split.
fn split_invariant(s: &Stats) -> Stats {
    Stats { examined: 0, ..*s }
}

/// Cases per property: 256, or `EPT_PROPTEST_CASES` for a longer soak.
fn cases() -> u32 {
    std::env::var("EPT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// One unbounded call: exactly the reference's visitor calls (so holes
    /// coalesce as the reference's do), exactly its counters, and exactly
    /// its table contents afterwards, bit for bit, in every table.
    #[test]
    fn one_call_matches_reference(
        g in gen_world(),
        mode in gen_mode(),
        upper in any::<bool>(),
        whole in any::<bool>(),
        a in any::<Index>(), b in any::<Index>(),
        da in -2i8..=2, db in -2i8..=2,
    ) {
        let world = World::build(&g);
        let (start, end) = range_of(&world, whole, a, b, da, db);
        let descent = descent_of(upper);
        let want = reference(&world, start, end, mode, descent);
        let (events, stats, calls) = run(&world, start, end, mode, descent, u64::MAX);
        prop_assert_eq!(calls, 1);
        prop_assert_eq!(&events, &want.events);
        prop_assert_eq!(stats, want.stats);
        prop_assert!(world.arena.snapshot() == want.after, "tables differ from the reference");
    }

    /// Many small calls, each resuming from the last cursor: the same
    /// result as the reference once adjacent ranges are merged, the same
    /// counters except entries read, the same tables.
    #[test]
    fn split_calls_match_reference(
        g in gen_world(),
        mode in gen_mode(),
        upper in any::<bool>(),
        whole in any::<bool>(),
        a in any::<Index>(), b in any::<Index>(),
        da in -2i8..=2, db in -2i8..=2,
        budget in 0u64..48,
    ) {
        let world = World::build(&g);
        let (start, end) = range_of(&world, whole, a, b, da, db);
        let descent = descent_of(upper);
        let want = reference(&world, start, end, mode, descent);
        let (events, stats, _) = run(&world, start, end, mode, descent, budget);
        prop_assert_eq!(coalesce(&events), want.events);
        prop_assert_eq!(split_invariant(&stats), split_invariant(&want.stats));
        prop_assert!(stats.examined >= want.stats.examined);
        prop_assert!(world.arena.snapshot() == want.after, "tables differ from the reference");
    }

    /// Under its precondition (every A set by a full table walk, as after a
    /// TLB flush), skipping tables whose parent's A is clear finds the same
    /// accessed leaves as walking everything, round after round, with
    /// accesses between rounds; and what it does not visit is cold.
    #[test]
    fn accessed_tables_find_the_same_hot_set(
        g in gen_world(),
        dirty_mode in any::<bool>(),
        whole in any::<bool>(),
        a in any::<Index>(), b in any::<Index>(),
        budget_full in prop_oneof![Just(u64::MAX), 1u64..64],
        budget_up in prop_oneof![Just(u64::MAX), 1u64..64],
        rounds in vec(vec((any::<Index>(), any::<bool>()), 0..24), 1..5),
    ) {
        let mode = if dirty_mode { Mode::ClearAccessedDirty } else { Mode::ClearAccessed };
        let full = World::build(&g);
        full.enforce_upper_invariant();
        let up = full.duplicate();
        let (start, end) = range_of(&full, whole, a, b, 0, 0);
        let leaves: Vec<Slot> = full
            .reachable()
            .into_iter()
            .filter(|s| full.is_tracked_leaf(*s))
            .collect();
        for accesses in rounds {
            let (ef, sf, _) = run(&full, start, end, mode, Descent::EveryTable, budget_full);
            let (eu, su, _) = run(&up, start, end, mode, Descent::AccessedTables, budget_up);
            let hot = |ev: &[Event]| -> BTreeSet<(u64, u64)> {
                ev.iter()
                    .filter_map(|e| match *e {
                        Event::Leaf { gfn, pages, a: true, .. } => Some((gfn, pages)),
                        _ => None,
                    })
                    .collect()
            };
            prop_assert_eq!(hot(&ef), hot(&eu));
            // Every leaf the full walk saw idle, the skipping walk saw idle
            // or reported inside a cold range.
            let not_hot = |ev: &[Event]| -> Vec<(u64, u64)> {
                ev.iter()
                    .filter_map(|e| match *e {
                        Event::Leaf { a: false, .. } | Event::Idle(..) | Event::Cold(..) => {
                            Some(e.span())
                        }
                        _ => None,
                    })
                    .collect()
            };
            let mut covered: Vec<(u64, u64)> = Vec::new();
            let mut up_not_hot = not_hot(&eu);
            up_not_hot.sort();
            for (s, e) in up_not_hot {
                match covered.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => covered.push((s, e)),
                }
            }
            for (s, e) in not_hot(&ef) {
                prop_assert!(covered.iter().any(|&(cs, ce)| cs <= s && e <= ce),
                    "idle {:#x}..{:#x} missing from the skipping walk", s, e);
            }
            prop_assert!(su.leaves <= sf.leaves);
            if !leaves.is_empty() {
                for (i, write) in accesses {
                    let slot = *i.get(&leaves);
                    full.access(slot, write);
                    up.access(slot, write);
                }
            }
        }
    }

    /// The tables change between the calls of one walk (leaves zapped,
    /// mapped, remapped, large pages split and collapsed, subtrees rebuilt
    /// as copies): every leaf and every hole outside the changed ranges is
    /// reported exactly once, as it is, and nothing outside them is
    /// reported twice.
    #[test]
    fn resume_after_tables_change(
        g in gen_world(),
        mode in gen_mode(),
        whole in any::<bool>(),
        a in any::<Index>(), b in any::<Index>(),
        budget in 1u64..40,
        changes in vec((0u8..6, any::<Index>(), any::<u32>()), 0..16),
    ) {
        let mut world = World::build(&g);
        let (start, end) = range_of(&world, whole, a, b, 0, 0);
        let end = end.min(world.span());
        let want = reference(&world, start, end, mode, Descent::EveryTable);

        let mut changed: Vec<(u64, u64)> = Vec::new();
        let mut changes = changes.into_iter();
        let mut events = Vec::new();
        let mut at = start;
        let mut calls = 0;
        while at < end {
            // SAFETY: the arena checks every address it is asked for.
            let walker = unsafe { Walker::new(&world.arena, world.root(), mode, Descent::EveryTable) };
            let mut rec = Recorder::default();
            let out = walker.walk(GfnRange::new(Gfn(at), Gfn(end)), budget, &mut rec);
            events.extend(rec.events);
            calls += 1;
            prop_assert!(calls < 100_000);
            match out.stop {
                Stop::Done => break,
                Stop::Paused(g) => {
                    prop_assert!(g.0 > at);
                    at = g.0;
                }
            }
            if let Some(c) = changes.next() {
                change(&mut world, c, &mut changed);
            }
        }
        let got = outside(&events, &changed);
        let want = outside(&want.events, &changed);
        prop_assert_eq!(got, want);
    }
}

/// Applies one random change to the tables, recording the GFNs whose
/// mapping it changed.
fn change(world: &mut World, (kind, pick, val): (u8, Index, u32), changed: &mut Vec<(u64, u64)>) {
    let slots: Vec<Slot> = world
        .reachable()
        .into_iter()
        .filter(|&(id, idx)| {
            let level = world.tables[id].level;
            match (kind, world.tables[id].entries[idx]) {
                (0 | 5, WEntry::Leaf { .. }) => true,
                (1, WEntry::Hole) => level <= 3,
                (2, WEntry::Table { .. }) => true,
                (3, WEntry::Leaf { .. }) => level >= 2,
                (4, WEntry::Table { .. }) => (2..=3).contains(&level),
                _ => false,
            }
        })
        .collect();
    if slots.is_empty() {
        return;
    }
    let slot = *pick.get(&slots);
    let (s, n) = world.slot_span(slot);
    match kind {
        0 => world.zap(slot),
        1 => world.map(slot, val as u64, val & 1 != 0),
        // Same content in new tables: not a change of any mapping.
        2 => return world.copy_subtree(slot),
        3 => world.split(slot),
        4 => world.collapse(slot, val as u64),
        _ => world.map(slot, val as u64 | 1 << 20, true),
    }
    changed.push((s, s + n));
}

/// The events restricted to GFNs outside `changed`: leaves that touch a
/// changed range are dropped, range events are cut around them; sorted and
/// merged.
fn outside(events: &[Event], changed: &[(u64, u64)]) -> Vec<Event> {
    let hit = |s: u64, e: u64| changed.iter().any(|&(cs, ce)| cs < e && s < ce);
    let mut out = Vec::new();
    for ev in events {
        match *ev {
            Event::Leaf { gfn, pages, .. } => {
                if !hit(gfn, gfn + pages) {
                    out.push(*ev);
                }
            }
            Event::Hole(s, e) | Event::Idle(s, e) | Event::Cold(s, e) | Event::Skipped(s, e, _) => {
                let mut pieces = vec![(s, e)];
                for &(cs, ce) in changed {
                    pieces = pieces
                        .into_iter()
                        .flat_map(|(ps, pe)| {
                            let mut v = Vec::new();
                            if ps < cs.min(pe) {
                                v.push((ps, cs.min(pe)));
                            }
                            if ce.max(ps) < pe {
                                v.push((ce.max(ps), pe));
                            }
                            v
                        })
                        .collect();
                }
                for (ps, pe) in pieces {
                    out.push(match *ev {
                        Event::Hole(..) => Event::Hole(ps, pe),
                        Event::Idle(..) => Event::Idle(ps, pe),
                        Event::Cold(..) => Event::Cold(ps, pe),
                        Event::Skipped(_, _, w) => Event::Skipped(ps, pe, w),
                        Event::Leaf { .. } => unreachable!(),
                    });
                }
            }
        }
    }
    out.sort_by_key(|e| e.span());
    coalesce(&out)
}
