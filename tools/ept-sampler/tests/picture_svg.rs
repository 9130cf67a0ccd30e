// SPDX-License-Identifier: GPL-2.0

//! SVG pictures of the fixture VM, rasterized with resvg (a renderer
//! independent of plotters): the declared size is as asked and the heat is
//! where testvm's truth file says, as in the PNG.

#[path = "picture_support/mod.rs"]
mod support;

use std::path::PathBuf;

use ept_sampler::picture::{self, Picture, PictureFormat};
use resvg::{tiny_skia, usvg};
use support::*;

fn rasterize(path: &PathBuf) -> Rgb {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.trim_start().starts_with("<svg"),
        "not an SVG: {}",
        &text[..80]
    );
    let tree = usvg::Tree::from_str(&text, &usvg::Options::default()).unwrap();
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    // Opaque white below, as a viewer shows it.
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    let pixels = pixmap
        .pixels()
        .iter()
        .map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue()]
        })
        .collect();
    Rgb {
        width: size.width(),
        height: size.height(),
        pixels,
    }
}

#[test]
fn svg_of_fixture_vm_has_heat_where_testvm_worked() {
    let snap = snapshot("phase2");
    let vm = snap.vm("72-4").unwrap();
    for (w, h) in [(1000, 700), (700, 450)] {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("72-4-{w}x{h}.svg"));
        picture::write(vm, &path, PictureFormat::Svg, w, h).unwrap();
        let img = rasterize(&path);
        assert_eq!((img.width, img.height), (w, h));
        let layout = picture::layout(&Picture::from_vm(vm), w, h).unwrap();
        check_phase2(&img, &layout);
    }
}

#[test]
fn svg_carries_axis_text() {
    // resvg is built without text support here, so check the words in the
    // file: the axis names and power-of-two address ticks.
    let snap = snapshot("phase2");
    let vm = snap.vm("72-4").unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("72-4-text.svg");
    picture::write(vm, &path, PictureFormat::Svg, 1000, 700).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let tree = usvg::roxmltree::Document::parse(&text).unwrap();
    let words: Vec<&str> = tree
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for word in [
        "guest-physical address",
        "time since the first round",
        "128M",
        "256M",
        "VM 72-4, period 100 ms",
        "100%",
    ] {
        assert!(words.contains(&word), "{word:?} missing from {words:?}");
    }
}

#[test]
fn a_long_history_of_a_large_guest_gives_a_picture_the_size_of_the_plot() {
    use ept_core::heat::{RoundRecord, Track};
    use ept_sampler::model::HistoryRound;
    use ept_sampler::picture::TimePanel;

    // 8 GiB in 2 MiB regions, 4000 rounds 100 ms apart: the first half
    // touches 200M..600M, the second half 6000M..6400M.
    let (regions, rounds) = (4096usize, 4000u64);
    let early = 200 * MIB..600 * MIB;
    let late = 6000 * MIB..6400 * MIB;
    let region = 2 * MIB;
    let rounds: Vec<HistoryRound> = (0..rounds)
        .map(|i| {
            let hot = if i < 2000 { &early } else { &late };
            let accessed = (0..regions as u64)
                .map(|r| if hot.contains(&(r * region)) { 255 } else { 0 })
                .collect();
            HistoryRound {
                record: RoundRecord {
                    round: i + 1,
                    start_ns: 1_000_000_000 + i * 100_000_000,
                    walk_ns: 1,
                    leaves: 1,
                    accessed_pages: 1,
                    dirty_pages: 0,
                    cleared: 1,
                    yields: 0,
                    flushed: true,
                    track: Track::Accessed,
                },
                accessed,
                dirty: Vec::new(),
            }
        })
        .collect();
    let pic = Picture {
        title: "synthetic".into(),
        history: Some(TimePanel {
            base: 0,
            region,
            rounds,
        }),
        ..Picture::default()
    };
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("long.svg");
    picture::write_picture(&pic, &path, PictureFormat::Svg, 800, 500).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    // 16 million region-rounds; drawn per pixel, a few hundred rows of a
    // few cells.
    assert!(len < 1 << 20, "SVG of {len} bytes");
    let img = rasterize(&path);
    let layout = picture::layout(&pic, 800, 500).unwrap();
    let area = layout.history.as_ref().unwrap();
    let first_half = rows(area, 0.02, 0.45);
    let second_half = rows(area, 0.55, 0.98);
    let e1 = mean_heat(&img, area, &early, first_half.clone());
    let l1 = mean_heat(&img, area, &late, first_half);
    let e2 = mean_heat(&img, area, &early, second_half.clone());
    let l2 = mean_heat(&img, area, &late, second_half);
    assert!(e1 > 0.9 && l1 < 0.05, "first half: early {e1} late {l1}");
    assert!(e2 < 0.05 && l2 > 0.9, "second half: early {e2} late {l2}");
    assert!(mean_heat(&img, area, &(1000 * MIB..5000 * MIB), rows(area, 0.0, 1.0)) < 0.05);
}

#[test]
fn slots_starting_close_together_share_one_label() {
    // As a QEMU guest's firmware slots in the first megabyte: labelled
    // one by one they would be drawn over each other.
    let snap = snapshot("phase2");
    let mut vm = snap.vm("72-4").unwrap().clone();
    vm.memslots.extend(
        ept_core::procfs::memslots::parse(
            "# slot as_id id base size flags\n3 0 3 0xc0000 0x20000 readonly\n",
        )
        .map(Result::unwrap),
    );
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("72-4-slots.svg");
    picture::write(&vm, &path, PictureFormat::Svg, 1000, 700).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let tree = usvg::roxmltree::Document::parse(&text).unwrap();
    let words: Vec<&str> = tree
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(words.contains(&"slots 0,3"), "{words:?}");
    assert!(!words.iter().any(|w| *w == "slot 0" || *w == "slot 3"));
}
