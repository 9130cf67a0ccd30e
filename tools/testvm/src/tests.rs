//! Unit tests: argument parsing and validation, guest layout and page tables
//! (checked against expectations computed independently of the code under
//! test), guest code, truth file shape, page-idle helpers.

use clap::Parser;
use std::collections::HashMap;

use crate::cli::Cli;
use crate::guest;
use crate::idle::*;
use crate::layout::*;
use crate::range::*;
use crate::truth::*;

const K: u64 = 1024;
const M: u64 = 1024 * 1024;
const G: u64 = 1024 * 1024 * 1024;

// ---------------------------------------------------------------- sizes

#[test]
fn sizes_with_units() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("4K"), Ok(4 * K));
    assert_eq!(parse_size("4k"), Ok(4 * K));
    assert_eq!(parse_size("16M"), Ok(16 * M));
    assert_eq!(parse_size("16m"), Ok(16 * M));
    assert_eq!(parse_size("1G"), Ok(G));
    assert_eq!(parse_size("2MiB"), Ok(2 * M));
    assert_eq!(parse_size("2MB"), Ok(2 * M));
    assert_eq!(parse_size("0x1000"), Ok(0x1000));
    assert_eq!(parse_size("0x10M"), Ok(16 * M));
    assert_eq!(parse_size("0x1b"), Ok(0x1b), "hex digit b is not a unit");
    assert_eq!(parse_size("0"), Ok(0));
}

#[test]
fn bad_sizes() {
    for s in ["", "abc", "12Q", "K", "1.5G", "-4K", "0x", "4 K B"] {
        assert!(parse_size(s).is_err(), "{s:?} accepted");
    }
    assert!(parse_size("99999999999G").unwrap_err().contains("overflow"));
}

#[test]
fn size_formatting() {
    assert_eq!(fmt_size(16 * M), "16M");
    assert_eq!(fmt_size(4 * K), "4K");
    assert_eq!(fmt_size(2 * G), "2G");
    assert_eq!(fmt_size(12345), "12345");
    assert_eq!(fmt_size(0), "0");
}

#[test]
fn ranges_parse() {
    assert_eq!(parse_range("16M+8M"), Ok(Range::new(16 * M, 8 * M)));
    assert_eq!(
        parse_range("0x100000+64K"),
        Ok(Range::new(0x10_0000, 64 * K))
    );
    for s in ["16M", "16M+", "+4K", "16M-8M", "a+b"] {
        assert!(parse_range(s).is_err(), "{s:?} accepted");
    }
}

// ------------------------------------------------------------------ CLI

fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("testvm").chain(args.iter().copied()))
}

#[test]
fn cli_full_command_line() {
    let c = cli(&[
        "--mem",
        "64M",
        "--backing",
        "thp",
        "--vcpus",
        "2",
        "--seconds",
        "2.5",
        "--write",
        "16M+8M",
        "--write",
        "32M+4K",
        "--read",
        "40M+1M",
        "--truth",
        "/tmp/t.json",
        "--dirty-log",
        "--churn-memslot",
    ])
    .unwrap();
    assert!(c.churn_memslot);
    assert_eq!(c.mem, 64 * M);
    assert_eq!(c.backing, Backing::Thp);
    assert_eq!(c.vcpus, 2);
    assert_eq!(c.seconds, Some(2.5));
    assert!(c.dirty_log && !c.prefault);
    let w = c.workload().unwrap();
    assert_eq!(
        w.write,
        vec![Range::new(16 * M, 8 * M), Range::new(32 * M, 4 * K)]
    );
    assert_eq!(w.read, vec![Range::new(40 * M, M)]);
    assert_eq!(w.then_write, None);
    assert_eq!(w.phases(), 1);
}

#[test]
fn cli_defaults_and_multiple_values() {
    let c = cli(&[
        "--mem", "16M", "--write", "2M+4K", "3M+4K", "--read", "4M+4K",
    ])
    .unwrap();
    assert_eq!(c.backing, Backing::Anon);
    assert_eq!(c.vcpus, 1);
    assert_eq!(c.seconds, None);
    assert_eq!(c.iterations, None);
    assert_eq!(c.write.len(), 2);
    assert!(c.workload().is_ok());
}

#[test]
fn cli_rejects() {
    // seconds and iterations exclude each other
    assert!(cli(&["--mem", "16M", "--seconds", "1", "--iterations", "3"]).is_err());
    // phase switch needs both halves
    assert!(cli(&["--mem", "16M", "--switch-after", "1"]).is_err());
    assert!(cli(&["--mem", "16M", "--then-write", "2M+4K"]).is_err());
    assert!(cli(&["--mem", "16M", "--switch-on-signal"]).is_err());
    // one way to switch, not two
    assert!(cli(&[
        "--mem",
        "16M",
        "--switch-after",
        "1",
        "--switch-on-signal",
        "--then-write",
        "2M+4K"
    ])
    .is_err());
    assert!(cli(&["--mem", "16M", "--seconds", "0"]).is_err());
    assert!(cli(&["--mem", "16M", "--seconds", "-1"]).is_err());
    assert!(cli(&["--mem", "16M", "--iterations", "0"]).is_err());
    assert!(cli(&["--mem", "16M", "--backing", "huge"]).is_err());
    assert!(cli(&["--mem", "16X"]).is_err());
    assert!(cli(&["--write", "2M+4K"]).is_err(), "--mem is required");
}

#[test]
fn cli_phase_switch() {
    let c = cli(&[
        "--mem",
        "32M",
        "--write",
        "2M+1M",
        "--read",
        "8M+1M",
        "--switch-after",
        "1.5",
        "--then-write",
        "2M+2M",
        "--then-write",
        "16M+4K",
    ])
    .unwrap();
    let w = c.workload().unwrap();
    assert_eq!(c.switch_after, Some(1.5));
    assert!(!c.switch_on_signal);
    assert_eq!(w.phases(), 2);
    let s = cli(&[
        "--mem",
        "32M",
        "--write",
        "2M+1M",
        "--switch-on-signal",
        "--then-write",
        "4M+1M",
    ])
    .unwrap();
    assert!(s.switch_on_signal && s.switch_after.is_none());
    assert_eq!(s.workload().unwrap().phases(), 2);
    assert_eq!(
        w.phase_ranges(1),
        vec![
            (Range::new(2 * M, 2 * M), Access::Write),
            (Range::new(16 * M, 4 * K), Access::Write),
            (Range::new(8 * M, M), Access::Read),
        ]
    );
}

// ----------------------------------------------------------- validation

fn wl(mem: u64, write: &[(u64, u64)], read: &[(u64, u64)]) -> Workload {
    Workload {
        mem,
        vcpus: 1,
        write: write.iter().map(|&(g, l)| Range::new(g, l)).collect(),
        read: read.iter().map(|&(g, l)| Range::new(g, l)).collect(),
        then_write: None,
    }
}

fn err(w: &Workload) -> String {
    validate(w).expect_err("accepted")
}

#[test]
fn valid_workloads() {
    validate(&wl(64 * M, &[(16 * M, 8 * M)], &[(24 * M, 8 * M)])).unwrap(); // adjacent
    validate(&wl(64 * M, &[(M, 4 * K)], &[])).unwrap(); // first page after reserved
    validate(&wl(64 * M, &[(64 * M - 4 * K, 4 * K)], &[])).unwrap(); // last page
    validate(&wl(64 * M, &[], &[])).unwrap(); // no ranges: an idle guest
}

#[test]
fn rejects_overlap() {
    assert!(err(&wl(64 * M, &[(16 * M, 8 * M), (20 * M, 8 * M)], &[])).contains("overlaps"));
    assert!(err(&wl(64 * M, &[(16 * M, 8 * M)], &[(24 * M - 4 * K, 8 * K)])).contains("overlaps"));
    assert!(err(&wl(64 * M, &[], &[(2 * M, 4 * K), (2 * M, 4 * K)])).contains("overlaps"));
    // a range inside another
    assert!(err(&wl(64 * M, &[(16 * M, 8 * M)], &[(17 * M, 4 * K)])).contains("overlaps"));
}

#[test]
fn rejects_outside_memory() {
    let e = err(&wl(64 * M, &[(60 * M, 8 * M)], &[]));
    assert!(e.contains("outside guest memory"), "{e}");
    assert!(err(&wl(64 * M, &[], &[(64 * M, 4 * K)])).contains("outside"));
    assert!(err(&wl(64 * M, &[(u64::MAX - 4095, 4096)], &[])).contains("overflow"));
}

#[test]
fn rejects_zero_size_and_misalignment() {
    assert!(err(&wl(64 * M, &[(16 * M, 0)], &[])).contains("zero size"));
    assert!(err(&wl(64 * M, &[], &[(16 * M + 512, 4 * K)])).contains("multiples of 4K"));
    assert!(err(&wl(64 * M, &[(16 * M, 6 * K)], &[])).contains("multiples of 4K"));
}

#[test]
fn rejects_reserved_region() {
    let e = err(&wl(64 * M, &[(0, 4 * K)], &[]));
    assert!(e.contains("own region"), "{e}");
    assert!(err(&wl(64 * M, &[(M - 4 * K, 8 * K)], &[])).contains("own region"));
}

#[test]
fn rejects_bad_mem_and_vcpus() {
    assert!(err(&wl(0, &[], &[])).contains("--mem"));
    assert!(err(&wl(3 * M, &[], &[])).contains("multiple of 2M"));
    assert!(err(&wl(128 * G, &[], &[])).contains("at most"));
    let mut w = wl(64 * M, &[], &[]);
    w.vcpus = 0;
    assert!(err(&w).contains("--vcpus"));
    w.vcpus = 65;
    assert!(err(&w).contains("--vcpus"));
}

#[test]
fn rejects_too_many_ranges() {
    let many: Vec<(u64, u64)> = (0..256).map(|i| (2 * M + i * 8 * K, 4 * K)).collect();
    assert!(err(&wl(64 * M, &many, &[])).contains("at most 255"));
    validate(&wl(64 * M, &many[..255], &[])).unwrap();
}

#[test]
fn then_write_rules() {
    let mut w = wl(64 * M, &[(16 * M, 8 * M)], &[(32 * M, M)]);
    w.then_write = Some(vec![Range::new(20 * M, 8 * M)]); // may overlap phase-0 writes
    validate(&w).unwrap();
    w.then_write = Some(vec![Range::new(32 * M, 4 * K)]); // not the reads
    assert!(err(&w).contains("--then-write"));
    w.then_write = Some(vec![Range::new(0, 4 * K)]);
    assert!(err(&w).contains("own region"));
}

#[test]
fn merging() {
    let m = merge(&[
        Range::new(8 * K, 4 * K),
        Range::new(0, 4 * K),
        Range::new(4 * K, 4 * K),
        Range::new(20 * K, 4 * K),
        Range::new(22 * K, 8 * K),
    ]);
    assert_eq!(m, vec![Range::new(0, 12 * K), Range::new(20 * K, 10 * K)]);
}

// ------------------------------------------------ page tables and layout

/// Independent model of an x86-64 4-level walk for a 2 MiB leaf: returns the
/// physical address or None if not mapped. Uses only SDM constants.
fn walk(mem: &HashMap<u64, u64>, cr3: u64, va: u64) -> Option<u64> {
    let addr_mask = 0x000f_ffff_ffff_f000u64;
    let read = |a: u64| mem.get(&a).copied().unwrap_or(0);
    let pml4e = read((cr3 & addr_mask) + ((va >> 39) & 0x1ff) * 8);
    if pml4e & 1 == 0 || pml4e & 2 == 0 {
        return None;
    }
    let pdpte = read((pml4e & addr_mask) + ((va >> 30) & 0x1ff) * 8);
    if pdpte & 1 == 0 || pdpte & 0x80 != 0 {
        return None; // not present, or an unexpected 1 GiB page
    }
    let pde = read((pdpte & addr_mask) + ((va >> 21) & 0x1ff) * 8);
    if pde & 1 == 0 || pde & 0x80 == 0 || pde & 2 == 0 {
        return None; // must be a present, writable 2 MiB page
    }
    Some((pde & 0x000f_ffff_ffe0_0000) | (va & 0x1f_ffff))
}

#[test]
fn identity_map_is_what_x86_expects() {
    for mem in [2 * M, 4 * M, 64 * M, G, G + 2 * M, 3 * G, 4 * G + 6 * M] {
        let entries = page_table_entries(mem);
        let mut tables: HashMap<u64, u64> = HashMap::new();
        for (gpa, v) in &entries {
            assert_eq!(gpa % 8, 0);
            assert!(
                *gpa < 0x10_0000,
                "page table entry at {gpa:#x} outside reserved region"
            );
            assert!(
                tables.insert(*gpa, *v).is_none(),
                "entry {gpa:#x} written twice"
            );
        }
        // cr3 as the vCPU gets it
        let mut s = kvm_bindings::kvm_sregs::default();
        long_mode_sregs(&mut s);
        let cr3 = s.cr3;
        // every 2 MiB page of guest memory maps to itself, with an offset inside
        let mut va = 0;
        while va < mem {
            assert_eq!(walk(&tables, cr3, va), Some(va), "mem {mem:#x} va {va:#x}");
            assert_eq!(walk(&tables, cr3, va + 0x1234), Some(va + 0x1234));
            va += 2 * M;
        }
        // nothing beyond guest memory is mapped
        assert_eq!(walk(&tables, cr3, mem), None, "mem {mem:#x}");
        assert_eq!(walk(&tables, cr3, 512 * G), None);
        // exact entry count: 1 PML4E + one PDPTE per GiB + one PDE per 2 MiB
        assert_eq!(entries.len() as u64, 1 + mem.div_ceil(G) + mem / (2 * M));
        // flag bits as expected: PDE = P|RW|PS = 0x83, upper levels P|RW = 0x3
        for (gpa, v) in &entries {
            let low = v & 0xfff;
            if *gpa >= 0x8_0000 {
                assert_eq!(low, 0x83, "PDE at {gpa:#x}");
            } else {
                assert_eq!(low, 0x3, "entry at {gpa:#x}");
            }
        }
    }
}

#[test]
fn gdt_and_segments() {
    // Flat 64-bit code and data descriptors, as every x86-64 boot GDT has them.
    assert_eq!(gdt(), [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff]);
    let mut s = kvm_bindings::kvm_sregs::default();
    long_mode_sregs(&mut s);
    assert_eq!(s.cs.selector, 0x08);
    assert_eq!(
        (s.cs.l, s.cs.db, s.cs.type_, s.cs.present, s.cs.s, s.cs.g),
        (1, 0, 0xb, 1, 1, 1)
    );
    assert_eq!((s.cs.base, s.cs.limit, s.cs.dpl), (0, 0xffff_ffff, 0));
    for d in [s.ds, s.es, s.ss, s.fs, s.gs] {
        assert_eq!(d.selector, 0x10);
        assert_eq!(
            (d.l, d.db, d.type_, d.present, d.s, d.g),
            (0, 1, 0x3, 1, 1, 1)
        );
        assert_eq!((d.base, d.limit), (0, 0xffff_ffff));
    }
    assert_eq!((s.gdt.base, s.gdt.limit), (0x1000, 23));
    // CR0.PE (bit 0) and CR0.PG (bit 31); CR4.PAE (bit 5); EFER.LME|LMA = 0x500
    assert_eq!(s.cr0 & 0x8000_0001, 0x8000_0001);
    assert_eq!(s.cr4 & 0x20, 0x20);
    assert_eq!(s.efer, 0x500);
    assert_eq!(s.cr3, 0x2000);
}

#[test]
fn own_pages_inside_reserved_region_and_disjoint() {
    for (mem, vcpus, phases) in [(4 * M, 1, 1), (3 * G, 4, 2), (64 * G, 64, 2)] {
        let own = own_ranges(mem, vcpus, phases, guest::code().len());
        let mut prev_end = 0;
        for o in &own {
            assert!(o.gpa >= prev_end, "{o:?} overlaps the previous one");
            assert!(o.gpa + o.len <= 0x10_0000, "{o:?} outside [0, 1M)");
            assert_eq!(o.gpa % 4096, 0);
            assert_eq!(o.len % 4096, 0);
            assert!(o.len > 0);
            prev_end = o.gpa + o.len;
        }
        let find = |w: &str| own.iter().find(|o| o.what == w).unwrap().clone();
        assert_eq!(find("stack").len, u64::from(vcpus) * 4096);
        assert_eq!(find("pd").len, mem.div_ceil(G) * 4096);
        assert_eq!(find("range-table").len, phases as u64 * 4096);
        // Every page table entry lies in an own page.
        for (gpa, _) in page_table_entries(mem) {
            assert!(
                own.iter().any(|o| o.range().contains(gpa)),
                "{gpa:#x} not own"
            );
        }
    }
}

#[test]
fn range_table_encoding() {
    let t = range_table(&[
        (Range::new(16 * M, 8 * M), Access::Write),
        (Range::new(0x1234_5000_0000, 4 * K), Access::Read),
    ]);
    assert_eq!(t.len(), 48);
    let q = |o: usize| u64::from_le_bytes(t[o..o + 8].try_into().unwrap());
    let d = |o: usize| u32::from_le_bytes(t[o..o + 4].try_into().unwrap());
    assert_eq!((q(0), d(8), d(12)), (16 * M, 2048, 1));
    assert_eq!((q(16), d(24), d(28)), (0x1234_5000_0000, 1, 2));
    assert_eq!((q(32), d(40), d(44)), (0, 0, 0));
}

#[test]
fn guest_code() {
    let c = guest::code();
    assert!(!c.is_empty() && c.len() < 4096, "{} bytes", c.len());
    // xor r9d, r9d ; mov edx, 0x7e57 ; in eax, dx
    assert_eq!(&c[..3], &[0x45, 0x31, 0xc9]);
    assert_eq!(&c[3..8], &[0xba, 0x57, 0x7e, 0x00, 0x00]);
    assert_eq!(c[8], 0xed);
    assert_eq!(guest::PORT, 0x7e57);
    // no absolute addresses: the code is the same wherever it is copied, so
    // just check it ends with a relative jmp (rel8 0xeb or rel32 0xe9)
    let n = c.len();
    assert!(c[n - 2] == 0xeb || c[n - 5] == 0xe9, "{c:02x?}");
}

// ----------------------------------------------------------------- truth

fn sample_truth() -> Truth {
    let mut t = Truth {
        schema: SCHEMA,
        state: "running".into(),
        pid: 42,
        vm_fd: 5,
        vm: "42-5".into(),
        mem_bytes: 64 * M,
        backing: Backing::Hugetlb,
        hva: 0x7f00_0000_0000,
        vcpus: 2,
        dirty_log: true,
        prefault: false,
        page_size: 4096,
        written: vec![],
        read: vec![Range::new(40 * M, M)],
        own: own_ranges(64 * M, 2, 2, 64),
        phases: vec![
            Phase {
                written: vec![Range::new(16 * M, 8 * M)],
                after_s: Some(0.0),
                started: true,
                start_s: Some(0.0),
                start_unix_ns: Some(1),
            },
            Phase {
                written: vec![Range::new(20 * M, 8 * M)],
                after_s: None,
                started: false,
                start_s: None,
                start_unix_ns: None,
            },
        ],
        iterations: 7,
        vcpu_iterations: vec![3, 4],
        passes_file: None,
        start_unix_ns: 1,
        elapsed_s: 0.5,
    };
    t.update_written();
    t
}

#[test]
fn truth_json_shape() {
    let t = sample_truth();
    let v: serde_json::Value = serde_json::to_value(&t).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "backing",
            "dirty_log",
            "elapsed_s",
            "hva",
            "iterations",
            "mem_bytes",
            "own",
            "page_size",
            "phases",
            "pid",
            "prefault",
            "read",
            "schema",
            "start_unix_ns",
            "state",
            "vcpu_iterations",
            "vcpus",
            "vm",
            "vm_fd",
            "written"
        ]
    );
    assert_eq!(v["backing"], "hugetlb");
    assert_eq!(v["pid"], 42);
    assert_eq!(v["vm_fd"], 5);
    assert_eq!(v["vm"], "42-5");
    assert_eq!(v["hva"], 0x7f00_0000_0000u64);
    assert_eq!(
        v["written"],
        serde_json::json!([{"gpa": 16 * M, "len": 8 * M}])
    );
    assert_eq!(v["read"], serde_json::json!([{"gpa": 40 * M, "len": M}]));
    assert_eq!(
        v["own"][0],
        serde_json::json!({"gpa": 4096, "len": 4096, "what": "gdt"})
    );
    assert_eq!(v["phases"][1]["start_s"], serde_json::Value::Null);
    assert_eq!(v["phases"][1]["started"], false);
    assert_eq!(v["vcpu_iterations"], serde_json::json!([3, 4]));
    let back: Truth = serde_json::from_value(v).unwrap();
    assert_eq!(back, t);
}

#[test]
fn truth_passes_file_optional() {
    // Absent when None (a truth file of an older testvm reads the same)...
    let mut t = sample_truth();
    let v = serde_json::to_value(&t).unwrap();
    assert!(v.get("passes_file").is_none());
    // ...and a path when set.
    t.passes_file = Some("/tmp/t.json.passes".into());
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(v["passes_file"], "/tmp/t.json.passes");
    let back: Truth = serde_json::from_value(v).unwrap();
    assert_eq!(back, t);
}

#[test]
fn whole_passes_need_one_more_than_asked() {
    use crate::passes::whole_passes_since;
    // The pass in progress at the mark is not whole: one pass asked, the
    // counter must move by two.
    assert!(!whole_passes_since(&[5], &[5], 1));
    assert!(!whole_passes_since(&[5], &[6], 1));
    assert!(whole_passes_since(&[5], &[7], 1));
    assert!(!whole_passes_since(&[5], &[7], 2));
    assert!(whole_passes_since(&[5], &[8], 2));
    // Every vCPU, not the sum.
    assert!(!whole_passes_since(&[5, 5], &[9, 6], 1));
    assert!(whole_passes_since(&[5, 5], &[7, 7], 1));
    // A different vCPU count (another testvm's file) never matches.
    assert!(!whole_passes_since(&[5], &[9, 9], 1));
}

#[test]
fn pass_counters_shared_through_the_file() {
    use crate::passes::{PassCounters, PassReader};
    use std::sync::atomic::Ordering;
    let dir = std::env::temp_dir().join(format!("testvm-passes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.json.passes");
    std::fs::write(&path, b"stale, and not a multiple of 8").unwrap();
    let w = PassCounters::create(&path, 2).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
    let r = PassReader::open(&path).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r.read(), [0, 0]);
    w.counters()[1].fetch_add(3, Ordering::SeqCst);
    assert_eq!(r.read(), [0, 3]);
    // A new run replaces the file; the old reader keeps its own pages.
    let w2 = PassCounters::create(&path, 1).unwrap();
    w2.counters()[0].fetch_add(1, Ordering::SeqCst);
    assert_eq!(r.read(), [0, 3]);
    assert_eq!(PassReader::open(&path).unwrap().read(), [1]);
    drop(w2);
    std::fs::write(&path, b"12345").unwrap();
    assert!(PassReader::open(&path).is_err());
    std::fs::write(&path, b"").unwrap();
    assert!(PassReader::open(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truth_written_is_union_of_started_phases() {
    let mut t = sample_truth();
    assert_eq!(t.written, vec![Range::new(16 * M, 8 * M)]);
    t.phases[1].started = true;
    t.update_written();
    assert_eq!(t.written, vec![Range::new(16 * M, 12 * M)]);
}

#[test]
fn truth_written_atomically() {
    let dir = std::env::temp_dir().join(format!("testvm-truth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("truth.json");
    let t = sample_truth();
    t.write_atomic(&path).unwrap();
    assert_eq!(Truth::read(&path).unwrap(), t);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "temporary file left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------- page-idle

#[test]
fn pagemap_decoding() {
    let e = pagemap_entry((1 << 63) | (1 << 55) | 0x12345);
    assert_eq!(
        e,
        PagemapEntry {
            present: true,
            swapped: false,
            pfn: 0x12345
        }
    );
    let e = pagemap_entry(1 << 62 | 7);
    assert!(!e.present && e.swapped);
    assert_eq!(e.pfn, 0);
    assert!(!pagemap_entry(0).present);
}

#[test]
fn bitmap_word_runs() {
    let runs = bitmap_runs([0, 1, 63, 64, 200, 130, 1000]);
    assert_eq!(
        runs,
        vec![
            (
                0,
                vec![(1 << 0) | (1 << 1) | (1 << 63), 1 << 0, 1 << 2, 1 << 8]
            ),
            (15, vec![1 << 40]),
        ]
    );
    assert!(bitmap_runs([]).is_empty());
}

#[test]
fn categories_and_counts() {
    let mut t = sample_truth();
    t.mem_bytes = 4 * M;
    t.written = vec![Range::new(M, 8 * K)];
    t.read = vec![Range::new(2 * M, 4 * K)];
    t.own = own_ranges(4 * M, 1, 1, 64);
    let cats = categorize(&t);
    assert_eq!(cats.len(), 1024);
    assert_eq!(cats[0], Category::Untouched);
    assert_eq!(cats[1], Category::Own); // GDT
    assert_eq!(cats[256], Category::Written);
    assert_eq!(cats[257], Category::Written);
    assert_eq!(cats[258], Category::Untouched);
    assert_eq!(cats[512], Category::Read);
    let mut states = vec![PageState::Idle; 1024];
    states[256] = PageState::Young;
    states[257] = PageState::Untrackable;
    states[512] = PageState::Young;
    states[1023] = PageState::NotPresent;
    let s = summarize(&cats, &states);
    assert_eq!(
        s.written,
        Counts {
            pages: 2,
            young: 1,
            idle: 0,
            untrackable: 1,
            not_present: 0
        }
    );
    assert_eq!(
        s.read,
        Counts {
            pages: 1,
            young: 1,
            idle: 0,
            untrackable: 0,
            not_present: 0
        }
    );
    assert_eq!(s.untouched.not_present, 1);
    assert_eq!(s.own.pages + s.untouched.pages + 3, 1024);
    assert_eq!(
        ranges_where(&states, |x| x == PageState::Young),
        vec![Range::new(M, 4 * K), Range::new(2 * M, 4 * K)]
    );
}

#[test]
fn untouched_pages_sharing_a_folio() {
    // pages 0-3: one folio (head PFN 100) holding an own page and untouched
    // ones; page 4: written; pages 5-6: untouched 4K pages; page 7 absent.
    let mut cats = vec![
        Category::Untouched,
        Category::Own,
        Category::Untouched,
        Category::Untouched,
        Category::Written,
        Category::Untouched,
        Category::Untouched,
        Category::Untouched,
    ];
    let track = [
        Some(100),
        Some(100),
        Some(100),
        Some(100),
        Some(7),
        Some(8),
        Some(9),
        None,
    ];
    mark_shared(&mut cats, &track);
    use Category::*;
    assert_eq!(
        cats,
        vec![
            UntouchedShared,
            Own,
            UntouchedShared,
            UntouchedShared,
            Written,
            Untouched,
            Untouched,
            Untouched
        ]
    );
    let s = summarize(&cats, &[PageState::Young; 8]);
    assert_eq!((s.untouched_shared.pages, s.untouched.pages), (3, 3));
}
