//! Pure helpers of `page-idle`: decoding /proc/PID/pagemap and
//! /proc/kpageflags, batching PFNs into page_idle bitmap words, and counting
//! results per category of guest page.

use serde::Serialize;

use crate::range::{Range, PAGE_SIZE};
use crate::truth::Truth;

/// /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h).
pub const KPF_LRU: u64 = 1 << 5;
pub const KPF_COMPOUND_HEAD: u64 = 1 << 15;
pub const KPF_COMPOUND_TAIL: u64 = 1 << 16;
pub const KPF_HUGE: u64 = 1 << 17;
pub const KPF_THP: u64 = 1 << 22;

/// A decoded /proc/PID/pagemap entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagemapEntry {
    pub present: bool,
    pub swapped: bool,
    /// Page frame number (0 without CAP_SYS_ADMIN).
    pub pfn: u64,
}

/// Decodes a pagemap entry: bit 63 present, bit 62 swapped, bits 0-54 PFN.
pub fn pagemap_entry(e: u64) -> PagemapEntry {
    let present = e >> 63 & 1 == 1;
    PagemapEntry {
        present,
        swapped: e >> 62 & 1 == 1,
        pfn: if present { e & ((1 << 55) - 1) } else { 0 },
    }
}

/// Groups PFNs into page_idle bitmap words (64 PFNs per u64 word, word `w`
/// at byte offset `8 * w`), merging consecutive words into runs so each run
/// is one pread/pwrite: `(first word index, masks)`.
pub fn bitmap_runs(pfns: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u64>)> {
    let mut words: Vec<(u64, u64)> = pfns
        .into_iter()
        .map(|p| (p / 64, 1u64 << (p % 64)))
        .collect();
    words.sort_unstable();
    let mut runs: Vec<(u64, Vec<u64>)> = Vec::new();
    for (w, bit) in words {
        match runs.last_mut() {
            Some((first, masks)) if *first + masks.len() as u64 - 1 == w => {
                *masks.last_mut().unwrap() |= bit;
            }
            Some((first, masks)) if *first + masks.len() as u64 == w => masks.push(bit),
            _ => runs.push((w, vec![bit])),
        }
    }
    runs
}

/// What testvm does with a guest page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Own,
    Written,
    Read,
    Untouched,
    /// Untouched, but in the same folio (e.g. a THP) as an own, written or
    /// read page: the kernel tracks folios, so its state is that folio's.
    UntouchedShared,
}

/// Category of every guest page, indexed by GPA / 4 KiB.
pub fn categorize(t: &Truth) -> Vec<Category> {
    let n = (t.mem_bytes / PAGE_SIZE) as usize;
    let mut v = vec![Category::Untouched; n];
    let mut mark = |r: Range, c: Category| {
        let first = (r.gpa / PAGE_SIZE) as usize;
        let last = (r.end().div_ceil(PAGE_SIZE) as usize).min(n);
        for x in v.iter_mut().take(last).skip(first) {
            *x = c;
        }
    };
    for r in &t.read {
        mark(*r, Category::Read);
    }
    for r in &t.written {
        mark(*r, Category::Written);
    }
    for r in &t.own {
        mark(r.range(), Category::Own);
    }
    v
}

/// Turns untouched pages that share a tracking PFN (folio head) with a
/// touched page into [`Category::UntouchedShared`].
pub fn mark_shared(cats: &mut [Category], track: &[Option<u64>]) {
    let touched: std::collections::HashSet<u64> = cats
        .iter()
        .zip(track)
        .filter(|(c, _)| !matches!(c, Category::Untouched | Category::UntouchedShared))
        .filter_map(|(_, t)| *t)
        .collect();
    for (c, t) in cats.iter_mut().zip(track) {
        if *c == Category::Untouched && t.is_some_and(|t| touched.contains(&t)) {
            *c = Category::UntouchedShared;
        }
    }
}

/// Result of one guest page after mark-idle, wait, read-back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    /// Not present in the VMM's page tables (never faulted in on the host).
    NotPresent,
    /// Present, but page_idle cannot track it, so it is counted neither young
    /// nor idle: its folio was not on the LRU at mark or read time (the kernel
    /// reads such pages back as young whatever happened: fresh pages still in
    /// a per-CPU LRU batch, the zero page, hugetlb pages), or its PFN lies in
    /// the bitmap's last, partial 64-PFN word below max_pfn, which the kernel
    /// marks but never returns on read.
    Untrackable,
    Young,
    Idle,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pages: u64,
    pub young: u64,
    pub idle: u64,
    pub untrackable: u64,
    pub not_present: u64,
}

impl Counts {
    pub fn add(&mut self, s: PageState) {
        self.pages += 1;
        match s {
            PageState::NotPresent => self.not_present += 1,
            PageState::Untrackable => self.untrackable += 1,
            PageState::Young => self.young += 1,
            PageState::Idle => self.idle += 1,
        }
    }
}

/// Per-category counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub written: Counts,
    pub read: Counts,
    pub own: Counts,
    pub untouched: Counts,
    pub untouched_shared: Counts,
}

pub fn summarize(cats: &[Category], states: &[PageState]) -> Summary {
    let mut s = Summary::default();
    for (c, st) in cats.iter().zip(states) {
        match c {
            Category::Written => s.written.add(*st),
            Category::Read => s.read.add(*st),
            Category::Own => s.own.add(*st),
            Category::Untouched => s.untouched.add(*st),
            Category::UntouchedShared => s.untouched_shared.add(*st),
        }
    }
    s
}

/// GPA ranges of the pages whose state satisfies `f`, merged.
pub fn ranges_where(states: &[PageState], f: impl Fn(PageState) -> bool) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for (i, s) in states.iter().enumerate() {
        if !f(*s) {
            continue;
        }
        let gpa = i as u64 * PAGE_SIZE;
        match out.last_mut() {
            Some(r) if r.end() == gpa => r.len += PAGE_SIZE,
            _ => out.push(Range::new(gpa, PAGE_SIZE)),
        }
    }
    out
}
