//! The truth file: what the guest really touches, for tests to compare
//! against what a sampler reports. See the crate documentation for the
//! schema.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

use crate::layout::OwnRange;
use crate::range::{merge, Backing, Range};

/// Version of the truth file format.
pub const SCHEMA: u32 = 1;

/// One workload phase: phase 0 from the start, phase 1 after `--switch-after`
/// or on SIGUSR2 (`--switch-on-signal`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Write ranges of this phase (the read ranges are the same in every phase).
    pub written: Vec<Range>,
    /// Requested start, seconds after the guest started (0 for phase 0);
    /// `null` for a phase started by SIGUSR2.
    pub after_s: Option<f64>,
    /// Whether a vCPU has started a pass of this phase yet.
    pub started: bool,
    /// When the first pass of this phase was handed out: seconds after the
    /// guest started, and the wall clock in ns since the Unix epoch. `null`
    /// until `started`.
    pub start_s: Option<f64>,
    pub start_unix_ns: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub schema: u32,
    /// `running` (written after the first full pass of every vCPU, and at a
    /// phase switch), `done` (clean exit), `failed` (the guest or KVM failed).
    pub state: String,
    pub pid: u32,
    /// The VM's file descriptor number in process `pid`.
    pub vm_fd: i32,
    /// `<pid>-<vm_fd>`, the name KVM's debugfs and the sampler give the VM.
    pub vm: String,
    pub mem_bytes: u64,
    pub backing: Backing,
    /// Host virtual address of guest physical address 0 (guest memory is one
    /// contiguous mapping of `mem_bytes`).
    pub hva: u64,
    pub vcpus: u32,
    /// The memslot was created with KVM_MEM_LOG_DIRTY_PAGES.
    pub dirty_log: bool,
    /// Guest memory was populated by the host at mmap time (MAP_POPULATE).
    pub prefault: bool,
    /// Granularity of the ranges: every page in them is touched once per pass.
    pub page_size: u64,
    /// Pages the guest writes: union of the write ranges of every started
    /// phase, sorted and merged.
    pub written: Vec<Range>,
    /// Pages the guest reads (every phase), sorted and merged.
    pub read: Vec<Range>,
    /// testvm's own pages: code, stacks, page tables, range tables, GDT.
    pub own: Vec<OwnRange>,
    pub phases: Vec<Phase>,
    /// Full passes over all ranges, summed over vCPUs.
    pub iterations: u64,
    /// Full passes per vCPU.
    pub vcpu_iterations: Vec<u64>,
    /// The live pass counters (see `crate::passes`); absent in files
    /// written before they existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes_file: Option<std::path::PathBuf>,
    /// Wall clock when the guest was started, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// Seconds since the guest was started.
    pub elapsed_s: f64,
}

impl Truth {
    /// Recomputes `written` from the started phases.
    pub fn update_written(&mut self) {
        let all: Vec<Range> = self
            .phases
            .iter()
            .filter(|p| p.started)
            .flat_map(|p| p.written.iter().copied())
            .collect();
        self.written = merge(&all);
    }

    /// Writes the file atomically: a temporary file next to it, then rename.
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("truth path has no file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(json.as_bytes())?;
            f.write_all(b"\n")?;
        }
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> Result<Truth, String> {
        let s = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read truth file {}: {e}", path.display()))?;
        serde_json::from_str(&s).map_err(|e| format!("bad truth file {}: {e}", path.display()))
    }
}
