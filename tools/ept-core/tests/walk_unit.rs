// SPDX-License-Identifier: GPL-2.0

//! Hand-built tables, one behaviour per test, for both formats and every
//! page size. Expected values are written out, not computed by the walker.

mod common;

use common::arena::Arena;
use common::model::DANGLING_PA;
use common::raw::*;
use common::record::{coalesce, Event, Recorder};
use ept_core::ept_walk::{Descent, Format, Gfn, GfnRange, Mode, Root, Skip, Stop, Walker};

const SPAN4: u64 = 1 << 36;

/// A root plus helpers to hang tables and entries off it.
struct Fix {
    f: Format,
    l: Layout,
    levels: u8,
    arena: Arena,
}

impl Fix {
    fn new(f: Format, l: Layout, levels: u8) -> Fix {
        let mut arena = Arena::new();
        arena.alloc(NONPRESENT);
        Fix {
            f,
            l,
            levels,
            arena,
        }
    }
    fn root(&self) -> Root {
        Root::new(Arena::pa(0), self.levels, self.f, self.l.bits(), PHYS_MASK).unwrap()
    }
    /// A new empty table linked at `parent[idx]` with A as given.
    fn child(&mut self, parent: usize, idx: usize, a: bool) -> usize {
        let id = self.arena.alloc(NONPRESENT);
        self.arena
            .store(parent, idx, table(self.f, Arena::pa(id), a));
        id
    }
    /// Root -> level 3 -> level 2 -> level 1 at index 0 each (4 levels).
    fn chain(&mut self) -> (usize, usize, usize) {
        let t3 = self.child(0, 0, true);
        let t2 = self.child(t3, 0, true);
        let t1 = self.child(t2, 0, true);
        (t3, t2, t1)
    }
    fn walk(
        &self,
        start: u64,
        end: u64,
        mode: Mode,
        descent: Descent,
        budget: u64,
    ) -> (Stop, Recorder, ept_core::ept_walk::Stats) {
        // SAFETY: the arena checks every address it is asked for.
        let w = unsafe { Walker::new(&self.arena, self.root(), mode, descent) };
        let mut rec = Recorder::default();
        let out = w.walk(GfnRange::new(Gfn(start), Gfn(end)), budget, &mut rec);
        (out.stop, rec, out.stats)
    }
    fn walk_all(&self, mode: Mode, descent: Descent) -> Recorder {
        let (stop, rec, _) = self.walk(0, u64::MAX, mode, descent, u64::MAX);
        assert_eq!(stop, Stop::Done);
        rec
    }
}

fn leaf_ev(gfn: u64, pages: u64, pfn: u64, a: bool, d: bool, ca: bool, cd: bool) -> Event {
    Event::Leaf {
        gfn,
        pages,
        pfn,
        a,
        d,
        ca,
        cd,
    }
}

/// A 4K, a 2M and a 1G leaf, with the holes between them.
fn three_sizes(f: Format, l: Layout) -> (Fix, [(usize, usize, u64); 4]) {
    let mut x = Fix::new(f, l, 4);
    let (t3, t2, t1) = x.chain();
    let e = [
        (t1, 0, leaf(f, 1, 0x100, true, true)),
        (t1, 5, leaf(f, 1, 0x105, false, false)),
        (t2, 1, leaf(f, 2, 0x200, true, false)),
        (t3, 1, leaf(f, 3, 0x40000, false, true)),
    ];
    for (id, idx, v) in e {
        x.arena.store(id, idx, v);
    }
    (x, e)
}

fn three_sizes_events(mode: Mode) -> Vec<Event> {
    let clear_a = mode != Mode::ReadOnly;
    let clear_d = mode == Mode::ClearAccessedDirty;
    // The 1G leaf has D but not A: idle in the one mode that ignores D.
    let big = if mode == Mode::ClearAccessed {
        Event::Idle(1 << 18, 2 << 18)
    } else {
        leaf_ev(1 << 18, 1 << 18, 0x40000, false, true, false, clear_d)
    };
    vec![
        leaf_ev(0, 1, 0x100, true, true, clear_a, clear_d),
        Event::Hole(1, 5),
        Event::Idle(5, 6),
        Event::Hole(6, 512),
        leaf_ev(512, 512, 0x200, true, false, clear_a, false),
        Event::Hole(1024, 1 << 18),
        big,
        Event::Hole(2 << 18, SPAN4),
    ]
}

#[test]
fn every_page_size_both_formats_all_modes() {
    for l in Layout::ALL {
        for f in [Format::Ept, Format::Npt] {
            for mode in [
                Mode::ReadOnly,
                Mode::ClearAccessed,
                Mode::ClearAccessedDirty,
            ] {
                let (x, e) = three_sizes(f, l);
                let before = x.arena.snapshot();
                let (stop, rec, stats) = x.walk(0, u64::MAX, mode, Descent::EveryTable, u64::MAX);
                assert_eq!(stop, Stop::Done);
                assert_eq!(rec.events, three_sizes_events(mode), "{f:?} {mode:?}");
                // The sptes handed to the visitor are the values before clearing.
                let mut sptes = vec![e[0].2, e[2].2];
                if mode != Mode::ClearAccessed {
                    sptes.push(e[3].2);
                }
                assert_eq!(rec.sptes, sptes);
                let dirty = if mode == Mode::ClearAccessed { 1 } else { 2 };
                assert_eq!((stats.leaves, stats.accessed, stats.dirty), (4, 2, dirty));
                assert_eq!(stats.idle, 4 - sptes.len() as u64);
                // Exactly the A (and D) bits changed, nothing else anywhere.
                let mut want = before.clone();
                if mode != Mode::ReadOnly {
                    want[e[0].0][e[0].1] &= !a_bit(f);
                    want[e[2].0][e[2].1] &= !a_bit(f);
                }
                if mode == Mode::ClearAccessedDirty {
                    want[e[0].0][e[0].1] &= !d_bit(f);
                    want[e[3].0][e[3].1] &= !d_bit(f);
                }
                assert!(
                    x.arena.snapshot() == want,
                    "{f:?} {mode:?}: unexpected writes"
                );
                let cleared = if mode == Mode::ReadOnly { 0 } else { 2 };
                assert_eq!(stats.cleared_accessed, cleared);
                let cleared_d = if mode == Mode::ClearAccessedDirty {
                    2
                } else {
                    0
                };
                assert_eq!(stats.cleared_dirty, cleared_d);
                // Entries read: root 512, L3 512, L2 512, L1 512.
                assert_eq!(stats.examined, 4 * 512);
            }
        }
    }
}

#[test]
fn second_clearing_pass_sees_nothing_accessed() {
    for l in Layout::ALL {
        let (x, _) = three_sizes(Format::Ept, l);
        x.walk_all(Mode::ClearAccessedDirty, Descent::EveryTable);
        let rec = x.walk_all(Mode::ClearAccessedDirty, Descent::EveryTable);
        for ev in rec.events {
            if let Event::Leaf { a, d, ca, cd, .. } = ev {
                assert!(!a && !d && !ca && !cd);
            }
        }
    }
}

#[test]
fn five_levels_reach_high_gfns() {
    for l in Layout::ALL {
        for f in [Format::Ept, Format::Npt] {
            let gfn: u64 = (1 << 40) + (3 << 27) + 7;
            // Indices of `gfn` at levels 5..1.
            let i5 = (gfn >> 36) & 511;
            let i4 = (gfn >> 27) & 511;
            let i3 = (gfn >> 18) & 511;
            let i2 = (gfn >> 9) & 511;
            let i1 = gfn & 511;
            assert_eq!((i5, i4, i3, i2, i1), (16, 3, 0, 0, 7));
            let mut x = Fix::new(f, l, 5);
            let a = x.child(0, 16, true);
            let b = x.child(a, 3, true);
            let c = x.child(b, 0, true);
            let d = x.child(c, 0, true);
            x.arena.store(d, 7, leaf(f, 1, 0x77, true, false));
            let rec = x.walk_all(Mode::ClearAccessed, Descent::EveryTable);
            let leaves: Vec<_> = rec
                .events
                .iter()
                .filter(|e| matches!(e, Event::Leaf { .. }))
                .collect();
            assert_eq!(
                leaves,
                vec![&leaf_ev(gfn, 1, 0x77, true, false, true, false)]
            );
            // Holes at every level before and after the leaf merge into one each.
            assert_eq!(rec.events.len(), 3);
            assert_eq!(rec.events.first(), Some(&Event::Hole(0, gfn)));
            assert_eq!(rec.events.last(), Some(&Event::Hole(gfn + 1, 1 << 45)));
            assert_eq!(x.arena.load(d, 7), leaf(f, 1, 0x77, false, false));
        }
    }
}

#[test]
fn range_beyond_a_four_level_root_is_empty() {
    for l in Layout::ALL {
        let (x, _) = three_sizes(Format::Npt, l);
        let (stop, rec, stats) =
            x.walk(SPAN4, 1 << 40, Mode::ClearAccessed, Descent::EveryTable, 10);
        assert_eq!(stop, Stop::Done);
        assert!(rec.events.is_empty());
        assert_eq!(stats.examined, 0);
    }
}

#[test]
fn frozen_entries_are_skipped_and_never_written() {
    for l in Layout::ALL {
        for f in [Format::Ept, Format::Npt] {
            let mut x = Fix::new(f, l, 4);
            let (_, t2, t1) = x.chain();
            x.arena.store(t1, 2, leaf(f, 1, 2, true, true));
            x.arena.store(t1, 3, l.frozen());
            x.arena.store(t1, 4, leaf(f, 1, 4, true, true));
            x.arena.store(t2, 1, l.frozen());
            let before = x.arena.snapshot();
            let (_, rec, stats) = x.walk(
                0,
                2048,
                Mode::ClearAccessedDirty,
                Descent::EveryTable,
                u64::MAX,
            );
            assert_eq!(
                rec.events,
                vec![
                    Event::Hole(0, 2),
                    leaf_ev(2, 1, 2, true, true, true, true),
                    Event::Skipped(3, 4, Skip::Frozen),
                    leaf_ev(4, 1, 4, true, true, true, true),
                    Event::Hole(5, 512),
                    Event::Skipped(512, 1024, Skip::Frozen),
                    Event::Hole(1024, 2048),
                ]
            );
            assert_eq!(stats.frozen, 2);
            assert_eq!(x.arena.load(t1, 3), l.frozen());
            assert_eq!(x.arena.load(t2, 1), l.frozen());
            assert_eq!(x.arena.load(t1, 2), before[t1][2] & !(a_bit(f) | d_bit(f)));
        }
    }
}

#[test]
fn ad_types_decide_what_is_cleared() {
    for l in Layout::ALL {
        for f in [Format::Ept, Format::Npt] {
            let mut x = Fix::new(f, l, 4);
            let (_, _, t1) = x.chain();
            let ad = a_bit(f) | d_bit(f);
            let disabled = leaf(f, 1, 1, true, true) | l.ad(TYPE_DISABLED);
            let reserved = leaf(f, 1, 2, true, true) | l.ad(TYPE_RESERVED);
            let wrprot = leaf(f, 1, 3, true, true) | l.ad(TYPE_WRPROT_ONLY);
            let enabled = leaf(f, 1, 4, true, true);
            for (i, v) in [disabled, reserved, wrprot, enabled]
                .into_iter()
                .enumerate()
            {
                x.arena.store(t1, i + 1, v);
            }
            let (_, rec, stats) = x.walk(
                0,
                6,
                Mode::ClearAccessedDirty,
                Descent::EveryTable,
                u64::MAX,
            );
            assert_eq!(
                rec.events,
                vec![
                    Event::Hole(0, 1),
                    Event::Skipped(1, 3, Skip::Untracked),
                    leaf_ev(3, 1, 3, true, true, true, false),
                    leaf_ev(4, 1, 4, true, true, true, true),
                    Event::Hole(5, 6),
                ]
            );
            assert_eq!(stats.untracked, 2);
            assert_eq!(x.arena.load(t1, 1), disabled);
            assert_eq!(x.arena.load(t1, 2), reserved);
            assert_eq!(x.arena.load(t1, 3), wrprot & !a_bit(f));
            assert_eq!(x.arena.load(t1, 4), enabled & !ad);
        }
    }
}

#[test]
fn bit7_at_level1_is_not_large() {
    for l in Layout::ALL {
        for f in [Format::Ept, Format::Npt] {
            let mut x = Fix::new(f, l, 4);
            let (_, _, t1) = x.chain();
            x.arena.store(t1, 9, leaf(f, 1, 0x9, true, false) | LARGE);
            let (_, rec, _) = x.walk(9, 10, Mode::ClearAccessed, Descent::EveryTable, u64::MAX);
            assert_eq!(
                rec.events,
                vec![leaf_ev(9, 1, 0x9, true, false, true, false)]
            );
            assert_eq!(x.arena.load(t1, 9), leaf(f, 1, 0x9, false, false) | LARGE);
        }
    }
}

#[test]
fn large_bit_above_level3_is_malformed() {
    for l in Layout::ALL {
        let f = Format::Ept;
        let x = Fix::new(f, l, 4);
        let bad = PRESENT | LARGE | 0b111 | a_bit(f) | 0x8000_0000;
        x.arena.store(0, 1, bad);
        let rec = x.walk_all(Mode::ClearAccessedDirty, Descent::AccessedTables);
        assert_eq!(
            rec.events,
            vec![
                Event::Hole(0, 1 << 27),
                Event::Skipped(1 << 27, 2 << 27, Skip::Malformed),
                Event::Hole(2 << 27, SPAN4),
            ]
        );
        assert_eq!(x.arena.load(0, 1), bad);
    }
}

#[test]
fn encryption_bit_in_table_pointers_and_leaves() {
    for l in Layout::ALL {
        for f in [Format::Ept, Format::Npt] {
            let mut x = Fix::new(f, l, 4);
            let (t3, t2, t1) = x.chain();
            // A C-bit outside the physical mask in every table pointer.
            for (id, idx) in [(0, 0), (t3, 0), (t2, 0)] {
                x.arena.store(id, idx, x.arena.load(id, idx) | CBIT);
            }
            x.arena.store(t1, 0, leaf(f, 1, 0x5555, true, false) | CBIT);
            // A large page's bit 12 (NPT's PAT bit) is not part of its frame.
            x.arena
                .store(t2, 2, leaf(f, 2, 0x200, true, false) | (1 << 12) | CBIT);
            let (_, rec, _) = x.walk(
                0,
                2 << 18,
                Mode::ClearAccessed,
                Descent::EveryTable,
                u64::MAX,
            );
            let leaves: Vec<_> = rec
                .events
                .iter()
                .filter(|e| matches!(e, Event::Leaf { .. }))
                .copied()
                .collect();
            assert_eq!(
                leaves,
                vec![
                    leaf_ev(0, 1, 0x5555, true, false, true, false),
                    leaf_ev(1024, 512, 0x200, true, false, true, false),
                ]
            );
            assert_eq!(x.arena.load(t1, 0), leaf(f, 1, 0x5555, false, false) | CBIT);
        }
    }
}

#[test]
fn dangling_table_pointer_is_unreachable() {
    for l in Layout::ALL {
        let f = Format::Npt;
        let x = Fix::new(f, l, 4);
        x.arena.store(0, 2, table(f, DANGLING_PA, true));
        let (_, rec, stats) = x.walk(0, SPAN4, Mode::ClearAccessed, Descent::EveryTable, u64::MAX);
        assert_eq!(
            rec.events,
            vec![
                Event::Hole(0, 2 << 27),
                Event::Skipped(2 << 27, 3 << 27, Skip::Unreachable),
                Event::Hole(3 << 27, SPAN4),
            ]
        );
        assert_eq!(stats.unreachable, 1);
    }
}

#[test]
fn empty_root_is_one_hole() {
    for l in Layout::ALL {
        let x = Fix::new(Format::Ept, l, 4);
        let rec = x.walk_all(Mode::ClearAccessed, Descent::EveryTable);
        assert_eq!(rec.events, vec![Event::Hole(0, SPAN4)]);
        let x = Fix::new(Format::Npt, l, 5);
        let rec = x.walk_all(Mode::ReadOnly, Descent::AccessedTables);
        assert_eq!(rec.events, vec![Event::Hole(0, 1 << 45)]);
    }
}

#[test]
fn holes_are_clipped_to_the_range_but_large_leaves_are_whole() {
    for l in Layout::ALL {
        let (x, _) = three_sizes(Format::Ept, l);
        let (_, rec, _) = x.walk(600, 2000, Mode::ReadOnly, Descent::EveryTable, u64::MAX);
        assert_eq!(
            rec.events,
            vec![
                leaf_ev(512, 512, 0x200, true, false, false, false),
                Event::Hole(1024, 2000)
            ]
        );
        let (_, rec, _) = x.walk(7, 9, Mode::ReadOnly, Descent::EveryTable, u64::MAX);
        assert_eq!(rec.events, vec![Event::Hole(7, 9)]);
        let (_, rec, _) = x.walk(9, 9, Mode::ReadOnly, Descent::EveryTable, u64::MAX);
        assert!(rec.events.is_empty());
    }
}

#[test]
fn budget_splits_without_loss_or_repeat() {
    for l in Layout::ALL {
        for budget in [0, 1, 2, 3, 7, 100, 511, 512, 513] {
            let f = Format::Ept;
            let mut x = Fix::new(f, l, 4);
            let (_, t2, t1) = x.chain();
            for i in 0..512 {
                if i % 3 != 0 {
                    x.arena
                        .store(t1, i, leaf(f, 1, i as u64, i % 2 == 0, false));
                }
            }
            let t1b = x.child(t2, 7, true);
            for i in 0..512 {
                x.arena
                    .store(t1b, i, leaf(f, 1, 1000 + i as u64, true, true));
            }
            let whole = {
                let y = Fix {
                    f,
                    l,
                    levels: 4,
                    arena: {
                        let mut a = Arena::new();
                        for t in x.arena.snapshot() {
                            let id = a.alloc(0);
                            for (i, v) in t.iter().enumerate() {
                                a.store(id, i, *v);
                            }
                        }
                        a
                    },
                };
                y.walk_all(Mode::ClearAccessed, Descent::EveryTable).events
            };
            let mut events = Vec::new();
            let mut start = 0;
            let mut calls = 0;
            loop {
                let (stop, rec, stats) = x.walk(
                    start,
                    SPAN4,
                    Mode::ClearAccessed,
                    Descent::EveryTable,
                    budget,
                );
                events.extend(rec.events);
                calls += 1;
                assert!(calls < 5000, "no progress");
                // Never more than the budget plus the path down from the root.
                assert!(
                    stats.examined <= budget.max(1) + 3,
                    "{} > {budget}+3",
                    stats.examined
                );
                match stop {
                    Stop::Done => break,
                    Stop::Paused(g) => {
                        assert!(g.0 > start, "cursor must advance");
                        start = g.0;
                    }
                }
            }
            assert_eq!(coalesce(&events), whole, "budget {budget}");
            if budget >= 3 {
                assert!(calls > 1);
            }
        }
    }
}

#[test]
fn accessed_tables_mode_skips_cold_tables() {
    for l in Layout::ALL {
        let f = Format::Ept;
        let mut x = Fix::new(f, l, 4);
        let t3 = x.child(0, 0, true);
        let t2 = x.child(t3, 0, true);
        // t2[0]: A clear, but a leaf below has A set (precondition violated on
        // purpose, to see that the table is not entered).
        let cold = x.child(t2, 0, false);
        x.arena.store(cold, 1, leaf(f, 1, 1, true, false));
        // t2[1]: A set; entered, its A cleared, its leaf's A cleared.
        let warm = x.child(t2, 1, true);
        x.arena.store(warm, 2, leaf(f, 1, 2, true, false));
        // t2[2]: A/D disabled, no A: always entered.
        let untracked = x.arena.alloc(NONPRESENT);
        x.arena.store(
            t2,
            2,
            table(f, Arena::pa(untracked), false) | l.ad(TYPE_DISABLED),
        );
        x.arena.store(untracked, 3, leaf(f, 1, 3, true, false));

        let before = x.arena.snapshot();
        let (_, rec, stats) = x.walk(
            0,
            3 * 512,
            Mode::ClearAccessed,
            Descent::AccessedTables,
            u64::MAX,
        );
        assert_eq!(
            rec.events,
            vec![
                Event::Cold(0, 512),
                Event::Hole(512, 514),
                leaf_ev(514, 1, 2, true, false, true, false),
                Event::Hole(515, 1024 + 3),
                leaf_ev(1024 + 3, 1, 3, true, false, true, false),
                Event::Hole(1024 + 4, 1536),
            ]
        );
        assert_eq!((stats.cold_tables, stats.cleared_tables), (1, 1));
        // The range covered only part of t3's and t2's spans: their parents'
        // A bits are untouched.
        assert_eq!(x.arena.load(0, 0), before[0][0]);
        assert_eq!(x.arena.load(t3, 0), before[t3][0]);
        assert_eq!(x.arena.load(t2, 0), before[t2][0]);
        assert_eq!(x.arena.load(t2, 1), before[t2][1] & !a_bit(f));
        assert_eq!(x.arena.load(t2, 2), before[t2][2]);
        assert_eq!(x.arena.load(cold, 1), before[cold][1]);

        // A second pass: the warm table is now cold too.
        let (_, rec, _) = x.walk(
            0,
            3 * 512,
            Mode::ClearAccessed,
            Descent::AccessedTables,
            u64::MAX,
        );
        assert_eq!(rec.events[0], Event::Cold(0, 1024));

        // Whole-span walk: the root and level-3 entries are now wholly inside
        // and get their A cleared.
        x.walk_all(Mode::ClearAccessed, Descent::AccessedTables);
        assert_eq!(x.arena.load(0, 0), before[0][0] & !a_bit(f));
        // And then the whole root entry is cold.
        let rec = x.walk_all(Mode::ClearAccessed, Descent::AccessedTables);
        assert_eq!(
            rec.events,
            vec![Event::Cold(0, 1 << 27), Event::Hole(1 << 27, SPAN4)]
        );
    }
}

#[test]
fn accessed_tables_mode_across_pauses_misses_nothing() {
    for l in Layout::ALL {
        // Two leaf tables under t2[0] and t2[1], every A set. Whatever the
        // budget, the calls of one pass together must report all 1024 leaves
        // hot: a table whose parent's A one call cleared must still be read to
        // its end by the following calls (in particular when a call pauses right
        // after clearing t2[1], before reading anything under it).
        let budgets = (1..=24).chain(510..=520).chain([1030, 1031, 1032]);
        for f in [Format::Ept, Format::Npt] {
            for budget in budgets.clone() {
                let mut x = Fix::new(f, l, 4);
                let (_, t2, t1) = x.chain();
                let t1b = x.child(t2, 1, true);
                for t in [t1, t1b] {
                    for i in 0..512 {
                        x.arena.store(t, i, leaf(f, 1, i as u64, true, false));
                    }
                }
                let mut hot = 0;
                let mut start = 0;
                loop {
                    let (stop, rec, _) = x.walk(
                        start,
                        SPAN4,
                        Mode::ClearAccessed,
                        Descent::AccessedTables,
                        budget,
                    );
                    hot += rec
                        .events
                        .iter()
                        .filter(|e| matches!(e, Event::Leaf { a: true, .. }))
                        .count();
                    match stop {
                        Stop::Done => break,
                        Stop::Paused(g) => start = g.0,
                    }
                }
                assert_eq!(hot, 1024, "{f:?} budget {budget}");
            }
        }
    }
}

#[test]
fn read_only_never_writes() {
    for l in Layout::ALL {
        for descent in [Descent::EveryTable, Descent::AccessedTables] {
            let (x, _) = three_sizes(Format::Npt, l);
            let before = x.arena.snapshot();
            x.walk_all(Mode::ReadOnly, descent);
            assert!(x.arena.snapshot() == before);
        }
    }
}

#[test]
fn root_validation() {
    for l in Layout::ALL {
        assert!(Root::new(0x1000, 4, Format::Ept, l.bits(), PHYS_MASK).is_some());
        assert!(Root::new(0x1000, 5, Format::Npt, l.bits(), PHYS_MASK).is_some());
        assert!(Root::new(0x1000, 3, Format::Ept, l.bits(), PHYS_MASK).is_none());
        assert!(Root::new(0x1000, 6, Format::Ept, l.bits(), PHYS_MASK).is_none());
        assert!(Root::new(0x1008, 4, Format::Ept, l.bits(), PHYS_MASK).is_none());
        let r = Root::new(0x1000, 5, Format::Npt, l.bits(), PHYS_MASK).unwrap();
        assert_eq!(r.span(), GfnRange::new(Gfn(0), Gfn(1 << 45)));
    }
}

#[test]
fn missing_root_table_is_unreachable() {
    for l in Layout::ALL {
        let arena = Arena::new();
        let root = Root::new(DANGLING_PA, 4, Format::Ept, l.bits(), PHYS_MASK).unwrap();
        // SAFETY: the arena checks every address it is asked for.
        let w = unsafe { Walker::new(&arena, root, Mode::ClearAccessed, Descent::EveryTable) };
        let mut rec = Recorder::default();
        let out = w.walk(GfnRange::new(Gfn(10), Gfn(20)), 5, &mut rec);
        assert_eq!(out.stop, Stop::Done);
        assert_eq!(rec.events, vec![Event::Skipped(10, 20, Skip::Unreachable)]);
    }
}

#[test]
fn idle_runs_break_exactly_at_the_first_busy_leaf() {
    for l in Layout::ALL {
        // A leaf table of idle leaves with one accessed leaf at `k`: the fast
        // path must stop exactly there, wherever `k` falls in its steps of 8.
        for f in [Format::Ept, Format::Npt] {
            for k in [
                0usize, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 255, 503, 504, 505, 510, 511,
            ] {
                let mut x = Fix::new(f, l, 4);
                let (_, _, t1) = x.chain();
                for i in 0..512 {
                    x.arena.store(t1, i, leaf(f, 1, i as u64, i == k, false));
                }
                let (_, rec, stats) =
                    x.walk(0, 512, Mode::ClearAccessed, Descent::EveryTable, u64::MAX);
                let mut want = Vec::new();
                if k > 0 {
                    want.push(Event::Idle(0, k as u64));
                }
                want.push(leaf_ev(k as u64, 1, k as u64, true, false, true, false));
                if k < 511 {
                    want.push(Event::Idle(k as u64 + 1, 512));
                }
                assert_eq!(rec.events, want, "{f:?} k={k}");
                assert_eq!(
                    (stats.leaves, stats.idle, stats.examined),
                    (512, 511, 3 + 512)
                );
            }
        }
    }
}

#[test]
fn idle_means_d_clear_too_except_when_only_a_is_cleared() {
    for l in Layout::ALL {
        let f = Format::Ept;
        let mut x = Fix::new(f, l, 4);
        let (_, _, t1) = x.chain();
        x.arena.store(t1, 0, leaf(f, 1, 0, false, true));
        for mode in [Mode::ReadOnly, Mode::ClearAccessedDirty] {
            let (_, rec, _) = x.walk(0, 1, mode, Descent::EveryTable, u64::MAX);
            let cd = mode == Mode::ClearAccessedDirty;
            assert_eq!(
                rec.events,
                vec![leaf_ev(0, 1, 0, false, true, false, cd)],
                "{mode:?}"
            );
            x.arena.store(t1, 0, leaf(f, 1, 0, false, true));
        }
        let (_, rec, _) = x.walk(0, 1, Mode::ClearAccessed, Descent::EveryTable, u64::MAX);
        assert_eq!(rec.events, vec![Event::Idle(0, 1)]);
        // The D bit survives a mode that does not clear it.
        assert_eq!(x.arena.load(t1, 0), leaf(f, 1, 0, false, true));
    }
}

#[test]
fn idle_and_cold_runs_respect_the_budget() {
    for l in Layout::ALL {
        // 512 idle leaves in calls of `budget` entries: each call stops on
        // budget, and the idle ranges still tile the table.
        let f = Format::Npt;
        for budget in [1, 5, 8, 9, 100] {
            let mut x = Fix::new(f, l, 4);
            let (_, _, t1) = x.chain();
            for i in 0..512 {
                x.arena.store(t1, i, leaf(f, 1, i as u64, false, false));
            }
            let mut start = 0;
            let mut events = Vec::new();
            loop {
                let (stop, rec, stats) =
                    x.walk(start, 512, Mode::ClearAccessed, Descent::EveryTable, budget);
                assert!(stats.examined <= budget.max(1) + 3);
                events.extend(rec.events);
                match stop {
                    Stop::Done => break,
                    Stop::Paused(g) => {
                        assert!(g.0 > start);
                        start = g.0;
                    }
                }
            }
            assert_eq!(
                coalesce(&events),
                vec![Event::Idle(0, 512)],
                "budget {budget}"
            );
        }
    }
}

#[test]
fn cold_runs_stop_at_partial_entries() {
    for l in Layout::ALL {
        // Level-2 entries 0..8 all point to tables, A clear. Walking 100..3000
        // (entries 0 and 5 straddle the ends) enters 0 and 5 and reports 1..5
        // cold as one range.
        let f = Format::Ept;
        let mut x = Fix::new(f, l, 4);
        let t3 = x.child(0, 0, true);
        let t2 = x.child(t3, 0, true);
        for i in 0..8 {
            let t1 = x.child(t2, i, false);
            x.arena.store(t1, 300, leaf(f, 1, i as u64, true, false));
        }
        let (_, rec, stats) = x.walk(
            100,
            3000,
            Mode::ClearAccessed,
            Descent::AccessedTables,
            u64::MAX,
        );
        assert_eq!(
            rec.events,
            vec![
                Event::Hole(100, 300),
                leaf_ev(300, 1, 0, true, false, true, false),
                Event::Hole(301, 512),
                Event::Cold(512, 2560),
                Event::Hole(2560, 2560 + 300),
                leaf_ev(2560 + 300, 1, 5, true, false, true, false),
                Event::Hole(2560 + 301, 3000),
            ]
        );
        assert_eq!(stats.cold_tables, 4);
        assert_eq!(stats.cleared_tables, 0);
    }
}

/// The 7.3 bug: KVM sets host-writable in bit 53 of every EPT leaf it maps
/// writable, and bit 53 is the high A/D type bit on 6.12. With 7.3's layout
/// such a leaf (A/D type bits 60-61 clear) is an ordinary A/D leaf: D is
/// cleared, and idle ones take the fast path. With 6.12's layout, bit 53 is
/// "write-protect only": A is cleared, D is not.
#[test]
fn host_writable_bit_53_is_not_an_ad_type_on_7_3() {
    let f = Format::Ept;
    let bit53 = 1u64 << 53;
    for l in Layout::ALL {
        let mut x = Fix::new(f, l, 4);
        let (_, _, t1) = x.chain();
        let hot = leaf(f, 1, 0x10, true, true) | bit53;
        let idle = leaf(f, 1, 0x11, false, false) | bit53;
        x.arena.store(t1, 0, hot);
        x.arena.store(t1, 1, idle);
        let (_, rec, stats) = x.walk(
            0,
            2,
            Mode::ClearAccessedDirty,
            Descent::EveryTable,
            u64::MAX,
        );
        match l {
            Layout::Linux73 => {
                assert_eq!(
                    rec.events,
                    vec![
                        leaf_ev(0, 1, 0x10, true, true, true, true),
                        Event::Idle(1, 2)
                    ]
                );
                assert_eq!(x.arena.load(t1, 0), hot & !(a_bit(f) | d_bit(f)));
                assert_eq!((stats.cleared_dirty, stats.idle), (1, 1));
            }
            Layout::Linux612 => {
                assert_eq!(
                    rec.events,
                    vec![
                        leaf_ev(0, 1, 0x10, true, true, true, false),
                        leaf_ev(1, 1, 0x11, false, false, false, false),
                    ]
                );
                assert_eq!(x.arena.load(t1, 0), hot & !a_bit(f));
                assert_eq!((stats.cleared_dirty, stats.idle), (0, 0));
            }
        }
        assert_eq!(x.arena.load(t1, 1), idle);
    }
}

/// Each kernel's frozen marker is only a hole to the other's layout.
#[test]
fn another_kernels_frozen_marker_is_a_hole() {
    let f = Format::Npt;
    for (l, other) in [
        (Layout::Linux612, Layout::Linux73),
        (Layout::Linux73, Layout::Linux612),
    ] {
        let mut x = Fix::new(f, l, 4);
        let (_, _, t1) = x.chain();
        x.arena.store(t1, 0, l.frozen());
        x.arena.store(t1, 1, other.frozen());
        let (_, rec, stats) = x.walk(0, 2, Mode::ClearAccessed, Descent::EveryTable, u64::MAX);
        assert_eq!(
            rec.events,
            vec![Event::Skipped(0, 1, Skip::Frozen), Event::Hole(1, 2)],
            "{l:?}"
        );
        assert_eq!(stats.frozen, 1);
        assert_eq!(x.arena.load(t1, 1), other.frozen());
    }
}
