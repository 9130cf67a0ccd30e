//! Sizes, guest-physical ranges and the validation of a workload before any
//! VM exists.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::layout::{MAX_MEM, MAX_RANGES_PER_TABLE, MAX_VCPUS, RESERVED_END};

/// Guest page size the workload touches: one access per 4 KiB page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a huge page (THP and hugetlb backings, guest identity map leaves).
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

/// Parses a size: a decimal or `0x` hexadecimal number, optionally followed
/// by a binary unit `K`, `M` or `G` (case-insensitive, `KiB`/`KB` also
/// accepted). `16M` is 16 MiB, `4096` is 4096 bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty size".into());
    }
    let lower = t.to_ascii_lowercase();
    // Optional "iB"/"B" after a unit letter: 16MiB, 16MB, 16M.
    let unit_end = |x: &str| x.ends_with(['k', 'm', 'g']);
    let body = match lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')) {
        Some(b) if unit_end(b) => b,
        _ => lower.as_str(),
    };
    let (num, mult) = match body.as_bytes().last() {
        Some(b'k') => (&body[..body.len() - 1], 1u64 << 10),
        Some(b'm') => (&body[..body.len() - 1], 1u64 << 20),
        Some(b'g') => (&body[..body.len() - 1], 1u64 << 30),
        _ => (body, 1),
    };
    let num = num.trim();
    let value = if let Some(hex) = num.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        num.parse::<u64>()
    }
    .map_err(|_| format!("bad size {s:?}: expected a number with optional K/M/G suffix"))?;
    value
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} overflows 64 bits"))
}

/// Formats a byte count with the largest exact binary unit (`16M`, `4K`, `12345`).
pub fn fmt_size(v: u64) -> String {
    if v != 0 && v % (1 << 30) == 0 {
        format!("{}G", v >> 30)
    } else if v != 0 && v % (1 << 20) == 0 {
        format!("{}M", v >> 20)
    } else if v != 0 && v % (1 << 10) == 0 {
        format!("{}K", v >> 10)
    } else {
        v.to_string()
    }
}

/// A guest-physical byte range `[gpa, gpa + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Range {
    /// First guest-physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Range {
    pub fn new(gpa: u64, len: u64) -> Self {
        Range { gpa, len }
    }
    /// One past the last byte (saturating, validation rejects overflow).
    pub fn end(&self) -> u64 {
        self.gpa.saturating_add(self.len)
    }
    pub fn pages(&self) -> u64 {
        self.len / PAGE_SIZE
    }
    pub fn overlaps(&self, o: &Range) -> bool {
        self.gpa < o.end() && o.gpa < self.end()
    }
    pub fn contains(&self, gpa: u64) -> bool {
        gpa >= self.gpa && gpa < self.end()
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x}+{} [{:#x}, {:#x})",
            self.gpa,
            fmt_size(self.len),
            self.gpa,
            self.end()
        )
    }
}

/// Parses `GPA+LEN`, both parts in [`parse_size`] syntax: `16M+8M`, `0x100000+64K`.
pub fn parse_range(s: &str) -> Result<Range, String> {
    let (a, b) = s
        .split_once('+')
        .ok_or_else(|| format!("bad range {s:?}: expected GPA+LEN, e.g. 16M+8M"))?;
    let gpa = parse_size(a).map_err(|e| format!("bad range {s:?}: start: {e}"))?;
    let len = parse_size(b).map_err(|e| format!("bad range {s:?}: length: {e}"))?;
    Ok(Range { gpa, len })
}

/// What the guest does to every page of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Write,
    Read,
}

/// Guest memory backing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    /// Anonymous memory in 4 KiB pages (MADV_NOHUGEPAGE).
    Anon,
    /// Anonymous memory, 2 MiB aligned, MADV_HUGEPAGE (transparent huge pages).
    Thp,
    /// MAP_HUGETLB with 2 MiB pages (needs /proc/sys/vm/nr_hugepages reserved).
    Hugetlb,
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backing::Anon => "anon",
            Backing::Thp => "thp",
            Backing::Hugetlb => "hugetlb",
        })
    }
}

/// The workload as validated: everything that decides guest memory contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub mem: u64,
    pub vcpus: u32,
    pub write: Vec<Range>,
    pub read: Vec<Range>,
    /// Write ranges of the second phase (`--then-write`), if any.
    pub then_write: Option<Vec<Range>>,
}

impl Workload {
    /// Range table contents of a phase: (range, access) in command-line order,
    /// writes first.
    pub fn phase_ranges(&self, phase: usize) -> Vec<(Range, Access)> {
        let writes = match phase {
            0 => &self.write,
            _ => self
                .then_write
                .as_ref()
                .expect("phase 1 without --then-write"),
        };
        writes
            .iter()
            .map(|r| (*r, Access::Write))
            .chain(self.read.iter().map(|r| (*r, Access::Read)))
            .collect()
    }
    pub fn phases(&self) -> usize {
        if self.then_write.is_some() {
            2
        } else {
            1
        }
    }
}

fn check_range(what: &str, r: &Range, mem: u64) -> Result<(), String> {
    if r.len == 0 {
        return Err(format!("{what} {r}: zero size"));
    }
    if r.gpa % PAGE_SIZE != 0 || r.len % PAGE_SIZE != 0 {
        return Err(format!(
            "{what} {r}: start and length must be multiples of 4K"
        ));
    }
    let end = r
        .gpa
        .checked_add(r.len)
        .ok_or_else(|| format!("{what} {r}: end overflows 64 bits"))?;
    if end > mem {
        return Err(format!(
            "{what} {r}: outside guest memory [0, {:#x}) (--mem {})",
            mem,
            fmt_size(mem)
        ));
    }
    if r.gpa < RESERVED_END {
        return Err(format!(
            "{what} {r}: overlaps testvm's own region [0, {:#x}) (code, stack, page tables, range tables); start at {} or above",
            RESERVED_END,
            fmt_size(RESERVED_END)
        ));
    }
    Ok(())
}

fn check_disjoint(ranges: &[(&str, Range)]) -> Result<(), String> {
    for (i, (wa, a)) in ranges.iter().enumerate() {
        for (wb, b) in &ranges[i + 1..] {
            if a.overlaps(b) {
                return Err(format!("{wa} {a} overlaps {wb} {b}"));
            }
        }
    }
    Ok(())
}

/// Validates a workload. Every rule is checked here, before any VM or guest
/// memory is created:
/// - `mem` is a non-zero multiple of 2 MiB, larger than the reserved low
///   region and at most [`MAX_MEM`];
/// - `vcpus` is in `1..=MAX_VCPUS`;
/// - every range has a non-zero length, 4 KiB aligned start and length, lies
///   inside guest memory and outside the reserved region `[0, RESERVED_END)`;
/// - within a phase (`--write` + `--read`, and `--then-write` + `--read`) no
///   two ranges overlap (a `--then-write` range may overlap a `--write` one);
/// - a phase has at most [`MAX_RANGES_PER_TABLE`] ranges.
pub fn validate(w: &Workload) -> Result<(), String> {
    if w.mem == 0 || w.mem % HUGE_PAGE_SIZE != 0 {
        return Err(format!(
            "--mem {}: must be a non-zero multiple of 2M",
            fmt_size(w.mem)
        ));
    }
    if w.mem <= RESERVED_END {
        return Err(format!(
            "--mem {}: must be larger than testvm's own region ({})",
            fmt_size(w.mem),
            fmt_size(RESERVED_END)
        ));
    }
    if w.mem > MAX_MEM {
        return Err(format!(
            "--mem {}: at most {} supported",
            fmt_size(w.mem),
            fmt_size(MAX_MEM)
        ));
    }
    if w.vcpus == 0 || w.vcpus > MAX_VCPUS {
        return Err(format!("--vcpus {}: must be 1..={MAX_VCPUS}", w.vcpus));
    }
    for r in &w.write {
        check_range("--write", r, w.mem)?;
    }
    for r in &w.read {
        check_range("--read", r, w.mem)?;
    }
    if let Some(t) = &w.then_write {
        for r in t {
            check_range("--then-write", r, w.mem)?;
        }
    }
    let tagged = |v: &[Range], what: &'static str| -> Vec<(&'static str, Range)> {
        v.iter().map(|r| (what, *r)).collect()
    };
    let mut p0 = tagged(&w.write, "--write");
    p0.extend(tagged(&w.read, "--read"));
    check_disjoint(&p0)?;
    if p0.len() > MAX_RANGES_PER_TABLE {
        return Err(format!(
            "{} ranges given, at most {MAX_RANGES_PER_TABLE} per phase",
            p0.len()
        ));
    }
    if let Some(t) = &w.then_write {
        let mut p1 = tagged(t, "--then-write");
        p1.extend(tagged(&w.read, "--read"));
        check_disjoint(&p1)?;
        if p1.len() > MAX_RANGES_PER_TABLE {
            return Err(format!(
                "{} ranges given for the second phase, at most {MAX_RANGES_PER_TABLE}",
                p1.len()
            ));
        }
    }
    Ok(())
}

/// Sorts and merges ranges that overlap or touch.
pub fn merge(ranges: &[Range]) -> Vec<Range> {
    let mut v: Vec<Range> = ranges.iter().copied().filter(|r| r.len > 0).collect();
    v.sort();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        if let Some(last) = out.last_mut() {
            if r.gpa <= last.end() {
                let end = last.end().max(r.end());
                last.len = end - last.gpa;
                continue;
            }
        }
        out.push(r);
    }
    out
}
