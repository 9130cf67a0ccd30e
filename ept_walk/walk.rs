// SPDX-License-Identifier: GPL-2.0

//! The walker: one bounded, resumable pass over part of one root.
//!
//! A call to [`Walker::walk`] starts at the root table, steps down towards the
//! first GFN of its range and then visits entries in address order, pre-order,
//! like KVM's `tdp_iter` (`arch/x86/kvm/mmu/tdp_iter.c`): down into a table,
//! sideways to the next entry, up when a table is exhausted. It is written as
//! a recursion over table levels (at most five deep) rather than an explicit
//! iterator because a walk that stops does not keep its position in the
//! tables: it returns the GFN to continue from, and the next call starts again
//! from the root, as `tdp_iter_restart` does after KVM yields `mmu_lock`. A
//! table freed or replaced while the caller was not holding its locks is
//! therefore never touched, and a leaf that did not change is reported exactly
//! once however the work is split.
//!
//! Every entry is judged on one relaxed load (the kernel's `READ_ONCE`) and
//! written, if at all, with one `compare_exchange` of the whole entry that
//! clears only A (and D) bits. A failed exchange means the CPU or KVM changed
//! the entry: the walker looks at the new value afresh (it may now be a
//! hole, a table or a different leaf) and gives up clearing after
//! [`MAX_CAS_ATTEMPTS`] failures.
//!
//! Most of a mostly idle guest is idle leaves (A clear) and, under
//! [`Descent::AccessedTables`], table entries with A clear. Both are found by
//! a fast path (`run_len`) that tests eight entries per step against a
//! [`Pattern`] and reports the whole run as one range, so that a walk over
//! them costs little more than reading the table bytes.

use core::sync::atomic::{AtomicU64, Ordering};

use super::addr::{Gfn, GfnRange, Level, PageSize, ENTRIES_PER_TABLE};
use super::spte::{Format, KvmBits, Pattern, Spte};
use super::table::Tables;

/// How many times the walker tries to `compare_exchange` one entry before it
/// leaves the entry as it is (counted in [`Stats::cas_gave_up`]). Failures
/// need the CPU or KVM to change the same entry between the walker's read
/// and its exchange, so one retry nearly always suffices; the bound only
/// keeps a pathological writer from holding the walker.
pub const MAX_CAS_ATTEMPTS: u32 = 4;

/// One root of a VM's TDP tables, and how to read its entries.
///
/// # Invariants
///
/// `table_pa` is 4 KiB aligned; `level` is 4 or 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    table_pa: u64,
    level: Level,
    format: Format,
    bits: KvmBits,
    phys_mask: u64,
}

impl Root {
    /// Describes the root table at physical address `table_pa` (KVM's
    /// `__pa(root->spt)`), with `levels` levels (`root->role.level`, 4 or 5)
    /// in `format`, whose entries use the running KVM's software `bits`.
    /// `phys_mask` is applied to every address read from an entry; the
    /// kernel passes its exported `physical_mask`.
    ///
    /// Returns `None` if `levels` is not 4 or 5 or `table_pa` is not 4 KiB
    /// aligned.
    pub fn new(
        table_pa: u64,
        levels: u8,
        format: Format,
        bits: KvmBits,
        phys_mask: u64,
    ) -> Option<Root> {
        let level = match levels {
            4 => Level::ROOT4,
            5 => Level::ROOT5,
            _ => return None,
        };
        if table_pa & 0xfff != 0 {
            return None;
        }
        Some(Root {
            table_pa,
            level,
            format,
            bits,
            phys_mask,
        })
    }

    /// Physical address of the root table.
    #[inline]
    pub fn table_pa(&self) -> u64 {
        self.table_pa
    }

    /// Level of the root table (4 or 5).
    #[inline]
    pub fn level(&self) -> Level {
        self.level
    }

    /// Entry format of every table under this root.
    #[inline]
    pub fn format(&self) -> Format {
        self.format
    }

    /// KVM's software-bit layout of every entry under this root.
    #[inline]
    pub fn kvm_bits(&self) -> KvmBits {
        self.bits
    }

    /// Physical-address mask applied to entries.
    #[inline]
    pub fn phys_mask(&self) -> u64 {
        self.phys_mask
    }

    /// The GFNs this root can translate: `0..2^36` for 4 levels, `0..2^45`
    /// for 5.
    #[inline]
    pub fn span(&self) -> GfnRange {
        GfnRange::new(Gfn(0), Gfn(self.level.table_pages()))
    }
}

/// What the walker does to the A/D bits of the leaves it visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Read only: no entry is written.
    ReadOnly,
    /// Test and clear the accessed bit.
    ClearAccessed,
    /// Test and clear the accessed bit, and the dirty bit where the entry's
    /// A/D type is [`AdType::Enabled`](super::AdType::Enabled).
    ///
    /// On kernels where KVM marks the host page dirty only from the D bit
    /// (before Linux 6.13), the caller must do so itself for every leaf with
    /// [`Leaf::cleared_dirty`], or the host loses the page's dirtiness; and
    /// it must not use this mode while dirty logging is on for the VM.
    ClearAccessedDirty,
}

impl Mode {
    /// Whether the mode clears accessed bits.
    #[inline]
    pub const fn clears_accessed(self) -> bool {
        matches!(self, Mode::ClearAccessed | Mode::ClearAccessedDirty)
    }

    /// Whether the mode clears dirty bits.
    #[inline]
    pub const fn clears_dirty(self) -> bool {
        matches!(self, Mode::ClearAccessedDirty)
    }
}

/// Which tables the walker enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Descent {
    /// Every table: every present leaf in the range is visited.
    EveryTable,
    /// Only tables whose parent entry has its accessed bit set; the parent's
    /// A is tested and, in a clearing [`Mode`], cleared like a leaf's. A
    /// table whose parent's A is clear is reported as
    /// [`Visitor::cold`] without being read.
    ///
    /// The CPU sets the A bit of every table entry it uses in a table walk, so
    /// a leaf can only have been accessed through a table whose parent's A is
    /// set, *provided the walk was not short-cut*: CPUs cache upper-level
    /// entries (paging-structure caches, part of the TLB), and a translation
    /// that starts from a cached entry sets the leaf's A without setting the
    /// upper one again. This mode therefore gives the same accessed set as
    /// [`Descent::EveryTable`] only if the caller flushes the guest's TLBs
    /// (e.g. `kvm_flush_remote_tlbs`) after every pass that cleared bits and
    /// before the guest's accesses it wants to see. Accesses between the
    /// clearing and the flush may set a leaf's A without its parent's; such
    /// a leaf is then reported when its table is next entered, which may be
    /// a later pass.
    ///
    /// Only entries that lie wholly inside the walked range are tested: an
    /// entry that straddles either end of the range is entered without
    /// touching its A, because clearing it would hide the part of its table
    /// outside the range from the next pass (in particular the part after a
    /// [`Stop::Paused`] cursor, which the next call walks). Entries whose A/D
    /// type is not tracked are always entered. KVM creates table entries with
    /// A set when A/D bits are enabled, so a new table is always entered once.
    AccessedTables,
}

/// A present leaf, as the walker found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// First GFN the leaf maps; aligned to `size`. A large leaf that straddles
    /// the start or end of the walked range is reported whole.
    pub gfn: Gfn,
    /// Size of the mapped page.
    pub size: PageSize,
    /// The entry as read, before the walker cleared anything.
    pub spte: Spte,
    /// Host page frame number of the page's first 4 KiB (masked with the
    /// root's physical mask and aligned to `size`).
    pub pfn: u64,
    /// The accessed bit was set.
    pub accessed: bool,
    /// The dirty bit was set.
    pub dirty: bool,
    /// The walker cleared the accessed bit.
    pub cleared_accessed: bool,
    /// The walker cleared the dirty bit.
    pub cleared_dirty: bool,
}

/// Why part of the range was neither a leaf, idle, a hole nor cold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The entry was KVM's frozen marker
    /// ([`KvmBits::frozen`](super::KvmBits::frozen)): KVM is in the middle
    /// of changing it. Its pages may or may not be mapped a moment later.
    Frozen,
    /// A present leaf whose A/D type has no hardware accessed bit
    /// ([`AdType::tracks_accessed`](super::AdType::tracks_accessed) is
    /// false): nothing can be said about its accesses.
    Untracked,
    /// [`Tables::table`] found no table at the address an entry points to.
    Unreachable,
    /// A present entry with the large bit at level 4 or 5, which KVM never
    /// creates.
    Malformed,
}

/// Receives what the walker finds, in increasing GFN order.
///
/// Together the calls cover the walked range without gaps or overlaps, except
/// that a large leaf passed to [`Visitor::leaf`] is reported whole even where
/// it extends past the range (ranges are clipped to it). Adjacent ranges of
/// the same kind found in one call are merged into one call. The methods are
/// called on the walker's hot path, with the tables' locks held: keep them
/// short and do not sleep.
///
/// Present leaves arrive in one of two ways. Idle leaves, the bulk of a
/// mostly idle guest, come as ranges through [`Visitor::idle`], found by a
/// fast path that reads them at close to memory speed and writes nothing.
/// Every other present leaf with hardware A/D bits comes through
/// [`Visitor::leaf`], one call each.
pub trait Visitor {
    /// A present leaf that is not idle: its A bit was set, or its D bit was
    /// set in a mode other than [`Mode::ClearAccessed`], or its A/D type is
    /// [`AdType::WrProtOnly`](super::AdType::WrProtOnly).
    fn leaf(&mut self, leaf: Leaf);
    /// Guest frames mapped by present leaves whose A/D type is
    /// [`AdType::Enabled`](super::AdType::Enabled) and whose A bit was clear,
    /// and so was D unless the mode is [`Mode::ClearAccessed`] (which does
    /// not look at D). Nothing in them was written. Pages of any size; a
    /// large leaf straddling the range is clipped to it.
    fn idle(&mut self, range: GfnRange);
    /// Guest frames that no present entry maps. Not idle: unmapped.
    fn hole(&mut self, range: GfnRange);
    /// Guest frames under a table that [`Descent::AccessedTables`] did not
    /// enter because its parent's A bit was clear: under that mode's
    /// precondition, none of the present leaves in `range` was accessed since
    /// the previous pass. Holes are not distinguished from leaves here.
    fn cold(&mut self, range: GfnRange);
    /// Guest frames the walker could not judge, and why.
    fn skipped(&mut self, range: GfnRange, why: Skip);
}

/// A visitor lent out: what a caller that keeps its visitor between calls
/// (the round driver's sink) hands to each call.
impl<V: Visitor + ?Sized> Visitor for &mut V {
    #[inline]
    fn leaf(&mut self, leaf: Leaf) {
        (**self).leaf(leaf);
    }
    #[inline]
    fn idle(&mut self, range: GfnRange) {
        (**self).idle(range);
    }
    #[inline]
    fn hole(&mut self, range: GfnRange) {
        (**self).hole(range);
    }
    #[inline]
    fn cold(&mut self, range: GfnRange) {
        (**self).cold(range);
    }
    #[inline]
    fn skipped(&mut self, range: GfnRange, why: Skip) {
        (**self).skipped(range, why);
    }
}

/// Counters for one call to [`Walker::walk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries read, at every level (what the budget counts).
    pub examined: u64,
    /// Present leaves with hardware A/D bits, idle or not.
    pub leaves: u64,
    /// Of those, leaves reported through [`Visitor::idle`].
    pub idle: u64,
    /// Leaves passed to [`Visitor::leaf`] whose accessed bit was set.
    pub accessed: u64,
    /// Leaves passed to [`Visitor::leaf`] whose dirty bit was set.
    pub dirty: u64,
    /// Leaves whose accessed bit the walker cleared.
    pub cleared_accessed: u64,
    /// Leaves whose dirty bit the walker cleared.
    pub cleared_dirty: u64,
    /// Table entries whose accessed bit the walker cleared
    /// ([`Descent::AccessedTables`]).
    pub cleared_tables: u64,
    /// Tables reported cold without being entered
    /// ([`Descent::AccessedTables`]).
    pub cold_tables: u64,
    /// `compare_exchange` calls that failed because the entry had changed.
    pub cas_retries: u64,
    /// Entries left as they were after [`MAX_CAS_ATTEMPTS`] failures.
    pub cas_gave_up: u64,
    /// Frozen entries seen.
    pub frozen: u64,
    /// Present leaves without hardware A/D ([`Skip::Untracked`]).
    pub untracked: u64,
    /// Table pointers [`Tables::table`] could not resolve.
    pub unreachable: u64,
    /// Entries with the large bit at level 4 or 5.
    pub malformed: u64,
}

impl Stats {
    /// Adds `other` into `self`, e.g. to total the calls of one pass.
    /// Wraps rather than overflowing (a `u64` of entries cannot fill up).
    pub fn accumulate(&mut self, other: &Stats) {
        let Stats {
            examined,
            leaves,
            idle,
            accessed,
            dirty,
            cleared_accessed,
            cleared_dirty,
            cleared_tables,
            cold_tables,
            cas_retries,
            cas_gave_up,
            frozen,
            untracked,
            unreachable,
            malformed,
        } = *other;
        self.examined = self.examined.wrapping_add(examined);
        self.leaves = self.leaves.wrapping_add(leaves);
        self.idle = self.idle.wrapping_add(idle);
        self.accessed = self.accessed.wrapping_add(accessed);
        self.dirty = self.dirty.wrapping_add(dirty);
        self.cleared_accessed = self.cleared_accessed.wrapping_add(cleared_accessed);
        self.cleared_dirty = self.cleared_dirty.wrapping_add(cleared_dirty);
        self.cleared_tables = self.cleared_tables.wrapping_add(cleared_tables);
        self.cold_tables = self.cold_tables.wrapping_add(cold_tables);
        self.cas_retries = self.cas_retries.wrapping_add(cas_retries);
        self.cas_gave_up = self.cas_gave_up.wrapping_add(cas_gave_up);
        self.frozen = self.frozen.wrapping_add(frozen);
        self.untracked = self.untracked.wrapping_add(untracked);
        self.unreachable = self.unreachable.wrapping_add(unreachable);
        self.malformed = self.malformed.wrapping_add(malformed);
    }
}

/// Where a call to [`Walker::walk`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The whole range was walked.
    Done,
    /// The budget ran out. Everything below this GFN has been reported; call
    /// again with the range starting here. Always above the start of the
    /// range the call was given, so repeated calls make progress.
    Paused(Gfn),
}

/// The result of one call to [`Walker::walk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Where the call stopped.
    pub stop: Stop,
    /// What the call did.
    pub stats: Stats,
}

/// Walks one root's tables in one [`Mode`] and [`Descent`].
///
/// A `Walker` holds no position: each [`Walker::walk`] starts from the root,
/// so the caller may drop its locks between calls.
#[derive(Clone, Debug)]
pub struct Walker<T> {
    tables: T,
    root: Root,
    mode: Mode,
    descent: Descent,
    /// The format's A bit if the mode clears it, else 0.
    clear_a: u64,
    /// The format's D bit if the mode clears it, else 0.
    clear_d: u64,
    /// What an idle leaf looks like at levels 1, 2 and 3.
    idle: [Option<Pattern>; 3],
    /// What a table entry the walker will not enter looks like at levels 2
    /// to 5 ([`Descent::AccessedTables`] only).
    cold: [Option<Pattern>; 4],
}

impl<T: Tables> Walker<T> {
    /// A walker over `root`, reaching tables through `tables`.
    ///
    /// # Safety
    ///
    /// `root`'s table is a table `tables` may be asked for (see
    /// [`Tables::table`]) for as long as the walker lives: in the kernel, a
    /// root found valid under the hold of the lock that `tables` borrows.
    pub unsafe fn new(tables: T, root: Root, mode: Mode, descent: Descent) -> Self {
        let format = root.format;
        let bits = root.bits;
        // D is part of "idle" except in the one mode that ignores it.
        let with_dirty = mode != Mode::ClearAccessed;
        let idle_at = |level| Pattern::idle_leaf(format, bits, level, with_dirty);
        let cold_at = |level| match descent {
            Descent::EveryTable => None,
            Descent::AccessedTables => Pattern::unaccessed_table(format, bits, level),
        };
        Walker {
            tables,
            root,
            mode,
            descent,
            clear_a: if mode.clears_accessed() {
                format.accessed_mask()
            } else {
                0
            },
            clear_d: if mode.clears_dirty() {
                format.dirty_mask()
            } else {
                0
            },
            idle: [
                idle_at(Level::PTE),
                idle_at(Level::PMD),
                idle_at(Level::PUD),
            ],
            cold: [
                cold_at(Level::PMD),
                cold_at(Level::PUD),
                cold_at(Level::ROOT4),
                cold_at(Level::ROOT5),
            ],
        }
    }

    /// The idle-leaf pattern at `level`, if leaves exist there.
    #[inline]
    fn idle_pattern(&self, level: Level) -> Option<Pattern> {
        self.idle
            .get(usize::from(level.get()).wrapping_sub(1))
            .copied()
            .flatten()
    }

    /// The unaccessed-table pattern at `level`, if this walker skips such
    /// tables and they exist there.
    #[inline]
    fn cold_pattern(&self, level: Level) -> Option<Pattern> {
        self.cold
            .get(usize::from(level.get()).wrapping_sub(2))
            .copied()
            .flatten()
    }

    /// The root this walker walks.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The walker's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The walker's descent.
    pub fn descent(&self) -> Descent {
        self.descent
    }

    /// Walks the part of `range` inside the root's span, reporting to
    /// `visitor`, until the range is done or about `budget` entries have been
    /// read.
    ///
    /// The budget is checked before each entry except the first one of each
    /// table the walker enters, so a call reads at most
    /// `max(budget, 1) + levels - 1` entries (`levels` being the root's
    /// level), and always finishes at least one entry: it makes progress
    /// whatever the budget.
    ///
    /// When the call returns [`Stop::Paused`], call again with the range
    /// starting at the returned GFN, possibly after the tables changed (the
    /// kernel side drops and retakes its locks in between): a leaf that
    /// existed unchanged across the calls is reported exactly once, in the
    /// call whose range contains its GFN. A leaf added, removed or replaced
    /// in between is reported as the tables were when the walker read them,
    /// which can mean once, never, or (for a large leaf that replaced small
    /// ones already reported) a second time.
    ///
    /// In the kernel the caller holds `kvm->mmu_lock` for read and the RCU
    /// read lock for the whole call, in process context, as KVM's own TDP
    /// walks do; the root must not be invalid.
    pub fn walk<V: Visitor>(&self, range: GfnRange, budget: u64, visitor: &mut V) -> Outcome {
        let range = range.intersect(&self.root.span());
        let mut pass = Pass {
            walker: self,
            visitor,
            range,
            budget,
            next: range.start,
            run: None,
            stats: Stats::default(),
        };
        let flow = if range.is_empty() {
            Flow::Continue
        } else {
            // SAFETY: the root's table, vouched for by the caller of new().
            unsafe { pass.enter(self.root.table_pa, self.root.level, Gfn(0)) }
        };
        pass.flush_run();
        Outcome {
            stop: match flow {
                Flow::Continue => Stop::Done,
                Flow::Pause => Stop::Paused(pass.next),
            },
            stats: pass.stats,
        }
    }
}

/// Whether a walk goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The budget ran out; [`Pass::next`] is where to resume.
    Pause,
}

/// What a [`Run`] of not-leaf frames is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunKind {
    Hole,
    Idle,
    Cold,
    Skipped(Skip),
}

/// Frames of one kind found but not yet reported, so that adjacent ranges of
/// the same kind reach the visitor as one.
#[derive(Clone, Copy, Debug)]
struct Run {
    kind: RunKind,
    range: GfnRange,
}

/// The state of one call to [`Walker::walk`].
struct Pass<'a, T, V> {
    walker: &'a Walker<T>,
    visitor: &'a mut V,
    /// The call's range, clipped to the root's span.
    range: GfnRange,
    budget: u64,
    /// Everything in `range` below `next` has been reported (or is in `run`).
    next: Gfn,
    run: Option<Run>,
    stats: Stats,
}

impl<'a, T: Tables, V: Visitor> Pass<'a, T, V> {
    /// Walks the table at `pa`, which is at `level` and covers GFNs from
    /// `base`, from `self.next` on.
    ///
    /// # Safety
    ///
    /// `pa` may be passed to [`Tables::table`]: the root's table, or the
    /// address in a present non-leaf entry of a table entered before.
    unsafe fn enter(&mut self, pa: u64, level: Level, base: Gfn) -> Flow {
        // Copy the `&'a Walker` out so that the table borrows from it, not
        // from `self`, and `self` stays free for the recursion.
        let walker: &'a Walker<T> = self.walker;
        // SAFETY: the caller's promise, which is the one table() asks for.
        let Some(table) = (unsafe { walker.tables.table(pa) }) else {
            self.stats.unreachable = self.stats.unreachable.wrapping_add(1);
            let span = GfnRange::new(base, base.offset(level.table_pages()));
            self.report(RunKind::Skipped(Skip::Unreachable), span);
            return Flow::Continue;
        };

        // The entries that overlap `next..range.end`. `next` lies in this
        // table: the root covers the whole (clipped) range, and a parent
        // only enters a child whose entry overlaps `next..range.end`.
        let table_end = base.offset(level.table_pages());
        let first = level.index(self.next);
        let last = if self.range.end < table_end {
            // `range.end > next >= base`, so this does not underflow.
            level.index(Gfn(self.range.end.0.wrapping_sub(1)))
        } else {
            ENTRIES_PER_TABLE - 1
        };
        let Some(entries) = table.get(first..=last) else {
            return Flow::Continue;
        };
        if walker.descent == Descent::AccessedTables && level == Level::PMD {
            // Skipping cold tables, the walk enters leaf tables here and
            // there rather than one after the other, and the CPU's
            // prefetchers, which start anew in every 4 KiB page, would bring
            // each in a few lines at a time, one table after the other. Ask
            // for the leaf tables this table will lead to, all at once. (A
            // walk of every table streams and needs no help.)
            self.prefetch_children(entries);
        }

        let shift = level.entry_shift();
        let idle = walker.idle_pattern(level);
        let cold = walker.cold_pattern(level);
        let mut index = first;
        let mut rest = entries;
        while let Some((entry, after)) = rest.split_first() {
            // `base` is aligned to the table's span and `index < 512`, so the
            // OR cannot carry into `base`'s bits.
            let gfn = Gfn(base.0 | (index as u64).wrapping_shl(shift));

            // Never pause before the first entry of a table: the first
            // entries on the way down from the root are always finished, so
            // every call makes progress whatever its budget, and a parent
            // entry whose A was just cleared is never left with the cursor
            // at its start, where the next call would find it whole and
            // cold and skip a table nobody has read.
            if index != first && self.stats.examined >= self.budget {
                return Flow::Pause;
            }

            let spte = Spte(entry.load(Ordering::Relaxed));

            // Fast paths: this entry starts a run of idle leaves, or of
            // table entries not to be entered, reported as one range.
            if let Some((kind, pattern)) = self.shortcut(spte, idle, cold, level, gfn) {
                let n = self.run(kind, pattern, after, level, gfn);
                // `get(n..)`, not `split_at_checked` (Rust 1.80): the
                // module must build with 6.12's minimum, Rust 1.78.
                let Some(after) = rest.get(n..) else {
                    return Flow::Continue;
                };
                index = index.wrapping_add(n);
                rest = after;
                continue;
            }

            self.stats.examined = self.stats.examined.wrapping_add(1);
            if self.entry(entry, spte, level, gfn, idle) == Flow::Pause {
                return Flow::Pause;
            }
            self.next = gfn.offset(level.entry_pages());
            index = index.wrapping_add(1);
            rest = after;
        }
        Flow::Continue
    }

    /// Starts loading the tables that the entries in `entries` (at level 2)
    /// point to and that the walk will probably enter: those whose A bit is
    /// set or not tracked. At most [`PREFETCH_TABLES`] of them, so that a
    /// table full of accessed entries does not flood the memory system with
    /// requests it cannot hold.
    fn prefetch_children(&self, entries: &[AtomicU64]) {
        let walker = self.walker;
        let Some(cold) = walker.cold_pattern(Level::PMD) else {
            return;
        };
        let mut budget = PREFETCH_TABLES;
        for entry in entries {
            let spte = Spte(entry.load(Ordering::Relaxed));
            if !spte.is_present() || spte.is_leaf(Level::PMD) || cold.matches(spte.0) {
                continue;
            }
            // SAFETY: `entries` belong to a table `enter` was given by
            // `tables`, and this one was just read present and not a leaf.
            if let Some(table) = unsafe { walker.tables.table(spte.addr(walker.root.phys_mask)) } {
                prefetch(table);
            }
            budget = budget.wrapping_sub(1);
            if budget == 0 {
                break;
            }
        }
    }

    /// Whether `spte`, the entry at `level` mapping from `gfn`, starts a
    /// fast-path run: it is an idle leaf, or (under
    /// [`Descent::AccessedTables`]) an unaccessed table entry wholly inside
    /// the range. Returns the run's kind and the pattern its entries match.
    #[inline(always)]
    fn shortcut(
        &self,
        spte: Spte,
        idle: Option<Pattern>,
        cold: Option<Pattern>,
        level: Level,
        gfn: Gfn,
    ) -> Option<(RunKind, Pattern)> {
        if let Some(pattern) = idle {
            if pattern.matches(spte.0) {
                return Some((RunKind::Idle, pattern));
            }
        }
        let pattern = cold?;
        // Only entries wholly inside the range may be skipped (see
        // `Descent::AccessedTables`).
        let span = GfnRange::new(gfn, gfn.offset(level.entry_pages()));
        let whole = self.range.start <= span.start && span.end <= self.range.end;
        (whole && pattern.matches(spte.0)).then_some((RunKind::Cold, pattern))
    }

    /// Reports a run of `kind`: the entry at `level` mapping from `gfn`,
    /// which matched `pattern`, and the entries at the start of `after` that
    /// match it too, as far as the budget (and, for a cold run, the range)
    /// allows. Returns the run's length in entries, at least 1.
    #[inline]
    fn run(
        &mut self,
        kind: RunKind,
        pattern: Pattern,
        after: &[AtomicU64],
        level: Level,
        gfn: Gfn,
    ) -> usize {
        let shift = level.entry_shift();
        // The first entry is paid for already; the budget may allow more.
        let mut limit = self
            .budget
            .saturating_sub(self.stats.examined)
            .saturating_sub(1);
        if kind == RunKind::Cold {
            // Only entries that end inside the range (`shortcut` checked the
            // first).
            let whole = self.range.end.0.saturating_sub(gfn.0).wrapping_shr(shift);
            limit = limit.min(whole.saturating_sub(1));
        }
        let n = run_len(after, pattern, limit).wrapping_add(1);

        let n64 = n as u64;
        let stats = &mut self.stats;
        stats.examined = stats.examined.wrapping_add(n64);
        if kind == RunKind::Idle {
            stats.leaves = stats.leaves.wrapping_add(n64);
            stats.idle = stats.idle.wrapping_add(n64);
        } else {
            stats.cold_tables = stats.cold_tables.wrapping_add(n64);
        }
        // At most 512 entries of `2^shift` pages from `gfn`, aligned: the
        // end stays inside the table's span, no overflow.
        let end = Gfn(gfn.0.wrapping_add(n64.wrapping_shl(shift)));
        self.report(kind, GfnRange::new(gfn, end));
        self.next = end;
        n
    }

    /// Handles the entry `entry` at `level` that maps the GFNs from `gfn`,
    /// just read as `spte`. `idle` is the level's idle-leaf pattern.
    #[inline(always)]
    fn entry(
        &mut self,
        entry: &AtomicU64,
        mut spte: Spte,
        level: Level,
        gfn: Gfn,
        idle: Option<Pattern>,
    ) -> Flow {
        let mut attempts: u32 = 0;
        // Each iteration judges one value of the entry. Only a failed
        // `compare_exchange` loops, with the value that beat it.
        loop {
            let may_write = attempts < MAX_CAS_ATTEMPTS;
            if !spte.is_present() {
                let kind = if spte.is_frozen(self.walker.root.bits) {
                    self.stats.frozen = self.stats.frozen.wrapping_add(1);
                    RunKind::Skipped(Skip::Frozen)
                } else {
                    RunKind::Hole
                };
                self.report_entry(kind, level, gfn);
                return Flow::Continue;
            }
            if spte.is_leaf(level) {
                match self.leaf(entry, spte, level, gfn, may_write, idle) {
                    Ok(()) => return Flow::Continue,
                    Err(now) => spte = now,
                }
            } else if spte.is_malformed_at(level) {
                self.stats.malformed = self.stats.malformed.wrapping_add(1);
                self.report_entry(RunKind::Skipped(Skip::Malformed), level, gfn);
                return Flow::Continue;
            } else {
                match self.table_entry(entry, spte, level, gfn, may_write) {
                    Ok(flow) => return flow,
                    Err(now) => spte = now,
                }
            }
            // A `compare_exchange` failed: count it and look again.
            self.stats.cas_retries = self.stats.cas_retries.wrapping_add(1);
            attempts = attempts.wrapping_add(1);
            if attempts == MAX_CAS_ATTEMPTS {
                self.stats.cas_gave_up = self.stats.cas_gave_up.wrapping_add(1);
            }
        }
    }

    /// Handles a present leaf. Returns the entry's new value if clearing
    /// its bits lost a race, so the caller can judge it again.
    #[inline(always)]
    fn leaf(
        &mut self,
        entry: &AtomicU64,
        spte: Spte,
        level: Level,
        gfn: Gfn,
        may_write: bool,
        idle: Option<Pattern>,
    ) -> Result<(), Spte> {
        let walker = self.walker;
        let format = walker.root.format;
        let Some(size) = level.leaf_size() else {
            // `Spte::is_leaf` is false above level 3; keep the compiler (and
            // the reader) sure that no 512 GiB leaf is ever reported.
            self.stats.malformed = self.stats.malformed.wrapping_add(1);
            self.report_entry(RunKind::Skipped(Skip::Malformed), level, gfn);
            return Ok(());
        };
        let bits = walker.root.bits;
        if !spte.tracks_accessed(bits) {
            self.stats.untracked = self.stats.untracked.wrapping_add(1);
            self.report_entry(RunKind::Skipped(Skip::Untracked), level, gfn);
            return Ok(());
        }

        if idle.is_some_and(|p| p.matches(spte.0)) {
            // Became idle while the walker tried to clear it: report it the
            // way idle leaves always are.
            self.stats.leaves = self.stats.leaves.wrapping_add(1);
            self.stats.idle = self.stats.idle.wrapping_add(1);
            self.report_entry(RunKind::Idle, level, gfn);
            return Ok(());
        }

        let accessed = spte.0 & format.accessed_mask() != 0;
        let dirty = spte.0 & format.dirty_mask() != 0;
        let mut clear = spte.0 & walker.clear_a;
        if spte.may_clear_dirty(bits) {
            clear |= spte.0 & walker.clear_d;
        }
        if clear != 0 && may_write {
            // Clear exactly the bits in `clear`, and only if nothing else
            // changed since the read: never `fetch_and`, which would also
            // "clear" bits of a value the walker has not judged (a frozen
            // entry, a new mapping).
            if let Err(now) = entry.compare_exchange(
                spte.0,
                spte.0 & !clear,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                return Err(Spte(now));
            }
        } else {
            clear = 0;
        }

        let cleared_accessed = clear & walker.clear_a != 0;
        let cleared_dirty = clear & walker.clear_d != 0;
        let stats = &mut self.stats;
        stats.leaves = stats.leaves.wrapping_add(1);
        stats.accessed = stats.accessed.wrapping_add(u64::from(accessed));
        stats.dirty = stats.dirty.wrapping_add(u64::from(dirty));
        stats.cleared_accessed = stats
            .cleared_accessed
            .wrapping_add(u64::from(cleared_accessed));
        stats.cleared_dirty = stats.cleared_dirty.wrapping_add(u64::from(cleared_dirty));

        self.flush_run();
        let size_mask = size.pages().wrapping_sub(1);
        self.visitor.leaf(Leaf {
            gfn,
            size,
            spte,
            pfn: spte.pfn(walker.root.phys_mask) & !size_mask,
            accessed,
            dirty,
            cleared_accessed,
            cleared_dirty,
        });
        Ok(())
    }

    /// Handles a present entry that points to a table: tests (and clears)
    /// its A under [`Descent::AccessedTables`], then enters the table or
    /// reports it cold. Returns the entry's new value if clearing lost a
    /// race.
    fn table_entry(
        &mut self,
        entry: &AtomicU64,
        spte: Spte,
        level: Level,
        gfn: Gfn,
        may_write: bool,
    ) -> Result<Flow, Spte> {
        let walker = self.walker;
        let Some(child) = level.child() else {
            // Level-1 entries are always leaves; unreachable in practice.
            self.stats.malformed = self.stats.malformed.wrapping_add(1);
            self.report_entry(RunKind::Skipped(Skip::Malformed), level, gfn);
            return Ok(Flow::Continue);
        };
        let span = GfnRange::new(gfn, gfn.offset(level.entry_pages()));

        let whole = self.range.start <= span.start && span.end <= self.range.end;
        if walker.descent == Descent::AccessedTables
            && whole
            && spte.tracks_accessed(walker.root.bits)
        {
            let a = walker.root.format.accessed_mask();
            if spte.0 & a == 0 {
                self.stats.cold_tables = self.stats.cold_tables.wrapping_add(1);
                self.report(RunKind::Cold, span);
                return Ok(Flow::Continue);
            }
            if walker.clear_a != 0 && may_write {
                // Same rule as for leaves: one exchange of the whole entry.
                // The A is cleared before the table is read, so an access
                // during the walk sets it again and the next pass enters.
                if let Err(now) = entry.compare_exchange(
                    spte.0,
                    spte.0 & !a,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    return Err(Spte(now));
                }
                self.stats.cleared_tables = self.stats.cleared_tables.wrapping_add(1);
            }
        }

        // Like KVM's `spte_to_child_pt`: the entry just read names the table;
        // a table unlinked since stays alive under RCU until the caller lets
        // go, so reading it is safe even if it is no longer current.
        // SAFETY: `spte` was read from `entry`, an entry of a table `enter`
        // got from `tables` (table_entry is called only for those), and is
        // present and not a leaf (the caller checked).
        Ok(unsafe { self.enter(spte.addr(walker.root.phys_mask), child, gfn) })
    }

    /// Reports the frames of the entry at `level` mapping from `gfn` as
    /// `kind`.
    #[inline]
    fn report_entry(&mut self, kind: RunKind, level: Level, gfn: Gfn) {
        let span = GfnRange::new(gfn, gfn.offset(level.entry_pages()));
        self.report(kind, span);
    }

    /// Adds `span`, clipped to what this call has not reported yet, to the
    /// pending run, reporting the run first if it cannot be extended.
    #[inline]
    fn report(&mut self, kind: RunKind, span: GfnRange) {
        let clip = GfnRange::new(self.next, self.range.end);
        let span = span.intersect(&clip);
        if span.is_empty() {
            return;
        }
        if let Some(run) = &mut self.run {
            if run.kind == kind && run.range.end == span.start {
                run.range.end = span.end;
                return;
            }
        }
        self.flush_run();
        self.run = Some(Run { kind, range: span });
    }

    /// Hands the pending run, if any, to the visitor.
    #[inline]
    fn flush_run(&mut self) {
        // Not `Option::take`, which would store `None` on every leaf.
        if let Some(run) = self.run {
            self.run = None;
            match run.kind {
                RunKind::Hole => self.visitor.hole(run.range),
                RunKind::Idle => self.visitor.idle(run.range),
                RunKind::Cold => self.visitor.cold(run.range),
                RunKind::Skipped(why) => self.visitor.skipped(run.range, why),
            }
        }
    }
}

/// Counts the entries at the start of `entries` that match `pattern`,
/// reading at most `limit` of them.
///
/// This is the walker's hot loop in a mostly idle guest. Entries are tested
/// eight at a time, by OR-ing `(entry & mask) ^ value`, which is zero only if
/// all eight match, with no per-entry bookkeeping: the loop keeps up with the
/// table bytes arriving from memory. Every entry is still read with its own
/// relaxed atomic load, as everywhere else.
#[inline]
fn run_len(entries: &[AtomicU64], pattern: Pattern, limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let entries = entries.get(..limit.min(entries.len())).unwrap_or(&[]);
    let matches = |e: &AtomicU64| pattern.matches(e.load(Ordering::Relaxed));
    let mut n: usize = 0;
    for chunk in entries.chunks_exact(8) {
        let miss = chunk.iter().fold(0, |acc, e| {
            acc | ((e.load(Ordering::Relaxed) & pattern.mask) ^ pattern.value)
        });
        if miss != 0 {
            break;
        }
        n = n.wrapping_add(8);
    }
    // The chunk that missed, or the last few: one at a time.
    let rest = entries.get(n..).unwrap_or(&[]);
    n.wrapping_add(rest.iter().take_while(|e| matches(e)).count())
}

/// How many leaf tables [`Pass::prefetch_children`] asks for at once: 8
/// tables of 64 lines, about the misses a core keeps in flight.
const PREFETCH_TABLES: u32 = 8;

/// Asks the CPU to start loading every cache line of `entries` now. A hint
/// only: a no-op where there is no prefetch instruction to give it with.
fn prefetch(entries: &[AtomicU64]) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = entries;
    #[cfg(target_arch = "x86_64")]
    for line in entries.iter().step_by(8) {
        // SAFETY: `prefetcht0` only hints the cache: it never faults, reads
        // nothing into registers and writes nothing, whatever the address.
        unsafe {
            core::arch::asm!(
                "prefetcht0 [{0}]",
                in(reg) line.as_ptr(),
                options(nostack, readonly, preserves_flags)
            );
        }
    }
}
