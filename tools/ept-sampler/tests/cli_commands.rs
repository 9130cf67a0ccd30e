// SPDX-License-Identifier: GPL-2.0

//! The built `ept-sampler` binary against a copy of the fixture files of a
//! real run (tests/fixtures/npt-7.3/phase2), with a regular file standing
//! in for `control`: the lines it writes, its exit codes and messages.
//! The expected control lines are spelt from docs/procfs.md's command
//! syntax and defaults table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

mod fixture_support;
use fixture_support::copy_dir;

const BIN: &str = env!("CARGO_BIN_EXE_ept-sampler");

/// Exit codes as documented in `--help`.
const FAILURE: i32 = 1;
const USAGE: i32 = 2;
const NO_MODULE: i32 = 3;
const NO_VM: i32 = 5;
const REFUSED: i32 = 6;
const FORMAT: i32 = 7;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npt-7.3/phase2")
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

/// Rewrites `file` of a fixture copy with `f`; the rewrite must change it
/// (else the fixture no longer holds what the test edits).
fn edit(dir: &Path, file: &str, f: impl FnOnce(&str) -> String) {
    let path = dir.join(file);
    let old = std::fs::read_to_string(&path).unwrap();
    let new = f(&old);
    assert_ne!(new, old, "{file}: the edit changed nothing");
    std::fs::write(path, new).unwrap();
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
        "start vm=72-4 period_ms=100 mode=accessed granule=4K window=5 flush=round walk=leaf history=64 idle=1s,10s,1m,10m,1h\n"
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
            "128",
            "--idle",
            "500ms,30s"
        ]),
        "start vm=72-4 period_ms=200 mode=both granule=2M window=20 flush=none walk=upper history=128 idle=500ms,30s\n"
    );
    // The granule in its canonical spelling.
    assert!(written(&["start", "72-4", "--granule", "8192"]).contains(" granule=8K "));
}

#[test]
fn start_by_pid_attaches_when_needed() {
    // 96-4 is detached in the fixture: attach it, then start it.
    assert_eq!(
        written(&["start", "--pid", "96", "--mode", "dirty"]),
        "attach pid=96 fd=4\nstart vm=96-4 period_ms=100 mode=dirty granule=4K window=5 flush=round walk=leaf history=64 idle=1s,10s,1m,10m,1h\n"
    );
    // 72-4 is already sampling: only the new settings.
    assert_eq!(
        written(&["start", "--pid", "72", "--period-ms", "50"]),
        "start vm=72-4 period_ms=50 mode=accessed granule=4K window=5 flush=round walk=leaf history=64 idle=1s,10s,1m,10m,1h\n"
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
        // start VM needs it attached; start --pid would attach it.
        (&["start", "96-4"], "start --pid"),
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
fn a_refused_vm_is_not_started_and_says_why() {
    let dir = proc_copy();
    edit(&dir, "vms", |vms| {
        vms.replace(
            "96-4 1 1 67108864 npt no detached",
            "96-4 1 1 67108864 shadow no refused:shadow-paging",
        )
    });
    let o = run(&dir, &["start", "96-4"]);
    assert_eq!(o.status.code(), Some(REFUSED), "{}", stderr(&o));
    assert!(stderr(&o).contains("shadow paging"), "{}", stderr(&o));
    assert_eq!(control(&dir), "");
    let out = stdout(&run(&dir, &["list"]));
    assert!(
        out.contains("refused (shadow-paging: KVM uses shadow paging for it)"),
        "{out}"
    );
}

#[test]
fn a_vm_attached_but_never_started_has_a_status_but_no_heat_map() {
    // What the module shows for a VM attached but never started: a
    // comment in place of stats, heatmap and history (kvm/sampler.rs; a
    // stopped VM keeps its files).
    let dir = proc_copy();
    edit(&dir, "vms", |vms| {
        vms.replace(
            "85-4 1 1 134217728 npt no sampling",
            "85-4 1 1 134217728 npt no attached",
        )
    });
    std::fs::write(dir.join("85-4/config"), "vm 85-4\nstate attached\n").unwrap();
    for f in ["stats", "heatmap", "history"] {
        std::fs::write(dir.join("85-4").join(f), "# vm 85-4 is not being sampled\n").unwrap();
    }
    let o = run(&dir, &["status", "85-4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("85-4  attached"), "{}", stdout(&o));
    assert!(stdout(&o).contains("not being sampled"), "{}", stdout(&o));
    let o = run(&dir, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&dir, &["heatmap", "85-4"]);
    assert_eq!(o.status.code(), Some(NO_VM), "{}", stderr(&o));
    assert!(stderr(&o).contains("not being sampled"), "{}", stderr(&o));
}

#[test]
fn a_pid_with_two_vms_is_ambiguous_and_nothing_is_written() {
    // A second VM of process 72, detached (as a second VM file of one
    // QEMU would be).
    let dir = proc_copy();
    edit(&dir, "vms", |vms| {
        format!("{vms}72-9 1 1 67108864 npt no detached\n")
    });
    for args in [
        &["stop", "72"][..],
        &["status", "72"],
        &["heatmap", "72"],
        &["start", "--pid", "72"],
    ] {
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(FAILURE), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("72-4") && e.contains("72-9"), "{args:?}: {e}");
    }
    assert_eq!(control(&dir), "");
    // --fd picks one.
    let o = run(&dir, &["start", "--pid", "72", "--fd", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        control(&dir).starts_with("start vm=72-4 "),
        "{}",
        control(&dir)
    );
}

#[test]
fn a_garbled_module_file_is_a_format_error_in_words() {
    let dir = proc_copy();
    edit(&dir, "72-4/stats", |stats| {
        stats
            .lines()
            .map(|l| match l.split_once(' ') {
                Some(("rounds", _)) => "rounds many\n".to_string(),
                _ => format!("{l}\n"),
            })
            .collect()
    });
    let o = run(&dir, &["status", "72-4"]);
    assert_eq!(o.status.code(), Some(FORMAT), "{}", stderr(&o));
    let e = stderr(&o);
    // The file, and the parser's words rather than a Debug dump.
    assert!(e.contains("72-4/stats: cannot parse"), "{e}");
    assert!(
        e.contains("rounds") && !e.contains("Bad(") && !e.contains('"'),
        "{e}"
    );
}

#[test]
fn status_reads_no_heat_map() {
    // status polls often (the e2e scenarios): a heat map or history it
    // does not print is not read, so a garbled one does not matter.
    let dir = proc_copy();
    for vm in ["72-4", "85-4"] {
        for f in ["heatmap", "history"] {
            std::fs::write(dir.join(vm).join(f), "garbage\n").unwrap();
        }
    }
    for args in [&["status"][..], &["status", "72-4"]] {
        let o = run(&dir, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    // heatmap does read it.
    let o = run(&dir, &["heatmap", "72-4"]);
    assert_eq!(o.status.code(), Some(FORMAT), "{}", stderr(&o));
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

    // One CSV record per run line of the module's file; the JSON header
    // is the file's.
    let o = run(&dir, &["heatmap", "72-4", "--format", "csv"]);
    let text = stdout(&o);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let file = std::fs::read_to_string(dir.join("72-4/heatmap")).unwrap();
    let runs = file.lines().filter(|l| !l.starts_with('#')).count();
    assert!(runs > 1);
    assert_eq!(r.records().count(), runs, "{text}");
    let o = run(&dir, &["heatmap", "85-4", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = std::fs::read_to_string(dir.join("85-4/heatmap")).unwrap();
    let granule = file
        .lines()
        .find_map(|l| l.strip_prefix("# granule "))
        .unwrap();
    assert_eq!(v["granule"], granule);
    assert_eq!(control(&dir), "");
}

#[test]
fn pictures_are_written_where_asked_and_nothing_else_is_printed() {
    let dir = proc_copy();
    let png = dir.join("out.png");
    let svg = dir.join("out.svg");
    let o = run(
        &dir,
        &[
            "heatmap",
            "72-4",
            "--png",
            png.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
            "--width",
            "400",
            "--height",
            "300",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    // IHDR: width and height as asked.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 400);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 300);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    // With --format too, the data is printed as well.
    let o = run(
        &dir,
        &[
            "heatmap",
            "72-4",
            "--png",
            png.to_str().unwrap(),
            "--format",
            "csv",
        ],
    );
    assert!(stdout(&o).starts_with("start,end,"), "{}", stdout(&o));
}

const SUBCOMMANDS: [&str; 13] = [
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
    "export",
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

/// The `Exit codes:` table of a help text: code -> meaning.
fn exit_table(text: &str) -> std::collections::BTreeMap<u8, String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Exit codes:"))
        .skip(1)
        .map_while(|l| {
            let (code, what) = l.trim().split_once("  ")?;
            Some((code.parse().ok()?, what.trim().to_string()))
        })
        .collect()
}

/// Checks that `text` documents every exit code, each with the meaning
/// of the tool's constant for it.
fn documents_exit_codes(text: &str, what: &str) {
    use ept_sampler::error::exit;
    let table = exit_table(text);
    assert_eq!(
        table.keys().copied().collect::<Vec<_>>(),
        (0..=exit::FORMAT).collect::<Vec<_>>(),
        "{what}: {text}"
    );
    for (code, words) in [
        (0, "success"),
        (exit::FAILURE, "failure"),
        (exit::USAGE, "command line"),
        (exit::NO_MODULE, "not loaded"),
        (exit::PERMISSION, "permission denied"),
        (exit::NO_VM, "no such VM"),
        (exit::REFUSED, "refused"),
        (exit::FORMAT, "could not be parsed"),
    ] {
        assert!(
            table[&code].contains(words),
            "{what}: code {code}: {table:?}"
        );
    }
}

#[test]
fn help_and_man_page_describe_every_subcommand_and_the_exit_codes() {
    let help = stdout(&Command::new(BIN).arg("--help").output().unwrap());
    // The "Commands:" list: every subcommand, each with a description.
    let listed: Vec<(String, String)> = help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let (name, what) = l.split_once(' ')?;
            (!name.is_empty()).then(|| (name.to_string(), what.trim().to_string()))
        })
        .collect();
    assert_eq!(
        listed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        SUBCOMMANDS,
        "{help}"
    );
    assert!(listed.iter().all(|(_, what)| what.len() > 10), "{help}");
    documents_exit_codes(&help, "--help");
    for sub in SUBCOMMANDS {
        let o = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help");
        documents_exit_codes(&stdout(&o), &format!("{sub} --help"));
    }

    let man = Command::new(BIN).arg("man").output().unwrap();
    assert!(man.status.success());
    let man = stdout(&man);
    assert!(man.contains(".TH ept-sampler 1"), "{man}");
    // The main page points at every subcommand's page.
    for sub in SUBCOMMANDS {
        assert!(
            man.contains(&format!("ept\\-sampler\\-{sub}(1)")),
            "lacks {sub}: {man}"
        );
    }
    // One page per subcommand with --dir, each with its synopsis, its
    // options and the exit codes.
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
        assert!(page.contains(".SH SYNOPSIS"), "{sub}: {page}");
        assert!(page.contains("Exit codes:"), "{sub}: {page}");
        assert!(page.contains("not loaded"), "{sub}: {page}");
        assert!(page.contains("EPT_SAMPLER_PROC"), "{sub}: {page}");
    }
    let start = std::fs::read_to_string(dir.join("ept-sampler-start.1")).unwrap();
    for flag in [
        "period", "mode", "granule", "window", "flush", "walk", "history",
    ] {
        assert!(
            start.contains(&format!("\\-\\-{flag}")),
            "lacks --{flag}: {start}"
        );
    }
}

#[test]
fn status_says_what_the_module_found_on_the_host() {
    let dir = proc_copy();
    // The fixture's module (7.3 on the QEMU testbed) says KVM's SPTE
    // layout: the line has what version has.
    let o = run(&dir, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = stdout(&o).lines().next().unwrap_or_default().to_string();
    let version = std::fs::read_to_string(dir.join("version")).unwrap();
    for (key, shown) in [
        ("module", "module "),
        ("kernel", "on Linux "),
        ("tdp", "("),
        ("frozen_spte", "FROZEN_SPTE "),
    ] {
        let value = version
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap();
        assert!(first.contains(&format!("{shown}{value}")), "{key}: {first}");
    }
    assert!(first.contains("TDP MMU on"), "{first}");
    assert!(first.contains("A/D type at bits 60-61"), "{first}");
    assert!(!first.contains("this tool was built for"), "{first}");
    // An older module that does not say its layout, and is not the
    // tool's version.
    edit(&dir, "version", |v| {
        v.replace("module 0.1.0", "module 0.2.0")
            .lines()
            .filter(|l| !l.starts_with("spte_ad_shift") && !l.starts_with("frozen_spte"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let o = run(&dir, &["status"]);
    let first = stdout(&o).lines().next().unwrap_or_default().to_string();
    assert!(!first.contains("SPTE"), "{first}");
    assert!(
        first.contains("(this tool was built for module 0.1.0)"),
        "{first}"
    );
    // A garbled version is a format error.
    edit(&dir, "version", |v| {
        v.replace("tdp_mmu yes", "tdp_mmu perhaps")
    });
    let o = run(&dir, &["status"]);
    assert_eq!(o.status.code(), Some(FORMAT), "{}", stderr(&o));
}

#[test]
fn heatmap_colours_by_age_only_a_map_that_has_ages() {
    let dir = proc_copy();
    let o = run(
        &dir,
        &["heatmap", "72-4", "--columns", "80", "--color-by", "age"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("time since each page was last accessed"),
        "{out}"
    );
    assert!(out.contains("since last touched"), "{out}");
    // A module without idle ages wrote no idle_ms and unwritten_ms
    // columns: refused, and saying why.
    edit(&dir, "72-4/heatmap", |text| {
        text.lines()
            .map(|l| {
                if l.starts_with("# columns") {
                    l.replace(" idle_ms unwritten_ms", "")
                } else if l.starts_with('#') {
                    l.to_string()
                } else {
                    let words: Vec<&str> = l.split(' ').collect();
                    words[..words.len() - 2].join(" ")
                }
            })
            .map(|l| l + "\n")
            .collect()
    });
    let o = run(&dir, &["heatmap", "72-4", "--color-by", "age"]);
    assert_eq!(o.status.code(), Some(FAILURE), "{}", stderr(&o));
    assert!(stderr(&o).contains("no idle ages"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    // By heat it is drawn as ever; CSV does not colour.
    let o = run(&dir, &["heatmap", "72-4", "--color-by", "heat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        &dir,
        &["heatmap", "72-4", "--color-by", "age", "--format", "csv"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
