// SPDX-License-Identifier: GPL-2.0

//! The walker racing a thread that behaves like the CPU and KVM: setting A
//! and D with locked ORs, changing other bits with `compare_exchange`,
//! freezing entries and unfreezing them. Whatever the interleaving, the
//! walker may change only A and D bits and must never write a frozen entry.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::arena::Arena;
use common::raw::*;
use common::record::{Event, Recorder};
use ept_core::ept_walk::{Descent, Format, Gfn, GfnRange, Mode, Root, Skip, Stats, Stop, Walker};

/// xorshift64*: a tiny deterministic generator for the racing thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A software bit KVM may change under `mmu_lock` held for read (EPT bit 10
/// is ignored by hardware; NPT bit 10 is available to software).
const SOFT: u64 = 1 << 10;

fn race(f: Format, l: Layout, descent: Descent) {
    let frozen = l.frozen();
    // Root -> L3 -> L2 -> two L1 tables of 512 leaves each.
    let mut arena = Arena::new();
    let root = arena.alloc(NONPRESENT);
    let l3 = arena.alloc(NONPRESENT);
    let l2 = arena.alloc(NONPRESENT);
    let l1 = [arena.alloc(NONPRESENT), arena.alloc(NONPRESENT)];
    arena.store(root, 0, table(f, Arena::pa(l3), true));
    arena.store(l3, 0, table(f, Arena::pa(l2), true));
    for (i, t) in l1.iter().enumerate() {
        arena.store(l2, i, table(f, Arena::pa(*t), true));
        for j in 0..512 {
            // Host-writable, as KVM maps guest RAM: on 7.3 EPT, bit 53.
            arena.store(
                *t,
                j,
                leaf(f, 1, (i * 512 + j) as u64, j % 2 == 0, j % 3 == 0) | l.host_writable(f),
            );
        }
    }
    let original = arena.snapshot();
    let arena = Arc::new(arena);
    let stop = Arc::new(AtomicBool::new(false));

    let racer = {
        let arena = Arc::clone(&arena);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut flips = vec![[0u32; 512]; 2];
            let deadline = Instant::now() + Duration::from_millis(700);
            let ad = a_bit(f) | d_bit(f);
            let mut unfreeze_failures = 0u64;
            let mut ops = 0u64;
            while ops % 1024 != 0 || Instant::now() < deadline {
                ops += 1;
                let r = rng.next();
                let t = (r & 1) as usize;
                // Half the operations hammer eight entries, so that the
                // walker's exchanges do lose races.
                let i = if r & (1 << 40) != 0 {
                    ((r >> 1) & 7) as usize
                } else {
                    ((r >> 1) & 511) as usize
                };
                let entry = &arena.get(l1[t])[i];
                match (r >> 20) % 8 {
                    // The CPU: a locked OR of A (and D for a write) in the
                    // leaf, after A in each table entry on the way.
                    0..=4 => {
                        let bits = if r & (1 << 30) != 0 { ad } else { a_bit(f) };
                        let cur = entry.load(Ordering::Relaxed);
                        if cur != frozen {
                            for (id, idx) in [(root, 0), (l3, 0), (l2, t)] {
                                arena.get(id)[idx].fetch_or(a_bit(f), Ordering::Relaxed);
                            }
                            entry.fetch_or(bits, Ordering::Relaxed);
                        }
                    }
                    // KVM changing a software bit with cmpxchg.
                    5 | 6 => loop {
                        let cur = entry.load(Ordering::Relaxed);
                        if cur == frozen {
                            break;
                        }
                        if entry
                            .compare_exchange(cur, cur ^ SOFT, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                        {
                            flips[t][i] += 1;
                            break;
                        }
                    },
                    // KVM freezing an entry, working, and restoring it.
                    _ => {
                        let cur = entry.load(Ordering::Relaxed);
                        if cur != frozen
                            && entry
                                .compare_exchange(cur, frozen, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok()
                        {
                            for _ in 0..50 {
                                std::hint::spin_loop();
                            }
                            if entry
                                .compare_exchange(frozen, cur, Ordering::Relaxed, Ordering::Relaxed)
                                .is_err()
                            {
                                unfreeze_failures += 1;
                                entry.store(cur, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            (flips, unfreeze_failures)
        })
    };

    let root = Root::new(Arena::pa(root), 4, f, l.bits(), PHYS_MASK).unwrap();
    // SAFETY: the arena checks every address it is asked for.
    let walker = unsafe { Walker::new(&*arena, root, Mode::ClearAccessedDirty, descent) };
    let mut total = Stats::default();
    let mut passes = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut rec = Recorder::default();
        let out = walker.walk(GfnRange::ALL, u64::MAX, &mut rec);
        assert_eq!(out.stop, Stop::Done);
        // Every pass accounts for each of the 1024 pages exactly once, as a
        // leaf, idle, cold or frozen, however many exchanges it lost.
        let mut seen = vec![0u8; 1024];
        for ev in &rec.events {
            match *ev {
                Event::Leaf { gfn, pages: 1, .. } => seen[gfn as usize] += 1,
                // Cold: a table whose parent's A was clear (the racer had
                // not touched it since the last pass).
                Event::Skipped(s, e, Skip::Frozen) | Event::Cold(s, e) | Event::Idle(s, e) => {
                    for g in s..e.min(1024) {
                        seen[g as usize] += 1;
                    }
                }
                Event::Hole(s, _) => assert!(s >= 1024, "hole inside the mapped pages: {ev:?}"),
                _ => panic!("unexpected {ev:?}"),
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "a page was missed or repeated"
        );
        total.accumulate(&out.stats);
        passes += 1;
    }
    let (flips, unfreeze_failures) = racer.join().unwrap();

    assert_eq!(unfreeze_failures, 0, "the walker wrote a frozen entry");
    let ad = a_bit(f) | d_bit(f);
    let after = arena.snapshot();
    for t in 0..2 {
        for i in 0..512 {
            let mut want = original[l1[t]][i];
            if flips[t][i] % 2 == 1 {
                want ^= SOFT;
            }
            assert_eq!(
                after[l1[t]][i] & !ad,
                want & !ad,
                "{f:?} {l:?}: entry {t}/{i} changed outside A/D"
            );
        }
    }
    eprintln!(
        "{f:?} {l:?} {descent:?}: {passes} passes, {} leaves cleared, {} cmpxchg retries, {} given up, {} frozen seen",
        total.cleared_accessed, total.cas_retries, total.cas_gave_up, total.frozen
    );
    assert!(passes > 0);
}

#[test]
fn racing_cpu_and_kvm_ept() {
    for l in Layout::ALL {
        race(Format::Ept, l, Descent::EveryTable);
    }
}

#[test]
fn racing_cpu_and_kvm_npt_accessed_tables() {
    for l in Layout::ALL {
        race(Format::Npt, l, Descent::AccessedTables);
    }
}

/// One leaf under constant change (A and D set, a software bit flipped, as
/// fast as a thread can), walked over and over: most exchanges race, and
/// every pass must still report the leaf exactly once and leave the
/// software bit as the racer left it.
#[test]
fn lost_exchanges_are_retried() {
    for l in Layout::ALL {
        lost_exchanges(l);
    }
}

fn lost_exchanges(l: Layout) {
    let f = Format::Ept;
    let mut arena = Arena::new();
    let ids: Vec<usize> = (0..4).map(|_| arena.alloc(NONPRESENT)).collect();
    for w in ids.windows(2) {
        arena.store(w[0], 0, table(f, Arena::pa(w[1]), true));
    }
    let original = leaf(f, 1, 0x42, true, true) | l.host_writable(f);
    arena.store(ids[3], 0, original);
    let arena = Arc::new(arena);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let arena = Arc::clone(&arena);
        let stop = Arc::clone(&stop);
        let leaf_table = ids[3];
        thread::spawn(move || {
            let entry = &arena.get(leaf_table)[0];
            let deadline = Instant::now() + Duration::from_millis(300);
            let mut flips = 0u64;
            while flips % 1024 != 0 || Instant::now() < deadline {
                entry.fetch_or(a_bit(f) | d_bit(f), Ordering::Relaxed);
                entry.fetch_xor(SOFT, Ordering::Relaxed);
                flips += 1;
            }
            stop.store(true, Ordering::Relaxed);
            flips
        })
    };
    let root = Root::new(Arena::pa(ids[0]), 4, f, l.bits(), PHYS_MASK).unwrap();
    // SAFETY: the arena checks every address it is asked for.
    let walker =
        unsafe { Walker::new(&*arena, root, Mode::ClearAccessedDirty, Descent::EveryTable) };
    let mut total = Stats::default();
    while !stop.load(Ordering::Relaxed) {
        let mut rec = Recorder::default();
        let out = walker.walk(GfnRange::new(Gfn(0), Gfn(1)), u64::MAX, &mut rec);
        total.accumulate(&out.stats);
        // The leaf, whether the racer had set its A/D bits again or not.
        assert_eq!(rec.events.len(), 1, "{:?}", rec.events);
        assert!(matches!(
            rec.events[0],
            Event::Leaf {
                gfn: 0,
                pages: 1,
                pfn: 0x42,
                ..
            } | Event::Idle(0, 1)
        ));
    }
    let flips = racer.join().unwrap();
    let ad = a_bit(f) | d_bit(f);
    let mut want = original;
    if flips % 2 == 1 {
        want ^= SOFT;
    }
    assert_eq!(arena.load(ids[3], 0) & !ad, want & !ad);
    eprintln!(
        "{l:?} one hot leaf: {} passes, {} cmpxchg retries, {} given up",
        total.leaves, total.cas_retries, total.cas_gave_up
    );
}
