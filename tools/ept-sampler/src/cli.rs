// SPDX-License-Identifier: GPL-2.0

//! The command line: every subcommand and flag, as clap derive types. The
//! same definitions make `--help`, the man page and the shell completions.

use std::path::PathBuf;

use crate::bins::ColorBy;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ept_core::heat::{Granule, IdleBins, Track, Width, MAX_HISTORY_ROUNDS};
use ept_core::procfs::control::{Flush, Walk, PERIOD_MS_MAX, PERIOD_MS_MIN};

use crate::record::{RecordArgs, ReportArgs};
use crate::source::DEFAULT_ROOT;
use crate::top::TopArgs;

/// The exit codes and the environment, shown after every `--help` and in
/// every man page (the codes are those of [`crate::error::exit`]; clap's
/// man pages do not show `env` on their own).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (I/O error, ambiguous VM name)
  2  bad command line: unknown flag, bad flag value
  3  the ept_sampler module is not loaded (/proc/ept_sampler is missing)
  4  permission denied: not root, or no CAP_SYS_ADMIN
  5  no such VM, or the VM is not attached (or, for heatmap, not sampled)
  6  the module refused the command (its reason is printed)
  7  a file of the module or a recording could not be parsed

VM names are <pid>-<fd> as in `ept-sampler list`; a bare <pid> names the
one VM of that process.

Environment:
  EPT_SAMPLER_PROC  the module's directory, as --proc
  NO_COLOR          set and not empty: no colour (heatmap, top)
  COLORTERM         truecolor or 24bit: heatmap uses 24-bit colour
  COLUMNS           heatmap's width when standard output is not a terminal";

/// The command line: [`Cli`] with the exit codes after every
/// subcommand's help as well (clap does not pass `after_help` down), so
/// that `ept-sampler stop --help` and `man ept-sampler-stop` say them too.
/// Parsing, the man pages and the completions all use it.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| {
        let after = match sub.get_after_help() {
            Some(own) => format!("{own}\n\n{EXIT_CODES}"),
            None => EXIT_CODES.to_string(),
        };
        sub.after_help(after)
    })
}

/// Parses the process's arguments with [`command`]; on a bad command
/// line, prints clap's message and exits 2.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Drive the ept_sampler kernel module: list KVM VMs, sample their EPT/NPT
/// accessed and dirty bits, and show heat maps in the terminal, as
/// pictures and as data.
///
/// Everything goes through /proc/ept_sampler (root only). A typical
/// session: `ept-sampler list`, `ept-sampler start --pid 1234 --mode both`,
/// `ept-sampler heatmap 1234-12`, `ept-sampler top`,
/// `ept-sampler detach --all`.
#[derive(Debug, Parser)]
// No `help` subcommand: `--help` does it, and the man pages have no page
// for it to point to.
#[command(
    name = "ept-sampler",
    version,
    after_help = EXIT_CODES,
    max_term_width = 100,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The module's directory (a copy of it works too, for tests and
    /// offline looks).
    #[arg(long = "proc", value_name = "DIR", global = true, env = "EPT_SAMPLER_PROC", default_value = DEFAULT_ROOT)]
    pub proc_dir: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every KVM VM on the host, attached or not, as a table.
    List(ListArgs),
    /// Attach VMs of a process (pins them and gives them a directory).
    Attach(AttachArgs),
    /// Detach a VM (stops its sampling and releases it), or every VM.
    Detach(DetachArgs),
    /// Start sampling a VM, or change the settings of one being sampled.
    ///
    /// With --pid, the VM is attached first when it is not. Settings not
    /// given take their defaults (those of the module).
    Start(StartArgs),
    /// Stop sampling a VM; it stays attached, its heat map, history and
    /// statistics readable as the last round left them.
    ///
    /// They stay until `detach`, or a `start` with another granule, window
    /// or history; a `start` with the same ones continues the same heat map.
    Stop(VmArgs),
    /// Settings and statistics of attached VMs, human-readable.
    ///
    /// Without a VM, first the host: what the module found (kernel, TDP,
    /// TLB flush, KVM's SPTE layout), its parameters (walk_budget,
    /// pass_accessed), and what to know about them: a module the kernel
    /// does not trust, lockdown, DAMON clearing accessed bits,
    /// pass_accessed=N.
    Status(StatusArgs),
    /// A VM's heat map: in the terminal, as data, or as a picture.
    Heatmap(HeatmapArgs),
    /// Live full-screen view of every attached VM.
    Top(TopArgs),
    /// Record snapshots of every attached VM to a file.
    Record(RecordArgs),
    /// The views of a recording, offline (no module needed).
    Report(ReportArgs),
    /// Prometheus metrics of every VM: served on /metrics, or written for
    /// node_exporter's textfile collector.
    ///
    /// Per VM (labels vm and, for QEMU, domain: its -name, the libvirt
    /// domain): memory, accessed and dirty bytes of the last round, the
    /// dirty rate, idle bytes per idle bin, rounds and scan time; per host:
    /// ept_sampler_up, ept_sampler_vms, ept_sampler_build_info. A module not
    /// loaded is served as ept_sampler_up 0. Scrapes closer together than a
    /// sampling round share one read of /proc.
    Export(ExportArgs),
    /// Shell completions, on standard output.
    Completions(CompletionsArgs),
    /// The man page (roff), on standard output.
    Man(ManArgs),
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The process that owns the VM (e.g. the QEMU or Firecracker pid).
    #[arg(long, value_parser = pid_value)]
    pub pid: u32,
    /// The VM file's descriptor in that process; without it, every VM of
    /// the process.
    #[arg(long)]
    pub fd: Option<u32>,
}

/// `detach`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DetachArgs {
    /// The VM (<pid>-<fd>, or a pid with one VM).
    pub vm: Option<String>,
    /// Every attached VM.
    #[arg(long)]
    pub all: bool,
}

/// A subcommand that takes one VM.
#[derive(Debug, Args)]
pub struct VmArgs {
    /// The VM (<pid>-<fd>, or a pid with one VM).
    pub vm: String,
}

/// Which bits are sampled (`mode=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Accessed bits: which pages the guest touched.
    Accessed,
    /// Dirty bits only: which pages it wrote.
    Dirty,
    /// Both.
    Both,
}

impl ModeArg {
    /// The module's value.
    pub fn track(self) -> Track {
        match self {
            ModeArg::Accessed => Track::Accessed,
            ModeArg::Dirty => Track::Dirty,
            ModeArg::Both => Track::Both,
        }
    }
}

/// TLB flushes (`flush=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlushArg {
    /// Once per round: a page touched in a round is seen in that round.
    Round,
    /// Never: cheaper, misses accesses through cached translations.
    None,
}

impl FlushArg {
    /// The module's value.
    pub fn flush(self) -> Flush {
        match self {
            FlushArg::Round => Flush::Round,
            FlushArg::None => Flush::None,
        }
    }
}

/// Which tables a round enters (`walk=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WalkArg {
    /// Every table.
    Leaf,
    /// Only tables whose parent's accessed bit is set (exact only with
    /// --flush round).
    Upper,
}

impl WalkArg {
    /// The module's value.
    pub fn walk(self) -> Walk {
        match self {
            WalkArg::Leaf => Walk::Leaf,
            WalkArg::Upper => Walk::Upper,
        }
    }
}

/// A pid as the module accepts it (1..=PID_MAX).
fn pid_value(word: &str) -> Result<u32, String> {
    let max = ept_core::procfs::control::PID_MAX;
    word.parse::<u32>()
        .ok()
        .filter(|&pid| pid >= 1 && u64::from(pid) <= max)
        .ok_or_else(|| format!("not a pid: a whole number from 1 to {max}"))
}

/// Parses a granule with the module's own parser.
fn granule(word: &str) -> Result<Granule, String> {
    Granule::parse(word).map_err(|e| e.to_string())
}

/// `start`.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["vm", "pid"])))]
pub struct StartArgs {
    /// The VM (<pid>-<fd>, or a pid with one VM); it must be attached.
    pub vm: Option<String>,
    /// The process that owns the VM; attaches it first when needed.
    #[arg(long, value_parser = pid_value)]
    pub pid: Option<u32>,
    /// With --pid: the VM file's descriptor, when the process has several
    /// VMs.
    #[arg(long, requires = "pid")]
    pub fd: Option<u32>,
    /// Time between the starts of two rounds, in ms.
    #[arg(long, default_value_t = ept_core::procfs::control::DEFAULT_PERIOD_MS,
        value_parser = clap::value_parser!(u32).range(i64::from(PERIOD_MS_MIN as u32)..=i64::from(PERIOD_MS_MAX as u32)))]
    pub period_ms: u32,
    /// Which bits to sample.
    #[arg(long, value_enum, default_value_t = ModeArg::Accessed)]
    pub mode: ModeArg,
    /// Heat map granule: a power of two from 4K to 512G (4K, 2M, 1G, 8192).
    #[arg(long, default_value = "4K", value_parser = granule)]
    pub granule: Granule,
    /// Rounds the heat map counts over: 1..5 at 4K, 1..13 at 8K, 1..29
    /// from 16K on [default: 5, or the most the granule allows].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=i64::from(Width::MAX_WINDOW)))]
    pub window: Option<u8>,
    /// TLB flush after each round.
    #[arg(long, value_enum, default_value_t = FlushArg::Round)]
    pub flush: FlushArg,
    /// Which tables a round reads.
    #[arg(long, value_enum, default_value_t = WalkArg::Leaf)]
    pub walk: WalkArg,
    /// Rounds kept in the history ring.
    #[arg(long, default_value_t = ept_core::heat::DEFAULT_HISTORY_ROUNDS,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_HISTORY_ROUNDS)))]
    pub history: u16,
    /// Ages the VM's `idle` file counts memory against: up to 16,
    /// increasing, each a number and ms, s, m or h.
    #[arg(long, default_value = "1s,10s,1m,10m,1h", value_parser = idle_bins)]
    pub idle: IdleBins,
}

fn idle_bins(word: &str) -> Result<IdleBins, String> {
    IdleBins::parse(word).map_err(|e| e.to_string())
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The VM; without it, every attached VM.
    pub vm: Option<String>,
}

/// Data formats of `heatmap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeatFormat {
    /// The terminal view.
    Text,
    /// One JSON object: the header, the memslots and one record per run.
    Json,
    /// CSV: a header row, then one row per run.
    Csv,
}

/// When the terminal view uses colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When standard output is a terminal and NO_COLOR is not set.
    Auto,
    /// Always.
    Always,
    /// Never: a character ramp.
    Never,
}

/// `heatmap`.
#[derive(Debug, Args)]
pub struct HeatmapArgs {
    /// The VM (<pid>-<fd>, or a pid with one VM).
    pub vm: String,
    /// Output format on standard output [default: text, or nothing when
    /// a picture is asked for].
    #[arg(long, value_enum)]
    pub format: Option<HeatFormat>,
    /// Write a PNG picture (address x heat, address x time) to FILE.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Write an SVG picture to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Picture width in pixels.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(i64::from(crate::picture::MIN_SIZE.0)..=i64::from(crate::picture::MAX_SIZE.0)))]
    pub width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(i64::from(crate::picture::MIN_SIZE.1)..=i64::from(crate::picture::MAX_SIZE.1)))]
    pub height: u32,
    /// Terminal view: columns to use [default: the terminal's width, or 80].
    #[arg(long, value_parser = clap::value_parser!(u16).range(40..))]
    pub columns: Option<u16>,
    /// Terminal view: rows of cells per heat map.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub rows: u16,
    /// Terminal view: colour.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// What the colours show, in the terminal and the pictures: heat
    /// (rounds in the window) or age (time since the last access, or
    /// write, from the heat map's idle ages; log scale to 1 h).
    #[arg(long, value_enum, default_value_t = ColorBy::Heat)]
    pub color_by: ColorBy,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Serve /metrics over HTTP on this address (IP:PORT; [::1]:PORT for
    /// IPv6). Loopback by default: the metrics name every VM on the host.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9771",
        conflicts_with = "textfile"
    )]
    pub listen: std::net::SocketAddr,
    /// Instead of serving, write DIR/ept_sampler.prom for node_exporter's
    /// textfile collector (through a temporary file renamed into place).
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// With --textfile: time between writes (15s, 1m, ...).
    #[arg(long, default_value = "15s", value_parser = interval, requires = "textfile")]
    pub interval: std::time::Duration,
    /// With --textfile: write once and exit.
    #[arg(long, requires = "textfile")]
    pub once: bool,
    /// The host's procfs, where the VMs' processes' command lines are read
    /// (for the domain and uuid labels).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub host_proc: PathBuf,
}

/// A time between textfile writes: 100 ms to a day.
fn interval(word: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(word).map_err(|e| e.to_string())?;
    if (std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(86_400)).contains(&d)
    {
        Ok(d)
    } else {
        Err("from 100ms to 1d".into())
    }
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per subcommand (ept-sampler-list.1, ...) and the main
    /// page into DIR instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use ept_core::heat::{Granule, StoreLayout};

    /// `start --window`'s help names the largest window of a few
    /// granules: they must be the module's.
    #[test]
    fn window_help_says_the_module_limits() {
        let cmd = super::command();
        let start = cmd.find_subcommand("start").expect("start");
        let help = start
            .get_arguments()
            .find(|a| a.get_id() == "window")
            .and_then(|a| a.get_help())
            .expect("--window help")
            .to_string();
        for (granule, said) in [("4K", "at 4K"), ("8K", "at 8K"), ("16K", "from 16K on")] {
            let max = StoreLayout::max_window(Granule::parse(granule).expect("granule"));
            assert!(
                help.contains(&format!("1..{max} {said}")),
                "{granule}: {help}"
            );
        }
        // "from 16K on": no larger granule allows more.
        let largest = StoreLayout::max_window(Granule::parse("512G").expect("granule"));
        assert_eq!(
            largest,
            StoreLayout::max_window(Granule::parse("16K").expect("granule"))
        );
    }
}
