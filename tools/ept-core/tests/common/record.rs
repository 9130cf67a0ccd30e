// SPDX-License-Identifier: GPL-2.0

//! A visitor that writes down everything, and helpers to compare the record.

use ept_core::ept_walk::{GfnRange, Leaf, Skip, Visitor};

/// One visitor call, in plain numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A present leaf: first GFN, pages, host frame, A, D, cleared A,
    /// cleared D.
    Leaf {
        gfn: u64,
        pages: u64,
        pfn: u64,
        a: bool,
        d: bool,
        ca: bool,
        cd: bool,
    },
    /// Unmapped `start..end`.
    Hole(u64, u64),
    /// Mapped, idle: `start..end`.
    Idle(u64, u64),
    /// Not entered, not accessed: `start..end`.
    Cold(u64, u64),
    /// Not judged: `start..end`, why.
    Skipped(u64, u64, Skip),
}

impl Event {
    /// The GFNs the event covers (a leaf's whole page).
    pub fn span(&self) -> (u64, u64) {
        match *self {
            Event::Leaf { gfn, pages, .. } => (gfn, gfn + pages),
            Event::Hole(s, e) | Event::Idle(s, e) | Event::Cold(s, e) | Event::Skipped(s, e, _) => {
                (s, e)
            }
        }
    }

    /// Same kind of range event (for merging); leaves never merge.
    fn mergeable_with(&self, next: &Event) -> bool {
        match (*self, *next) {
            (Event::Hole(_, e), Event::Hole(s, _)) => e == s,
            (Event::Idle(_, e), Event::Idle(s, _)) => e == s,
            (Event::Cold(_, e), Event::Cold(s, _)) => e == s,
            (Event::Skipped(_, e, w1), Event::Skipped(s, _, w2)) => e == s && w1 == w2,
            _ => false,
        }
    }

    fn with_end(self, end: u64) -> Event {
        match self {
            Event::Hole(s, _) => Event::Hole(s, end),
            Event::Idle(s, _) => Event::Idle(s, end),
            Event::Cold(s, _) => Event::Cold(s, end),
            Event::Skipped(s, _, w) => Event::Skipped(s, end, w),
            leaf => leaf,
        }
    }
}

/// Merges adjacent range events of the same kind.
pub fn coalesce(events: &[Event]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    for ev in events {
        if let Some(last) = out.last_mut() {
            if last.mergeable_with(ev) {
                *last = last.with_end(ev.span().1);
                continue;
            }
        }
        out.push(*ev);
    }
    out
}

/// Records every call, and the full entries of leaves.
#[derive(Default, Debug)]
pub struct Recorder {
    pub events: Vec<Event>,
    /// `Leaf::spte` of each leaf event, in order.
    pub sptes: Vec<u64>,
}

impl Visitor for Recorder {
    fn leaf(&mut self, leaf: Leaf) {
        self.events.push(Event::Leaf {
            gfn: leaf.gfn.0,
            pages: leaf.size.pages(),
            pfn: leaf.pfn,
            a: leaf.accessed,
            d: leaf.dirty,
            ca: leaf.cleared_accessed,
            cd: leaf.cleared_dirty,
        });
        self.sptes.push(leaf.spte.0);
    }
    fn hole(&mut self, r: GfnRange) {
        self.events.push(Event::Hole(r.start.0, r.end.0));
    }
    fn idle(&mut self, r: GfnRange) {
        self.events.push(Event::Idle(r.start.0, r.end.0));
    }
    fn cold(&mut self, r: GfnRange) {
        self.events.push(Event::Cold(r.start.0, r.end.0));
    }
    fn skipped(&mut self, r: GfnRange, why: Skip) {
        self.events.push(Event::Skipped(r.start.0, r.end.0, why));
    }
}
