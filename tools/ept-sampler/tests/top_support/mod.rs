// SPDX-License-Identifier: GPL-2.0

//! What the `top` tests share: the fixture snapshots, a screen drawn into
//! ratatui's `TestBackend`, and the fixtures' truth files.

#![allow(dead_code)]

use std::path::PathBuf;

use ept_sampler::model::Snapshot;
use ept_sampler::source::ProcRoot;
use ept_sampler::top::app::{App, SourceKind};
use ept_sampler::top::view;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

/// The fixture set.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npt-7.3")
}

/// `phase1` or `phase2`, read through the same path as `top` reads /proc.
pub fn snapshot(phase: &str) -> Snapshot {
    ProcRoot::open(fixtures().join(phase))
        .expect("fixture dir")
        .snapshot()
        .expect("read fixture")
        .parse()
        .expect("parse fixture")
}

/// An app showing `phase`, as `top --proc <phase>` starts.
pub fn app(phase: &str) -> App {
    let mut app = App::new(SourceKind::Live(format!("fixtures/{phase}")), 1000);
    app.update(snapshot(phase));
    app
}

/// The screen `app` draws on a `w` x `h` terminal.
pub fn screen(app: &App, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal.draw(|f| view::draw(f, app)).expect("draw");
    terminal.backend().buffer().clone()
}

/// The text of each line of `buf`.
pub fn lines(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

/// The index of the one line that starts (after blanks and a `>`
/// selection mark) with `word`, as the VM table rows do.
pub fn row_of(lines: &[String], word: &str) -> Option<usize> {
    lines
        .iter()
        .position(|l| l.trim_start_matches([' ', '>']).split_whitespace().next() == Some(word))
}

/// A range of guest-physical addresses from a truth file.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub gpa: u64,
    pub len: u64,
}

/// A testvm truth file (`a.json` is VM 72-4, `b.json` 85-4, `c.json` 96-4).
pub struct Truth {
    pub vm: String,
    pub mem_bytes: u64,
    pub written: Vec<Range>,
    pub read: Vec<Range>,
}

/// Reads `truth/<name>`.
pub fn truth(name: &str) -> Truth {
    let text = std::fs::read_to_string(fixtures().join("truth").join(name)).expect("truth file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("truth json");
    let ranges = |key: &str| {
        v[key]
            .as_array()
            .expect("ranges")
            .iter()
            .map(|r| Range {
                gpa: r["gpa"].as_u64().expect("gpa"),
                len: r["len"].as_u64().expect("len"),
            })
            .collect()
    };
    Truth {
        vm: v["vm"].as_str().expect("vm").to_string(),
        mem_bytes: v["mem_bytes"].as_u64().expect("mem_bytes"),
        written: ranges("written"),
        read: ranges("read"),
    }
}
