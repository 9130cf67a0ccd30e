// SPDX-License-Identifier: GPL-2.0

//! Shared by the picture tests: the fixtures, testvm's truth about them,
//! and reading heat back out of decoded pixels.

#![allow(dead_code)]

use std::ops::Range;
use std::path::PathBuf;

use ept_sampler::model::Snapshot;
use ept_sampler::picture::{self, PanelArea};
use ept_sampler::source::ProcRoot;

pub const MIB: u64 = 1 << 20;

/// The fixture directory `npt-7.3/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npt-7.3")
        .join(name)
}

/// The parsed snapshot of a fixture phase.
pub fn snapshot(phase: &str) -> Snapshot {
    ProcRoot::open(fixture(phase))
        .unwrap()
        .snapshot()
        .unwrap()
        .parse()
        .unwrap()
}

/// What testvm says VM `a` (72-4 in the files) did, from its truth file.
pub struct Truth {
    /// Written in the first phase (before the switch).
    pub first_written: Range<u64>,
    /// Written in the second phase (the one the fixtures show).
    pub second_written: Range<u64>,
    /// Read all along.
    pub read: Range<u64>,
    /// Guest memory size.
    pub mem: u64,
}

pub fn truth_a() -> Truth {
    let text = std::fs::read_to_string(fixture("truth/a.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let range = |r: &serde_json::Value| {
        let gpa = r["gpa"].as_u64().unwrap();
        gpa..gpa + r["len"].as_u64().unwrap()
    };
    assert_eq!(v["vm"], "72-4");
    let phases = v["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    Truth {
        first_written: range(&phases[0]["written"][0]),
        second_written: range(&phases[1]["written"][0]),
        read: range(&v["read"][0]),
        mem: v["mem_bytes"].as_u64().unwrap(),
    }
}

/// A range no page of which testvm touched and the sampler saw as unmapped
/// (above every range in the truth file, below the end of guest memory).
pub const COLD: Range<u64> = 180 * MIB..250 * MIB;

/// The inner part of `r` (a margin of an eighth on each side), so that
/// antialiased or rounded edges are not sampled.
pub fn inner(r: &Range<u64>) -> Range<u64> {
    let m = (r.end - r.start) / 8;
    r.start + m..r.end - m
}

/// A decoded RGB picture.
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<[u8; 3]>,
}

impl Rgb {
    pub fn at(&self, x: i32, y: i32) -> [u8; 3] {
        assert!(
            x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height,
            "({x},{y}) outside the picture"
        );
        self.pixels[y as usize * self.width as usize + x as usize]
    }
}

/// Heat of a pixel read off the heat scale (the legend's colours), `None`
/// for a colour that is not on the scale (hole grey, white, marks, text).
pub fn heat_of(p: [u8; 3]) -> Option<f64> {
    let mut best = (u32::MAX, 0.0);
    for i in 0..=255u32 {
        let h = f64::from(i) / 255.0;
        let c = picture::heat_colour(h);
        let d = [(c.0, p[0]), (c.1, p[1]), (c.2, p[2])]
            .iter()
            .map(|&(a, b)| (i32::from(a) - i32::from(b)).pow(2) as u32)
            .sum::<u32>();
        if d < best.0 {
            best = (d, h);
        }
    }
    (best.0 <= 12).then_some(best.1)
}

/// Mean heat over the columns of `range` at pixel rows `rows` of a panel;
/// pixels not on the heat scale count as cold (0).
pub fn mean_heat(img: &Rgb, area: &PanelArea, range: &Range<u64>, rows: Range<i32>) -> f64 {
    let r = inner(range);
    let (x0, x1) = (area.column(r.start), area.column(r.end));
    assert!(x1 > x0, "range {r:?} has no pixel column");
    assert!(
        x0 >= area.x.start && x1 <= area.x.end,
        "range {r:?} outside the panel"
    );
    let mut sum = 0.0;
    let mut n = 0;
    for y in rows {
        for x in x0..x1 {
            sum += heat_of(img.at(x, y)).unwrap_or(0.0);
            n += 1;
        }
    }
    assert!(n > 0);
    sum / f64::from(n)
}

/// Share of the pixels over the columns of `range` (the whole panel
/// height) that have colour `c` (within a small distance).
pub fn share_of_colour(img: &Rgb, area: &PanelArea, range: &Range<u64>, c: [u8; 3]) -> f64 {
    let r = inner(range);
    let (x0, x1) = (area.column(r.start), area.column(r.end));
    let mut hit = 0;
    let mut n = 0;
    for y in area.y.clone() {
        for x in x0..x1 {
            let p = img.at(x, y);
            let d: i32 = (0..3)
                .map(|i| (i32::from(p[i]) - i32::from(c[i])).pow(2))
                .sum();
            if d <= 12 {
                hit += 1;
            }
            n += 1;
        }
    }
    f64::from(hit) / f64::from(n)
}

/// Rows of a panel between two fractions of its height from the bottom
/// (0.0 the bottom edge, 1.0 the top).
pub fn rows(area: &PanelArea, from: f64, to: f64) -> Range<i32> {
    let h = f64::from(area.y.end - area.y.start);
    let bottom = area.y.end;
    (bottom - (to * h) as i32)..(bottom - (from * h) as i32)
}

/// What the truth file says must show in the picture of VM 72-4 from
/// `phase2` (after the switch: the second written range and the read
/// range hot, the first written range mapped but cold, [`COLD`] a hole).
pub fn check_phase2(img: &Rgb, layout: &picture::Layout) {
    let t = truth_a();
    let heat = layout.heat.as_ref().expect("a heat panel");
    // Below the dirty marks at 100%: the accessed bars only.
    let bars = rows(heat, 0.02, 0.85);
    let hot = mean_heat(img, heat, &t.second_written, bars.clone());
    let read = mean_heat(img, heat, &t.read, bars.clone());
    let old = mean_heat(img, heat, &t.first_written, bars.clone());
    let cold = mean_heat(img, heat, &COLD, bars.clone());
    assert!(hot > 0.9, "written range heat {hot}");
    assert!(read > 0.9, "read range heat {read}");
    assert!(old < 0.05, "range written before the switch: heat {old}");
    assert!(cold < 0.05, "cold range heat {cold}");
    let hole = [picture::HOLE.0, picture::HOLE.1, picture::HOLE.2];
    assert!(
        share_of_colour(img, heat, &COLD, hole) > 0.9,
        "the cold range is unmapped: grey"
    );
    assert!(
        share_of_colour(img, heat, &t.first_written, hole) < 0.01,
        "the first range is mapped"
    );
    let dirty = [picture::DIRTY.0, picture::DIRTY.1, picture::DIRTY.2];
    assert!(
        share_of_colour(img, heat, &t.second_written, dirty) > 0.0,
        "written: dirty marks"
    );
    assert_eq!(
        share_of_colour(img, heat, &t.read, dirty),
        0.0,
        "only read: no dirty mark"
    );

    let hist = layout.history.as_ref().expect("a history panel");
    let all = rows(hist, 0.0, 1.0);
    let hot = mean_heat(img, hist, &t.second_written, all.clone());
    let read = mean_heat(img, hist, &t.read, all.clone());
    let old = mean_heat(img, hist, &t.first_written, all.clone());
    let cold = mean_heat(img, hist, &COLD, all);
    assert!(hot > 0.9, "history: written range heat {hot}");
    assert!(read > 0.9, "history: read range heat {read}");
    assert!(old < 0.05, "history: first range heat {old}");
    assert!(cold < 0.05, "history: cold range heat {cold}");
    // Not cold but unmapped: the history shows the heat map's holes grey.
    assert!(
        share_of_colour(img, hist, &COLD, hole) > 0.9,
        "history: the cold range is unmapped: grey"
    );
    assert!(
        share_of_colour(img, hist, &t.first_written, hole) < 0.01,
        "history: the first range is mapped"
    );
}
