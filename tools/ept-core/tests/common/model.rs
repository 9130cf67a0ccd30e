// SPDX-License-Identifier: GPL-2.0

//! Random TDP tables and a reference model of what walking them must do.
//!
//! A [`GenWorld`] is the shape proptest generates (and shrinks). [`World`]
//! builds it into an [`Arena`] and remembers, per entry, what the generator
//! meant it to be ([`WEntry`]); the A/D state is read back from the arena with
//! the tests' own bit definitions ([`super::raw`]). [`reference`] is a
//! deliberately naive walk over that description: every entry of every
//! reachable table, recursion, no budget, no cleverness.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use ept_core::ept_walk::{Descent, Format, Mode, Root, Skip, Stats};

use super::arena::Arena;
use super::raw::*;
use super::record::{coalesce, Event};

/// A physical address no arena table has: entries pointing here are
/// "dangling" (the walker must report them unreachable).
pub const DANGLING_PA: u64 = 0x7000;

// ---------------------------------------------------------------------------
// What proptest generates.

/// One generated entry.
#[derive(Clone, Debug)]
pub enum Gen {
    /// Not present, with this raw value.
    Hole(u64),
    /// KVM's frozen marker.
    Frozen,
    /// A present leaf.
    Leaf(GenLeaf),
    /// A present table entry and its table.
    Table(Box<GenTableEntry>),
    /// A present table entry pointing where there is no table.
    Dangling { a: bool },
    /// Large bit at level 4 or 5.
    Malformed,
}

/// A generated leaf.
#[derive(Clone, Debug)]
pub struct GenLeaf {
    pub a: bool,
    pub d: bool,
    /// A/D type field value 0..=3.
    pub ad: u8,
    /// Random bits, masked with [`leaf_extra_mask`].
    pub extra: u64,
    /// Frame number, aligned to the page size when built.
    pub pfn: u64,
    /// Set [`CBIT`] too.
    pub cbit: bool,
    /// Set bit 12 (NPT's PAT bit of a large page), which is not address.
    pub low: bool,
}

/// A generated table entry.
#[derive(Clone, Debug)]
pub struct GenTableEntry {
    pub a: bool,
    /// A/D enabled (else the entry has the disabled type).
    pub tracked: bool,
    pub extra: u64,
    pub cbit: bool,
    pub child: GenTable,
}

/// A generated table: most entries `fill` (a not-present value), a few
/// listed ones.
#[derive(Clone, Debug)]
pub struct GenTable {
    pub fill: u64,
    pub entries: Vec<(usize, Gen)>,
}

/// A generated root.
#[derive(Clone, Debug)]
pub struct GenWorld {
    pub format: Format,
    /// KVM's software-bit layout of the kernel the tables come from.
    pub layout: Layout,
    pub levels: u8,
    pub root: GenTable,
}

/// A not-present value under layout `l`. Sometimes another kernel's frozen
/// marker, which under `l` is a plain hole.
fn hole_raw(l: Layout) -> BoxedStrategy<u64> {
    let others: Vec<u64> = Layout::ALL
        .iter()
        .filter(|o| **o != l)
        .map(|o| o.frozen())
        .collect();
    prop_oneof![
        3 => Just(NONPRESENT),
        2 => Just(0u64),
        1 => proptest::sample::select(others),
        1 => any::<u64>().prop_map(move |v| {
            let v = v & !PRESENT;
            if v == l.frozen() {
                NONPRESENT
            } else {
                v
            }
        }),
    ]
    .boxed()
}

fn ad_type() -> BoxedStrategy<u8> {
    prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)].boxed()
}

fn gen_leaf(f: Format, l: Layout, level: u8) -> BoxedStrategy<Gen> {
    (
        any::<bool>(),
        any::<bool>(),
        ad_type(),
        any::<u64>(),
        0u64..(1 << 16),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(move |(a, d, ad, extra, pfn, cbit, low)| {
            Gen::Leaf(GenLeaf {
                a,
                d,
                ad,
                extra: extra & leaf_extra_mask(f, l, level),
                pfn: pfn << (9 * (level as u32 - 1)),
                cbit,
                low: low && level > 1,
            })
        })
        .boxed()
}

fn gen_table_entry(f: Format, l: Layout, level: u8) -> BoxedStrategy<Gen> {
    (
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.85),
        any::<u64>(),
        prop::bool::weighted(0.2),
        gen_table(f, l, level - 1),
    )
        .prop_map(move |(a, tracked, extra, cbit, child)| {
            Gen::Table(Box::new(GenTableEntry {
                a,
                tracked,
                extra: extra & table_extra_mask(f, l),
                cbit,
                child,
            }))
        })
        .boxed()
}

fn gen_entry(f: Format, l: Layout, level: u8) -> BoxedStrategy<Gen> {
    let hole = hole_raw(l).prop_map(Gen::Hole);
    match level {
        1 => prop_oneof![2 => hole, 1 => Just(Gen::Frozen), 8 => gen_leaf(f, l, 1)].boxed(),
        2 | 3 => prop_oneof![
            2 => hole,
            1 => Just(Gen::Frozen),
            3 => gen_leaf(f, l, level),
            6 => gen_table_entry(f, l, level),
            1 => any::<bool>().prop_map(|a| Gen::Dangling { a }),
        ]
        .boxed(),
        _ => prop_oneof![
            1 => hole,
            1 => Just(Gen::Frozen),
            1 => Just(Gen::Malformed),
            1 => any::<bool>().prop_map(|a| Gen::Dangling { a }),
            12 => gen_table_entry(f, l, level),
        ]
        .boxed(),
    }
}

fn index() -> BoxedStrategy<usize> {
    prop_oneof![0usize..3, 509usize..512, 0usize..512].boxed()
}

/// A random table at `level` in format `f` under layout `l`.
pub fn gen_table(f: Format, l: Layout, level: u8) -> BoxedStrategy<GenTable> {
    let entry = gen_entry(f, l, level);
    if level == 1 {
        prop_oneof![
            1 => (hole_raw(l), vec((index(), entry.clone()), 0..24))
                .prop_map(|(fill, entries)| GenTable { fill, entries }),
            // A dense run, to exercise long stretches of leaves and holes.
            2 => (hole_raw(l), 0usize..512, vec(entry, 1..128)).prop_map(|(fill, start, run)| {
                GenTable {
                    fill,
                    entries: run
                        .into_iter()
                        .enumerate()
                        .map(|(i, e)| ((start + i) % 512, e))
                        .collect(),
                }
            }),
        ]
        .boxed()
    } else {
        (hole_raw(l), vec((index(), entry), 1..6))
            .prop_map(|(fill, entries)| GenTable { fill, entries })
            .boxed()
    }
}

/// A random root: EPT or NPT, either kernel's layout, 4 or 5 levels.
pub fn gen_world() -> BoxedStrategy<GenWorld> {
    (
        prop_oneof![Just(Format::Ept), Just(Format::Npt)],
        proptest::sample::select(Layout::ALL.to_vec()),
        prop_oneof![3 => Just(4u8), 1 => Just(5u8)],
    )
        .prop_flat_map(|(format, layout, levels)| {
            gen_table(format, layout, levels).prop_map(move |root| GenWorld {
                format,
                layout,
                levels,
                root,
            })
        })
        .boxed()
}

/// Any mode.
pub fn gen_mode() -> BoxedStrategy<Mode> {
    prop_oneof![
        Just(Mode::ReadOnly),
        Just(Mode::ClearAccessed),
        Just(Mode::ClearAccessedDirty)
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// The built world.

/// What an entry of a built table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WEntry {
    Hole,
    Frozen,
    Malformed,
    /// A present leaf with A/D type `ad` mapping frame `pfn`.
    Leaf {
        ad: u8,
        pfn: u64,
    },
    /// A present table entry pointing to table `child`.
    Table {
        tracked: bool,
        child: usize,
    },
    /// A present table entry pointing to no table.
    Dangling {
        tracked: bool,
    },
}

/// A built table.
#[derive(Clone, Debug)]
pub struct WTable {
    pub level: u8,
    /// First GFN the table covers.
    pub base: u64,
    /// The entry pointing here, if not the root.
    pub parent: Option<(usize, usize)>,
    pub entries: Vec<WEntry>,
}

/// Tables in an arena plus their description. Table ids are arena ids; the
/// root is table 0.
pub struct World {
    pub format: Format,
    pub layout: Layout,
    pub levels: u8,
    pub arena: Arena,
    pub tables: Vec<WTable>,
}

/// A leaf or table entry reachable from the root: table id, index.
pub type Slot = (usize, usize);

impl World {
    /// Builds `g` into a fresh arena.
    pub fn build(g: &GenWorld) -> World {
        let mut w = World {
            format: g.format,
            layout: g.layout,
            levels: g.levels,
            arena: Arena::new(),
            tables: Vec::new(),
        };
        w.build_table(&g.root, g.levels, 0, None);
        w
    }

    fn new_table(&mut self, fill: u64, level: u8, base: u64, parent: Option<Slot>) -> usize {
        let id = self.arena.alloc(fill);
        assert_eq!(id, self.tables.len());
        self.tables.push(WTable {
            level,
            base,
            parent,
            entries: vec![WEntry::Hole; 512],
        });
        id
    }

    fn build_table(&mut self, g: &GenTable, level: u8, base: u64, parent: Option<Slot>) -> usize {
        let f = self.format;
        let l = self.layout;
        let id = self.new_table(g.fill, level, base, parent);
        let mut seen = [false; 512];
        for (idx, e) in &g.entries {
            let idx = *idx;
            if seen[idx] {
                continue;
            }
            seen[idx] = true;
            let gfn = base + idx as u64 * entry_pages(level);
            let (raw, we) = match e {
                Gen::Hole(v) => (*v, WEntry::Hole),
                Gen::Frozen => (l.frozen(), WEntry::Frozen),
                Gen::Malformed => (PRESENT | perms(f) | LARGE | 0x4000_0000, WEntry::Malformed),
                Gen::Leaf(lf) => {
                    let mut raw = leaf(f, level, lf.pfn, lf.a, lf.d) | lf.extra | l.ad(lf.ad);
                    if lf.cbit {
                        raw |= CBIT;
                    }
                    if lf.low {
                        raw |= 1 << 12;
                    }
                    (
                        raw,
                        WEntry::Leaf {
                            ad: lf.ad,
                            pfn: lf.pfn,
                        },
                    )
                }
                Gen::Table(t) => {
                    let child = self.build_table(&t.child, level - 1, gfn, Some((id, idx)));
                    let mut raw = table(f, Arena::pa(child), t.a) | t.extra;
                    if !t.tracked {
                        raw |= l.ad(TYPE_DISABLED);
                    }
                    if t.cbit {
                        raw |= CBIT;
                    }
                    (
                        raw,
                        WEntry::Table {
                            tracked: t.tracked,
                            child,
                        },
                    )
                }
                Gen::Dangling { a } => (
                    table(f, DANGLING_PA, *a),
                    WEntry::Dangling { tracked: true },
                ),
            };
            self.arena.store(id, idx, raw);
            self.tables[id].entries[idx] = we;
        }
        id
    }

    /// The root as the walker needs it.
    pub fn root(&self) -> Root {
        Root::new(
            Arena::pa(0),
            self.levels,
            self.format,
            self.layout.bits(),
            PHYS_MASK,
        )
        .expect("valid root")
    }

    /// Number of GFNs the root spans.
    pub fn span(&self) -> u64 {
        1u64 << (9 * self.levels as u32)
    }

    /// A copy with its own arena holding the same values.
    pub fn duplicate(&self) -> World {
        let mut arena = Arena::with_capacity(self.arena.len());
        for t in self.arena.snapshot() {
            let id = arena.alloc(0);
            for (i, v) in t.iter().enumerate() {
                arena.store(id, i, *v);
            }
        }
        World {
            format: self.format,
            layout: self.layout,
            levels: self.levels,
            arena,
            tables: self.tables.clone(),
        }
    }

    /// Every entry reachable from the root, pre-order.
    pub fn reachable(&self) -> Vec<Slot> {
        let mut out = Vec::new();
        self.reach(0, &mut out);
        out
    }

    fn reach(&self, id: usize, out: &mut Vec<Slot>) {
        for idx in 0..512 {
            out.push((id, idx));
            if let WEntry::Table { child, .. } = self.tables[id].entries[idx] {
                self.reach(child, out);
            }
        }
    }

    /// First GFN and pages of the entry at `slot`.
    pub fn slot_span(&self, (id, idx): Slot) -> (u64, u64) {
        let t = &self.tables[id];
        let n = entry_pages(t.level);
        (t.base + idx as u64 * n, n)
    }

    /// Whether the leaf at `slot` has a tracked A/D type.
    pub fn is_tracked_leaf(&self, (id, idx): Slot) -> bool {
        matches!(self.tables[id].entries[idx], WEntry::Leaf { ad: 0 | 2, .. })
    }

    /// What the CPU does on an access through a leaf after a TLB flush:
    /// sets A (and D for a write) in the leaf and A in every table entry on
    /// the way, where the A/D type tracks them.
    pub fn access(&self, slot: Slot, write: bool) {
        let f = self.format;
        if !self.is_tracked_leaf(slot) {
            return;
        }
        let (id, idx) = slot;
        let mut bits = a_bit(f);
        if write {
            bits |= d_bit(f);
        }
        self.arena.store(id, idx, self.arena.load(id, idx) | bits);
        let mut up = self.tables[id].parent;
        while let Some((pid, pidx)) = up {
            if let WEntry::Table { tracked: true, .. } = self.tables[pid].entries[pidx] {
                self.arena
                    .store(pid, pidx, self.arena.load(pid, pidx) | a_bit(f));
            }
            up = self.tables[pid].parent;
        }
    }

    /// Makes the tables look as if every set leaf A came from a real table
    /// walk: sets A in every tracked table entry above a leaf whose A is set
    /// (the precondition of `Descent::AccessedTables`).
    pub fn enforce_upper_invariant(&self) {
        let f = self.format;
        for slot in self.reachable() {
            if self.is_tracked_leaf(slot) && self.arena.load(slot.0, slot.1) & a_bit(f) != 0 {
                self.access(slot, false);
            }
        }
    }

    /// Sets entry `slot` to a hole.
    pub fn zap(&mut self, (id, idx): Slot) {
        self.arena.store(id, idx, NONPRESENT);
        self.tables[id].entries[idx] = WEntry::Hole;
    }

    /// Sets entry `slot` (at level 1-3) to a fresh leaf of frame `pfn`.
    pub fn map(&mut self, (id, idx): Slot, pfn: u64, a: bool) {
        let level = self.tables[id].level;
        let pfn = (pfn << (9 * (level as u32 - 1))) & (PHYS_MASK >> 12);
        let raw = leaf(self.format, level, pfn, a, false) | self.host_writable();
        self.arena.store(id, idx, raw);
        self.tables[id].entries[idx] = WEntry::Leaf { ad: 0, pfn };
    }

    /// Replaces the table under `slot` with a copy (same values, new
    /// tables), as when KVM rebuilds a subtree. The old tables stay in the
    /// arena, as they stay alive under RCU in the kernel.
    pub fn copy_subtree(&mut self, (id, idx): Slot) {
        let WEntry::Table { tracked, child } = self.tables[id].entries[idx] else {
            return;
        };
        let new = self.copy_table(child, Some((id, idx)));
        let old = self.arena.load(id, idx);
        let raw = (old & !(PHYS_MASK & !0xfff)) | Arena::pa(new);
        self.arena.store(id, idx, raw);
        self.tables[id].entries[idx] = WEntry::Table {
            tracked,
            child: new,
        };
    }

    fn copy_table(&mut self, from: usize, parent: Option<Slot>) -> usize {
        let (level, base) = (self.tables[from].level, self.tables[from].base);
        let id = self.new_table(0, level, base, parent);
        for idx in 0..512 {
            let mut we = self.tables[from].entries[idx];
            let mut raw = self.arena.load(from, idx);
            if let WEntry::Table { tracked, child } = we {
                let c = self.copy_table(child, Some((id, idx)));
                raw = (raw & !(PHYS_MASK & !0xfff)) | Arena::pa(c);
                we = WEntry::Table { tracked, child: c };
            }
            self.arena.store(id, idx, raw);
            self.tables[id].entries[idx] = we;
        }
        id
    }

    /// The host-writable bit KVM sets in the leaves it maps (in this
    /// layout's place), for leaves the tests map as KVM would.
    pub fn host_writable(&self) -> u64 {
        self.layout.host_writable(self.format)
    }

    /// Splits the large leaf at `slot` into a table of smaller leaves of the
    /// same frames (KVM's huge page split).
    pub fn split(&mut self, (id, idx): Slot) {
        let level = self.tables[id].level;
        let WEntry::Leaf { pfn, .. } = self.tables[id].entries[idx] else {
            return;
        };
        if level < 2 {
            return;
        }
        let (gfn, _) = self.slot_span((id, idx));
        let child = self.new_table(NONPRESENT, level - 1, gfn, Some((id, idx)));
        let step = entry_pages(level - 1);
        for i in 0..512 {
            let p = pfn + i as u64 * step;
            let raw = leaf(self.format, level - 1, p, true, false) | self.host_writable();
            self.arena.store(child, i, raw);
            self.tables[child].entries[i] = WEntry::Leaf { ad: 0, pfn: p };
        }
        self.arena
            .store(id, idx, table(self.format, Arena::pa(child), true));
        self.tables[id].entries[idx] = WEntry::Table {
            tracked: true,
            child,
        };
    }

    /// Replaces the table entry at `slot` (level 2 or 3) with one large leaf
    /// (KVM's huge page recovery).
    pub fn collapse(&mut self, (id, idx): Slot, pfn: u64) {
        if !(2..=3).contains(&self.tables[id].level) {
            return;
        }
        if !matches!(self.tables[id].entries[idx], WEntry::Table { .. }) {
            return;
        }
        self.map((id, idx), pfn, true);
    }
}

// ---------------------------------------------------------------------------
// The reference walk.

/// What a walk must report and leave behind.
#[derive(Debug)]
pub struct Expect {
    /// Visitor calls, coalesced.
    pub events: Vec<Event>,
    /// Counters for an unbounded walk.
    pub stats: Stats,
    /// Every table entry after the walk.
    pub after: Vec<[u64; 512]>,
}

/// Walks `world` over `start..end` the slow, obvious way.
pub fn reference(world: &World, start: u64, end: u64, mode: Mode, descent: Descent) -> Expect {
    let before = world.arena.snapshot();
    let end = end.min(world.span());
    let mut r = Ref {
        world,
        before: &before,
        after: before.clone(),
        start,
        end,
        mode,
        descent,
        events: Vec::new(),
        stats: Stats::default(),
    };
    if start < end {
        r.table(0);
    }
    Expect {
        events: coalesce(&r.events),
        stats: r.stats,
        after: r.after,
    }
}

struct Ref<'a> {
    world: &'a World,
    before: &'a [[u64; 512]],
    after: Vec<[u64; 512]>,
    start: u64,
    end: u64,
    mode: Mode,
    descent: Descent,
    events: Vec<Event>,
    stats: Stats,
}

impl Ref<'_> {
    fn table(&mut self, id: usize) {
        let f = self.world.format;
        let t = &self.world.tables[id];
        let n = entry_pages(t.level);
        for idx in 0..512 {
            let s = t.base + idx as u64 * n;
            let e = s + n;
            if e <= self.start || s >= self.end {
                continue;
            }
            self.stats.examined += 1;
            let (cs, ce) = (s.max(self.start), e.min(self.end));
            let raw = self.before[id][idx];
            let a = raw & a_bit(f) != 0;
            let d = raw & d_bit(f) != 0;
            match t.entries[idx] {
                WEntry::Hole => self.events.push(Event::Hole(cs, ce)),
                WEntry::Frozen => {
                    self.stats.frozen += 1;
                    self.events.push(Event::Skipped(cs, ce, Skip::Frozen));
                }
                WEntry::Malformed => {
                    self.stats.malformed += 1;
                    self.events.push(Event::Skipped(cs, ce, Skip::Malformed));
                }
                WEntry::Leaf { ad, pfn } => {
                    if ad == 1 || ad == 3 {
                        self.stats.untracked += 1;
                        self.events.push(Event::Skipped(cs, ce, Skip::Untracked));
                        continue;
                    }
                    if ad == 0 && !a && (!d || self.mode == Mode::ClearAccessed) {
                        self.stats.leaves += 1;
                        self.stats.idle += 1;
                        self.events.push(Event::Idle(cs, ce));
                        continue;
                    }
                    let ca = a && self.mode != Mode::ReadOnly;
                    let cd = d && self.mode == Mode::ClearAccessedDirty && ad == 0;
                    let mut v = raw;
                    if ca {
                        v &= !a_bit(f);
                    }
                    if cd {
                        v &= !d_bit(f);
                    }
                    self.after[id][idx] = v;
                    self.stats.leaves += 1;
                    self.stats.accessed += a as u64;
                    self.stats.dirty += d as u64;
                    self.stats.cleared_accessed += ca as u64;
                    self.stats.cleared_dirty += cd as u64;
                    self.events.push(Event::Leaf {
                        gfn: s,
                        pages: n,
                        pfn,
                        a,
                        d,
                        ca,
                        cd,
                    });
                }
                WEntry::Table { tracked, .. } | WEntry::Dangling { tracked } => {
                    let whole = self.start <= s && e <= self.end;
                    if self.descent == Descent::AccessedTables && whole && tracked {
                        if !a {
                            self.stats.cold_tables += 1;
                            self.events.push(Event::Cold(cs, ce));
                            continue;
                        }
                        if self.mode != Mode::ReadOnly {
                            self.after[id][idx] = raw & !a_bit(f);
                            self.stats.cleared_tables += 1;
                        }
                    }
                    match t.entries[idx] {
                        WEntry::Table { child, .. } => self.table(child),
                        _ => {
                            self.stats.unreachable += 1;
                            self.events.push(Event::Skipped(cs, ce, Skip::Unreachable));
                        }
                    }
                }
            }
        }
    }
}

/// A GFN range chosen near the interesting places of `world`: table and
/// entry boundaries, plus or minus a little.
pub fn pick_range(world: &World, a: Index, b: Index, da: i8, db: i8) -> (u64, u64) {
    let mut points = vec![0, world.span()];
    for slot in world.reachable() {
        if !matches!(world.tables[slot.0].entries[slot.1], WEntry::Hole) {
            let (s, n) = world.slot_span(slot);
            points.push(s);
            points.push(s + n);
        }
    }
    let nudge = |p: u64, d: i8| -> u64 {
        if d >= 0 {
            p.saturating_add(d as u64)
        } else {
            p.saturating_sub(d.unsigned_abs() as u64)
        }
    };
    let x = nudge(*a.get(&points), da);
    let y = nudge(*b.get(&points), db);
    (x.min(y), x.max(y))
}
