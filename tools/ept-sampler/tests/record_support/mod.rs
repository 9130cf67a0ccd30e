// SPDX-License-Identifier: GPL-2.0

//! Shared by the record tests: the fixture snapshots and the committed
//! fixture recording made from them.

#![allow(dead_code)]

use std::path::PathBuf;

use ept_sampler::model::RawSnapshot;
use ept_sampler::record::{Header, Writer};
use ept_sampler::source::ProcRoot;

/// Synthetic clock base of the fixture recording: the capture did not
/// note wall-clock times, so each snapshot is stamped with this plus the
/// kernel time (ms) of VM 72-4's newest round in it; only the spacing is
/// real.
pub const BASE_UNIX_MS: u64 = 1_795_573_559_000;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The committed recording of the two fixture phases.
pub fn fixture_recording() -> PathBuf {
    fixture("recordings/npt-7.3.rec.gz")
}

/// Kernel time (ms) of the newest round in a `history` text.
fn newest_round_ms(history: &str) -> u64 {
    history
        .lines()
        .filter_map(|l| l.strip_prefix("round "))
        .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok())
        .max()
        .unwrap()
        / 1_000_000
}

/// The raw snapshot of fixture phase `phase`, stamped as in the fixture
/// recording.
pub fn phase(phase: &str) -> RawSnapshot {
    let mut raw = ProcRoot::open(fixture("npt-7.3").join(phase))
        .unwrap()
        .snapshot()
        .unwrap();
    raw.unix_ms = BASE_UNIX_MS + newest_round_ms(raw.file("72-4/history").unwrap());
    raw
}

/// The header of the fixture recording.
pub fn fixture_header(snaps: &[RawSnapshot]) -> Header {
    let span = snaps.last().unwrap().unix_ms - snaps[0].unix_ms;
    Header::new(
        snaps[0].unix_ms,
        span,
        span,
        Vec::new(),
        snaps[0].file("version").unwrap().to_string(),
    )
}

/// Writes the fixture recording to `path` with the tool's writer.
pub fn write_fixture_recording(path: &std::path::Path) {
    let snaps = [phase("phase1"), phase("phase2")];
    let mut w = Writer::create(path, &fixture_header(&snaps)).unwrap();
    for s in &snaps {
        w.write(s).unwrap();
    }
    w.finish().unwrap();
}

pub fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}
