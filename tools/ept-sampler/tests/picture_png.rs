// SPDX-License-Identifier: GPL-2.0

//! PNG pictures of the fixture VM, decoded with the `png` crate: the size
//! is as asked and the heat is where testvm's truth file says.

mod bios_support;
#[path = "picture_support/mod.rs"]
mod support;

use std::path::PathBuf;

use ept_sampler::picture::{self, Picture, PictureFormat};
use support::*;

fn decode(path: &PathBuf) -> Rgb {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Rgb {
        width: info.width,
        height: info.height,
        pixels,
    }
}

fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn png_of_fixture_vm_has_heat_where_testvm_worked() {
    let snap = snapshot("phase2");
    let vm = snap.vm("72-4").unwrap();
    for (w, h) in [(1000, 700), (640, 400), (1600, 500)] {
        let path = out(&format!("72-4-{w}x{h}.png"));
        picture::write(vm, &path, PictureFormat::Png, w, h).unwrap();
        let img = decode(&path);
        assert_eq!((img.width, img.height), (w, h));
        let layout = picture::layout(&Picture::from_vm(vm), w, h).unwrap();
        check_phase2(&img, &layout);
    }
}

#[test]
fn png_of_a_vm_sampled_for_accessed_only_has_no_dirty_marks() {
    // 85-4: THP guest, mode accessed, 2M granule; testvm wrote 32M+16M.
    let snap = snapshot("phase2");
    let vm = snap.vm("85-4").unwrap();
    let path = out("85-4.png");
    picture::write(vm, &path, PictureFormat::Png, 900, 600).unwrap();
    let img = decode(&path);
    let layout = picture::layout(&Picture::from_vm(vm), 900, 600).unwrap();
    let heat = layout.heat.as_ref().unwrap();
    let text = std::fs::read_to_string(fixture("truth/b.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let gpa = v["written"][0]["gpa"].as_u64().unwrap();
    let written = gpa..gpa + v["written"][0]["len"].as_u64().unwrap();
    let hot = mean_heat(&img, heat, &written, rows(heat, 0.02, 0.85));
    let cold = mean_heat(&img, heat, &(80 * MIB..120 * MIB), rows(heat, 0.02, 0.85));
    assert!(hot > 0.9 && cold < 0.05, "hot {hot} cold {cold}");
    let dirty = [picture::DIRTY.0, picture::DIRTY.1, picture::DIRTY.2];
    assert_eq!(share_of_colour(&img, heat, &written, dirty), 0.0);
}

#[test]
fn sizes_out_of_range_are_refused_with_the_limits() {
    let snap = snapshot("phase2");
    let vm = snap.vm("72-4").unwrap();
    let err = picture::write(vm, &out("tiny.png"), PictureFormat::Png, 10, 10).unwrap_err();
    assert!(err.to_string().contains("320x200"), "{err}");
    assert!(!out("tiny.png").exists());
}

#[test]
fn the_cli_refuses_picture_sizes_pictures_refuse_with_the_range() {
    // Both commands that draw take the picture's own limits, so a bad
    // size is a usage error (2) naming them, not a failure after reading
    // the VM.
    let bin = env!("CARGO_BIN_EXE_ept-sampler");
    let proc = fixture("phase2");
    let rec =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings/npt-7.3.rec.gz");
    let (min, max) = (picture::MIN_SIZE, picture::MAX_SIZE);
    for (flag, bad, lo, hi) in [
        ("--width", min.0 - 1, min.0, max.0),
        ("--width", max.0 + 1, min.0, max.0),
        ("--height", min.1 - 1, min.1, max.1),
        ("--height", max.1 + 1, min.1, max.1),
    ] {
        let png = out("refused.png");
        let _ = std::fs::remove_file(&png);
        let heatmap = std::process::Command::new(bin)
            .arg("--proc")
            .arg(&proc)
            .args(["heatmap", "72-4", flag, &bad.to_string(), "--png"])
            .arg(&png)
            .output()
            .unwrap();
        let report = std::process::Command::new(bin)
            .arg("report")
            .arg(&rec)
            .args(["--vm", "72-4", flag, &bad.to_string(), "--png"])
            .arg(&png)
            .output()
            .unwrap();
        for r in [heatmap, report] {
            assert_eq!(r.status.code(), Some(2), "{flag} {bad}");
            let err = String::from_utf8_lossy(&r.stderr);
            assert!(err.contains(&format!("{lo}..={hi}")), "{flag} {bad}: {err}");
        }
        assert!(!png.exists());
    }
    // The limits themselves are accepted.
    let png = out("smallest.png");
    let r = std::process::Command::new(bin)
        .arg("--proc")
        .arg(&proc)
        .args(["heatmap", "72-4", "--width", &min.0.to_string()])
        .args(["--height", &min.1.to_string(), "--png"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(decode(&png).width, min.0);
}

#[test]
fn a_far_away_memslot_does_not_leave_the_picture_mostly_hole() {
    // VM 72-4 (256 MiB at 0) as a real QEMU guest has it: plus a 256 KiB
    // BIOS slot just below 4 GiB, accessed in every round; the heat map
    // runs on through the hole to it, the history has 2 MiB regions up to
    // 4 GiB (the BIOS in the last, an eighth of its pages).
    let snap = snapshot("phase2");
    let mut vm = snap.vm("72-4").unwrap().clone();
    let bios = bios_support::BIOS;
    // ceil(254 * 64 / 512): 64 of the last 2 MiB region's 512 pages.
    let share = 32;
    bios_support::add_bios_slot(&mut vm, share);
    let (w, h) = (1000, 700);
    let path = out("72-4-bios.png");
    picture::write(&vm, &path, PictureFormat::Png, w, h).unwrap();
    let img = decode(&path);
    assert_eq!((img.width, img.height), (w, h));
    let layout = picture::layout(&Picture::from_vm(&vm), w, h).unwrap();
    // The guest's RAM still fills the picture, and what testvm did is
    // where the truth file says.
    check_phase2(&img, &layout);
    let heat = layout.heat.as_ref().unwrap();
    let hist = layout.history.as_ref().unwrap();
    for area in [heat, hist] {
        let plot = area.x.end - area.x.start;
        let ram = area.column(256 * MIB) - area.column(0);
        assert!(ram > plot * 9 / 10, "RAM {ram} of {plot} columns");
        // The BIOS slot gets some columns of its own, after a break.
        let slot = area.column(bios.end) - area.column(bios.start);
        assert!(slot >= plot / 100, "BIOS {slot} of {plot} columns");
        let gap = area.column(bios.start) - area.column(256 * MIB);
        assert!(gap > 0 && gap < plot / 20, "break {gap} columns");
        // The break is marked: its mark crosses the gap's columns.
        let mark = [picture::BREAK.0, picture::BREAK.1, picture::BREAK.2];
        let marked = (area.column(256 * MIB) + 1..area.column(bios.start))
            .flat_map(|x| area.y.clone().map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let p = img.at(x, y);
                (0..3).all(|i| (i32::from(p[i]) - i32::from(mark[i])).abs() < 40)
            })
            .count();
        assert!(marked > 10, "break mark: {marked} pixels");
    }
    // The BIOS slot: hot in the heat panel, an eighth in the history.
    let hot = mean_heat(&img, heat, &bios, rows(heat, 0.02, 0.85));
    assert!(hot > 0.9, "BIOS heat {hot}");
    let seen = mean_heat(&img, hist, &bios, rows(hist, 0.0, 1.0));
    let want = f64::from(share) / 255.0;
    assert!(
        (seen - want).abs() < 0.05,
        "BIOS history {seen}, want {want}"
    );
}
