// SPDX-License-Identifier: GPL-2.0

//! Test helper and measurement: how long does reading a VM's `stats` take
//! while the sampler runs rounds of it? A reader must never wait for a
//! round (ept-sampler issue 20).
//!
//! ```text
//! read-latency STATS_FILE [--rounds N] [--realtime]
//! ```
//!
//! Reads the file whole (open, read to the end, close, as `cat` does) every
//! millisecond until the `rounds` it shows has grown by N (default 20) since
//! the first read: it stops on the sampler's own progress, not on a clock.
//! Each read's content is parsed with the parser the tool uses (ept-core),
//! so a torn or empty read is an error, not a fast read. With `--realtime`
//! the reader runs at real-time priority (SCHED_FIFO): it gets a CPU at once
//! on a busy machine, so a slow read waited for a lock, not the scheduler.
//!
//! Prints one line:
//! `reads=N rounds=A..B max_us=X p99_us=Y median_us=Z walk_us_avg=W walk_us_max=V`,
//! where the walk figures are the last read's: the time of one round of
//! the VM. Exit status 0, or 2 on an error.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::exit;
use std::time::{Duration, Instant};

use clap::Parser;
use ept_core::procfs::stats::StatsFile;

#[derive(Parser)]
#[command(about = "Reads a VM's stats file in a loop for N rounds; prints the slowest read")]
struct Cli {
    /// The VM's `stats` file (`/proc/ept_sampler/P-F/stats`).
    stats: PathBuf,
    /// Stop once the file's `rounds` has grown by this many.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Run at real-time priority (SCHED_FIFO 1).
    #[arg(long)]
    realtime: bool,
}

/// Makes this process SCHED_FIFO at priority 1.
fn set_realtime() -> Result<(), String> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0
    // is this process.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(format!(
            "sched_setscheduler(SCHED_FIFO): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn read_once(path: &PathBuf, buf: &mut String) -> Result<(Duration, StatsFile), String> {
    buf.clear();
    let t0 = Instant::now();
    File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let took = t0.elapsed();
    let stats = StatsFile::parse(buf).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((took, stats))
}

fn run(cli: &Cli) -> Result<String, String> {
    if cli.realtime {
        set_realtime()?;
    }
    let mut buf = String::new();
    let (_, first) = read_once(&cli.stats, &mut buf)?;
    let until = first.rounds.saturating_add(cli.rounds);
    let mut times = Vec::new();
    let last = loop {
        let (took, stats) = read_once(&cli.stats, &mut buf)?;
        times.push(took);
        if stats.rounds >= until {
            break stats;
        }
        // A breath between reads: a real-time reader must not starve the
        // CPU's other work; dozens of reads still fall in every round.
        std::thread::sleep(Duration::from_millis(1));
    };
    times.sort_unstable();
    let at = |q: usize| times[(times.len() - 1) * q / 100].as_micros();
    Ok(format!(
        "reads={} rounds={}..{} max_us={} p99_us={} median_us={} walk_us_avg={} walk_us_max={}",
        times.len(),
        first.rounds,
        last.rounds,
        at(100),
        at(99),
        at(50),
        last.walk_ns_avg / 1000,
        last.walk_ns_max / 1000,
    ))
}

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("read-latency: {e}");
            exit(2);
        }
    }
}
