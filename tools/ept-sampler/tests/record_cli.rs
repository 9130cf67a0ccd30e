// SPDX-License-Identifier: GPL-2.0

//! `ept-sampler record` run as a person would, against a copy of the
//! module's files (`--proc` at a fixture directory).

#[path = "record_support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ept_sampler::record::file::read_all;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_ept-sampler");

fn record(args: &[&str], out: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("--proc")
        .arg(fixture("npt-7.3/phase2"))
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn records_a_snapshot_every_interval_for_the_duration() {
    let out = tmp("cli-all.rec.gz");
    let start = Instant::now();
    let r = record(&["--duration", "1s", "--interval-ms", "250"], &out);
    let took = start.elapsed();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    let stderr = String::from_utf8_lossy(&r.stderr);
    // Not a terminal: no progress bar, one closing line.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("recorded 5 snapshots"), "{stderr}");
    let (header, snaps, truncated) = read_all(&out).unwrap();
    assert!(!truncated);
    assert_eq!(snaps.len(), 5, "at 0, 250, 500, 750 and 1000 ms");
    assert_eq!((header.interval_ms, header.duration_ms), (250, 1000));
    assert!(header.vms.is_empty());
    let want = phase("phase2");
    for s in &snaps {
        assert_eq!(s.files, want.files, "the raw text of every file");
    }
    for w in snaps.windows(2) {
        let dt = w[1].unix_ms - w[0].unix_ms;
        assert!((200..=400).contains(&dt), "{dt} ms between snapshots");
    }
}

#[test]
fn vm_filter_keeps_only_that_vms_files() {
    let out = tmp("cli-one.rec.gz");
    let r = record(&["-d", "200ms", "-i", "100", "--vm", "85"], &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (header, snaps, _) = read_all(&out).unwrap();
    assert_eq!(header.vms, ["85-4"]);
    let paths: Vec<&str> = snaps[0].files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "85-4/config",
            "85-4/heatmap",
            "85-4/history",
            "85-4/idle",
            "85-4/memslots",
            "85-4/stats",
            "version",
            "vms"
        ]
    );
}

#[test]
fn bad_values_are_refused_before_anything_is_written() {
    let out = tmp("cli-bad.rec.gz");
    let _ = std::fs::remove_file(&out);
    let r = record(&["-d", "soon"], &out);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("30s"));
    let r = record(&["-d", "1s", "--vm", "4242-1"], &out);
    assert_eq!(
        r.status.code(),
        Some(i32::from(ept_sampler::error::exit::NO_VM))
    );
    assert!(!out.exists());
    let r = record(&["-d", "1s", "-i", "0"], &out);
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn a_killed_record_leaves_a_readable_recording() {
    let out = tmp("cli-killed.rec.gz");
    let mut child = Command::new(BIN)
        .arg("--proc")
        .arg(fixture("npt-7.3/phase2"))
        .args(["record", "-d", "1m", "-i", "100", "-o"])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL: no chance to finish the file
    child.wait().unwrap();
    let (_, snaps, truncated) = read_all(&out).unwrap();
    assert!(truncated);
    assert!(snaps.len() >= 5, "{} snapshots", snaps.len());
    let report = Command::new(BIN).arg("report").arg(&out).output().unwrap();
    assert!(report.status.success());
    let err = String::from_utf8_lossy(&report.stderr);
    assert!(err.contains("interrupted"), "{err}");
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(&format!("VM 72-4 (256 MiB): {} snapshots", snaps.len())),
        "{text}"
    );
}

/// Ctrl-C, `kill` and a closed terminal end a recording cleanly: the file
/// is whole (not cut short), holds what was taken, and the exit status is 0.
#[test]
fn a_signal_ends_a_recording_cleanly() {
    for (name, signal) in [
        ("int", libc::SIGINT),
        ("term", libc::SIGTERM),
        ("hup", libc::SIGHUP),
    ] {
        let out = tmp(&format!("cli-signal-{name}.rec.gz"));
        let child = Command::new(BIN)
            .arg("--proc")
            .arg(fixture("npt-7.3/phase2"))
            .args(["record", "-d", "1m", "-i", "100", "-o"])
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let t = Instant::now();
        let done = child.wait_with_output().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "SIGNAL {name}: took {:?} to stop",
            t.elapsed()
        );
        assert!(done.status.success(), "{name}: {:?}", done.status);
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(err.contains("stopped by a signal"), "{name}: {err}");
        let (_, snaps, truncated) = read_all(&out).unwrap();
        assert!(!truncated, "{name}: the file was left cut short");
        // 1.5 s at 100 ms: about 15 snapshots, never the 601 of a minute.
        assert!(
            (5..100).contains(&snaps.len()),
            "{name}: {} snapshots",
            snaps.len()
        );
        assert!(
            err.contains(&format!("recorded {} snapshots", snaps.len())),
            "{name}: {err}"
        );
    }
}
