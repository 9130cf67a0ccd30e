// SPDX-License-Identifier: GPL-2.0

//! `top --batch`: the same screens as the full-screen view, printed as text
//! without a terminal. Expectations from the fixture README (which VMs are
//! sampled, which is not attached), not from the tool's output.

use std::path::PathBuf;
use std::process::Command;

fn phase2() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npt-7.3/phase2")
}

fn top(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ept-sampler"))
        .arg("--proc")
        .arg(phase2())
        .arg("top")
        .args(args)
        .output()
        .expect("run ept-sampler")
}

#[test]
fn batch_prints_n_screens_of_the_asked_size_without_a_terminal() {
    let out = top(&["--batch", "3", "--interval-ms", "10", "--size", "100x30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    // Each screen is 30 lines and a blank separator.
    assert_eq!(lines.len(), 3 * 31, "{text}");
    for screen in lines.chunks(31) {
        assert!(screen[0].starts_with("ept-sampler top"), "{}", screen[0]);
        assert!(screen.iter().all(|l| l.chars().count() <= 100));
        assert_eq!(screen[30], "");
        let row = |vm: &str| {
            screen
                .iter()
                .find(|l| l.trim_start_matches(['>', ' ']).starts_with(vm))
                .unwrap_or_else(|| panic!("no row for {vm} in\n{}", screen.join("\n")))
        };
        assert!(row("72-4").contains("sampling"));
        assert!(row("85-4").contains("sampling"));
        assert!(row("96-4").contains("not attached"));
    }
    // Plain text: no escape sequences.
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn batch_size_is_checked() {
    let out = top(&["--batch", "1", "--size", "10x3"]);
    assert_eq!(out.status.code(), Some(2));
    let out = top(&["--size", "80x24"]);
    assert_eq!(out.status.code(), Some(2), "--size without --batch");
}

#[test]
fn batch_without_the_module_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_ept-sampler"))
        .args(["--proc", "/nonexistent/ept_sampler", "top", "--batch", "1"])
        .output()
        .expect("run ept-sampler");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loaded"));
}
