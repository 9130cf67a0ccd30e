// SPDX-License-Identifier: GPL-2.0

//! The round driver ([`walk_roots`]) against fake root lists that change
//! while the lock is dropped, the way `kvm_mmu_zap_all_fast` changes KVM's:
//! a root is invalidated (it stays on the list, skipped, while KVM zaps it)
//! or goes away with its tables freed at once. Any later read of a table of
//! such a root is recorded as a use after free. No test here may see one.

mod common;

use std::cell::RefCell;
use std::collections::HashSet;

use common::arena::Arena;
use common::raw::*;
use common::record::{Event, Recorder};
use ept_core::ept_walk::{
    walk_roots, Descent, Format, Mode, Root, RootSink, RootSource, Table, Tables, MAX_ROOTS,
};

/// A root's identity: its number and its table, as the kernel's key is the
/// `kvm_mmu_page` and its table.
type Key = (u32, u64);

/// A root made of four tables (levels 4 to 1), its level-1 table full of
/// accessed 4 KiB leaves: 512 leaves, several chunks at a small budget.
struct FakeRoot {
    key: Key,
    root: Root,
    tables: Vec<u64>,
}

fn build_root(arena: &mut Arena, n: u32, f: Format, dirty: bool) -> FakeRoot {
    let ids: Vec<usize> = (0..4).map(|_| arena.alloc(NONPRESENT)).collect();
    for w in ids.windows(2) {
        arena.store(w[0], 0, table(f, Arena::pa(w[1]), true));
    }
    let pfn_base = 0x1000 * (u64::from(n) + 1);
    for i in 0..512 {
        arena.store(ids[3], i, leaf(f, 1, pfn_base + i as u64, true, dirty));
    }
    let pa = Arena::pa(ids[0]);
    FakeRoot {
        key: (n, pa),
        root: Root::new(pa, 4, f, Layout::Linux73.bits(), PHYS_MASK).unwrap(),
        tables: ids.iter().map(|id| Arena::pa(*id)).collect(),
    }
}

/// What happens to the root list at a given `relax`.
enum Change {
    /// The root stays listed but invalid (skipped by a lookup, as the
    /// kernel's for_each_root skips it); KVM may be zapping its tables.
    Invalidate(Key),
    /// The root goes away; its tables are freed.
    Remove(Key),
    /// A root is added at the end of the list, its tables (re)allocated.
    Add(usize),
    /// The owner starts logging dirty pages.
    DirtyLog,
}

struct FakeSource<'a> {
    arena: &'a Arena,
    all: &'a [FakeRoot],
    /// Indexes into `all`, in list order.
    live: Vec<usize>,
    invalid: HashSet<Key>,
    /// Tables of invalidated or freed roots: no read may reach them.
    freed: HashSet<u64>,
    /// Freed tables the walker asked for.
    use_after_free: RefCell<Vec<u64>>,
    relaxes: u32,
    /// (relax number, change): applied when that relax drops the lock.
    script: Vec<(u32, Change)>,
    /// Dirty logging is on (see [`Change::DirtyLog`]).
    dirty_logging: bool,
}

impl<'a> FakeSource<'a> {
    fn new(arena: &'a Arena, all: &'a [FakeRoot], live: &[usize]) -> Self {
        FakeSource {
            arena,
            all,
            live: live.to_vec(),
            invalid: HashSet::new(),
            freed: HashSet::new(),
            use_after_free: RefCell::new(Vec::new()),
            relaxes: 0,
            script: Vec::new(),
            dirty_logging: false,
        }
    }
}

struct FakeTables<'s> {
    arena: &'s Arena,
    freed: &'s HashSet<u64>,
    use_after_free: &'s RefCell<Vec<u64>>,
}

impl Tables for FakeTables<'_> {
    unsafe fn table(&self, pa: u64) -> Option<&Table> {
        if self.freed.contains(&pa) {
            self.use_after_free.borrow_mut().push(pa);
            return None;
        }
        // SAFETY: the arena checks every address (see Arena::table).
        unsafe { self.arena.table(pa) }
    }
}

// SAFETY: the tables are an arena's, which checks every address; a freed
// root's table is refused and recorded (the tests assert none is asked for).
unsafe impl RootSource for FakeSource<'_> {
    type Key = Key;
    type Tables<'s>
        = FakeTables<'s>
    where
        Self: 's;

    fn for_each_root(&self, f: &mut dyn FnMut(Key, Root)) {
        for i in &self.live {
            if !self.invalid.contains(&self.all[*i].key) {
                f(self.all[*i].key, self.all[*i].root);
            }
        }
    }

    fn tables(&self) -> FakeTables<'_> {
        FakeTables {
            arena: self.arena,
            freed: &self.freed,
            use_after_free: &self.use_after_free,
        }
    }

    fn relax(&mut self) {
        self.relaxes += 1;
        let now = self.relaxes;
        for (at, change) in &self.script {
            if *at != now {
                continue;
            }
            match change {
                Change::Invalidate(key) => {
                    self.invalid.insert(*key);
                    if let Some(r) = self.all.iter().find(|r| r.key == *key) {
                        self.freed.extend(r.tables.iter().copied());
                    }
                }
                Change::Remove(key) => {
                    if let Some(pos) = self.live.iter().position(|i| self.all[*i].key == *key) {
                        let gone = self.live.remove(pos);
                        self.freed.extend(self.all[gone].tables.iter().copied());
                    }
                }
                Change::Add(i) => {
                    self.live.push(*i);
                    for t in &self.all[*i].tables {
                        self.freed.remove(t);
                    }
                }
                Change::DirtyLog => self.dirty_logging = true,
            }
        }
    }

    fn dirty_logging(&self) -> bool {
        self.dirty_logging
    }
}

/// One recorder per root begun.
#[derive(Default)]
struct Sink {
    roots: Vec<Recorder>,
    /// Leaves reported before the driver said it stopped clearing dirty
    /// bits, if it did.
    dirty_stopped_after: Option<usize>,
}

impl RootSink for Sink {
    type Visitor<'a> = &'a mut Recorder;

    fn begin_root(&mut self) {
        self.roots.push(Recorder::default());
    }

    fn visitor(&mut self) -> &mut Recorder {
        self.roots.last_mut().expect("visitor before begin_root")
    }

    fn stop_dirty(&mut self) {
        assert_eq!(self.dirty_stopped_after, None, "stop_dirty twice");
        self.dirty_stopped_after = Some(leaves(self).iter().sum());
    }
}

/// Leaves each begun root reported, in root order.
fn leaves(sink: &Sink) -> Vec<usize> {
    sink.roots
        .iter()
        .map(|r| {
            r.events
                .iter()
                .filter(|e| matches!(e, Event::Leaf { .. }))
                .count()
        })
        .collect()
}

const BUDGET: u64 = 64;

fn world(n: u32) -> (Arena, Vec<FakeRoot>) {
    let mut arena = Arena::new();
    let roots = (0..n)
        .map(|i| build_root(&mut arena, i, Format::Ept, false))
        .collect();
    (arena, roots)
}

fn run(src: &mut FakeSource<'_>) -> (ept_core::ept_walk::RootsStats, Sink) {
    let mut sink = Sink::default();
    let stats = walk_roots(
        src,
        Mode::ClearAccessed,
        Descent::EveryTable,
        BUDGET,
        &mut sink,
    );
    (stats, sink)
}

#[test]
fn unchanged_roots_are_walked_whole_across_yields() {
    let (arena, all) = world(2);
    let mut src = FakeSource::new(&arena, &all, &[0, 1]);
    let (stats, sink) = run(&mut src);
    assert_eq!(leaves(&sink), [512, 512]);
    assert_eq!((stats.walked, stats.lost, stats.overflow), (2, 0, 0));
    // 512 leaves at 64 entries a chunk: the walk really yielded.
    assert!(stats.yields >= 16, "{} yields", stats.yields);
    assert_eq!(u64::from(src.relaxes), stats.yields);
    assert_eq!(stats.walk.cleared_accessed, 1024);
}

/// The budget is per hold of the lock, not per root: a root that begins
/// where another ended gets what that one left, so no hold examines more
/// than the budget plus a root's levels less one (the walker's own bound),
/// however many roots end within it; and every hold but the last used its
/// budget up.
#[test]
fn the_budget_is_per_hold_across_roots() {
    let (arena, all) = world(4);
    let mut src = FakeSource::new(&arena, &all, &[0, 1, 2, 3]);
    let (stats, sink) = run(&mut src);
    assert_eq!(leaves(&sink), [512; 4]);
    assert!(
        (BUDGET..=BUDGET + 3).contains(&stats.longest_hold),
        "the longest hold examined {} entries",
        stats.longest_hold
    );
    assert!(
        stats.yields <= stats.walk.examined / BUDGET,
        "{} yields for {} entries",
        stats.yields,
        stats.walk.examined
    );
}

/// The defect this driver exists for: root 1 is freed during one of root
/// 0's yields, before its own walk began.
#[test]
fn a_root_freed_before_its_turn_is_never_walked() {
    let (arena, all) = world(3);
    let mut src = FakeSource::new(&arena, &all, &[0, 1, 2]);
    src.script.push((3, Change::Remove(all[1].key)));
    let (stats, sink) = run(&mut src);
    assert_eq!(*src.use_after_free.borrow(), Vec::<u64>::new());
    assert_eq!(leaves(&sink), [512, 512]);
    assert_eq!((stats.walked, stats.lost), (2, 1));
}

/// Root 0 goes (`change`) at its second yield: the rest of it is left,
/// root 1 is walked whole.
fn gone_during_its_own_walk(change: fn(Key) -> Change) {
    let (arena, all) = world(2);
    let mut src = FakeSource::new(&arena, &all, &[0, 1]);
    src.script.push((2, change(all[0].key)));
    let (stats, sink) = run(&mut src);
    assert_eq!(*src.use_after_free.borrow(), Vec::<u64>::new());
    let l = leaves(&sink);
    assert!(l[0] > 0 && l[0] < 512, "root 0 reported {} leaves", l[0]);
    assert_eq!(l[1], 512);
    assert_eq!((stats.walked, stats.lost), (2, 1));
}

#[test]
fn a_root_freed_during_its_own_walk_is_left_there() {
    gone_during_its_own_walk(Change::Remove);
}

/// What KVM does first: the root stays listed, invalid, while it is zapped.
#[test]
fn a_root_invalidated_during_its_own_walk_is_left_there() {
    gone_during_its_own_walk(Change::Invalidate);
}

#[test]
fn a_root_invalidated_before_its_turn_is_never_walked() {
    let (arena, all) = world(2);
    let mut src = FakeSource::new(&arena, &all, &[0, 1]);
    src.script.push((1, Change::Invalidate(all[1].key)));
    let (stats, sink) = run(&mut src);
    assert_eq!(*src.use_after_free.borrow(), Vec::<u64>::new());
    assert_eq!(leaves(&sink), [512]);
    assert_eq!((stats.walked, stats.lost), (1, 1));
}

/// The same page and table reused for a root of the same role during one
/// drop (possible after a grace period): the same key, a valid root under
/// the current hold, walked on from the cursor; nothing counted lost.
#[test]
fn a_key_that_comes_back_is_walked_on() {
    let (arena, all) = world(1);
    let mut src = FakeSource::new(&arena, &all, &[0]);
    src.script.push((2, Change::Remove(all[0].key)));
    src.script.push((2, Change::Add(0)));
    let (stats, sink) = run(&mut src);
    assert_eq!(*src.use_after_free.borrow(), Vec::<u64>::new());
    assert_eq!(leaves(&sink), [512]);
    assert_eq!((stats.walked, stats.lost), (1, 0));
}

/// Every root but the last freed, one at each yield, while the walk goes on.
#[test]
fn roots_freed_one_per_yield() {
    let (arena, all) = world(MAX_ROOTS as u32);
    let live: Vec<usize> = (0..MAX_ROOTS).collect();
    let mut src = FakeSource::new(&arena, &all, &live);
    for (i, r) in all.iter().enumerate().skip(1) {
        src.script.push((i as u32, Change::Remove(r.key)));
    }
    let (stats, sink) = run(&mut src);
    assert_eq!(*src.use_after_free.borrow(), Vec::<u64>::new());
    // Root 0's walk takes more yields than there are other roots.
    assert_eq!(leaves(&sink), [512]);
    assert_eq!((stats.walked, stats.lost), (1, MAX_ROOTS as u32 - 1));
}

/// A root freed and replaced by another whose number is the same (a
/// `kvm_mmu_page` reused) but whose table differs: a different key, so the
/// old root is lost and the new one, not listed at the start, waits for
/// the next round.
#[test]
fn a_replaced_root_is_not_taken_for_the_old_one() {
    let (mut arena, mut all) = world(2);
    let mut again = build_root(&mut arena, 1, Format::Ept, false);
    again.key.0 = all[1].key.0;
    all.push(again);
    let mut src = FakeSource::new(&arena, &all, &[0, 1]);
    src.script.push((2, Change::Remove(all[1].key)));
    src.script.push((2, Change::Add(2)));
    let (stats, sink) = run(&mut src);
    assert_eq!(*src.use_after_free.borrow(), Vec::<u64>::new());
    assert_eq!(leaves(&sink), [512]);
    assert_eq!((stats.walked, stats.lost), (1, 1));
}

#[test]
fn roots_beyond_the_limit_are_counted() {
    let n = MAX_ROOTS as u32 + 3;
    let (arena, all) = world(n);
    let live: Vec<usize> = (0..n as usize).collect();
    let mut src = FakeSource::new(&arena, &all, &live);
    let (stats, sink) = run(&mut src);
    assert_eq!(leaves(&sink), vec![512; MAX_ROOTS]);
    assert_eq!(
        (stats.walked, stats.lost, stats.overflow),
        (MAX_ROOTS as u32, 0, 3)
    );
}

/// Every leaf of a root, dirty: (D cleared by the walk, D set) per leaf.
fn dirty_cleared(sink: &Sink) -> Vec<(bool, bool)> {
    sink.roots
        .iter()
        .flat_map(|r| r.events.iter())
        .filter_map(|e| match e {
            Event::Leaf { d, cd, .. } => Some((*cd, *d)),
            _ => None,
        })
        .collect()
}

fn dirty_world() -> (Arena, Vec<FakeRoot>) {
    let mut arena = Arena::new();
    let roots = vec![build_root(&mut arena, 0, Format::Ept, true)];
    (arena, roots)
}

fn run_dirty(src: &mut FakeSource<'_>) -> (ept_core::ept_walk::RootsStats, Sink) {
    let mut sink = Sink::default();
    let stats = walk_roots(
        src,
        Mode::ClearAccessedDirty,
        Descent::EveryTable,
        BUDGET,
        &mut sink,
    );
    (stats, sink)
}

/// Dirty logging begins during the third drop of the lock: the leaves
/// before it had D cleared, none after it, and the sink was told between
/// them, once; the D bits left are still set in the tables.
#[test]
fn dirty_logging_begun_mid_walk_stops_clearing_d() {
    let (arena, all) = dirty_world();
    let mut src = FakeSource::new(&arena, &all, &[0]);
    src.script.push((3, Change::DirtyLog));
    let (stats, sink) = run_dirty(&mut src);
    assert!(stats.dirty_stopped);
    let leaves = dirty_cleared(&sink);
    assert_eq!(leaves.len(), 512);
    let before = sink.dirty_stopped_after.expect("the sink was not told");
    assert!(before > 0 && before < 512, "stopped after {before} leaves");
    assert!(
        leaves[..before].iter().all(|&(cd, d)| cd && d),
        "D not cleared before the stop"
    );
    assert!(
        leaves[before..].iter().all(|&(cd, d)| !cd && d),
        "D cleared after the stop"
    );
    assert_eq!(stats.walk.cleared_dirty, before as u64);
    let l1 = (0..arena.len())
        .find(|&id| Arena::pa(id) == all[0].tables[3])
        .unwrap();
    let still_dirty = (0..512)
        .filter(|&i| arena.load(l1, i) & d_bit(Format::Ept) != 0)
        .count();
    assert_eq!(still_dirty, 512 - before, "D bits left set in the table");
}

/// Logging on before the walk: nothing of D is cleared, and the round says
/// so; logging off throughout: every D cleared, nothing said.
#[test]
fn dirty_logging_at_the_start_or_never() {
    let (arena, all) = dirty_world();
    let mut src = FakeSource::new(&arena, &all, &[0]);
    src.dirty_logging = true;
    let (stats, sink) = run_dirty(&mut src);
    assert!(stats.dirty_stopped);
    assert_eq!(sink.dirty_stopped_after, Some(0));
    assert_eq!(stats.walk.cleared_dirty, 0);

    let (arena, all) = dirty_world();
    let mut src = FakeSource::new(&arena, &all, &[0]);
    let (stats, sink) = run_dirty(&mut src);
    assert!(!stats.dirty_stopped);
    assert_eq!(sink.dirty_stopped_after, None);
    assert_eq!(stats.walk.cleared_dirty, 512);
}

/// A mode that leaves D alone never asks.
#[test]
fn accessed_only_walks_ignore_dirty_logging() {
    let (arena, all) = dirty_world();
    let mut src = FakeSource::new(&arena, &all, &[0]);
    src.dirty_logging = true;
    let (stats, sink) = run(&mut src);
    assert!(!stats.dirty_stopped);
    assert_eq!(sink.dirty_stopped_after, None);
}
