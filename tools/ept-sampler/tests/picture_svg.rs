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
