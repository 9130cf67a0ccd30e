//! `guest-work`: a workload with known memory behaviour, run INSIDE a real
//! Linux guest (under QEMU/KVM) so that a sampler on the host can be checked
//! against the exact guest-physical addresses the guest touches.
//!
//! ```text
//! guest-work [--size 32M] [--read-size 8M] [--cold-size 8M] [--rate 10]
//!            [--stride 4096] [--backing hugetlb|anon]
//!            [--control /dev/ttyS1 | --seconds W,R,I]
//! ```
//!
//! 1. Maps a buffer of `--size` bytes plus a cold buffer of `--cold-size`
//!    (2 MiB hugetlb pages by default, so that every buffer is made of whole,
//!    2 MiB-aligned guest-physical frames: the host's 2 MiB TDP leaves then
//!    cover buffer pages only), locks it, touches every page once.
//! 2. Reads `/proc/self/pagemap` (needs root) for every 4 KiB page: the PFN
//!    is the guest-physical frame, i.e. the GPA the host's EPT/NPT maps.
//!    Prints the merged ranges, one per line:
//!    `guest-work: range write|read|cold 0xSTART 0xEND` (end exclusive), then
//!    `guest-work: ranges done write=BYTES read=BYTES cold=BYTES backing=B`.
//!    `read` is the first `--read-size` bytes of the buffer (a subset of
//!    `write`); `cold` is never touched again.
//! 3. Runs three phases, each announced with
//!    `guest-work: phase NAME t=SECONDS` (CLOCK_MONOTONIC of the guest):
//!    `write`: rewrites one word in every `--stride` bytes of the whole
//!    buffer, `--rate` passes a second; `read`: reads the same way the read
//!    part only; `idle`: touches nothing. With `--control FILE` (a serial
//!    port the host writes to) each line read from FILE ends the current
//!    phase; otherwise `--seconds W,R,I` sets their lengths.
//! 4. Prints `guest-work: done passes=W,R` and exits 0; the guest's /init
//!    then powers the machine off.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use testvm::idle::pagemap_entry;
use testvm::range::{merge, parse_size, Range, HUGE_PAGE_SIZE, PAGE_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backing {
    /// 2 MiB hugetlb pages (whole aligned 2 MiB guest-physical frames).
    Hugetlb,
    /// Ordinary 4 KiB anonymous pages (scattered guest-physical frames).
    Anon,
}

#[derive(Parser, Debug)]
#[command(about = "Guest workload with known guest-physical addresses, for sampling a real VM")]
struct Cli {
    /// Buffer rewritten in the write phase.
    #[arg(long, default_value = "32M", value_parser = parse_size)]
    size: u64,
    /// Part of the buffer (from its start) read in the read phase.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    read_size: u64,
    /// Buffer touched once before the phases, never again.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    cold_size: u64,
    /// Passes over the buffer per second in the write and read phases.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Bytes between two accessed words (4096: one word per page).
    #[arg(long, default_value = "4096", value_parser = parse_size)]
    stride: u64,
    #[arg(long, value_enum, default_value_t = Backing::Hugetlb)]
    backing: Backing,
    /// A file (serial port) the host writes one line to per phase change.
    #[arg(long, conflicts_with = "seconds")]
    control: Option<PathBuf>,
    /// Phase lengths in seconds without --control: WRITE,READ,IDLE.
    #[arg(long, default_value = "5,5,5")]
    seconds: String,
}

/// A locked anonymous mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, backing: Backing) -> io::Result<Self> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if backing == Backing::Hugetlb {
            flags |= libc::MAP_HUGETLB | (21 << libc::MAP_HUGE_SHIFT);
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let m = Mapping {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: the range is exactly the mapping made above.
        if unsafe { libc::mlock(ptr, len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(m)
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }

    /// Writes `value` into one word every `stride` bytes of `[off, off + len)`.
    fn write_words(&self, off: usize, len: usize, stride: usize, value: u64) {
        let end = (off + len).min(self.len);
        let mut i = off;
        while i + 8 <= end {
            // SAFETY: i + 8 <= self.len, inside the mapping; volatile so the
            // store really reaches memory every pass.
            unsafe { std::ptr::write_volatile(self.ptr.add(i).cast::<u64>(), value) };
            i += stride;
        }
    }

    /// Reads one word every `stride` bytes of `[off, off + len)`.
    fn read_words(&self, off: usize, len: usize, stride: usize) -> u64 {
        let end = (off + len).min(self.len);
        let (mut i, mut sum) = (off, 0u64);
        while i + 8 <= end {
            // SAFETY: as in write_words.
            sum =
                sum.wrapping_add(unsafe { std::ptr::read_volatile(self.ptr.add(i).cast::<u64>()) });
            i += stride;
        }
        sum
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Guest-physical ranges of `[va, va + len)` from /proc/self/pagemap, merged.
fn gpa_ranges(pagemap: &File, va: u64, len: u64) -> Result<Vec<Range>, String> {
    let pages = len / PAGE_SIZE;
    let mut raw = vec![0u8; usize::try_from(pages * 8).map_err(|e| e.to_string())?];
    pagemap
        .read_exact_at(&mut raw, va / PAGE_SIZE * 8)
        .map_err(|e| format!("reading /proc/self/pagemap: {e}"))?;
    let mut out = Vec::with_capacity(raw.len() / 8);
    for (i, chunk) in raw.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let e = pagemap_entry(u64::from_le_bytes(b));
        if !e.present || e.pfn == 0 {
            return Err(format!(
                "page {i} of the buffer has no frame in pagemap (not present, or not root)"
            ));
        }
        out.push(Range::new(e.pfn * PAGE_SIZE, PAGE_SIZE));
    }
    Ok(merge(&out))
}

fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn say(msg: &str) {
    let mut out = io::stdout().lock();
    // The console is the only channel to the host: a failed write cannot be
    // reported anywhere else.
    let _ = writeln!(out, "guest-work: {msg}");
    let _ = out.flush();
}

/// Where phase changes come from.
enum Pacer {
    Control(File),
    Timed(Vec<Duration>),
}

impl Pacer {
    /// Waits at most `timeout`; true when the current phase is over.
    fn wait(&mut self, phase: usize, started: Instant, timeout: Duration) -> io::Result<bool> {
        match self {
            Pacer::Timed(lens) => {
                let len = lens.get(phase).copied().unwrap_or_default();
                let left = len.saturating_sub(started.elapsed());
                std::thread::sleep(timeout.min(left));
                Ok(started.elapsed() >= len)
            }
            Pacer::Control(f) => {
                let mut pfd = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
                // SAFETY: one valid pollfd for the duration of the call.
                let n = unsafe { libc::poll(&mut pfd, 1, ms) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if n == 0 {
                    return Ok(false);
                }
                // A line (canonical mode) or whatever arrived: either way the
                // host asked for the next phase.
                let mut buf = [0u8; 256];
                let got = f.read(&mut buf)?;
                Ok(got > 0 && buf[..got].iter().any(|b| !b.is_ascii_whitespace()))
            }
        }
    }
}

/// Opens the control serial port without echo (the host never reads it back).
fn open_control(path: &PathBuf) -> io::Result<File> {
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    // SAFETY: termios is plain data; tcgetattr fills it for this fd.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the duration of the calls; t is valid.
    if unsafe { libc::tcgetattr(f.as_raw_fd(), &mut t) } == 0 {
        t.c_lflag &= !(libc::ECHO | libc::ECHONL);
        t.c_lflag |= libc::ICANON;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) };
    }
    Ok(f)
}

fn hugetlb_reserve(bytes: u64) -> Result<(), String> {
    let need = bytes.div_ceil(HUGE_PAGE_SIZE);
    let path = "/proc/sys/vm/nr_hugepages";
    let have: u64 = std::fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))?;
    if have < need {
        std::fs::write(path, need.to_string()).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<(), String> {
    let unit = match cli.backing {
        Backing::Hugetlb => HUGE_PAGE_SIZE,
        Backing::Anon => PAGE_SIZE,
    };
    if cli.size == 0 || cli.size % unit != 0 || cli.cold_size % unit != 0 {
        return Err(format!(
            "--size and --cold-size must be non-zero multiples of {unit}"
        ));
    }
    if cli.read_size > cli.size {
        return Err("--read-size is larger than --size".into());
    }
    if cli.stride < 8 || cli.rate == 0 {
        return Err("--stride must be at least 8 and --rate at least 1".into());
    }
    let mut pacer = match &cli.control {
        Some(p) => Pacer::Control(open_control(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => {
            let lens: Result<Vec<Duration>, _> = cli
                .seconds
                .split(',')
                .map(|s| s.trim().parse::<f64>().map(Duration::from_secs_f64))
                .collect();
            match lens {
                Ok(l) if l.len() == 3 => Pacer::Timed(l),
                _ => return Err(format!("--seconds {:?}: expected W,R,I", cli.seconds)),
            }
        }
    };
    let total = cli.size + cli.cold_size;
    if cli.backing == Backing::Hugetlb {
        hugetlb_reserve(total)?;
    }
    let len = usize::try_from(total).map_err(|e| e.to_string())?;
    let size = usize::try_from(cli.size).map_err(|e| e.to_string())?;
    let read_size = usize::try_from(cli.read_size).map_err(|e| e.to_string())?;
    let stride = usize::try_from(cli.stride).map_err(|e| e.to_string())?;
    let buf = Mapping::new(len, cli.backing).map_err(|e| format!("mapping {total} bytes: {e}"))?;
    buf.write_words(0, len, PAGE_SIZE as usize, 1);

    let pagemap =
        File::open("/proc/self/pagemap").map_err(|e| format!("/proc/self/pagemap: {e}"))?;
    let parts = [
        ("write", buf.addr(), cli.size),
        ("read", buf.addr(), cli.read_size),
        ("cold", buf.addr() + cli.size, cli.cold_size),
    ];
    for (name, va, l) in parts {
        if l == 0 {
            continue;
        }
        for r in gpa_ranges(&pagemap, va, l)? {
            say(&format!("range {name} {:#x} {:#x}", r.gpa, r.end()));
        }
    }
    say(&format!(
        "ranges done write={} read={} cold={} backing={:?}",
        cli.size, cli.read_size, cli.cold_size, cli.backing
    ));

    let period = Duration::from_secs_f64(1.0 / f64::from(cli.rate));
    let mut passes = [0u64; 2];
    let mut sink = 0u64;
    for (phase, name) in ["write", "read", "idle"].into_iter().enumerate() {
        say(&format!("phase {name} t={:.3}", monotonic()));
        let started = Instant::now();
        loop {
            let pass_start = Instant::now();
            match phase {
                0 => {
                    passes[0] += 1;
                    buf.write_words(0, size, stride, passes[0]);
                }
                1 => {
                    passes[1] += 1;
                    sink = sink.wrapping_add(buf.read_words(0, read_size, stride));
                }
                _ => {}
            }
            let wait = period.saturating_sub(pass_start.elapsed());
            if pacer
                .wait(phase, started, wait)
                .map_err(|e| format!("control: {e}"))?
            {
                break;
            }
        }
    }
    std::hint::black_box(sink);
    say(&format!(
        "done passes={},{} t={:.3}",
        passes[0],
        passes[1],
        monotonic()
    ));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}
