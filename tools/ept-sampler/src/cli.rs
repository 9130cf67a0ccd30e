// SPDX-License-Identifier: GPL-2.0

//! The command line: every subcommand and flag, as clap derive types. The
//! same definitions make `--help`, the man page and the shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ept_core::heat::{Granule, Track, MAX_HISTORY_ROUNDS};
use ept_core::procfs::control::{Flush, Walk, PERIOD_MS_MAX, PERIOD_MS_MIN};

use crate::record::{RecordArgs, ReportArgs};
use crate::source::DEFAULT_ROOT;
use crate::top::TopArgs;

/// The exit codes, shown after `--help` and in the man page (the values
/// are those of [`crate::error::exit`]).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (I/O error, ambiguous VM name)
  2  bad command line: unknown flag, bad flag value
  3  the ept_sampler module is not loaded (/proc/ept_sampler is missing)
  4  permission denied: not root, or no CAP_SYS_ADMIN
  5  no such VM, or the VM is not attached
  6  the module refused the command (its reason is printed)
  7  a file of the module or a recording could not be parsed

VM names are <pid>-<fd> as in `ept-sampler list`; a bare <pid> names the
one VM of that process.";

/// Drive the ept_sampler kernel module: list KVM VMs, sample their EPT/NPT
/// accessed and dirty bits, and show heat maps in the terminal, as
/// pictures and as data.
///
/// Everything goes through /proc/ept_sampler (root only). A typical
/// session: `ept-sampler list`, `ept-sampler start --pid 1234 --mode both`,
/// `ept-sampler heatmap 1234-12`, `ept-sampler top`,
/// `ept-sampler detach --all`.
#[derive(Debug, Parser)]
#[command(name = "ept-sampler", version, after_help = EXIT_CODES, max_term_width = 100)]
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
    /// Stop sampling a VM; it stays attached and keeps its heat map.
    Stop(VmArgs),
    /// Settings and statistics of attached VMs, human-readable.
    Status(StatusArgs),
    /// A VM's heat map: in the terminal, as data, or as a picture.
    Heatmap(HeatmapArgs),
    /// Live full-screen view of every attached VM.
    Top(TopArgs),
    /// Record snapshots of every attached VM to a file.
    Record(RecordArgs),
    /// The views of a recording, offline (no module needed).
    Report(ReportArgs),
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
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(ept_core::procfs::control::PID_MAX as u32)))]
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
    #[arg(long)]
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
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=29))]
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
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(64..=16384))]
    pub width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(64..=16384))]
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
