// SPDX-License-Identifier: GPL-2.0

//! The views of a heat map against the fixture files of a real run
//! (tests/fixtures/npt-7.3, see its README): what each view shows is
//! checked against testvm's truth files, the ranges each guest really
//! wrote and read, not against the views' own output.

use std::path::PathBuf;

use ept_sampler::bins::ColorBy;
use ept_sampler::model::{Snapshot, VmSnapshot};
use ept_sampler::render::data::{AgeRecord, HeatmapRecord, RunRecord};
use ept_sampler::render::term::{self, Palette, RAMP, UNMAPPED};
use ept_sampler::render::{data, text};
use ept_sampler::source::ProcRoot;

fn fixture(phase: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/npt-7.3/{phase}"))
}

fn snapshot(phase: &str) -> Snapshot {
    ProcRoot::open(fixture(phase))
        .unwrap()
        .snapshot()
        .unwrap()
        .parse()
        .unwrap()
}

/// A guest-physical range, `start..end`.
type Range = (u64, u64);

/// testvm's truth for one guest.
struct Truth {
    mem_bytes: u64,
    /// Written in the last phase (hot now).
    written_now: Vec<Range>,
    /// Written in an earlier phase only (cold now).
    written_before: Vec<Range>,
    /// Read throughout.
    read: Vec<Range>,
}

fn ranges(v: &serde_json::Value) -> Vec<Range> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let gpa = r["gpa"].as_u64().unwrap();
            (gpa, gpa + r["len"].as_u64().unwrap())
        })
        .collect()
}

fn truth(name: &str) -> Truth {
    let path = fixture("truth").join(name);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let phases = v["phases"].as_array().unwrap();
    let written_now = ranges(&phases.last().unwrap()["written"]);
    let written_before = phases[..phases.len() - 1]
        .iter()
        .flat_map(|p| ranges(&p["written"]))
        .filter(|r| !written_now.contains(r))
        .collect();
    Truth {
        mem_bytes: v["mem_bytes"].as_u64().unwrap(),
        written_now,
        written_before,
        read: ranges(&v["read"]),
    }
}

fn vm<'a>(snap: &'a Snapshot, id: &str) -> &'a VmSnapshot {
    snap.vm(id).unwrap()
}

/// One grid of the ramp view: (row start address, cells).
type Grid = Vec<(u64, Vec<char>)>;

/// The grids of a ramp view by name (`accessed`, `dirty`), read back from
/// the text: rows are `ADDRESS |CELLS|...`.
fn grids(view: &str) -> Vec<(String, Grid)> {
    let mut out: Vec<(String, Grid)> = Vec::new();
    for line in view.lines() {
        if let Some((name, _)) = line.split_once(": share of") {
            out.push((name.to_string(), Vec::new()));
            continue;
        }
        let Some((label, rest)) = line.split_once(" |") else {
            continue;
        };
        let Some(addr) = label.trim().strip_prefix("0x") else {
            continue;
        };
        let cells: Vec<char> = rest.chars().take_while(|c| *c != '|').collect();
        out.last_mut()
            .unwrap()
            .1
            .push((u64::from_str_radix(addr, 16).unwrap(), cells));
    }
    out
}

/// Every cell of a grid with its address range; the cell size is found
/// from consecutive row addresses.
fn cells(grid: &Grid) -> Vec<(Range, char)> {
    assert!(grid.len() >= 2, "need two rows to find the cell size");
    let per_row = grid[1].0 - grid[0].0;
    let n = grid[0].1.len() as u64;
    assert_eq!(per_row % n, 0);
    let size = per_row / n;
    grid.iter()
        .flat_map(|(start, cs)| {
            cs.iter()
                .enumerate()
                .map(move |(i, c)| ((start + i as u64 * size, start + (i as u64 + 1) * size), *c))
        })
        .collect()
}

fn inside(cell: Range, r: Range) -> bool {
    cell.0 >= r.0 && cell.1 <= r.1
}

fn overlaps(cell: Range, r: Range) -> bool {
    cell.0 < r.1 && r.0 < cell.1
}

/// The heat rank of a ramp character: -1 for unmapped.
fn rank(c: char) -> i32 {
    if c == UNMAPPED {
        -1
    } else {
        RAMP.iter().position(|r| *r == c).unwrap() as i32
    }
}

fn ramp_view(vm: &VmSnapshot, columns: u16, rows: u16) -> String {
    let (header, runs) = vm.heatmap.as_ref().unwrap();
    term::heatmap(
        header,
        runs,
        &vm.memslots,
        &term::Options {
            columns,
            rows,
            palette: Palette::Ramp,
            by: ColorBy::Heat,
        },
    )
}

/// testvm keeps its own pages below 1 MiB (fixture README).
const OWN_PAGES_END: u64 = 1 << 20;

#[test]
fn text_view_of_72_4_after_the_phase_switch() {
    let snap = snapshot("phase2");
    let t = truth("a.json");
    assert!(!t.written_before.is_empty() && !t.written_now.is_empty());
    for (columns, rows) in [(80, 8), (120, 16), (60, 4)] {
        let view = ramp_view(vm(&snap, "72-4"), columns, rows);
        assert!(
            view.lines()
                .filter(|l| l.contains(" |"))
                .all(|l| l.chars().count() <= usize::from(columns)),
            "{view}"
        );
        let g = grids(&view);
        assert_eq!(
            g.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["accessed", "dirty"],
            "{view}"
        );
        for (name, grid) in &g {
            let cells = cells(grid);
            // The grid covers the whole guest.
            assert_eq!(cells.first().unwrap().0 .0, 0);
            assert!(cells.last().unwrap().0 .1 >= t.mem_bytes);
            let hot: Vec<char> = cells
                .iter()
                .filter(|(c, _)| t.written_now.iter().any(|r| inside(*c, *r)))
                .map(|(_, ch)| *ch)
                .collect();
            let cold: Vec<char> = cells
                .iter()
                .filter(|(c, _)| t.written_before.iter().any(|r| inside(*c, *r)))
                .map(|(_, ch)| *ch)
                .collect();
            assert!(!hot.is_empty() && !cold.is_empty(), "{view}");
            // Written in every round of the window: the top of the ramp.
            assert!(
                hot.iter().all(|c| *c == RAMP[RAMP.len() - 1]),
                "{name}: {view}"
            );
            // No longer written: mapped (it was touched) and colder.
            assert!(
                cold.iter()
                    .all(|c| rank(*c) >= 0 && rank(*c) < rank(RAMP[RAMP.len() - 1])),
                "{name}: {view}"
            );
            let read: Vec<char> = cells
                .iter()
                .filter(|(c, _)| t.read.iter().any(|r| inside(*c, *r)))
                .map(|(_, ch)| *ch)
                .collect();
            assert!(!read.is_empty());
            if name == "accessed" {
                assert!(read.iter().all(|c| *c == RAMP[RAMP.len() - 1]), "{view}");
            } else {
                // Read, never written: not dirty.
                assert!(read.iter().all(|c| rank(*c) <= 0), "{view}");
            }
            // Nothing else above testvm's own pages was touched.
            let all: Vec<Range> = [&t.written_now, &t.written_before, &t.read]
                .into_iter()
                .flatten()
                .copied()
                .collect();
            for (c, ch) in &cells {
                if c.0 >= OWN_PAGES_END && !all.iter().any(|r| overlaps(*c, *r)) {
                    assert!(rank(*ch) <= 0, "{name}: {c:x?} is '{ch}': {view}");
                }
            }
        }
        // The one memslot starts at 0: marked on the first row.
        let first_row = view.lines().find(|l| l.contains(" |")).unwrap();
        assert!(first_row.ends_with("<slot 0"), "{view}");
        assert!(
            view.contains("memslot 0: 0x0..0x10000000 (256 MiB)"),
            "{view}"
        );
    }
}

#[test]
fn text_view_of_72_4_before_the_phase_switch() {
    // phase1 was taken before 128M..136M was written (its heatmap has no
    // leaf there yet): the first phase's range is the hot one.
    let snap = snapshot("phase1");
    let t = truth("a.json");
    let view = ramp_view(vm(&snap, "72-4"), 80, 8);
    let (_, grid) = &grids(&view)[0];
    let cells = cells(grid);
    for (c, ch) in &cells {
        if t.written_before.iter().any(|r| inside(*c, *r)) {
            assert_eq!(*ch, RAMP[RAMP.len() - 1], "{view}");
        }
        if t.written_now.iter().any(|r| inside(*c, *r)) {
            assert!(rank(*ch) < rank(RAMP[RAMP.len() - 1]), "{view}");
        }
    }
}

#[test]
fn text_view_of_85_4_thp_accessed_only() {
    let snap = snapshot("phase2");
    let t = truth("b.json");
    let view = ramp_view(vm(&snap, "85-4"), 80, 8);
    let g = grids(&view);
    // Mode accessed: no dirty grid.
    assert_eq!(g.len(), 1, "{view}");
    assert_eq!(g[0].0, "accessed");
    let cells = cells(&g[0].1);
    let hot = cells
        .iter()
        .filter(|(c, _)| t.written_now.iter().any(|r| inside(*c, *r)));
    assert!(hot.clone().count() > 0);
    assert!(
        hot.clone().all(|(_, ch)| *ch == RAMP[RAMP.len() - 1]),
        "{view}"
    );
}

#[test]
fn colour_view_has_no_ramp_and_resets() {
    let snap = snapshot("phase2");
    let vm = vm(&snap, "72-4");
    let (header, runs) = vm.heatmap.as_ref().unwrap();
    for palette in [Palette::Ansi256, Palette::TrueColor] {
        let view = term::heatmap(
            header,
            runs,
            &vm.memslots,
            &term::Options {
                columns: 80,
                rows: 8,
                palette,
                by: ColorBy::Heat,
            },
        );
        assert!(view.contains("\x1b["), "no escape: {view}");
        for line in view.lines().filter(|l| l.contains(" |")) {
            // Every coloured row ends with the colours reset.
            assert!(line.contains("\x1b[0m"), "{line:?}");
            let cells = line.split_once(" |").unwrap().1;
            assert!(!cells.contains('@'), "{line:?}");
        }
    }
}

#[test]
fn csv_and_json_match_the_truth_and_the_module_file() {
    let snap = snapshot("phase2");
    let t = truth("a.json");
    let vm = vm(&snap, "72-4");
    let (header, runs) = vm.heatmap.as_ref().unwrap();
    let text = data::csv(runs).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "start",
            "end",
            "granule",
            "leaf",
            "accessed",
            "dirty",
            "window",
            "slot",
            "idle_ms",
            "unwritten_ms"
        ]
    );
    let recs: Vec<RunRecord> = reader.deserialize().map(Result::unwrap).collect();
    // Idle ages on every mapped run (mode both), none on holes.
    for r in &recs {
        let mapped = r.leaf != "hole" && r.leaf != "unknown";
        assert_eq!(r.idle_ms.is_some(), mapped, "{r:?}");
        assert_eq!(r.unwritten_ms.is_some(), mapped, "{r:?}");
    }
    // One record per line of the module's file, as its parser reads it.
    assert_eq!(recs.len(), runs.len());
    let file = std::fs::read_to_string(fixture("phase2").join("72-4/heatmap")).unwrap();
    let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    for (rec, line) in recs.iter().zip(&lines) {
        let w: Vec<&str> = line.split(' ').collect();
        assert_eq!(rec.start, u64::from_str_radix(&w[0][2..], 16).unwrap());
        assert_eq!(rec.end, u64::from_str_radix(&w[1][2..], 16).unwrap());
        assert_eq!(rec.granule, w[2]);
        assert_eq!(rec.leaf, w[3]);
        assert_eq!(
            rec.accessed
                .map(|a| a.to_string())
                .as_deref()
                .unwrap_or("-"),
            w[4]
        );
        assert_eq!(
            rec.dirty.map(|a| a.to_string()).as_deref().unwrap_or("-"),
            w[5]
        );
        assert_eq!(rec.window.to_string(), w[6]);
        assert_eq!(
            rec.slot.map(|a| a.to_string()).as_deref().unwrap_or("-"),
            w[7]
        );
        let age = |a: &Option<AgeRecord>| match a {
            None => "-".to_string(),
            Some(AgeRecord::Ms(ms)) => ms.to_string(),
            Some(AgeRecord::Word(w)) => w.clone(),
        };
        assert_eq!(age(&rec.idle_ms), w[8]);
        assert_eq!(age(&rec.unwritten_ms), w[9]);
    }
    // Against the truth: written now accessed and dirty in every round,
    // read accessed and never dirty, the old range cold.
    for rec in &recs {
        let r = (rec.start, rec.end);
        if t.written_now.iter().any(|w| overlaps(r, *w)) {
            assert_eq!(rec.accessed, Some(rec.window), "{rec:?}");
            assert_eq!(rec.dirty, Some(rec.window), "{rec:?}");
        }
        if t.read.iter().any(|w| overlaps(r, *w)) {
            assert_eq!(rec.accessed, Some(rec.window), "{rec:?}");
            assert_eq!(rec.dirty, Some(0), "{rec:?}");
        }
        // Touched in every round: idle for less than a round or two.
        if t.written_now.iter().chain(&t.read).any(|w| overlaps(r, *w)) {
            assert!(
                matches!(rec.idle_ms, Some(AgeRecord::Ms(ms)) if ms < 500),
                "{rec:?}"
            );
        }
        // Untouched for a whole history ring (64 rounds) since the switch.
        if t.written_before.iter().any(|w| overlaps(r, *w)) {
            assert_eq!(rec.accessed, Some(0), "{rec:?}");
            assert!(
                matches!(rec.idle_ms, Some(AgeRecord::Ms(ms)) if ms >= 1000),
                "{rec:?}"
            );
        }
    }
    let json: HeatmapRecord =
        serde_json::from_str(&data::json(header, runs, &vm.memslots).unwrap()).unwrap();
    assert_eq!(json.vm, "72-4");
    assert_eq!(json.mode, "both");
    assert_eq!(json.runs, recs);
    assert_eq!(json.memslots.len(), 1);
    assert_eq!(
        (json.memslots[0].start, json.memslots[0].end),
        (0, t.mem_bytes)
    );
}

#[test]
fn list_table_and_json() {
    let snap = snapshot("phase2");
    let rows: Vec<_> = snap.vms.iter().map(|v| v.row).collect();
    let table = text::list_table(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("VM "), "{table}");
    // Columns aligned: every row has STATE where the header has it.
    let at = lines[0].find("STATE").unwrap();
    for (line, (vm, mem, state)) in lines[1..].iter().zip([
        ("72-4", "256 MiB", "sampling"),
        ("85-4", "128 MiB", "sampling"),
        ("96-4", "64 MiB", "detached"),
    ]) {
        assert!(line.starts_with(vm), "{table}");
        assert!(line.contains(mem), "{table}");
        assert_eq!(&line[at..], state, "{table}");
    }
    let json: Vec<text::VmJson> = serde_json::from_str(&text::list_json(&rows)).unwrap();
    assert_eq!(json.len(), 3);
    for (j, name) in json.iter().zip(["a.json", "b.json", "c.json"]) {
        let t = truth(name);
        assert_eq!(j.memory_bytes, t.mem_bytes);
        assert_eq!(j.tdp, "npt");
    }
    assert_eq!(json[2].state, "detached");
    assert_eq!(json[0].vm, "72-4");
    assert_eq!((json[0].pid, json[0].fd), (72, 4));
}

#[test]
fn status_shows_the_module_counters() {
    let snap = snapshot("phase2");
    let s = text::status(vm(&snap, "72-4"));
    let stats = std::fs::read_to_string(fixture("phase2").join("72-4/stats")).unwrap();
    let kv = |k: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap()
            .to_string()
    };
    assert!(s.contains(&format!("rounds     {} ", kv("rounds"))), "{s}");
    assert!(
        s.contains(&format!("{} MiB accessed", kv("accessed_mib_last"))),
        "{s}"
    );
    assert!(
        s.contains(&format!("{} MiB dirty", kv("dirty_mib_last"))),
        "{s}"
    );
    assert!(
        s.contains(&format!("dirty rate {} MB/s", kv("dirty_mb_s"))),
        "{s}"
    );
    assert!(
        s.contains("period 100 ms, mode both, granule 4K, window 5"),
        "{s}"
    );
    let s85 = text::status(vm(&snap, "85-4"));
    assert!(s85.contains("dirty bits not sampled"), "{s85}");
}

#[test]
fn memslot_boundaries_are_marked_on_their_rows() {
    // A QEMU-like layout: low memory and memory above 4 GiB, a gap between
    // (the module writes such a gap as a hole outside every slot).
    let text = "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 5
# rounds 10
# mode accessed
# columns start end granule leaf accessed dirty window slot
0x000000000000 0x000000100000 4K 4K 5 - 5 0
0x000000100000 0x000100000000 4K hole 0 - 5 -
0x000100000000 0x000100100000 4K 4K 0 - 5 1
";
    let (header, runs) = ept_core::procfs::heatmap::parse(text).unwrap();
    let runs: Vec<_> = runs.map(Result::unwrap).collect();
    let slot = |id: u16, base: u64, bytes: u64| ept_core::procfs::memslots::Memslot {
        as_id: 0,
        id,
        base_gfn: base / 4096,
        npages: bytes / 4096,
        flags: Default::default(),
    };
    let slots = [slot(0, 0, 1 << 20), slot(1, 1 << 32, 1 << 20)];
    let view = term::heatmap(
        &header,
        &runs,
        &slots,
        &term::Options {
            columns: 80,
            rows: 8,
            palette: Palette::Ramp,
            by: ColorBy::Heat,
        },
    );
    let g = grids(&view);
    assert_eq!(g.len(), 1, "{view}");
    // The 4 GiB between the slots are cut out, not drawn: both slots get
    // rows of their own at a fine cell, with a line saying what was cut.
    assert!(
        view.contains("(4.0 GiB, 4.0 GiB of it between memslots cut out): 8 KiB per cell"),
        "{view}"
    );
    let lines: Vec<&str> = view.lines().collect();
    let cut = lines
        .iter()
        .position(|l| l.contains(" 4.0 GiB cut out: 0x100000..0x100000000 "))
        .expect(&view);
    let rows: Vec<&str> = view.lines().filter(|l| l.contains(" |")).collect();
    // 1 MiB a slot, 448 KiB a row: three rows each, one cut line between.
    assert_eq!(rows.len(), 6, "{view}");
    assert_eq!(
        cut,
        lines.iter().position(|l| *l == rows[3]).unwrap() - 1,
        "{view}"
    );
    for (i, row) in rows.iter().enumerate() {
        let slot = match i {
            0 => Some("<slot 0"),
            3 => Some("<slot 1"),
            _ => None,
        };
        match slot {
            Some(mark) => assert!(row.ends_with(mark), "row {i}: {view}"),
            None => assert!(!row.contains("<slot"), "row {i}: {view}"),
        }
    }
    assert_eq!(g[0].1[3].0, 1 << 32, "{view}");
    // Slot 0 (accessed in every round) is hot in every cell; slot 1 is
    // mapped and cold. A slot's last row is short (its end is padded).
    for (start, cells) in &g[0].1 {
        let want = if *start < 1 << 32 {
            RAMP[RAMP.len() - 1]
        } else {
            RAMP[0]
        };
        let drawn: String = cells.iter().collect();
        assert!(!drawn.trim_end().is_empty(), "row {start:#x}: {view}");
        assert!(
            drawn.trim_end().chars().all(|c| c == want),
            "row {start:#x}: {view}"
        );
    }
    assert!(
        view.contains("memslot 1: 0x100000000..0x100100000 (1 MiB)"),
        "{view}"
    );
}

/// The fixture of a real QEMU guest (tests/fixtures/qemu-npt-6.12, see its
/// README): VM 77-10 in guest-work's write phase, and the guest-physical
/// ranges guest-work printed (`truth/ranges.KIND`, `start,end` in hex).
fn qemu_guest() -> (VmSnapshot, Vec<Range>, Vec<Range>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qemu-npt-6.12");
    let snap = ProcRoot::open(dir.join("write"))
        .unwrap()
        .snapshot()
        .unwrap()
        .parse()
        .unwrap();
    let ranges = |kind: &str| -> Vec<Range> {
        std::fs::read_to_string(dir.join(format!("truth/ranges.{kind}")))
            .unwrap()
            .lines()
            .map(|l| {
                let (a, b) = l.split_once(',').unwrap();
                let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
                (hex(a), hex(b))
            })
            .collect()
    };
    (vm(&snap, "77-10").clone(), ranges("write"), ranges("cold"))
}

#[test]
fn a_qemu_guest_s_ram_fills_the_view_and_its_bios_comes_after_a_cut() {
    let (vm, written, cold) = qemu_guest();
    let view = ramp_view(&vm, 100, 12);
    // RAM (0..256M) in rows of its own, the 3.7 GiB up to the BIOS slot
    // cut out, the BIOS slot's row after it.
    let lines: Vec<&str> = view.lines().collect();
    let cut = lines
        .iter()
        .position(|l| l.contains(" cut out: 0x10000000..0xfffc0000 "))
        .unwrap_or_else(|| panic!("{view}"));
    assert!(
        lines[cut + 1].trim_start().starts_with("0xfffc0000 |"),
        "{view}"
    );
    // QEMU gives SMM (address space 1) a copy of each slot: marked and
    // listed once, the copies named on one line.
    assert!(lines[cut + 1].ends_with("<slot 1"), "{view}");
    let smm: Vec<String> = vm
        .memslots
        .iter()
        .filter(|m| m.as_id == 1)
        .map(|m| m.slot().to_string())
        .collect();
    assert_eq!(smm.len(), 6, "{view}");
    let line = format!(
        "memslots {}: address space 1 (SMM), the same ranges",
        smm.join(",")
    );
    assert!(view.contains(&line), "{view}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("<slot") && l.contains("6553")),
        "{view}"
    );
    let g = grids(&view);
    assert_eq!(g.len(), 2, "{view}");
    for (name, grid) in &g {
        // Rows of RAM up to the cut: contiguous from 0, all of 256 MiB.
        let ram: Vec<&(u64, Vec<char>)> = grid.iter().filter(|(a, _)| *a < 256 << 20).collect();
        assert!(
            ram.len() >= 5,
            "{name}: RAM in {} rows of 12:\n{view}",
            ram.len()
        );
        let row_bytes = ram[1].0 - ram[0].0;
        let cell = row_bytes / ram[0].1.len() as u64;
        assert!(ram
            .iter()
            .enumerate()
            .all(|(i, (a, _))| *a == i as u64 * row_bytes));
        assert!(ram.len() as u64 * row_bytes >= 256 << 20, "{view}");
        let at = |gpa: u64| -> char {
            let (start, cells) = ram.iter().rev().find(|(a, _)| *a <= gpa).unwrap();
            cells[((gpa - start) / cell) as usize]
        };
        // What guest-work writes is accessed and dirty in every round;
        // its cold buffer never is.
        for &(s, e) in &written {
            for gpa in (s..e).step_by(cell as usize) {
                assert_eq!(at(gpa), RAMP[RAMP.len() - 1], "{name} {gpa:#x}:\n{view}");
            }
        }
        for &(s, e) in &cold {
            for gpa in (s..e).step_by(cell as usize) {
                assert!(rank(at(gpa)) <= 0, "{name} {gpa:#x}:\n{view}");
            }
        }
    }
}

/// A heat map whose window holds a round cut short by dirty logging says so
/// above its dirty grid, in its JSON too; once the round has left the
/// window the view says nothing.
#[test]
fn a_partial_dirty_round_in_the_window_is_named() {
    let text = |rounds: u64| {
        format!(
            "\
# ept_sampler heatmap 1
# vm 1-2
# granule 4K
# window 5
# rounds {rounds}
# mode both
# dirty_partial 7
# columns start end granule leaf accessed dirty window slot
0x000000000000 0x000000100000 4K 4K 5 3 5 0
"
        )
    };
    let slots = [ept_core::procfs::memslots::Memslot {
        as_id: 0,
        id: 0,
        base_gfn: 0,
        npages: 256,
        flags: Default::default(),
    }];
    let view = |rounds: u64| {
        let text = text(rounds);
        let (header, runs) = ept_core::procfs::heatmap::parse(&text).unwrap();
        let runs: Vec<_> = runs.map(Result::unwrap).collect();
        let opts = term::Options {
            columns: 80,
            rows: 8,
            palette: Palette::Ramp,
            by: ColorBy::Heat,
        };
        let json: HeatmapRecord =
            serde_json::from_str(&data::json(&header, &runs, &slots).unwrap()).unwrap();
        (term::heatmap(&header, &runs, &slots, &opts), json)
    };
    let note = "dirty: partial: dirty logging began in round 7";
    // Rounds 7..=11 are the window of round 11; round 12's starts at 8.
    let (v, json) = view(11);
    assert!(v.contains(note), "{v}");
    assert_eq!(json.dirty_partial, 7);
    let (v, _) = view(12);
    assert!(!v.contains("partial"), "{v}");
}

#[test]
fn idle_ages_in_csv_and_json() {
    let run = |idle, unwritten| {
        ept_core::procfs::heatmap::Run::parse(&format!(
            "0x000000000000 0x000000002000 4K 4K 0 0 5 0 {idle} {unwritten}"
        ))
        .unwrap()
    };
    let runs = [run("1500", "never"), run("never", "-")];
    let text = data::csv(&runs).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "0,8192,4K,4K,0,0,5,0,1500,never");
    assert_eq!(lines[2], "0,8192,4K,4K,0,0,5,0,never,");
    let recs: Vec<RunRecord> = csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .map(Result::unwrap)
        .collect();
    assert_eq!(recs[0], RunRecord::from(&runs[0]));
    assert_eq!(recs[1], RunRecord::from(&runs[1]));
    let json = serde_json::to_value(RunRecord::from(&runs[0])).unwrap();
    assert_eq!(json["idle_ms"], 1500);
    assert_eq!(json["unwritten_ms"], "never");
    assert!(serde_json::to_value(RunRecord::from(&runs[1])).unwrap()["unwritten_ms"].is_null());
}

#[test]
fn status_shows_idle_bins() {
    let snap = snapshot("phase2");
    let mut v = vm(&snap, "72-4").clone();
    // The captured file: a line per bit sampled (mode both), in the
    // capture's bins.
    let s = text::status(&v);
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("  idle ")).collect();
    assert_eq!(lines.len(), 2, "{s}");
    assert!(
        lines[0].starts_with("  idle       not accessed >=500ms "),
        "{s}"
    );
    assert!(
        lines[1].starts_with("  idle       not written  >=500ms "),
        "{s}"
    );
    assert!(s.contains("idle bins 500ms,1s,2s,4s"), "{s}");
    // A module without the idle file: no idle line.
    v.idle = None;
    assert!(
        !text::status(&v).contains("  idle "),
        "{}",
        text::status(&v)
    );
    v.idle = Some(
        ept_core::procfs::idle::IdleFile::parse(
            "vm 72-4\nrounds 1200\nsampled_ms 119900\nmapped_bytes 268435456\n\
             bins 1s,10m\nnever 1048576 -\nidle 1s 201326592 -\nidle 10m 0 -\n",
        )
        .unwrap(),
    );
    let s = text::status(&v);
    let line = s.lines().find(|l| l.starts_with("  idle ")).unwrap();
    assert_eq!(
        line,
        format!(
            "  idle       not accessed >=1s {}, >=10m {}; never {} of {} mapped",
            ept_sampler::render::human_bytes(201_326_592),
            ept_sampler::render::human_bytes(0),
            ept_sampler::render::human_bytes(1_048_576),
            ept_sampler::render::human_bytes(268_435_456)
        )
    );
    // Dirty bits not sampled: no line for writes.
    assert_eq!(s.lines().filter(|l| l.starts_with("  idle ")).count(), 1);
}

#[test]
fn by_age_the_range_written_before_the_switch_is_staler_than_the_one_written_now() {
    let snap = snapshot("phase2");
    let vm = vm(&snap, "72-4");
    let (header, runs) = vm.heatmap.as_ref().unwrap();
    let t = truth("a.json");
    let fresh = |r: &Range, dirty: bool| {
        let b = ept_sampler::bins::fold(runs, r.0, r.1, 1);
        let f = if dirty {
            b[0].fresh_dirty
        } else {
            b[0].fresh_accessed
        };
        f.unwrap()
    };
    use ept_core::heat::IdleAge;
    use ept_sampler::bins::freshness;
    // Written (and accessed) every pass now: touched within 500 ms.
    let recent = freshness(IdleAge::Ms(500));
    for r in t.written_now.iter().chain(&t.read) {
        assert!(fresh(r, false) >= recent, "{r:x?}: {}", fresh(r, false));
    }
    for r in &t.written_now {
        assert!(fresh(r, true) >= recent, "{r:x?}: {}", fresh(r, true));
    }
    // Not touched since the switch, a whole history ring (64 rounds) before
    // the capture: idle for more than a second, by both bits.
    let second = freshness(IdleAge::Ms(1_000));
    assert!(!t.written_before.is_empty());
    for r in &t.written_before {
        for dirty in [false, true] {
            assert!(
                fresh(r, dirty) < second,
                "{r:x?} ({dirty}): {}",
                fresh(r, dirty)
            );
        }
    }
    // The terminal view says what its colours mean.
    let view = term::heatmap(
        header,
        runs,
        &vm.memslots,
        &term::Options {
            columns: 100,
            rows: 8,
            palette: Palette::Ramp,
            by: ColorBy::Age,
        },
    );
    assert!(
        view.contains("accessed: time since each page was last accessed"),
        "{view}"
    );
}
