//! Command line of `testvm`.

use clap::{ArgAction, ArgGroup, Parser, ValueEnum};
use std::path::PathBuf;

use crate::range::{parse_range, parse_size, validate, Backing, Range, Workload};

const AFTER_HELP: &str = "\
Sizes: decimal or 0x hex, optional K/M/G suffix (binary). Ranges: GPA+LEN, e.g. 16M+8M.
Ranges must be 4K aligned, non-empty, inside --mem, at or above 1M (testvm's own pages
live in [0, 1M)), and must not overlap within a phase. Every vCPU runs the same loop over
all ranges: one 8-byte store at offset 0 of each page of each --write range, one load of
each page of each --read range, then one port-I/O exit per pass (counted as an iteration).
Before the guest starts, the host writes one qword into each page of each --read range
(real pages rather than the shared zero page); --prefault populates all guest memory.

Stdout: 'testvm: running pid=P vm_fd=F vm=P-F hva=0x.. mem=N' once every vCPU completed a
pass (truth file written just before), 'testvm: phase 1 running start_s=S' once every vCPU
completed a whole pass of phase 1 (every page of the new ranges written), 'testvm: done
iterations=N elapsed_s=S' at exit. SIGINT/SIGTERM stop cleanly; with --switch-on-signal,
SIGUSR2 starts phase 1.

Truth file (JSON, schema 1, written atomically when running, at a phase switch, at exit):
  schema, state (running|done|failed), pid, vm_fd, vm (\"P-F\"), mem_bytes, backing,
  hva (host address of GPA 0), vcpus, dirty_log, prefault, page_size (4096),
  written [{gpa,len}] (union of started phases), read [{gpa,len}],
  own [{gpa,len,what}] (gdt, pml4, pdpt, range-table, code, stack, pd),
  phases [{written, after_s (null: on SIGUSR2), started, start_s, start_unix_ns}],
  iterations (sum over vCPUs), vcpu_iterations [..], passes_file, start_unix_ns, elapsed_s.
passes_file (FILE.passes): one native-endian u64 per vCPU, its completed passes, updated
live through a shared mapping: what page-idle's window waits on.";

/// Guest workload VMM for ept-sampler tests.
#[derive(Parser, Debug, Clone)]
#[command(name = "testvm", version, about, after_help = AFTER_HELP)]
#[command(group(ArgGroup::new("switch").args(["switch_after", "switch_on_signal"])))]
pub struct Cli {
    /// Guest memory size (multiple of 2M), mapped at GPA 0.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub mem: u64,
    /// Host backing of guest memory.
    #[arg(long, value_enum, default_value_t = Backing::Anon)]
    pub backing: Backing,
    /// Number of vCPUs; each runs the same loop over all ranges.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub vcpus: u32,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_parser = parse_seconds, conflicts_with = "iterations", value_name = "S")]
    pub seconds: Option<f64>,
    /// Stop after every vCPU completed this many passes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub iterations: Option<u64>,
    /// Range whose every page the guest writes each pass (repeatable).
    #[arg(long = "write", value_parser = parse_range, num_args = 1.., action = ArgAction::Append, value_name = "GPA+LEN")]
    pub write: Vec<Range>,
    /// Range whose every page the guest reads each pass (repeatable).
    #[arg(long = "read", value_parser = parse_range, num_args = 1.., action = ArgAction::Append, value_name = "GPA+LEN")]
    pub read: Vec<Range>,
    /// Switch to the second phase this many seconds after the guest started.
    #[arg(long, value_parser = parse_seconds, requires = "then_write", value_name = "S")]
    pub switch_after: Option<f64>,
    /// Switch to the second phase when testvm receives SIGUSR2 (a test then
    /// switches at a point of its own, not at a time that may come too early
    /// or too late on a slow testbed).
    #[arg(long, requires = "then_write")]
    pub switch_on_signal: bool,
    /// Write ranges of the second phase: they replace the --write ranges.
    #[arg(long = "then-write", value_parser = parse_range, num_args = 1.., action = ArgAction::Append, requires = "switch", value_name = "GPA+LEN")]
    pub then_write: Vec<Range>,
    /// The VM's type (KVM_CREATE_VM's argument): `sw-protected` is
    /// KVM_X86_SW_PROTECTED_VM, a VM that may have guest_memfd-private
    /// memory (CONFIG_KVM_SW_PROTECTED_VM), as SEV-SNP and TDX VMs do. Its
    /// memory stays shared here: the guest runs as in a default VM.
    #[arg(long, value_enum, default_value_t = VmType::Default)]
    pub vm_type: VmType,
    /// Create the memslot with KVM_MEM_LOG_DIRTY_PAGES.
    #[arg(long)]
    pub dirty_log: bool,
    /// Switch KVM_MEM_LOG_DIRTY_PAGES on for the memslot when testvm
    /// receives SIGURG, while the guest runs (as a VMM starting a live
    /// migration does), then check KVM's dirty log against what the guest
    /// wrote: three times, each after 2 passes of every vCPU,
    /// KVM_GET_DIRTY_LOG must have every page of the --write ranges. Prints
    /// 'testvm: dirty log on' and 'testvm: dirty log check n=N pages=P
    /// missing=M' per check; a missing page fails testvm. The log stays on.
    #[arg(long, conflicts_with_all = ["dirty_log", "switch"])]
    pub dirty_log_on_signal: bool,
    /// Populate all of guest memory on the host before the guest starts (so
    /// untouched pages are present in the VMM's page tables).
    #[arg(long)]
    pub prefault: bool,
    /// Add and delete a second memslot (slot 1, 2 MiB the guest never
    /// touches, above guest memory) every 5 ms while the guest runs, until
    /// SIGHUP. Each delete makes KVM invalidate every TDP root
    /// (kvm_mmu_zap_all_fast): how a test makes roots go away in the middle
    /// of a sampler's rounds. Prints 'testvm: memslot churn stopped
    /// deletes=N' on SIGHUP.
    #[arg(long)]
    pub churn_memslot: bool,
    /// Write the truth file (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
}

/// A VM type of KVM_CREATE_VM (arch/x86/include/uapi/asm/kvm.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VmType {
    /// KVM_X86_DEFAULT_VM.
    Default,
    /// KVM_X86_SW_PROTECTED_VM.
    SwProtected,
}

impl VmType {
    /// KVM_CREATE_VM's argument.
    pub fn kvm_type(self) -> u64 {
        match self {
            VmType::Default => u64::from(kvm_bindings::KVM_X86_DEFAULT_VM),
            VmType::SwProtected => u64::from(kvm_bindings::KVM_X86_SW_PROTECTED_VM),
        }
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("bad number of seconds {s:?}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("seconds must be > 0, got {s:?}"));
    }
    Ok(v)
}

impl Cli {
    /// The validated workload, or a message saying what is wrong.
    pub fn workload(&self) -> Result<Workload, String> {
        let w = Workload {
            mem: self.mem,
            vcpus: self.vcpus,
            write: self.write.clone(),
            read: self.read.clone(),
            then_write: if self.then_write.is_empty() {
                None
            } else {
                Some(self.then_write.clone())
            },
        };
        validate(&w)?;
        Ok(w)
    }
}
