// SPDX-License-Identifier: GPL-2.0

//! `ept-sampler export` against the fixture files of a real run
//! (tests/fixtures/npt-7.3), read back with a Prometheus text-format
//! parser (`prometheus-parse`): every series, label and value is compared
//! with what the test reads itself from the module's files, the issue's
//! metric names spelt out here, the units converted here (pages of 4 KiB,
//! ns, ms, the bins' spellings).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_parse::{Scrape, Value};

mod fixture_support;
use fixture_support::copy_dir;

const BIN: &str = env!("CARGO_BIN_EXE_ept-sampler");

/// A uuid and a libvirt-style command line for the pid of VM 72-4.
const UUID: &str = "c0ffee00-1b2c-4d5e-8f90-0123456789ab";

fn scratch(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "export-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of a fixture phase whose `stats` files carry the cost totals
/// (the fixtures were captured before the module wrote them): the
/// averages times the counts, as a module writes them.
fn proc_copy(phase: &str) -> PathBuf {
    let dir = scratch(phase);
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npt-7.3")
        .join(phase);
    copy_dir(&from, &dir);
    for vm in ["72-4", "85-4"] {
        let path = dir.join(vm).join("stats");
        let text = std::fs::read_to_string(&path).unwrap();
        let n = |k: &str| kv(&text, k).parse::<u64>().unwrap();
        let more = format!(
            "{text}walk_ns_total {}\nflush_ns_total {}\n",
            n("walk_ns_avg") * n("rounds") + 7,
            n("flush_ns_avg") * n("flushes") + 3
        );
        std::fs::write(path, more).unwrap();
    }
    dir
}

/// A host /proc with the command lines: 72 a libvirt QEMU, 85 a QEMU
/// without a name, 96 not QEMU at all.
fn host_proc() -> PathBuf {
    let dir = scratch("hostproc");
    let lines: [(&str, Vec<&str>); 3] = [
        (
            "72",
            vec![
                "/usr/bin/qemu-system-x86_64",
                "-name",
                "guest=web-1,debug-threads=on",
                "-uuid",
                UUID,
            ],
        ),
        ("85", vec!["qemu-kvm", "-m", "128"]),
        ("96", vec!["/usr/bin/firecracker", "--api-sock", "/tmp/fc"]),
    ];
    for (pid, args) in lines {
        std::fs::create_dir_all(dir.join(pid)).unwrap();
        let raw: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
        std::fs::write(dir.join(pid).join("cmdline"), raw).unwrap();
    }
    dir
}

fn run(proc_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--proc")
        .arg(proc_dir)
        .arg("export")
        .args(args)
        .env_remove("EPT_SAMPLER_PROC")
        .output()
        .unwrap()
}

/// `export --textfile --once`: the file's text.
fn textfile(proc_dir: &Path) -> String {
    let out = scratch("out");
    // An older file, with a second name: a rename into place leaves that
    // name on the old text, a write in place would not.
    std::fs::write(out.join("ept_sampler.prom"), "old\n").unwrap();
    let keep = scratch("keep").join("old.prom");
    std::fs::hard_link(out.join("ept_sampler.prom"), &keep).unwrap();
    let o = run(
        proc_dir,
        &[
            "--host-proc",
            host_proc().to_str().unwrap(),
            "--textfile",
            out.to_str().unwrap(),
            "--once",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Renamed into place: nothing else is left in the directory.
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["ept_sampler.prom"]);
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "old\n");
    // Readable by the collector, another user, whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("ept_sampler.prom"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    std::fs::read_to_string(out.join("ept_sampler.prom")).unwrap()
}

fn kv<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
}

/// A series: its name and labels, sorted.
type Key = (String, Vec<(String, String)>);

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

/// Parses an exposition; every sample line must come back as a sample,
/// every family must have HELP, and the types are returned by name.
fn parse(text: &str) -> (BTreeMap<Key, f64>, BTreeMap<String, &'static str>) {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{text}");
    let mut values = BTreeMap::new();
    let mut types = BTreeMap::new();
    for s in &scrape.samples {
        let (v, t) = match s.value {
            Value::Gauge(v) => (v, "gauge"),
            Value::Counter(v) => (v, "counter"),
            ref other => panic!("{}: {other:?}", s.metric),
        };
        assert!(
            scrape.docs.get(&s.metric).is_some_and(|h| !h.is_empty()),
            "{} has no HELP",
            s.metric
        );
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(
            values.insert(key(&s.metric, &labels), v).is_none(),
            "{} twice",
            s.metric
        );
        types.insert(s.metric.clone(), t);
    }
    (values, types)
}

/// The idle bins as the module spells them, in seconds.
fn seconds(bin: &str) -> String {
    let (n, unit) = bin.split_at(bin.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: f64 = n.parse().unwrap();
    let s = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => panic!("{bin}"),
    };
    format!("{s}s")
}

/// What the exporter must serve for a copy of the module's files, read
/// here from their text.
fn expected(proc_dir: &Path) -> BTreeMap<Key, f64> {
    let read = |p: &str| std::fs::read_to_string(proc_dir.join(p)).unwrap();
    let version = read("version");
    let mut want = BTreeMap::new();
    let mut put = |name: &str, labels: &[(&str, &str)], v: f64| {
        want.insert(key(name, labels), v);
    };
    put("ept_sampler_up", &[], 1.0);
    put(
        "ept_sampler_build_info",
        &[
            ("version", kv(&version, "module")),
            ("kernel", kv(&version, "kernel")),
        ],
        1.0,
    );
    let rows: Vec<Vec<String>> = read("vms")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    put("ept_sampler_vms", &[], rows.len() as f64);
    put("ept_sampler_vms_unread", &[], 0.0);
    for row in &rows {
        let (vm, pid) = (row[0].as_str(), row[0].split('-').next().unwrap());
        let (domain, uuid) = if pid == "72" {
            ("web-1", UUID)
        } else {
            ("", "")
        };
        let l = [("vm", vm), ("domain", domain)];
        put(
            "ept_sampler_vm_info",
            &[
                ("vm", vm),
                ("pid", pid),
                ("domain", domain),
                ("uuid", uuid),
                ("tdp", &row[4]),
            ],
            1.0,
        );
        put("ept_sampler_vm_memory_bytes", &l, row[3].parse().unwrap());
        let state = row[6].as_str();
        let sampling = state == "sampling";
        let reason = if sampling {
            ""
        } else {
            state.strip_prefix("refused:").unwrap_or(state)
        };
        put(
            "ept_sampler_vm_sampling",
            &[("vm", vm), ("domain", domain), ("reason", reason)],
            f64::from(u8::from(sampling)),
        );
        if !sampling {
            continue;
        }
        let stats = read(&format!("{vm}/stats"));
        let config = read(&format!("{vm}/config"));
        let idle = read(&format!("{vm}/idle"));
        let n = |k: &str| kv(&stats, k).parse::<f64>().unwrap();
        put("ept_sampler_vm_rounds_total", &l, n("rounds"));
        put(
            "ept_sampler_vm_scan_seconds_total",
            &l,
            (n("walk_ns_total") + n("flush_ns_total")) / 1e9,
        );
        let mode = kv(&config, "mode");
        if mode != "dirty" {
            put(
                "ept_sampler_vm_accessed_bytes",
                &l,
                n("accessed_pages_last") * 4096.0,
            );
        }
        if mode != "accessed" {
            assert_eq!(kv(&stats, "dirty"), "tracked");
            let bytes = n("dirty_pages_last") * 4096.0;
            put("ept_sampler_vm_dirty_bytes", &l, bytes);
            put(
                "ept_sampler_vm_dirty_rate_bytes_per_second",
                &l,
                bytes / (n("interval_ns_last") / 1e9),
            );
        }
        put(
            "ept_sampler_vm_mapped_bytes",
            &l,
            kv(&idle, "mapped_bytes").parse().unwrap(),
        );
        put(
            "ept_sampler_vm_sampled_seconds",
            &l,
            kv(&idle, "sampled_ms").parse::<f64>().unwrap() / 1000.0,
        );
        let never: Vec<&str> = kv(&idle, "never").split(' ').collect();
        let sides = [
            (
                0,
                "ept_sampler_vm_never_accessed_bytes",
                "ept_sampler_vm_idle_bytes",
            ),
            (
                1,
                "ept_sampler_vm_never_written_bytes",
                "ept_sampler_vm_write_idle_bytes",
            ),
        ];
        for (col, never_name, bin_name) in sides {
            if never[col] == "-" {
                continue;
            }
            put(never_name, &l, never[col].parse().unwrap());
            for line in idle.lines().filter_map(|l| l.strip_prefix("idle ")) {
                let w: Vec<&str> = line.split(' ').collect();
                put(
                    bin_name,
                    &[("vm", vm), ("domain", domain), ("idle_for", &seconds(w[0]))],
                    w[1 + col].parse().unwrap(),
                );
            }
        }
    }
    want
}

fn assert_same(got: &BTreeMap<Key, f64>, want: &BTreeMap<Key, f64>) {
    for (k, v) in want {
        let g = got.get(k).unwrap_or_else(|| panic!("missing {k:?}"));
        assert!(
            (g - v).abs() <= v.abs() * 1e-12,
            "{k:?}: {g} served, {v} in the files"
        );
    }
    for k in got.keys() {
        assert!(want.contains_key(k), "served but not expected: {k:?}");
    }
}

#[test]
fn every_series_matches_the_module_files() {
    for phase in ["phase1", "phase2"] {
        let dir = proc_copy(phase);
        let (got, types) = parse(&textfile(&dir));
        let want = expected(&dir);
        assert_same(&got, &want);
        // The names, and the only counters.
        for name in [
            "ept_sampler_vm_memory_bytes",
            "ept_sampler_vm_accessed_bytes",
            "ept_sampler_vm_dirty_bytes",
            "ept_sampler_vm_dirty_rate_bytes_per_second",
            "ept_sampler_vm_idle_bytes",
            "ept_sampler_vm_sampling",
            "ept_sampler_vm_info",
            "ept_sampler_up",
            "ept_sampler_vms",
            "ept_sampler_build_info",
        ] {
            assert_eq!(types.get(name), Some(&"gauge"), "{phase} {name}");
        }
        for name in [
            "ept_sampler_vm_rounds_total",
            "ept_sampler_vm_scan_seconds_total",
        ] {
            assert_eq!(types.get(name), Some(&"counter"), "{phase} {name}");
        }
    }
}

#[test]
fn a_module_older_than_the_cost_totals_has_no_scan_series() {
    // The fixture as captured: no walk_ns_total / flush_ns_total.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npt-7.3/phase1");
    let (got, _) = parse(&textfile(&dir));
    assert!(got
        .keys()
        .all(|(name, _)| name != "ept_sampler_vm_scan_seconds_total"));
    assert!(got
        .keys()
        .any(|(name, _)| name == "ept_sampler_vm_rounds_total"));
}

#[test]
fn a_stopped_vm_keeps_its_counters_not_its_last_round() {
    let dir = proc_copy("phase1");
    let vms = std::fs::read_to_string(dir.join("vms")).unwrap();
    std::fs::write(
        dir.join("vms"),
        vms.replace(
            "72-4 1 1 268435456 npt no sampling",
            "72-4 1 1 268435456 npt no attached",
        ),
    )
    .unwrap();
    let (got, _) = parse(&textfile(&dir));
    let of_72: Vec<&str> = got
        .keys()
        .filter(|(_, l)| l.contains(&("vm".to_string(), "72-4".to_string())))
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        of_72,
        [
            "ept_sampler_vm_info",
            "ept_sampler_vm_memory_bytes",
            "ept_sampler_vm_rounds_total",
            "ept_sampler_vm_sampling",
            "ept_sampler_vm_scan_seconds_total",
        ]
    );
    let stopped = key(
        "ept_sampler_vm_sampling",
        &[("vm", "72-4"), ("domain", "web-1"), ("reason", "attached")],
    );
    assert_eq!(got.get(&stopped), Some(&0.0));
}

#[test]
fn a_vm_detached_while_read_costs_only_its_own_series() {
    // Its config read empty, as a file opened before a detach does.
    let dir = proc_copy("phase1");
    std::fs::write(dir.join("85-4/config"), "").unwrap();
    let (got, _) = parse(&textfile(&dir));
    assert_eq!(got.get(&key("ept_sampler_up", &[])), Some(&1.0));
    assert_eq!(got.get(&key("ept_sampler_vms_unread", &[])), Some(&1.0));
    let of = |vm: &str| -> Vec<String> {
        got.keys()
            .filter(|(_, l)| l.contains(&("vm".to_string(), vm.to_string())))
            .map(|(name, _)| name.clone())
            .collect()
    };
    assert_eq!(
        of("85-4"),
        [
            "ept_sampler_vm_info",
            "ept_sampler_vm_memory_bytes",
            "ept_sampler_vm_sampling"
        ]
    );
    assert!(of("72-4").contains(&"ept_sampler_vm_idle_bytes".to_string()));
}

#[test]
fn no_module_is_up_0_not_an_error() {
    let (got, _) = parse(&textfile(&scratch("empty").join("ept_sampler")));
    assert_eq!(got, BTreeMap::from([(key("ept_sampler_up", &[]), 0.0)]));
}

#[test]
fn bad_textfile_and_listen_arguments_are_refused_in_words() {
    let dir = proc_copy("phase1");
    let file = dir.join("vms");
    let o = run(&dir, &["--textfile", file.to_str().unwrap(), "--once"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a directory"),
        "{o:?}"
    );
    for args in [
        &["--listen", "localhost:9771"][..],
        &["--textfile", "/tmp", "--interval", "0s"],
        &["--once"],
        &["--textfile", "/tmp", "--listen", "127.0.0.1:1"],
    ] {
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    // A port in use: the exporter says so and stops.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(&dir, &["--listen", &addr]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
}

/// One HTTP/1.0 request, the whole answer.
fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn served_over_http_as_the_textfile_says() {
    let dir = proc_copy("phase2");
    let mut child = Command::new(BIN)
        .arg("--proc")
        .arg(&dir)
        .args(["export", "--listen", "127.0.0.1:0", "--host-proc"])
        .arg(host_proc())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("ept-sampler export: serving http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let answer = http(&addr, "GET /metrics HTTP/1.0\r\n\r\n");
    let not_found = http(&addr, "GET /other HTTP/1.0\r\n\r\n");
    let post = http(&addr, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    child.kill().unwrap();
    child.wait().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("content-type: text/plain; version=0.0.4")),
        "{head}"
    );
    assert_same(&parse(body).0, &expected(&dir));
    assert!(not_found.contains(" 404 "), "{not_found}");
    assert!(post.contains(" 405 "), "{post}");
}
