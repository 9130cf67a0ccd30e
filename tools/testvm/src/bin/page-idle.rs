//! `page-idle`: reference measurement of a running testvm with the kernel's
//! idle page tracking (CONFIG_IDLE_PAGE_TRACKING), which reaches KVM's TDP
//! accessed bits through the MMU notifier (`clear_young`/`test_young`).
//!
//! ```text
//! page-idle --truth FILE [--passes 1 | --read-on-signal] [--timeout-s 120] [--json]
//! ```
//!
//! 1. Reads `pid`, `hva`, `mem_bytes` and the page sets from the truth file.
//! 2. Translates every guest page to a PFN through `/proc/PID/pagemap`.
//! 3. Marks the pages idle in `/sys/kernel/mm/page_idle/bitmap`. For a page
//!    inside a compound folio (THP) the folio's head PFN is used: the kernel
//!    tracks folios and ignores tail PFNs.
//! 4. Waits until every vCPU has completed `--passes` whole passes that
//!    began after the mark (testvm's live pass counters, the truth's
//!    `passes_file`): every page the guest touches has been touched since,
//!    however slow the testbed. No time window: a slow machine makes it
//!    longer, never wrong. Gives up after `--timeout-s`, or as soon as testvm
//!    is gone. With `--read-on-signal` it prints `page-idle: marked` instead
//!    and waits for SIGUSR1: the caller decides what happens between mark
//!    and read (a phase switch, sampler rounds). Then reads the bitmap back:
//!    bit still set = idle, cleared = young (accessed since the mark, by the
//!    host or through KVM).
//! 5. Prints, per category (written, read, own, untouched = none of them),
//!    how many pages came back young / idle / not on the LRU / not present,
//!    and the wall time of the pass.
//!
//! Pages not present in pagemap are reported as `not_present`. Pages that
//! page_idle cannot track are reported as `untrackable`, neither young nor
//! idle: their folio was not on the LRU at mark or read time (fresh pages
//! still in a per-CPU LRU batch, the zero page, hugetlb pages, isolated
//! pages: the kernel reads them back as young whatever happened; needs
//! /proc/kpageflags, without it they are classified by the bitmap alone), or
//! their PFN is in the last, partial 64-PFN bitmap word below max_pfn, which
//! the kernel marks but never returns on read. Untouched pages that share a
//! folio (a THP) with a touched page are counted apart as `untouched_shared`:
//! the kernel tracks folios, so they read as young with their neighbours.
//!
//! Output (default, one `key=value` line per item, easy to grep in sh):
//! ```text
//! page-idle: pid=P vm=P-F pages=N passes=1 window_ms=.. translate_ns=.. mark_ns=.. read_ns=.. pass_ns=.. kpageflags=yes
//! page-idle: written pages=N young=N idle=N untrackable=N not_present=N
//! page-idle: read ...
//! page-idle: own ...
//! page-idle: untouched ...
//! page-idle: untouched_shared ...
//! page-idle: young 0x1000000+8M 0x2000000+4M ...
//! page-idle: untrackable ...
//! ```
//! `pass_ns = translate_ns + mark_ns + read_ns` (pagemap read, bitmap
//! write, bitmap read; the window and kpageflags reads are not included);
//! `window_ms` is the time from the end of the marking to the read.
//!
//! What no window length changes: page_idle's clear_young does not flush
//! TLBs, so a page the guest reaches through a translation still cached
//! since before the mark sets no accessed bit and reads back idle. A pass
//! over more pages than the TLB holds re-walks nearly all of them; a small
//! working set on real hardware can read idle however long one waits (the
//! sampler's own rounds flush for this reason).
//! With `--json` one JSON object with the same numbers plus the GPA ranges
//! of young, idle, untrackable and not_present pages. Exit status 0 when
//! the measurement ran, 1 on errors.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;

use testvm::idle::{
    bitmap_runs, categorize, mark_shared, pagemap_entry, ranges_where, summarize, PageState,
    Summary, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_LRU,
};
use testvm::passes::{whole_passes_since, PassReader};
use testvm::range::{fmt_size, Range, PAGE_SIZE};
use testvm::truth::Truth;

const BITMAP: &str = "/sys/kernel/mm/page_idle/bitmap";

/// Idle page tracking of a running testvm's guest memory.
#[derive(Parser, Debug)]
#[command(name = "page-idle", version, about)]
struct Cli {
    /// Truth file written by the running testvm.
    #[arg(long, value_name = "FILE")]
    truth: PathBuf,
    /// Read back once every vCPU has completed this many whole passes that
    /// began after the mark.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    passes: u64,
    /// Read back when sent SIGUSR1, after printing "page-idle: marked",
    /// instead of after --passes passes.
    #[arg(long, conflicts_with = "passes")]
    read_on_signal: bool,
    /// Give up (exit 1) when the passes (or the signal) take longer than this.
    #[arg(long, default_value_t = 120, value_name = "S")]
    timeout_s: u64,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    pid: u32,
    vm: String,
    pages: u64,
    passes: u64,
    window_ms: u64,
    translate_ns: u64,
    mark_ns: u64,
    read_ns: u64,
    pass_ns: u64,
    kpageflags: bool,
    counts: Summary,
    young: Vec<Range>,
    idle: Vec<Range>,
    untrackable: Vec<Range>,
    not_present: Vec<Range>,
}

/// Writes bitmap words starting at word `w`. The kernel handles at most a
/// page per call and returns 0 for the partial last word below max_pfn (which
/// it has marked nonetheless), so a 0 ends the run without error.
fn write_bitmap(f: &File, w: u64, bytes: &[u8]) -> Result<(), String> {
    let mut done = 0;
    while done < bytes.len() {
        match f.write_at(&bytes[done..], w * 8 + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "writing {BITMAP} at word {}: {e}",
                    w + done as u64 / 8
                ))
            }
        }
    }
    Ok(())
}

/// Reads up to `n` bitmap words starting at word `w`; fewer when the kernel
/// stops early (it never returns the partial last word below max_pfn).
fn read_bitmap(f: &File, w: u64, n: usize) -> Result<Vec<u64>, String> {
    let mut buf = vec![0u8; n * 8];
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], w * 8 + done as u64) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(e) => {
                return Err(format!(
                    "reading {BITMAP} at word {}: {e}",
                    w + done as u64 / 8
                ))
            }
        }
    }
    Ok(buf[..done - done % 8]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("page-idle: error: {e}");
            std::process::exit(1);
        }
    }
}

fn read_u64s(f: &File, offset: u64, n: usize, what: &str) -> Result<Vec<u64>, String> {
    let mut buf = vec![0u8; n * 8];
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| format!("reading {what} at {offset:#x}: {e}"))?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

/// Flags of PFNs from /proc/kpageflags.
struct PageFlags {
    f: File,
    /// Tail PFN -> head PFN of its folio, for the pages resolved so far.
    head_of: HashMap<u64, u64>,
}

impl PageFlags {
    fn get(&self, pfn: u64) -> Result<u64, String> {
        Ok(read_u64s(&self.f, pfn * 8, 1, "/proc/kpageflags")?[0])
    }
    /// PFN the kernel tracks for `pfn`: the head of its compound folio.
    fn tracking_pfn(&mut self, pfn: u64) -> Result<u64, String> {
        if self.get(pfn)? & KPF_COMPOUND_TAIL == 0 {
            return Ok(pfn);
        }
        // Folios are naturally aligned: the head is within the 511 PFNs below
        // (for folios up to 2 MiB). Guest pages of a THP come in PFN order,
        // so the previous tail is usually resolved already.
        let lo = pfn.saturating_sub(511);
        let mut head = pfn;
        for p in (lo..pfn).rev() {
            if let Some(h) = self.head_of.get(&p) {
                head = *h;
                break;
            }
            if self.get(p)? & KPF_COMPOUND_HEAD != 0 {
                head = p;
                break;
            }
        }
        self.head_of.insert(pfn, head);
        Ok(head)
    }
    fn lru(&self, pfn: u64) -> Result<bool, String> {
        Ok(self.get(pfn)? & KPF_LRU != 0)
    }
    /// PFNs (of `pfns`) whose folio is not on the LRU now.
    fn not_lru(&self, pfns: &[u64]) -> Result<std::collections::HashSet<u64>, String> {
        let mut out = std::collections::HashSet::new();
        for p in pfns {
            if !self.lru(*p)? {
                out.insert(*p);
            }
        }
        Ok(out)
    }
}

/// Whether process `pid` still runs: a zombie (exited, not yet reaped by
/// its parent) does not.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// Blocks SIGUSR1 in this (single-threaded) process; returns the set to
/// wait on.
fn block_usr1() -> Result<libc::sigset_t, String> {
    // SAFETY: a zeroed sigset_t is a valid argument to sigemptyset, which
    // initialises it; the pointers are to locals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
            0 => Ok(set),
            e => Err(format!(
                "blocking SIGUSR1: {}",
                std::io::Error::from_raw_os_error(e)
            )),
        }
    }
}

/// Waits for SIGUSR1 (blocked by [`block_usr1`]), at most `timeout_s`.
fn wait_signal(set: &libc::sigset_t, timeout_s: u64) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(timeout_s);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `set` was initialised by block_usr1; a null siginfo
        // pointer is allowed.
        let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if r == libc::SIGUSR1 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                return Err(format!("no SIGUSR1 within {timeout_s} s of the mark"))
            }
            _ => return Err(format!("waiting for SIGUSR1: {e}")),
        }
    }
}

/// Waits until every vCPU completed `passes` whole passes after `at`.
fn wait_passes(c: &PassReader, at: &[u64], cli: &Cli, pid: u32) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let now = c.read();
        if whole_passes_since(at, &now, cli.passes) {
            return Ok(());
        }
        if !alive(pid) {
            return Err(format!(
                "testvm pid {pid} ended during the window (passes {at:?} at the mark, {now:?} now)"
            ));
        }
        if start.elapsed() >= Duration::from_secs(cli.timeout_s) {
            return Err(format!(
                "{} whole passes per vCPU did not complete within {} s (passes {at:?} at the mark, {now:?} now)",
                cli.passes, cli.timeout_s
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let t = Truth::read(&cli.truth)?;
    let passes_path = t.passes_file.as_ref().ok_or_else(|| {
        format!(
            "truth file {} names no passes_file (written by an older testvm?)",
            cli.truth.display()
        )
    })?;
    let counters = PassReader::open(passes_path)?;
    if counters.len() != t.vcpus as usize {
        return Err(format!(
            "{}: {} counters for {} vCPUs",
            passes_path.display(),
            counters.len(),
            t.vcpus
        ));
    }
    let npages = (t.mem_bytes / PAGE_SIZE) as usize;
    if t.hva % PAGE_SIZE != 0 || npages == 0 {
        return Err("truth file: hva not page aligned or mem_bytes is 0".into());
    }
    let pagemap_path = format!("/proc/{}/pagemap", t.pid);
    let pagemap = File::open(&pagemap_path).map_err(|e| {
        format!(
            "cannot open {pagemap_path}: {e} (is testvm pid {} still running?)",
            t.pid
        )
    })?;
    let bitmap = OpenOptions::new()
        .read(true)
        .write(true)
        .open(BITMAP)
        .map_err(|e| {
            format!("cannot open {BITMAP}: {e} (CONFIG_IDLE_PAGE_TRACKING and root needed)")
        })?;
    let mut flags = match File::open("/proc/kpageflags") {
        Ok(f) => Some(PageFlags {
            f,
            head_of: HashMap::new(),
        }),
        Err(e) => {
            eprintln!("page-idle: warning: /proc/kpageflags: {e}; not classifying non-LRU pages");
            None
        }
    };

    // 1. Translate.
    let t0 = Instant::now();
    let entries = read_u64s(&pagemap, t.hva / PAGE_SIZE * 8, npages, &pagemap_path)?;
    let translate_ns = t0.elapsed().as_nanos() as u64;
    let pfns: Vec<Option<u64>> = entries
        .iter()
        .map(|e| {
            let pe = pagemap_entry(*e);
            pe.present.then_some(pe.pfn)
        })
        .collect();
    if pfns.iter().flatten().all(|p| *p == 0) && pfns.iter().any(|p| p.is_some()) {
        return Err(format!(
            "{pagemap_path} shows no PFNs: run as root (CAP_SYS_ADMIN)"
        ));
    }

    // Tracking PFN (folio head) per page, and folios off the LRU at mark time.
    let mut track: Vec<Option<u64>> = vec![None; npages];
    for (i, p) in pfns.iter().enumerate() {
        if let Some(pfn) = p {
            track[i] = Some(match &mut flags {
                Some(f) => f.tracking_pfn(*pfn)?,
                None => *pfn,
            });
        }
    }
    let mut uniq: Vec<u64> = track.iter().flatten().copied().collect();
    uniq.sort_unstable();
    uniq.dedup();
    let mut untrackable = match &flags {
        Some(f) => f.not_lru(&uniq)?,
        None => Default::default(),
    };
    let runs = bitmap_runs(uniq.iter().copied());

    // SIGUSR1 is blocked before the mark is announced, so that a signal
    // sent as soon as the caller reads "marked" waits for sigtimedwait.
    let usr1 = if cli.read_on_signal {
        Some(block_usr1()?)
    } else {
        None
    };

    // 2. Mark idle.
    let t1 = Instant::now();
    for (w, masks) in &runs {
        let bytes: Vec<u8> = masks.iter().flat_map(|m| m.to_le_bytes()).collect();
        write_bitmap(&bitmap, *w, &bytes)?;
    }
    let mark_ns = t1.elapsed().as_nanos() as u64;
    // The counters are read once every page is marked: a pass in progress
    // now may have touched pages before their mark, the next one begins
    // after this read (see `whole_passes_since`).
    let at = counters.read();
    let window_start = Instant::now();

    match &usr1 {
        Some(set) => {
            println!("page-idle: marked");
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            wait_signal(set, cli.timeout_s)?;
            if !alive(t.pid) {
                return Err(format!("testvm pid {} ended before the read", t.pid));
            }
        }
        None => wait_passes(&counters, &at, cli, t.pid)?,
    }

    // 3. Read back.
    let t2 = Instant::now();
    let window_ms = t2.duration_since(window_start).as_millis() as u64;
    // Words the kernel returned; a missing word is the partial last one.
    let mut idle_bits: HashMap<u64, u64> = HashMap::new();
    for (w, masks) in &runs {
        let words = read_bitmap(&bitmap, *w, masks.len())?;
        for (k, v) in words.into_iter().enumerate() {
            idle_bits.insert(w + k as u64, v);
        }
    }
    let read_ns = t2.elapsed().as_nanos() as u64;

    // Folios off the LRU at read time.
    if let Some(f) = &flags {
        untrackable.extend(f.not_lru(&uniq)?);
    }

    let states: Vec<PageState> = (0..npages)
        .map(|i| match track[i] {
            None => PageState::NotPresent,
            Some(tp) if untrackable.contains(&tp) => PageState::Untrackable,
            Some(tp) => match idle_bits.get(&(tp / 64)) {
                None => PageState::Untrackable,
                Some(word) if word >> (tp % 64) & 1 == 1 => PageState::Idle,
                Some(_) => PageState::Young,
            },
        })
        .collect();
    let mut cats = categorize(&t);
    mark_shared(&mut cats, &track);
    let report = Report {
        pid: t.pid,
        vm: t.vm.clone(),
        pages: npages as u64,
        // No pass count decided the window when a signal did.
        passes: if cli.read_on_signal { 0 } else { cli.passes },
        window_ms,
        translate_ns,
        mark_ns,
        read_ns,
        pass_ns: translate_ns + mark_ns + read_ns,
        kpageflags: flags.is_some(),
        counts: summarize(&cats, &states),
        young: ranges_where(&states, |s| s == PageState::Young),
        idle: ranges_where(&states, |s| s == PageState::Idle),
        untrackable: ranges_where(&states, |s| s == PageState::Untrackable),
        not_present: ranges_where(&states, |s| s == PageState::NotPresent),
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_lines(&report);
    }
    Ok(())
}

fn fmt_ranges(v: &[Range]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|r| format!("{:#x}+{}", r.gpa, fmt_size(r.len)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_lines(r: &Report) {
    println!(
        "page-idle: pid={} vm={} pages={} passes={} window_ms={} translate_ns={} mark_ns={} read_ns={} pass_ns={} kpageflags={}",
        r.pid,
        r.vm,
        r.pages,
        r.passes,
        r.window_ms,
        r.translate_ns,
        r.mark_ns,
        r.read_ns,
        r.pass_ns,
        if r.kpageflags { "yes" } else { "no" }
    );
    for (name, c) in [
        ("written", r.counts.written),
        ("read", r.counts.read),
        ("own", r.counts.own),
        ("untouched", r.counts.untouched),
        ("untouched_shared", r.counts.untouched_shared),
    ] {
        println!(
            "page-idle: {name} pages={} young={} idle={} untrackable={} not_present={}",
            c.pages, c.young, c.idle, c.untrackable, c.not_present
        );
    }
    println!("page-idle: young {}", fmt_ranges(&r.young));
    println!("page-idle: untrackable {}", fmt_ranges(&r.untrackable));
}
