// SPDX-License-Identifier: GPL-2.0

//! An arena of synthetic 4 KiB tables, reachable by made-up physical
//! addresses: the userspace stand-in for the kernel's direct map.
//!
//! Shared by the tests and the benchmark (`benches/walk.rs` includes this
//! file with `#[path]`), so it depends on nothing but `std` and `ept_core`.

use std::sync::atomic::{AtomicU64, Ordering};

use ept_core::ept_walk::{Table, Tables};

/// Physical address of table 0. Inside a 46-bit physical mask, and not 0, so
/// that a zero entry never points at a table.
pub const ARENA_BASE: u64 = 0x0000_1000_0000_0000;

/// Tables, table `i` at physical address `ARENA_BASE + i * 4096`.
#[derive(Default)]
pub struct Arena {
    tables: Vec<Box<Table>>,
}

impl Arena {
    /// An empty arena.
    pub fn new() -> Arena {
        Arena::default()
    }

    /// An empty arena with room for `n` tables.
    pub fn with_capacity(n: usize) -> Arena {
        Arena {
            tables: Vec::with_capacity(n),
        }
    }

    /// Adds a table whose entries are all `fill`; returns its id.
    pub fn alloc(&mut self, fill: u64) -> usize {
        self.tables
            .push(Box::new(std::array::from_fn(|_| AtomicU64::new(fill))));
        self.tables.len() - 1
    }

    /// Physical address of table `id`.
    pub fn pa(id: usize) -> u64 {
        ARENA_BASE + (id as u64) * 4096
    }

    /// Number of tables.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Table `id`.
    pub fn get(&self, id: usize) -> &Table {
        &self.tables[id]
    }

    /// Entry `index` of table `id`.
    pub fn load(&self, id: usize, index: usize) -> u64 {
        self.tables[id][index].load(Ordering::Relaxed)
    }

    /// Sets entry `index` of table `id`.
    pub fn store(&self, id: usize, index: usize, value: u64) {
        self.tables[id][index].store(value, Ordering::Relaxed)
    }

    /// Every entry of every table, in id order.
    pub fn snapshot(&self) -> Vec<[u64; 512]> {
        self.tables
            .iter()
            .map(|t| std::array::from_fn(|i| t[i].load(Ordering::Relaxed)))
            .collect()
    }
}

impl Tables for Arena {
    /// Checks every address against the arena's own tables: no caller
    /// promise is relied on, so walkers over an arena are sound whatever
    /// their root (the tests walk dangling roots on purpose).
    unsafe fn table(&self, pa: u64) -> Option<&Table> {
        if pa < ARENA_BASE || pa % 4096 != 0 {
            return None;
        }
        let id = usize::try_from((pa - ARENA_BASE) / 4096).ok()?;
        self.tables.get(id).map(|t| &**t)
    }
}
