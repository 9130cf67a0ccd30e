// SPDX-License-Identifier: GPL-2.0

//! `report` on the fixture recording (the two capture phases of the QEMU
//! NPT run): the figures follow testvm's truth file, and the picture of
//! the whole recording shows VM 72-4's move from its first written range
//! to its second.

#[path = "picture_support/mod.rs"]
mod picture_support;
#[path = "record_support/mod.rs"]
mod support;

use std::process::Command;

use ept_sampler::model::History;
use ept_sampler::picture::{self, PictureFormat};
use ept_sampler::record::{self, report};
use picture_support::{mean_heat, truth_a, Rgb, COLD, MIB};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_ept-sampler");

/// Bytes of a range, in MiB.
fn mib(r: &std::ops::Range<u64>) -> f64 {
    (r.end - r.start) as f64 / MIB as f64
}

/// testvm's own pages (page tables, code, stack...): accessed too, a few
/// KiB, from the truth file.
fn own_mib() -> f64 {
    let text = std::fs::read_to_string(fixture("npt-7.3/truth/a.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["own"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["len"].as_u64().unwrap())
        .sum::<u64>() as f64
        / MIB as f64
}

fn report_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .args(["--format", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn figures_over_time_follow_the_truth_file() {
    let t = truth_a();
    let v = report_json(&["--vm", "72-4"]);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["vm"], "72-4");
    assert_eq!(vms[0]["memory_bytes"].as_u64().unwrap(), t.mem);
    let rows = vms[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per snapshot");
    let own = own_mib();
    for (i, row) in rows.iter().enumerate() {
        let f = |k: &str| {
            row[k]
                .as_f64()
                .unwrap_or_else(|| panic!("row {i}: {k} = {}", row[k]))
        };
        // Each phase: one 8M range written, one 8M range read, every round.
        let hot = mib(&t.read) + mib(&t.first_written);
        assert_eq!(mib(&t.first_written), mib(&t.second_written));
        for k in ["hot_mib", "ws_mib"] {
            assert!(
                f(k) >= hot && f(k) <= hot + own,
                "row {i}: {k} {} not in {hot}..{}",
                f(k),
                hot + own
            );
        }
        let dirty = mib(&t.second_written);
        assert!(
            f("dirty_mib") >= dirty && f("dirty_mib") <= dirty + own,
            "row {i}: dirty {}",
            f("dirty_mib")
        );
        // The written range once per 100 ms round (the fixture's period).
        let rate = dirty * MIB as f64 / 0.1 / 1e6;
        assert!(
            (f("dirty_mb_s") - rate).abs() < rate * 0.1,
            "row {i}: dirty rate {} vs {rate}",
            f("dirty_mb_s")
        );
        assert!(f("walk_ms") > 0.0);
    }
    // The first row has every round of phase 1's ring, the second every
    // round of phase 2's (the rings do not overlap): none counted twice.
    let (p1, _, p1_last) = ring("phase1");
    let (p2, _, p2_last) = ring("phase2");
    assert!(p1.last() < p2.first(), "{p1:?} {p2:?}");
    assert_eq!(rows[0]["new_rounds"], p1.len());
    assert_eq!(rows[1]["new_rounds"], p2.len());
    // The snapshots are stamped by their newest rounds (record_support).
    let dt = rows[1]["t_s"].as_f64().unwrap() - rows[0]["t_s"].as_f64().unwrap();
    let want = (p2_last - p1_last) as f64 / 1e9;
    assert!((dt - want).abs() < 0.01, "{dt} {want}");
}

/// VM 72-4's `history` ring in fixture phase `phase`: its round numbers,
/// and its first and last round's start (kernel clock, ns).
fn ring(phase: &str) -> (Vec<u64>, u64, u64) {
    let text =
        std::fs::read_to_string(fixture("npt-7.3").join(phase).join("72-4/history")).unwrap();
    let h = History::parse(&text).unwrap();
    (
        h.rounds.iter().map(|r| r.record.round).collect(),
        h.rounds[0].record.start_ns,
        h.rounds.last().unwrap().record.start_ns,
    )
}

#[test]
fn text_and_csv_have_a_row_per_vm_and_snapshot() {
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("VM 72-4 (256 MiB): 2 snapshots"), "{text}");
    assert!(text.contains("VM 85-4 (128 MiB): 2 snapshots"), "{text}");
    assert!(text.contains("kernel 7.3.4"), "{text}");
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let vms: Vec<&str> = recs.iter().map(|r| &r[col("vm")]).collect();
    assert_eq!(vms, ["72-4", "72-4", "85-4", "85-4"]);
    // 85-4 is sampled for accessed bits only: no dirty figures.
    assert_eq!(&recs[2][col("dirty_mib")], "");
    // testvm b wrote 32M+16M on THP (2M granule): 16 MiB hot, plus the
    // 2M page holding its own pages.
    let hot: f64 = recs[3][col("hot_mib")].parse().unwrap();
    assert!((16.0..=18.0).contains(&hot), "{hot}");
}

#[test]
fn history_over_the_recording_shows_the_phase_switch() {
    let t = truth_a();
    let (_, snaps, _) = record::load(&fixture_recording()).unwrap();
    let series = report::series(&snaps, &["72-4".to_string()]);
    let pic = series[0].picture("npt-7.3.rec.gz");
    let hist = pic.history.as_ref().unwrap();
    let numbers: Vec<u64> = hist.rounds.iter().map(|r| r.record.round).collect();
    // Where each phase's rounds are on the time axis, from the fixture
    // files (kernel clock of each ring's first and last round).
    let (p1, p1_first, p1_last) = ring("phase1");
    let (p2, p2_first, p2_last) = ring("phase2");
    let want: Vec<u64> = p1.into_iter().chain(p2).collect();
    assert_eq!(numbers, want, "every round of both rings, once, in order");

    let secs = |ns: u64| (ns - p1_first) as f64 / 1e9;

    let (w, h) = (1000, 800);
    let (bytes, layout) = picture::render(&pic, PictureFormat::Png, w, h).unwrap();
    let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (w, h));
    let img = Rgb {
        width: w,
        height: h,
        pixels: buf.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
    };
    let area = layout.history.as_ref().unwrap();
    let span = |a: f64, b: f64| area.row(b) + 2..area.row(a) - 2;
    let phase1 = span(secs(p1_first), secs(p1_last));
    let phase2 = span(secs(p2_first), secs(p2_last));
    assert!(phase1.start < phase1.end && phase2.start < phase2.end);
    assert!(phase2.end < phase1.start, "later rounds higher up");
    let first = mean_heat(&img, area, &t.first_written, phase1.clone());
    let second = mean_heat(&img, area, &t.second_written, phase1.clone());
    assert!(
        first > 0.9 && second < 0.05,
        "phase 1: first {first}, second {second}"
    );
    let first = mean_heat(&img, area, &t.first_written, phase2.clone());
    let second = mean_heat(&img, area, &t.second_written, phase2.clone());
    assert!(
        first < 0.05 && second > 0.9,
        "phase 2: first {first}, second {second}"
    );
    for rows in [phase1, phase2] {
        assert!(
            mean_heat(&img, area, &t.read, rows.clone()) > 0.9,
            "read all along"
        );
        assert!(mean_heat(&img, area, &COLD, rows) < 0.05);
    }
    // Between the phases the recording has no round: blank, not smeared.
    let gap = span(secs(p1_last) + 0.5, secs(p2_first) - 0.5);
    assert!(mean_heat(&img, area, &t.read, gap) < 0.05);
}

#[test]
fn report_writes_the_pictures_asked_for() {
    let png = tmp("report.png");
    let svg = tmp("report.svg");
    let _ = std::fs::remove_file(&png);
    let _ = std::fs::remove_file(&svg);
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .args(["--vm", "72", "--width", "900", "--height", "640", "--png"])
        .arg(&png)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "only pictures asked for");
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (900, 640));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("width=\"900\"") && text.contains("height=\"640\""));

    // Several VMs and no --vm: which one to draw is asked for.
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .arg("--png")
        .arg(tmp("which.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vm"));
}

#[test]
fn report_of_a_foreign_file_exits_with_the_format_code() {
    let path = tmp("foreign.txt");
    std::fs::write(&path, "hello\n").unwrap();
    let out = Command::new(BIN).arg("report").arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(i32::from(ept_sampler::error::exit::FORMAT))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ept-sampler recording"));
}

#[test]
fn report_of_a_vm_the_recording_lacks_names_the_ones_it_holds() {
    // The VMs of the recording, from its files' paths (`<pid>-<fd>/...`).
    let (_, snaps, _) = record::file::read_all(&fixture_recording()).unwrap();
    let mut held: Vec<String> = snaps
        .iter()
        .flat_map(|s| s.files.keys())
        .filter_map(|p| p.split_once('/').map(|(vm, _)| vm.to_string()))
        .collect();
    held.sort();
    held.dedup();
    assert!(!held.is_empty());
    for (vm, named) in [("4242-3", "4242-3"), ("4242", "of pid 4242")] {
        let out = Command::new(BIN)
            .arg("report")
            .arg(fixture_recording())
            .args(["--vm", vm])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(i32::from(ept_sampler::error::exit::NO_VM))
        );
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("no VM {named} in the recording")),
            "{err}"
        );
        assert!(!err.contains("on this host"), "{err}");
        for h in &held {
            assert!(err.contains(h.as_str()), "{h} not named: {err}");
        }
    }
}

#[test]
fn idle_memory_over_time_follows_the_truth_file() {
    let t = truth_a();
    let own = own_mib();
    let v = report_json(&["--vm", "72-4"]);
    let rows = v["vms"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let mib_of = |v: &serde_json::Value| v.as_u64().unwrap() as f64 / MIB as f64;
    for (i, (row, written)) in rows
        .iter()
        .zip([&t.first_written, &t.second_written])
        .enumerate()
    {
        let idle = &row["idle"];
        // The capture's bins (tests/e2e/capture-fixtures.sh).
        assert_eq!(idle["bins_ms"], serde_json::json!([500, 1000, 2000, 4000]));
        let mapped = mib_of(&idle["mapped_bytes"]);
        let at_least: Vec<f64> = idle["not_accessed"]["at_least"]
            .as_array()
            .unwrap()
            .iter()
            .map(mib_of)
            .collect();
        // Used within a second: what testvm touches every pass of the
        // phase, the read range and the range it writes then, and some
        // of its own pages.
        let hot = mib(&t.read) + mib(written);
        let used = mapped - at_least[1];
        assert!(
            used >= hot && used <= hot + own,
            "row {i}: {used} MiB used within 1 s, not {hot}..{}",
            hot + own
        );
        // Each bin holds no more than the one before.
        assert!(at_least.windows(2).all(|w| w[1] <= w[0]), "{at_least:?}");
    }
    // After the switch the first range has gone a whole history ring (64
    // rounds, at least 3.2 s) without an access: idle for at least 1 s.
    let at_1s = mib_of(&rows[1]["idle"]["not_accessed"]["at_least"][1]);
    assert!(
        at_1s >= mib(&t.first_written),
        "{at_1s} MiB idle >= 1 s, the first range alone is {}",
        mib(&t.first_written)
    );

    // The text's table of the same, and the CSV's columns.
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .args(["--vm", "72-4"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("MiB by time since the last access"), "{text}");
    assert!(text.contains("MiB by time since the last write"), "{text}");
    assert!(
        text.contains("<500ms 500ms-1s    1s-2s    2s-4s     >=4s"),
        "{text}"
    );
    let out = Command::new(BIN)
        .arg("report")
        .arg(fixture_recording())
        .args(["--format", "csv"])
        .output()
        .unwrap();
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {headers:?}"))
    };
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    // 72-4's bins and 85-4's (the default) side by side; each VM's
    // cells only under its own bins.
    for name in [
        "not_accessed_500ms_mib",
        "not_accessed_10s_mib",
        "never_written_mib",
    ] {
        col(name);
    }
    let used: f64 = recs[1][col("mapped_mib")].parse::<f64>().unwrap()
        - recs[1][col("not_accessed_1s_mib")].parse::<f64>().unwrap();
    let hot = mib(&t.read) + mib(&t.second_written);
    assert!(used >= hot && used <= hot + own, "{used}");
    assert_eq!(&recs[1][col("not_accessed_10s_mib")], "");
    assert_eq!(&recs[3][col("not_accessed_500ms_mib")], "");
    assert_eq!(
        &recs[3][col("never_written_mib")],
        "",
        "85-4: accessed only"
    );
}

#[test]
fn the_picture_of_a_recording_stacks_its_idle_memory() {
    let t = truth_a();
    let own = own_mib();
    let (_, snaps, _) = record::load(&fixture_recording()).unwrap();
    let series = report::series(&snaps, &["72-4".to_string()]);
    let pic = series[0].picture("npt-7.3.rec.gz");
    let idle = pic.idle.as_ref().unwrap();
    assert_eq!(idle.bands, ["<500ms", "500ms-1s", "1s-2s", "2s-4s", ">=4s"]);
    let (bytes, layout) = picture::render(&pic, PictureFormat::Png, 1000, 900).unwrap();
    let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    reader.next_frame(&mut buf).unwrap();
    let at = |x: i32, y: i32| {
        let i = (y as usize * 1000 + x as usize) * 3;
        [buf[i], buf[i + 1], buf[i + 2]]
    };
    let rgb = |c: plotters::style::RGBColor| [c.0, c.1, c.2];
    let a = layout.idle.unwrap();
    let end = a.time.end;
    // At each snapshot, the bottom band (used within 500 ms) is about what
    // testvm touches every pass: below its height the youngest colour.
    for (t_s, written) in [
        (0.05 * end, &t.first_written),
        (0.95 * end, &t.second_written),
    ] {
        let hot = mib(&t.read) + mib(written);
        assert_eq!(
            at(a.column(t_s), a.row(hot * 0.8)),
            rgb(picture::band_colour(0, 5)),
            "at {t_s} s"
        );
        assert_ne!(
            at(a.column(t_s), a.row((hot + own) * 1.1)),
            rgb(picture::band_colour(0, 5)),
            "at {t_s} s"
        );
    }
}
