// SPDX-License-Identifier: GPL-2.0

//! `record` and `report`: a series of snapshots saved to a file, and the
//! same views made from it offline.
//!
//! The file format is in [`file`](mod@file) and `docs/record.md`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use ept_core::procfs::control::VmId;
use ept_core::procfs::vms::VmRow;

use crate::control;
use crate::error::Error;
use crate::model::{RawSnapshot, Snapshot, TOP_FILES};
use crate::picture::{self, PictureFormat};
use crate::render::text;
use crate::source::ProcRoot;

pub mod file;
pub mod report;

pub use file::{Header, Reader, Writer};

/// `ept-sampler record`.
#[derive(Clone, Debug, clap::Args)]
pub struct RecordArgs {
    /// How long to record: `30s`, `2m`, `1h 30m`, ... (Ctrl-C ends it
    /// sooner, keeping what was recorded).
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Duration,
    /// Milliseconds between snapshots.
    #[arg(short, long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval_ms: u64,
    /// Record only these VMs (`<pid>-<fd>`, or a pid with one VM); every
    /// VM without it.
    #[arg(long = "vm", value_name = "VM")]
    pub vms: Vec<String>,
    /// Where to write the recording (gzip of JSON lines, see
    /// docs/record.md).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `report` output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A table per VM.
    Text,
    /// One JSON object: the header and every VM's rows.
    Json,
    /// CSV: a header row, then one row per VM and snapshot.
    Csv,
}

/// `ept-sampler report`.
#[derive(Clone, Debug, clap::Args)]
pub struct ReportArgs {
    /// The recording.
    pub file: PathBuf,
    /// Only this VM (`<pid>-<fd>`, or a pid with one VM in the recording).
    #[arg(long)]
    pub vm: Option<String>,
    /// Output format on standard output [default: text, or nothing when a
    /// picture is asked for].
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Write a PNG picture of the VM over the whole recording to FILE
    /// (address x heat of the last snapshot, address x time of every
    /// round, and the idle memory by age against time when the recording
    /// has it); needs --vm when the recording has several VMs.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Write the same picture as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Picture width in pixels.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(i64::from(picture::MIN_SIZE.0)..=i64::from(picture::MAX_SIZE.0)))]
    pub width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 700, value_parser = clap::value_parser!(u32).range(i64::from(picture::MIN_SIZE.1)..=i64::from(picture::MAX_SIZE.1)))]
    pub height: u32,
}

/// Parses `30s`, `2m`, `1h 30m`, `500ms` (humantime); a bare number is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 2m, 1h)"))?,
    };
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// `want` (`<pid>-<fd>`, or a pid with one VM) resolved among `rows`
/// by the shared resolver, and required to be one of them: a recording
/// of a VM that is not there would be empty.
pub fn resolve_vm(want: &str, rows: &[VmRow]) -> Result<VmId, Error> {
    let vm = control::resolve(want, rows)?;
    if control::state_of(rows, vm).is_none() {
        return Err(Error::NoVm(vm.to_string()));
    }
    Ok(vm)
}

/// Keeps the top-level files and those of the `vms` (all when empty).
fn keep_only(raw: &mut RawSnapshot, vms: &[VmId]) {
    if vms.is_empty() {
        return;
    }
    raw.files.retain(|path, _| {
        TOP_FILES.contains(&path.as_str())
            || path
                .split_once('/')
                .and_then(|(dir, _)| VmId::parse(dir).ok())
                .is_some_and(|dir| vms.contains(&dir))
    });
}

/// How long `record` sleeps at most before it looks at the signal flag.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Sleeps until `due`, or less if `stop` is raised; true if it was.
fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let Some(left) = due.checked_duration_since(Instant::now()) else {
            return false;
        };
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(SIGNAL_CHECK));
    }
}

/// Runs `record`.
///
/// Ctrl-C (SIGINT), SIGTERM and SIGHUP end a recording early but cleanly:
/// the snapshots taken so far and the end of the gzip stream are written,
/// and the exit status is 0, as when the duration is over. (SIGKILL leaves
/// a file cut short, which `report` still reads: docs/record.md.)
pub fn record(root: &ProcRoot, args: &RecordArgs) -> Result<(), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Other(format!("cannot handle signal {signal}: {e}")))?;
    }
    let interval = Duration::from_millis(args.interval_ms);
    let first = root.snapshot()?;
    let rows = first.vm_rows()?;
    let vms = args
        .vms
        .iter()
        .map(|v| resolve_vm(v, &rows))
        .collect::<Result<Vec<_>, _>>()?;
    let header = Header::new(
        first.unix_ms,
        args.interval_ms,
        u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX),
        vms.iter().map(VmId::to_string).collect(),
        first.file("version").unwrap_or_default().to_string(),
    );
    let mut out = Writer::create(&args.output, &header)?;
    // Snapshots at start + k * interval for k = 0..=n: no drift, and the
    // last one at the end of the duration.
    let n =
        u32::try_from(args.duration.as_millis() / interval.as_millis().max(1)).unwrap_or(u32::MAX);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(u64::from(n) + 1);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} recording {msg} [{wide_bar}] {pos}/{len} snapshots, {elapsed} of {prefix}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(humantime::format_duration(args.duration).to_string());
        bar.set_message(args.output.display().to_string());
        // Elapsed time moves between snapshots too (intervals can be long).
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut raw = first;
    let mut written: u64 = 0;
    let mut stopped = false;
    for k in 0..=n {
        if k > 0 {
            if sleep_until(start + interval * k, &stop) {
                stopped = true;
                break;
            }
            raw = root.snapshot()?;
        }
        keep_only(&mut raw, &vms);
        out.write(&raw)?;
        written += 1;
        bar.inc(1);
    }
    out.finish()?;
    bar.finish_and_clear();
    let size = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    eprintln!(
        "ept-sampler: recorded {written} snapshots over {} to {} ({:.1} KiB){}",
        humantime::format_duration(Duration::from_millis(start.elapsed().as_millis() as u64)),
        args.output.display(),
        size as f64 / 1024.0,
        if stopped { ", stopped by a signal" } else { "" }
    );
    Ok(())
}

/// Reads a recording and parses every snapshot.
pub fn load(path: &Path) -> Result<(Header, Vec<Snapshot>, bool), Error> {
    let (header, raws, truncated) = file::read_all(path)?;
    let snaps = raws
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.parse().map_err(|e| Error::Format {
                file: format!("{} (snapshot {})", path.display(), i + 1),
                what: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((header, snaps, truncated))
}

/// Runs `report`.
pub fn report(args: &ReportArgs) -> Result<(), Error> {
    let (header, snaps, truncated) = load(&args.file)?;
    if truncated {
        eprintln!(
            "ept-sampler: {} ends in the middle of a snapshot (recording interrupted?): reporting the {} complete ones",
            args.file.display(),
            snaps.len()
        );
    }
    let all = report::series(&snaps, &[]);
    let ids: Vec<String> = all.iter().map(|s| s.vm.clone()).collect();
    // The recording's VMs as `vms` last listed them, for the resolver.
    let rows: Vec<VmRow> = all
        .iter()
        .filter_map(|s| s.last.as_ref().map(|v| v.row))
        .collect();
    let only = match &args.vm {
        // The host's own words ("no VM ... on this host") would mislead
        // here: the recording is what is searched.
        Some(v) => vec![resolve_vm(v, &rows)
            .map_err(|e| match e {
                Error::NoVm(vm) => Error::NotRecorded {
                    vm,
                    file: args.file.clone(),
                    holds: if ids.is_empty() {
                        "none".into()
                    } else {
                        ids.join(", ")
                    },
                },
                e => e,
            })?
            .to_string()],
        None => Vec::new(),
    };
    let series: Vec<_> = all
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.vm))
        .collect();
    let wants_picture = args.png.is_some() || args.svg.is_some();
    if wants_picture {
        let vm = match series.as_slice() {
            [one] => one,
            [] => {
                return Err(Error::Other(format!(
                    "{}: no sampled VM in the recording",
                    args.file.display()
                )))
            }
            _ => {
                return Err(Error::Other(format!(
                    "the recording has several VMs ({}): pick one with --vm for the picture",
                    ids.join(", ")
                )))
            }
        };
        let name = args.file.file_name().map_or_else(
            || args.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let pic = vm.picture(&name);
        if let Some(path) = &args.png {
            picture::write_picture(&pic, path, PictureFormat::Png, args.width, args.height)?;
        }
        if let Some(path) = &args.svg {
            picture::write_picture(&pic, path, PictureFormat::Svg, args.width, args.height)?;
        }
    }
    let text = match args.format {
        Some(f) => render(f, &header, &series)?,
        None if wants_picture => return Ok(()),
        None => render(ReportFormat::Text, &header, &series)?,
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::Io {
            path: PathBuf::from("<stdout>"),
            source: e,
        }),
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The report in `format`.
pub fn render(
    format: ReportFormat,
    header: &Header,
    series: &[report::VmSeries],
) -> Result<String, Error> {
    match format {
        ReportFormat::Text => Ok(render_text(header, series)),
        ReportFormat::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                header: &'a Header,
                vms: &'a [report::VmSeries],
            }
            serde_json::to_string_pretty(&Out {
                header,
                vms: series,
            })
            .map(|s| s + "\n")
            .map_err(|e| Error::Other(format!("cannot write JSON: {e}")))
        }
        ReportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let err = |e: csv::Error| Error::Other(format!("cannot write CSV: {e}"));
            // Idle columns for every bin of any row: bins can change when
            // sampling restarts.
            let bins: Vec<u32> = series
                .iter()
                .flat_map(|s| &s.rows)
                .filter_map(|r| r.idle.as_ref())
                .flat_map(|i| i.bins_ms.iter().copied())
                .collect::<std::collections::BTreeSet<u32>>()
                .into_iter()
                .collect();
            w.write_record(
                [
                    "vm",
                    "unix_ms",
                    "t_s",
                    "rounds",
                    "new_rounds",
                    "hot_mib",
                    "dirty_mib",
                    "ws_mib",
                    "dirty_mb_s",
                    "walk_ms",
                ]
                .into_iter()
                .map(String::from)
                .chain(idle_headers(&bins)),
            )
            .map_err(err)?;
            let o = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
            for s in series {
                for r in &s.rows {
                    let fixed = [
                        s.vm.clone(),
                        r.unix_ms.to_string(),
                        format!("{:.3}", r.t_s),
                        r.rounds.map_or_else(String::new, |v| v.to_string()),
                        r.new_rounds.to_string(),
                        o(r.hot_mib),
                        o(r.dirty_mib),
                        o(r.ws_mib),
                        o(r.dirty_mb_s),
                        o(r.walk_ms),
                    ];
                    w.write_record(fixed.into_iter().chain(idle_cells(r, &bins)))
                        .map_err(err)?;
                }
            }
            let bytes = w
                .into_inner()
                .map_err(|e| Error::Other(format!("cannot write CSV: {e}")))?;
            String::from_utf8(bytes).map_err(|e| Error::Other(format!("cannot write CSV: {e}")))
        }
    }
}

/// The CSV's idle columns for `bins`: memory mapped, then per bit the
/// memory idle for at least each bin and never touched, in MiB.
fn idle_headers(bins: &[u32]) -> Vec<String> {
    if bins.is_empty() {
        return Vec::new();
    }
    let mut out = vec!["mapped_mib".to_string()];
    for bit in ["accessed", "written"] {
        for &ms in bins {
            out.push(format!(
                "not_{bit}_{}_mib",
                text::duration_text(u64::from(ms))
            ));
        }
        out.push(format!("never_{bit}_mib"));
    }
    out
}

/// The idle cells of `row` under [`idle_headers`]`(bins)`: empty where
/// the row has no such figure.
fn idle_cells(row: &report::Row, bins: &[u32]) -> Vec<String> {
    if bins.is_empty() {
        return Vec::new();
    }
    let mib = |b: u64| format!("{:.3}", report::mib(b));
    let Some(idle) = &row.idle else {
        return vec![String::new(); 1 + 2 * (bins.len() + 1)];
    };
    let mut out = vec![mib(idle.mapped_bytes)];
    for col in [&idle.not_accessed, &idle.not_written] {
        for ms in bins {
            let at = idle.bins_ms.iter().position(|b| b == ms);
            out.push(
                col.as_ref()
                    .zip(at)
                    .and_then(|(c, i)| c.at_least.get(i))
                    .map_or_else(String::new, |&b| mib(b)),
            );
        }
        out.push(col.as_ref().map_or_else(String::new, |c| mib(c.never)));
    }
    out
}

/// A VM's idle histograms over time, one table per bit: MiB touched
/// within the first bin, between each bin and the next, and idle for the
/// last, then never; a new header line where the bins change.
fn idle_tables(s: &mut String, vm: &report::VmSeries) {
    use std::fmt::Write as _;
    for (written, what) in [(false, "access"), (true, "write")] {
        let rows: Vec<(&report::Row, &report::IdleRow, Vec<u64>)> = vm
            .rows
            .iter()
            .filter_map(|r| {
                let idle = r.idle.as_ref()?;
                Some((r, idle, idle.histogram(written)?))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\nMiB by time since the last {what} (never: not since sampling began, \
             also counted in the bands; the first band holds what is not yet shown idle):"
        );
        let mut bins: Option<&[u32]> = None;
        let mut widths: Vec<usize> = Vec::new();
        for (r, idle, hist) in rows {
            if bins != Some(idle.bins_ms.as_slice()) {
                bins = Some(idle.bins_ms.as_slice());
                let names = report::band_names(&idle.bins_ms);
                widths = names.iter().map(|n| n.len().max(8)).collect();
                let _ = write!(s, "{:>8}", "time");
                for (n, w) in names.iter().zip(&widths) {
                    let _ = write!(s, " {n:>w$}");
                }
                let _ = writeln!(s, " {:>8}", "never");
            }
            let _ = write!(s, "{:>7.1}s", r.t_s);
            for (b, w) in hist.iter().zip(&widths) {
                let _ = write!(s, " {:>w$.2}", report::mib(*b));
            }
            let col = if written {
                &idle.not_written
            } else {
                &idle.not_accessed
            };
            let never = col.as_ref().map_or(0.0, |c| report::mib(c.never));
            let _ = writeln!(s, " {never:>8.2}");
        }
    }
}

fn render_text(header: &Header, series: &[report::VmSeries]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(header.started_unix_ms),
    );
    let module = header
        .host_version
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| matches!(*k, "module" | "kernel" | "tdp"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "recording of {when}, every {} ms for {} ({module}; {})",
        header.interval_ms,
        humantime::format_duration(Duration::from_millis(header.duration_ms)),
        header.tool
    );
    if series.is_empty() {
        let _ = writeln!(s, "no sampled VM in the recording");
    }
    for vm in series {
        let _ = writeln!(
            s,
            "\nVM {} ({} MiB): {} snapshots",
            vm.vm,
            vm.memory_bytes >> 20,
            vm.rows.len()
        );
        let _ = writeln!(
            s,
            "{:>8} {:>7} {:>5} {:>8} {:>10} {:>7} {:>10} {:>8}",
            "time", "rounds", "new", "hot MiB", "dirty MiB", "ws MiB", "dirty MB/s", "walk ms"
        );
        for r in &vm.rows {
            let _ = writeln!(
                s,
                "{:>7.1}s {:>7} {:>5} {:>8} {:>10} {:>7} {:>10} {:>8}",
                r.t_s,
                r.rounds.map_or_else(|| "-".into(), |v| v.to_string()),
                r.new_rounds,
                opt(r.hot_mib, 2),
                opt(r.dirty_mib, 2),
                opt(r.ws_mib, 2),
                opt(r.dirty_mb_s, 2),
                opt(r.walk_ms, 2),
            );
        }
        idle_tables(&mut s, vm);
    }
    let _ = writeln!(
        s,
        "\nhot/dirty MiB: pages accessed/dirtied in the heat map's window; ws MiB: mean accessed per round, \
         dirty MB/s and walk ms: over the rounds new since the previous row (\"new\")."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_vms;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
    }

    #[test]
    fn vms_resolve_by_id_or_by_a_pid_with_one_vm_and_must_exist() {
        let rows = parse_vms(
            "# vm vcpus memslots memory tdp dirty_logging state\n\
             72-4 1 2 268435456 npt no sampling\n\
             85-4 1 2 268435456 npt no attached\n\
             85-9 1 2 268435456 npt no detached\n",
        )
        .unwrap();
        let id = |s: &str| VmId::parse(s).unwrap();
        assert_eq!(resolve_vm("72-4", &rows).unwrap(), id("72-4"));
        assert_eq!(resolve_vm("72", &rows).unwrap(), id("72-4"));
        assert_eq!(resolve_vm("85-9", &rows).unwrap(), id("85-9"));
        assert!(matches!(resolve_vm("7", &rows), Err(Error::NoVm(_))));
        // Well formed, but not on the host.
        assert!(matches!(resolve_vm("72-5", &rows), Err(Error::NoVm(_))));
        assert!(matches!(resolve_vm("x-1", &rows), Err(Error::Usage(_))));
        let err = resolve_vm("85", &rows).unwrap_err().to_string();
        assert!(err.contains("85-4, 85-9"), "{err}");
    }

    #[test]
    fn a_vm_filter_keeps_the_top_files_and_that_vms_directory() {
        let mut raw = RawSnapshot::default();
        for p in [
            "version",
            "vms",
            "72-4/heatmap",
            "72-4/stats",
            "85-4/heatmap",
            "72-40/stats",
        ] {
            raw.files.insert(p.to_string(), String::new());
        }
        keep_only(&mut raw, &[VmId::parse("72-4").unwrap()]);
        let kept: Vec<&str> = raw.files.keys().map(String::as_str).collect();
        assert_eq!(kept, ["72-4/heatmap", "72-4/stats", "version", "vms"]);
    }
}
