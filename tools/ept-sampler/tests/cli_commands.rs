// SPDX-License-Identifier: GPL-2.0

//! The built `ept-sampler` binary against a copy of the fixture files of a
//! real run (tests/fixtures/npt-7.3/phase2), with a regular file standing
//! in for `control`: the lines it writes, its exit codes and messages.
//! The expected control lines are spelt from docs/procfs.md's command
//! syntax and defaults table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_ept-sampler");

/// Exit codes as documented in `--help`.
const USAGE: i32 = 2;
const NO_MODULE: i32 = 3;
const NO_VM: i32 = 5;
const REFUSED: i32 = 6;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npt-7.3/phase2")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A fresh copy of the fixture with an empty `control` file.
fn proc_copy() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture(), &dir);
    std::fs::write(dir.join("control"), "").unwrap();
    dir
}

fn run(proc_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--proc")
        .arg(proc_dir)
        .args(args)
        .env_remove("EPT_SAMPLER_PROC")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn control(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("control")).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a command that must succeed and returns what it wrote to control.
fn written(args: &[&str]) -> String {
    let dir = proc_copy();
    let o = run(&dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    control(&dir)
}

#[test]
fn control_lines() {
    assert_eq!(written(&["attach", "--pid", "96"]), "attach pid=96\n");
    assert_eq!(
        written(&["attach", "--pid", "96", "--fd", "4"]),
        "attach pid=96 fd=4\n"
    );
    assert_eq!(written(&["detach", "--all"]), "detach all\n");
    assert_eq!(written(&["detach", "72-4"]), "detach vm=72-4\n");
    // A bare pid names the process's one VM.
    assert_eq!(written(&["stop", "85"]), "stop vm=85-4\n");
    assert_eq!(written(&["stop", "72-4"]), "stop vm=72-4\n");
    // Every setting spelt out, defaults from docs/procfs.md.
    assert_eq!(
        written(&["start", "72-4"]),
        "start vm=72-4 period_ms=100 mode=accessed granule=4K window=5 flush=round walk=leaf history=64\n"
    );
    assert_eq!(
        written(&[
            "start",
            "72-4",
            "--period-ms",
            "200",
            "--mode",
            "both",
            "--granule",
            "2M",
            "--window",
            "20",
            "--flush",
            "none",
            "--walk",
            "upper",
            "--history",
            "128"
        ]),
        "start vm=72-4 period_ms=200 mode=both granule=2M window=20 flush=none walk=upper history=128\n"
    );
    // The granule in its canonical spelling.
    assert!(written(&["start", "72-4", "--granule", "8192"]).contains(" granule=8K "));
}

#[test]
fn start_by_pid_attaches_when_needed() {
    // 96-4 is detached in the fixture: attach it, then start it.
    assert_eq!(
        written(&["start", "--pid", "96", "--mode", "dirty"]),
        "attach pid=96 fd=4\nstart vm=96-4 period_ms=100 mode=dirty granule=4K window=5 flush=round walk=leaf history=64\n"
    );
    // 72-4 is already sampling: only the new settings.
    assert_eq!(
        written(&["start", "--pid", "72", "--period-ms", "50"]),
        "start vm=72-4 period_ms=50 mode=accessed granule=4K window=5 flush=round walk=leaf history=64\n"
    );
}

#[test]
fn bad_flag_values_are_usage_errors_and_write_nothing() {
    for (args, says) in [
        (&["start", "72-4", "--period-ms", "5"][..], "period-ms"),
        (&["start", "72-4", "--period-ms", "60001"], "period-ms"),
        (&["start", "72-4", "--mode", "fast"], "mode"),
        (&["start", "72-4", "--granule", "3K"], "power of two"),
        (&["start", "72-4", "--granule", "2K"], "granule"),
        // 5 rounds at most at a 4K granule.
        (&["start", "72-4", "--window", "6"], "window"),
        (&["start", "72-4", "--history", "1025"], "history"),
        (&["start", "72-4", "--flush", "sometimes"], "flush"),
        (&["attach", "--pid", "0"], "pid"),
        (&["start"], "required"),
        (&["detach"], "required"),
        (&["detach", "72-4", "--all"], "cannot be used"),
        (&["stop", "72-x"], "72-x"),
    ] {
        let dir = proc_copy();
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(USAGE), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert_eq!(control(&dir), "", "{args:?}");
    }
}

#[test]
fn missing_proc_dir_says_how_to_load_the_module() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-proc-dir");
    for args in [&["list"][..], &["status"], &["stop", "72-4"]] {
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(NO_MODULE), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("not loaded") && e.contains("insmod"), "{e}");
    }
    // EPT_SAMPLER_PROC names the directory too.
    let o = Command::new(BIN)
        .arg("list")
        .env("EPT_SAMPLER_PROC", &dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(NO_MODULE));
}

#[test]
fn unknown_or_unattached_vm() {
    let dir = proc_copy();
    for (args, says) in [
        (&["heatmap", "99-9"][..], "no VM 99-9"),
        (&["status", "99-9"], "no VM 99-9"),
        (&["heatmap", "12345"], "no VM of pid 12345"),
        (&["stop", "12345"], "no VM of pid 12345"),
        (&["heatmap", "96-4"], "not attached"),
        (&["status", "96"], "not attached"),
    ] {
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(NO_VM), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(control(&dir), "");
}

/// `control` that refuses every write (ENOSPC from /dev/full) and a
/// `last_error` with `line`: the tool reports the module's reason.
fn refused(args: &[&str], last_error: &str) -> Output {
    let dir = proc_copy();
    std::fs::remove_file(dir.join("control")).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("control")).unwrap();
    std::fs::write(dir.join("last_error"), last_error).unwrap();
    run(&dir, args)
}

#[test]
fn refusals_carry_the_module_reason() {
    let o = refused(
        &["start", "72-4", "--mode", "both"],
        "EBUSY 72-4: dirty logging is on: mode=both needs the dirty bits\n",
    );
    assert_eq!(o.status.code(), Some(REFUSED), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("dirty logging is on"), "{e}");
    assert!(e.contains("start vm=72-4"), "{e}");

    let o = refused(
        &["attach", "--pid", "96"],
        "EOPNOTSUPP 96-4: refused:shadow-paging\n",
    );
    assert_eq!(o.status.code(), Some(REFUSED), "{}", stderr(&o));
    assert!(stderr(&o).contains("shadow-paging"), "{}", stderr(&o));

    let o = refused(&["stop", "72-4"], "ENOENT vm=72-4 is not attached\n");
    assert_eq!(o.status.code(), Some(NO_VM), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not attached"), "{}", stderr(&o));
}

#[test]
fn reading_commands() {
    let dir = proc_copy();
    let o = run(&dir, &["list"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains("96-4") && out.contains("detached"), "{out}");

    let o = run(&dir, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);

    // status without a VM: the two attached ones.
    let out = stdout(&run(&dir, &["status"]));
    assert!(
        out.contains("72-4  sampling") && out.contains("85-4  sampling"),
        "{out}"
    );
    assert!(!out.contains("96-4"), "{out}");

    // Not a terminal and NO_COLOR: the character ramp, no escapes.
    let o = run(&dir, &["heatmap", "72", "--columns", "80"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains('\x1b') && out.contains('@'), "{out}");
    let o = run(&dir, &["heatmap", "72-4", "--color", "always"]);
    assert!(stdout(&o).contains("\x1b["));

    let o = run(&dir, &["heatmap", "72-4", "--format", "csv"]);
    let text = stdout(&o);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(r.records().count(), 13, "{text}");
    let o = run(&dir, &["heatmap", "85-4", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["granule"], "2M");
    assert_eq!(control(&dir), "");
}

const SUBCOMMANDS: [&str; 12] = [
    "list",
    "attach",
    "detach",
    "start",
    "stop",
    "status",
    "heatmap",
    "top",
    "record",
    "report",
    "completions",
    "man",
];

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}");
        let out = stdout(&o);
        for sub in SUBCOMMANDS {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(out.contains("period-ms"), "{shell}");
    }
}

#[test]
fn help_and_man_page_describe_every_subcommand_and_the_exit_codes() {
    let help = stdout(&Command::new(BIN).arg("--help").output().unwrap());
    let man = Command::new(BIN).arg("man").output().unwrap();
    assert!(man.status.success());
    let man = stdout(&man);
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    for text in [&help, &man] {
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "lacks {sub}: {text}");
        }
        for code in ["not loaded", "permission denied", "not attached", "refused"] {
            assert!(text.contains(code), "lacks {code}: {text}");
        }
    }
    // One page per subcommand with --dir.
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("man-{}", std::process::id()));
    let o = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(dir.join(format!("ept-sampler-{sub}.1"))).unwrap();
        assert!(!page.is_empty());
    }
    let start = std::fs::read_to_string(dir.join("ept-sampler-start.1")).unwrap();
    assert!(
        start.contains("period") && start.contains("granule"),
        "{start}"
    );
}
