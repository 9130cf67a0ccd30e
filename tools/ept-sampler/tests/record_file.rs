// SPDX-License-Identifier: GPL-2.0

//! The recording file: round trip, the committed fixture recording,
//! interrupted, cut, damaged and foreign files.

#[path = "record_support/mod.rs"]
mod support;

use std::io::{Read, Write};

use ept_sampler::error::{exit, Error};
use ept_sampler::model::RawSnapshot;
use ept_sampler::record::file::{read_all, MAGIC, VERSION};
use ept_sampler::record::{Header, Reader, Writer};
use support::*;

fn three() -> Vec<RawSnapshot> {
    let mut again = phase("phase2");
    again.unix_ms += 1000;
    vec![phase("phase1"), phase("phase2"), again]
}

fn write(path: &std::path::Path, snaps: &[RawSnapshot]) {
    let mut w = Writer::create(path, &fixture_header(snaps)).unwrap();
    for s in snaps {
        w.write(s).unwrap();
    }
    w.finish().unwrap();
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn format_error(e: Error) -> String {
    assert_eq!(e.exit_code(), exit::FORMAT, "{e}");
    e.to_string()
}

#[test]
fn fixture_snapshots_round_trip() {
    let snaps = three();
    // The fixtures hold every file a snapshot keeps, for both VMs.
    assert!(snaps[0]
        .file("72-4/history")
        .unwrap()
        .contains("# ept_sampler history 1"));
    assert!(snaps[0].file("85-4/heatmap").is_some());
    let path = tmp("round-trip.rec.gz");
    write(&path, &snaps);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
    let (header, back, truncated) = read_all(&path).unwrap();
    assert_eq!(back, snaps);
    assert!(!truncated);
    assert_eq!(header, fixture_header(&snaps));
    assert_eq!(header.format, MAGIC);
    assert_eq!(header.version, VERSION);
    // Parsed back by the same parsers as /proc.
    let vm = back[1].parse().unwrap();
    assert_eq!(
        vm.vm("72-4")
            .unwrap()
            .history
            .as_ref()
            .unwrap()
            .rounds
            .len(),
        64
    );

    // The same lines uncompressed (after zcat) read the same.
    let plain = tmp("round-trip.jsonl");
    std::fs::write(&plain, gunzip(&bytes)).unwrap();
    let (_, back, truncated) = read_all(&plain).unwrap();
    assert_eq!(back, snaps);
    assert!(!truncated);
}

#[test]
fn committed_fixture_recording_holds_the_fixture_snapshots() {
    let path = fixture_recording();
    if std::env::var_os("EPT_SAMPLER_WRITE_FIXTURES").is_some() {
        write_fixture_recording(&path);
    }
    let (header, back, truncated) = read_all(&path).unwrap();
    assert!(!truncated);
    assert_eq!(back, vec![phase("phase1"), phase("phase2")]);
    assert_eq!(header.started_unix_ms, back[0].unix_ms);
    assert_eq!(header.host_version, back[0].file("version").unwrap());
    assert_eq!(header.version, 1);
}

#[test]
fn an_interrupted_recording_gives_every_snapshot_written_before() {
    let snaps = three();
    let path = tmp("killed.rec.gz");
    let mut w = Writer::create(&path, &fixture_header(&snaps)).unwrap();
    w.write(&snaps[0]).unwrap();
    w.write(&snaps[1]).unwrap();
    // As if the process were killed: no gzip trailer, nothing after the
    // last write.
    std::mem::forget(w);
    let mut r = Reader::open(&path).unwrap();
    let got: Vec<RawSnapshot> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(got, snaps[..2]);
    assert!(r.truncated());
}

#[test]
fn a_file_cut_anywhere_gives_the_complete_snapshots_before_the_cut() {
    let snaps = three();
    let path = tmp("whole.rec.gz");
    write(&path, &snaps);
    let bytes = std::fs::read(&path).unwrap();
    let cut_path = tmp("cut.rec.gz");
    let mut seen_counts = std::collections::BTreeSet::new();
    let n = bytes.len();
    // Every so many bytes, and into the gzip trailer (after the last
    // snapshot's data).
    let cuts = (0..n).step_by(n / 200 + 1).chain([n - 1, n - 4, n - 8]);
    for cut in cuts {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        match Reader::open(&cut_path) {
            Err(e) => {
                let msg = format_error(e);
                assert!(
                    msg.contains("empty")
                        || msg.contains("no header line")
                        || msg.contains("not an ept-sampler"),
                    "cut at {cut}: {msg}"
                );
            }
            Ok(mut r) => {
                let got: Vec<RawSnapshot> = r
                    .by_ref()
                    .map(|s| s.unwrap_or_else(|e| panic!("cut at {cut}: {e}")))
                    .collect();
                assert!(r.truncated(), "cut at {cut} of {} not noticed", bytes.len());
                assert_eq!(got, snaps[..got.len()], "cut at {cut}");
                seen_counts.insert(got.len());
            }
        }
    }
    // The cuts fell before, inside and after each snapshot.
    assert_eq!(seen_counts, [0, 1, 2, 3].into_iter().collect());
}

#[test]
fn damaged_compressed_data_is_an_error_not_a_short_recording() {
    let snaps = three();
    let path = tmp("damaged-src.rec.gz");
    write(&path, &snaps);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let damaged = tmp("damaged.rec.gz");
    std::fs::write(&damaged, &bytes).unwrap();
    let r = Reader::open(&damaged).unwrap();
    let results: Vec<_> = r.collect();
    let err = results
        .into_iter()
        .find_map(Result::err)
        .expect("damage in the middle must be reported");
    format_error(err);
}

#[test]
fn a_bad_line_in_the_middle_names_the_line() {
    let snaps = three();
    let path = tmp("bad-line-src.rec.gz");
    write(&path, &snaps);
    let text = String::from_utf8(gunzip(&std::fs::read(&path).unwrap())).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"unix_ms\": 12, \"files\": ";
    let bad = tmp("bad-line.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let mut r = Reader::open(&bad).unwrap();
    assert_eq!(r.next().unwrap().unwrap(), snaps[0]);
    let msg = format_error(r.next().unwrap().unwrap_err());
    assert!(msg.contains("line 3"), "{msg}");
    assert!(r.next().is_none());
}

fn with_header(name: &str, header: &str) -> std::path::PathBuf {
    let path = tmp(name);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    writeln!(gz, "{header}").unwrap();
    writeln!(gz, "{}", serde_json::to_string(&phase("phase1")).unwrap()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    path
}

#[test]
fn other_versions_and_foreign_files_are_refused_with_a_reason() {
    let mut h = serde_json::to_value(fixture_header(&three())).unwrap();
    h["version"] = 2.into();
    let msg = format_error(Reader::open(&with_header("v2.rec.gz", &h.to_string())).unwrap_err());
    assert!(msg.contains("version 2") && msg.contains("newer"), "{msg}");
    h["version"] = 0.into();
    let msg = format_error(Reader::open(&with_header("v0.rec.gz", &h.to_string())).unwrap_err());
    assert!(msg.contains("version 0"), "{msg}");
    h["version"] = 1.into();
    h["format"] = "something-else".into();
    let msg = format_error(Reader::open(&with_header("magic.rec.gz", &h.to_string())).unwrap_err());
    assert!(msg.contains("not an ept-sampler recording"), "{msg}");
    // A version-1 header read back is the header written.
    h["format"] = MAGIC.into();
    let r = Reader::open(&with_header("v1.rec.gz", &h.to_string())).unwrap();
    let want: Header = serde_json::from_value(h).unwrap();
    assert_eq!(r.header(), &want);

    let png = tmp("not-a-recording");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n....").unwrap();
    let msg = format_error(Reader::open(&png).unwrap_err());
    assert!(msg.contains("not an ept-sampler recording"), "{msg}");
    let empty = tmp("empty.rec.gz");
    std::fs::write(&empty, b"").unwrap();
    assert!(format_error(Reader::open(&empty).unwrap_err()).contains("empty"));
    let missing = Reader::open(&tmp("no-such-file.rec.gz")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}
