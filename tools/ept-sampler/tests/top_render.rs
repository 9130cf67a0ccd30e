// SPDX-License-Identifier: GPL-2.0

//! `top` drawn into ratatui's `TestBackend` from the fixture snapshots, at
//! 80x24 and 120x40. Expectations come from the fixture README and the
//! testvm truth files, not from the view's own output.

mod bios_support;
mod top_support;

use ept_sampler::top::app::{self, Action};
use ept_sampler::top::view;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::style::{Color, Modifier};
use top_support::*;

/// The heat ramp as `top --help` documents it, coldest first, after the
/// blank of a hole.
const RAMP: &str = " .:-=+*#%@";

const MIB: u64 = 1 << 20;

fn rank(c: char) -> usize {
    RAMP.find(c)
        .unwrap_or_else(|| panic!("{c:?} is not a heat character"))
}

/// The heat strip of `vm`: the line under its panel title, and the column
/// of its first heat character.
fn strip(lines: &[String], vm: &str) -> (usize, String, String, String) {
    let title = lines
        .iter()
        .position(|l| l.starts_with(&format!("-- {vm} ")))
        .unwrap_or_else(|| panic!("no panel for {vm}:\n{}", lines.join("\n")));
    let line = &lines[title + 1];
    assert!(line.trim_start().starts_with("heat"), "{line}");
    let a = line.find('|').expect("strip start");
    let b = line.rfind('|').expect("strip end");
    (
        title + 1,
        line[..a]
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_string(),
        line[a + 1..b].to_string(),
        line[b + 1..].trim().to_string(),
    )
}

/// Columns of an `n`-column strip over `0..span` lying wholly in
/// `start..end`.
fn columns(n: usize, span: u64, start: u64, end: u64) -> std::ops::Range<usize> {
    let n64 = n as u64;
    let first = (start * n64).div_ceil(span) as usize;
    let last = (end * n64 / span) as usize;
    first..last.min(n)
}

fn mean_rank(strip: &str, cols: std::ops::Range<usize>) -> f64 {
    let chars: Vec<char> = strip.chars().collect();
    assert!(!cols.is_empty() && cols.end <= chars.len(), "{cols:?}");
    let n = cols.len() as f64;
    cols.map(|c| rank(chars[c]) as f64).sum::<f64>() / n
}

fn label_bytes(label: &str) -> u64 {
    match label.strip_suffix('M') {
        Some(m) => m.parse::<u64>().expect("MiB label") * MIB,
        None => label.parse().expect("byte label"),
    }
}

#[test]
fn every_vm_is_listed_attached_or_not() {
    for (w, h) in [(80, 24), (120, 40)] {
        for phase in ["phase1", "phase2"] {
            let app = app(phase);
            let buf = screen(&app, w, h);
            let lines = lines(&buf);
            let text = lines.join("\n");
            // README: 72-4 and 85-4 sampled, 96-4 detached.
            for vm in ["72-4", "85-4"] {
                let r = row_of(&lines, vm).unwrap_or_else(|| panic!("{vm} at {w}x{h}:\n{text}"));
                assert!(lines[r].contains("sampling"), "{}", lines[r]);
            }
            let r = row_of(&lines, "96-4").unwrap_or_else(|| panic!("96-4 at {w}x{h}:\n{text}"));
            assert!(lines[r].contains("not attached"), "{}", lines[r]);
            // Dim, all of its text.
            for x in 0..w {
                let cell = &buf[(x, r as u16)];
                if cell.symbol() != " " {
                    assert!(
                        cell.modifier.contains(Modifier::DIM),
                        "96-4 row, column {x}"
                    );
                }
            }
            // An attached row is not dim.
            let r72 = row_of(&lines, "72-4").unwrap() as u16;
            assert!(!buf[(4, r72)].modifier.contains(Modifier::DIM));
            // Mode, granule and period of each VM are on screen, in the
            // table when wide, in the panel titles always (README).
            assert!(text.contains("both 4K | period 100 ms"), "{text}");
            assert!(text.contains("accessed 2M | period 200 ms"), "{text}");
            assert_eq!(text.contains("PERIOD"), w >= view::WIDE, "{text}");
        }
    }
}

#[test]
fn the_selected_row_moves_with_down() {
    for (w, h) in [(80, 24), (120, 40)] {
        let mut app = app("phase2");
        let mut order = Vec::new();
        for _ in 0..4 {
            let buf = screen(&app, w, h);
            let lines = lines(&buf);
            let marked: Vec<&String> = lines.iter().filter(|l| l.starts_with("> ")).collect();
            assert_eq!(marked.len(), 1, "{}", lines.join("\n"));
            let vm = marked[0][2..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            let r = row_of(&lines, &vm).unwrap() as u16;
            assert!(buf[(3, r)].modifier.contains(Modifier::REVERSED));
            order.push(vm);
            app.apply(app::action(KeyEvent::from(KeyCode::Down)));
        }
        // The file's order, and the last Down stays on the last VM.
        assert_eq!(order, ["72-4", "85-4", "96-4", "96-4"]);
    }
}

#[test]
fn the_hot_range_of_phase2_is_hotter_than_200m_and_up() {
    let a = truth("a.json");
    assert_eq!(a.vm, "72-4");
    // README: after 4 s the guest writes 128M+8M instead: the second
    // written range. Nothing at or above 200M is written or read.
    let hot = a.written[1];
    assert_eq!(hot.gpa, 128 * MIB);
    let cold = (200 * MIB, a.mem_bytes);
    assert!(a
        .written
        .iter()
        .chain(&a.read)
        .all(|r| r.gpa + r.len <= cold.0));
    for (w, h) in [(80, 24), (120, 40)] {
        let app = app("phase2");
        let buf = screen(&app, w, h);
        let lines = lines(&buf);
        let (row, from, strip, to) = strip(&lines, "72-4");
        assert_eq!(label_bytes(&from), 0);
        assert_eq!(label_bytes(&to), a.mem_bytes);
        let n = strip.chars().count();
        let hot_cols = columns(n, a.mem_bytes, hot.gpa, hot.gpa + hot.len);
        let cold_cols = columns(n, a.mem_bytes, cold.0, cold.1);
        let (hot_rank, cold_rank) = (
            mean_rank(&strip, hot_cols.clone()),
            mean_rank(&strip, cold_cols.clone()),
        );
        assert!(
            hot_rank > cold_rank + 4.0,
            "{w}x{h}: hot {hot_rank} cold {cold_rank}: {strip:?}"
        );
        // The colour says the same: the hot cells are coloured, and not
        // like the cold ones.
        let x0 = lines[row].find('|').unwrap() as u16 + 1;
        let hot_fg = buf[(x0 + hot_cols.start as u16, row as u16)].fg;
        let cold_fg = buf[(x0 + cold_cols.start as u16, row as u16)].fg;
        assert!(!matches!(hot_fg, Color::Reset | Color::DarkGray));
        assert_ne!(hot_fg, cold_fg);
        // ... and in the colours `heatmap` paints the same heat with.
        let Color::Indexed(hot_index) = hot_fg else {
            panic!("hot cell colour {hot_fg:?} is not a 256-colour index");
        };
        let vm = app.selected_vm().unwrap();
        let (header, runs) = vm.heatmap.as_ref().unwrap();
        let painted = ept_sampler::render::term::heatmap(
            header,
            runs,
            &vm.memslots,
            &ept_sampler::render::term::Options {
                columns: 80,
                rows: 8,
                palette: ept_sampler::render::term::Palette::Ansi256,
                by: ept_sampler::bins::ColorBy::Heat,
            },
        );
        assert!(
            painted.contains(&format!("\x1b[48;5;{hot_index}m")),
            "top's hot colour {hot_index} is not among heatmap's: {painted:?}"
        );
    }
}

#[test]
fn the_read_range_is_hot_in_both_phases_and_no_colour_keeps_the_ramp() {
    let a = truth("a.json");
    let read = a.read[0];
    for phase in ["phase1", "phase2"] {
        let mut app = app(phase);
        app.color = false;
        let buf = screen(&app, 80, 24);
        let lines = lines(&buf);
        let (row, _, strip, _) = strip(&lines, "72-4");
        let n = strip.chars().count();
        let read_rank = mean_rank(
            &strip,
            columns(n, a.mem_bytes, read.gpa, read.gpa + read.len),
        );
        let cold_rank = mean_rank(&strip, columns(n, a.mem_bytes, 200 * MIB, a.mem_bytes));
        assert!(read_rank > cold_rank + 4.0, "{phase}: {strip:?}");
        let x0 = lines[row].find('|').unwrap() as u16 + 1;
        for x in x0..x0 + n as u16 {
            assert_eq!(buf[(x, row as u16)].fg, Color::Reset);
        }
    }
}

#[test]
fn figures_match_the_truth_and_the_stats() {
    let a = truth("a.json");
    let b = truth("b.json");
    let app = app("phase2");
    let lines = lines(&screen(&app, 120, 40));
    let cols = |vm: &str| -> Vec<String> {
        let r = row_of(&lines, vm).unwrap();
        lines[r]
            .trim_start_matches([' ', '>'])
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let mib = |s: &str| s.parse::<f64>().unwrap() * MIB as f64;
    // 72-4: hot = the written and read ranges of phase 2 plus the guest's
    // own few pages; dirty = the written range plus a few.
    let c = cols("72-4");
    let hot = (a.written[1].len + a.read[0].len) as f64;
    assert!((hot..hot + 0.5 * MIB as f64).contains(&mib(&c[2])), "{c:?}");
    let dirty = a.written[1].len as f64;
    assert!(
        (dirty..dirty + 0.5 * MIB as f64).contains(&mib(&c[3])),
        "{c:?}"
    );
    // The dirty rate and the walk cost are the stats file's.
    let stats =
        std::fs::read_to_string(fixtures().join("phase2/72-4/stats")).expect("stats fixture");
    let key = |k: &str| -> String {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap()
            .to_string()
    };
    assert_eq!(c[4], key("dirty_mb_s"));
    let walk_avg: f64 = key("walk_ns_avg").parse().unwrap();
    let walk_last: f64 = key("walk_ns_last").parse().unwrap();
    assert_eq!(
        c[5],
        format!("{:.2}/{:.2}", walk_last / 1e6, walk_avg / 1e6)
    );
    // A round's walk and its share of the flushes, over the period
    // (README: 100 ms).
    let per_round = walk_avg
        + key("flush_ns_avg").parse::<f64>().unwrap() * key("flushes").parse::<f64>().unwrap()
            / key("rounds").parse::<f64>().unwrap();
    assert_eq!(c[6], format!("{:.1}%", per_round / 100e6 * 100.0));
    // 85-4, THP at a 2M granule, accessed only: hot = the written range
    // plus at most one granule of its own pages; no dirty figures.
    let c = cols("85-4");
    let hot = b.written[0].len as f64;
    assert!(
        (hot..=hot + 2.0 * MIB as f64).contains(&mib(&c[2])),
        "{c:?}"
    );
    assert_eq!(c[3], "-");
}

#[test]
fn the_detail_pane_shows_memslots_heat_and_history() {
    for (w, h) in [(80, 24), (120, 40)] {
        let mut app = app("phase2");
        app.apply(Action::Detail);
        let lines = lines(&screen(&app, w, h));
        let text = lines.join("\n");
        assert!(text.contains("-- 72-4 detail"), "{text}");
        // memslots fixture: slot 0 at 0x0, 0x10000000 bytes.
        assert!(text.contains("memslots 0:0..256M"), "{text}");
        // The newest round of the history fixture is drawn, its 128M
        // regions hot and the ones above 200M idle.
        let hist = std::fs::read_to_string(fixtures().join("phase2/72-4/history")).unwrap();
        let newest = hist
            .lines()
            .filter_map(|l| l.strip_prefix("round "))
            .map(|l| l.split_whitespace().next().unwrap())
            .next_back()
            .unwrap();
        let label = format!("r{newest}|");
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(&label))
            .unwrap_or_else(|| panic!("no {label} at {w}x{h}:\n{text}"));
        assert!(text.contains("address 0..256M across"), "{text}");
        let a = line.find('|').unwrap();
        let b = line.rfind('|').unwrap();
        let grid = &line[a + 1..b];
        let n = grid.chars().count();
        let span = 256 * MIB;
        let hot = mean_rank(grid, columns(n, span, 128 * MIB, 136 * MIB));
        let cold = mean_rank(grid, columns(n, span, 200 * MIB, span));
        assert_eq!(hot, rank('@') as f64, "{grid:?}");
        assert_eq!(cold, rank('.') as f64, "{grid:?}");
        // Esc closes it, the panels are back.
        app.apply(Action::Back);
        assert!(!app.detail);
        let text = lines_text(&app, w, h);
        assert!(!text.contains("-- 72-4 detail"), "{text}");
        assert!(text.contains("-- 85-4 "), "{text}");
    }
}

fn lines_text(app: &ept_sampler::top::app::App, w: u16, h: u16) -> String {
    lines(&screen(app, w, h)).join("\n")
}

#[test]
fn working_set_series_grows_across_refreshes() {
    let p1 = snapshot("phase1");
    let p2 = snapshot("phase2");
    let rounds = |s: &ept_sampler::model::Snapshot, vm: &str| -> Vec<u64> {
        s.vm(vm)
            .unwrap()
            .history
            .as_ref()
            .unwrap()
            .rounds
            .iter()
            .map(|r| r.record.round)
            .collect()
    };
    let mut app = app("phase1");
    app.update(p2.clone());
    for vm in ["72-4", "85-4"] {
        let mut all = rounds(&p1, vm);
        all.extend(rounds(&p2, vm));
        all.sort();
        all.dedup();
        let id = p2.vm(vm).unwrap().row.vm;
        assert_eq!(app.wss[&id].len(), all.len(), "{vm}");
    }
    // Going back in rounds (a new heat map) starts the series over.
    app.update(p1.clone());
    let id = p1.vm("72-4").unwrap().row.vm;
    assert_eq!(app.wss[&id].len(), rounds(&p1, "72-4").len());
    // The sparkline line shows the last round's size: the stats file's
    // accessed_pages_last, in MiB to the label's one decimal.
    let stats = std::fs::read_to_string(fixtures().join("phase1/72-4/stats")).unwrap();
    let pages: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("accessed_pages_last "))
        .unwrap()
        .parse()
        .unwrap();
    let text = lines_text(&app, 80, 24);
    let label = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("wss "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no wss line:\n{text}"));
    let shown: f64 = label.strip_suffix('M').unwrap().parse().unwrap();
    let want = (pages * 4096) as f64 / MIB as f64;
    assert!((shown - want).abs() <= 0.05, "{label} for {pages} pages");
}

#[test]
fn a_tiny_terminal_does_not_panic() {
    let mut app = app("phase2");
    for (w, h) in [(1, 1), (10, 2), (20, 3), (40, 6), (80, 5), (30, 24)] {
        screen(&app, w, h);
        app.apply(Action::Detail);
        screen(&app, w, h);
        app.apply(Action::Detail);
    }
}

#[test]
fn many_vms_scroll_and_keep_a_panel_at_80x24() {
    // 30 copies of VM 72-4 under other pids: more rows than the screen.
    let mut snap = snapshot("phase2");
    let proto = snap.vm("72-4").unwrap().clone();
    snap.vms = (0..30)
        .map(|i| {
            let mut vm = proto.clone();
            vm.row.vm.pid = 1000 + i;
            vm
        })
        .collect();
    let mut app = ept_sampler::top::app::App::new(
        ept_sampler::top::app::SourceKind::Live("many".into()),
        1000,
    );
    app.update(snap);
    for i in 0..30u32 {
        let lines = lines(&screen(&app, 80, 24));
        let text = lines.join("\n");
        let want = format!("> {}-4 ", 1000 + i);
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "row {i} not on screen:\n{text}"
        );
        // The header stays, and the selected VM's panel is shown.
        assert!(lines[1].contains("HOT MiB"), "{text}");
        assert!(text.contains(&format!("-- {}-4 ", 1000 + i)), "{text}");
        app.apply(Action::Down);
    }
}

#[test]
fn the_detail_pane_shows_dirty_where_the_guest_writes_not_where_it_reads() {
    let a = truth("a.json");
    // README: in phase 2 VM 72-4 writes 128M+8M and reads 64M+8M.
    let (written, read) = (a.written[1], a.read[0]);
    for (w, h) in [(80, 24), (120, 40)] {
        let mut app = app("phase2");
        app.apply(Action::Detail);
        let lines = lines(&screen(&app, w, h));
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with("dirty 0|"))
            .unwrap_or_else(|| panic!("no dirty strip at {w}x{h}:\n{}", lines.join("\n")));
        let a0 = line.find('|').unwrap();
        let b0 = line.rfind('|').unwrap();
        assert_eq!(label_bytes(line[b0 + 1..].trim()), a.mem_bytes);
        let strip = &line[a0 + 1..b0];
        let n = strip.chars().count();
        let w_rank = mean_rank(
            strip,
            columns(n, a.mem_bytes, written.gpa, written.gpa + written.len),
        );
        let r_rank = mean_rank(
            strip,
            columns(n, a.mem_bytes, read.gpa, read.gpa + read.len),
        );
        assert_eq!(r_rank, rank('.') as f64, "read, not written: {strip:?}");
        assert!(w_rank > r_rank + 4.0, "{strip:?}");
    }
    // 85-4 records accessed bits only: no dirty strip.
    let mut app = app("phase2");
    app.apply(Action::Down);
    app.apply(Action::Detail);
    let text = lines(&screen(&app, 120, 40)).join("\n");
    assert!(text.contains("-- 85-4 detail"), "{text}");
    assert!(!text.contains("dirty 0|"), "{text}");
}

/// Phase 2 with VM 72-4 laid out as a real QEMU guest has it: its 256 MiB
/// of RAM at 0, plus a 256 KiB BIOS slot just below 4 GiB, accessed in
/// every round, with the hole up to it in the heat map and the history's
/// 2 MiB regions running up to 4 GiB (the BIOS in the last one).
fn app_with_bios() -> ept_sampler::top::app::App {
    let mut snap = snapshot("phase2");
    let vm = snap
        .vms
        .iter_mut()
        .find(|v| v.row.vm.to_string() == "72-4")
        .unwrap();
    bios_support::add_bios_slot(vm, 255);
    let mut app = ept_sampler::top::app::App::new(
        ept_sampler::top::app::SourceKind::Live("fixtures/phase2+bios".into()),
        1000,
    );
    app.update(snap);
    app
}

#[test]
fn a_far_away_bios_slot_is_cut_out_of_the_strip_not_drawn_to_scale() {
    let truth = truth("a.json");
    for (w, h) in [(80, 24), (120, 40)] {
        let app = app_with_bios();
        let lines = lines(&screen(&app, w, h));
        let (_, from, strip, to) = strip(&lines, "72-4");
        assert_eq!((from.as_str(), to.as_str()), ("0", "4G"), "{strip:?}");
        // RAM, one '~' for the 3.75 GiB cut out, the BIOS slot.
        let (ram, bios) = strip
            .split_once('~')
            .unwrap_or_else(|| panic!("no cut: {strip:?}"));
        assert!(!bios.contains('~'), "{strip:?}");
        assert!(
            !bios.is_empty() && bios.chars().all(|c| c == '@'),
            "BIOS {bios:?}"
        );
        // The RAM keeps nearly the whole strip: drawn to scale it would
        // have had a sixteenth. What it writes now is hot, 200M.. cold
        let n = ram.chars().count();
        assert!(n + 2 >= strip.chars().count() * 9 / 10, "{strip:?}");
        let r = truth.written.last().unwrap();
        let hot = mean_rank(ram, columns(n, 256 * MIB, r.gpa, r.gpa + r.len));
        assert_eq!(hot, rank('@') as f64, "{ram:?}");
        // (never touched: unmapped, blank, or mapped and idle, '.')
        let cold = mean_rank(ram, columns(n, 256 * MIB, 200 * MIB, 256 * MIB));
        assert!(cold <= rank('.') as f64, "{ram:?}");
    }
}

#[test]
fn the_detail_pane_cuts_the_hole_out_of_its_heat_map_and_history() {
    let mut app = app_with_bios();
    app.apply(Action::Detail);
    let lines = lines(&screen(&app, 120, 40));
    let text = lines.join("\n");
    // The heat map: lines of RAM from 0, one cut line, the BIOS line.
    let heat: Vec<&String> = lines
        .iter()
        .skip_while(|l| !l.trim_start().starts_with("heat map,"))
        .skip(1)
        .take_while(|l| l.contains('|') || l.trim_start().starts_with('~'))
        .collect();
    let cut = heat
        .iter()
        .position(|l| l.trim_start().starts_with("~ 3.7G cut out ~"))
        .unwrap_or_else(|| panic!("no cut line:\n{text}"));
    assert_eq!(cut + 2, heat.len(), "{text}");
    assert!(heat[0].trim_start().starts_with("0|"), "{text}");
    let bios = heat[cut + 1];
    let label = ept_sampler::render::size_label(0xfffc_0000);
    assert!(
        bios.trim_start().starts_with(&format!("{label}|")),
        "{bios}"
    );
    let cells = &bios[bios.find('|').unwrap() + 1..bios.rfind('|').unwrap()];
    assert!(
        cells.trim_end().chars().all(|c| c == '@' || c == '^'),
        "{bios}"
    );
    // The history: the RAM's regions, a '~', the BIOS region, hot.
    let round = lines
        .iter()
        .find(|l| l.trim_start().starts_with('r') && l.contains('|') && l.contains('~'))
        .unwrap_or_else(|| panic!("no history round with a cut:\n{text}"));
    let grid = &round[round.find('|').unwrap() + 1..round.rfind('|').unwrap()];
    let (_, bios) = grid.split_once('~').unwrap();
    assert!(
        !bios.is_empty() && bios.chars().all(|c| c == '@'),
        "{round}"
    );
}

#[test]
fn a_real_qemu_guest_s_strip_is_its_ram_then_a_cut_then_its_bios() {
    // tests/fixtures/qemu-npt-6.12: VM 77-10 in guest-work's write phase.
    let dir = fixtures().join("../qemu-npt-6.12");
    let snap = ept_sampler::source::ProcRoot::open(dir.join("write"))
        .unwrap()
        .snapshot()
        .unwrap()
        .parse()
        .unwrap();
    let mut app = ept_sampler::top::app::App::new(
        ept_sampler::top::app::SourceKind::Live("fixtures/qemu-npt-6.12".into()),
        1000,
    );
    app.update(snap);
    let lines = lines(&screen(&app, 100, 30));
    let (_, from, strip, to) = strip(&lines, "77-10");
    assert_eq!((from.as_str(), to.as_str()), ("0", "4G"), "{strip:?}");
    let (ram, bios) = strip
        .split_once('~')
        .unwrap_or_else(|| panic!("no cut: {strip:?}"));
    assert_eq!(bios.chars().count(), 1, "{strip:?}");
    let n = ram.chars().count();
    let written = std::fs::read_to_string(dir.join("truth/ranges.write")).unwrap();
    for l in written.lines() {
        let (a, b) = l.split_once(',').unwrap();
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        let cols = columns(n, 256 * MIB, hex(a), hex(b));
        if !cols.is_empty() {
            assert_eq!(mean_rank(ram, cols), rank('@') as f64, "{l}: {ram:?}");
        }
    }
}

#[test]
fn idle_ages_in_the_table_and_the_detail_pane() {
    let mut snap = snapshot("phase2");
    // 72-4's bins in the capture have no minute: it gets a file that
    // has; 85-4 keeps its own (the default bins, 12 s of sampling).
    let i = snap
        .vms
        .iter()
        .position(|v| v.row.vm.to_string() == "72-4")
        .unwrap();
    snap.vms[i].idle = Some(
        ept_core::procfs::idle::IdleFile::parse(
            "vm 72-4\nrounds 1200\nsampled_ms 119900\nmapped_bytes 268435456\n\
             bins 1s,1m\nnever 1048576 2097152\nidle 1s 201326592 209715200\nidle 1m 25165824 26214400\n",
        )
        .unwrap(),
    );
    let mut app = app("phase2");
    app.update(snap);
    for (w, h) in [(80, 24), (120, 40)] {
        let lines = lines(&screen(&app, w, h));
        let text = lines.join("\n");
        let head = &lines[row_of(&lines, "VM").unwrap()];
        assert!(head.contains("IDLE>1m"), "{text}");
        let column = head.find("IDLE>1m").unwrap() + "IDLE>1m".len();
        // 24 MiB not accessed for a minute; none yet for 85-4.
        let row = &lines[row_of(&lines, "72-4").unwrap()];
        assert_eq!(
            row[..column].split_whitespace().last(),
            Some("24.0"),
            "{text}"
        );
        let row = &lines[row_of(&lines, "85-4").unwrap()];
        assert_eq!(
            row[..column].split_whitespace().last(),
            Some("0.0"),
            "{text}"
        );
    }
    app.apply(Action::Detail);
    let lines = lines(&screen(&app, 120, 40));
    let text = lines.join("\n");
    assert!(text.contains("idle       not accessed >=1s 192"), "{text}");
    assert!(text.contains("idle       not written  >=1s 200"), "{text}");
}
