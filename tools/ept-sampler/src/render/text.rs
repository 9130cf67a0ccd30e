// SPDX-License-Identifier: GPL-2.0

//! `list` and `status`: the module's tables and counters for a person.

use std::fmt::Write;

use ept_core::heat::IdleCounts;
use ept_core::procfs::stats::DirtyStatus;
use ept_core::procfs::version::{Version, MODULE_VERSION};
use ept_core::procfs::vms::{Refusal, VmRow, VmState};

use super::{human_bytes, human_ns};
use crate::model::VmSnapshot;

/// Why a VM cannot be sampled, in words.
pub fn refusal_text(why: Refusal) -> &'static str {
    match why {
        Refusal::ShadowPaging => "KVM uses shadow paging for it",
        Refusal::TdpMmuOff => "KVM's TDP MMU is off (kvm.tdp_mmu=0)",
        Refusal::NoAdBits => "EPT has no accessed/dirty bits (kvm_intel.eptad=0)",
        Refusal::NoTlbFlush => {
            "KVM's TLB flush cannot be reached (KVM built in?): cached translations would hide accesses"
        }
        Refusal::ConfidentialVm => "a confidential VM (SEV-SNP or TDX): its private memory cannot be sampled",
        Refusal::PrivateMemory => {
            "a VM with guest_memfd-private memory (KVM_X86_SW_PROTECTED_VM): a heat map would show its shared memory only"
        }
        Refusal::UnknownVmType => "a VM type the module does not know",
        Refusal::Other => "a reason this tool does not know",
    }
}

/// A state for a person: `sampling`, `refused (shadow-paging: ...)`.
pub fn state_text(state: VmState) -> String {
    match state {
        VmState::Refused(why) => format!("refused ({}: {})", why.as_str(), refusal_text(why)),
        other => other.to_string(),
    }
}

/// The `vms` rows as an aligned table.
pub fn list_table(rows: &[VmRow]) -> String {
    let head = [
        "VM",
        "VCPUS",
        "MEMSLOTS",
        "MEMORY",
        "TDP",
        "DIRTY-LOG",
        "STATE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.vm.to_string(),
                r.vcpus.to_string(),
                r.memslots.to_string(),
                human_bytes(r.memory_bytes),
                r.tdp.as_str().to_string(),
                if r.dirty_logging { "on" } else { "off" }.to_string(),
                state_text(r.state),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    // Numbers right-aligned, words left-aligned; the last column unpadded.
    let right = [false, true, true, true, false, false, false];
    let mut out = String::new();
    let mut line = |items: Vec<&str>| {
        let mut s = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if i + 1 == items.len() {
                s.push_str(item);
            } else if right[i] {
                let _ = write!(s, "{item:>w$}", w = width[i]);
            } else {
                let _ = write!(s, "{item:<w$}", w = width[i]);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(head.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        out.push_str("(no KVM VM on this host)\n");
    }
    out
}

/// One `vms` row for `list --json`.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct VmJson {
    /// `<pid>-<fd>`.
    pub vm: String,
    /// Owner's pid.
    pub pid: u32,
    /// VM file descriptor.
    pub fd: u32,
    /// vCPUs.
    pub vcpus: u32,
    /// Memslots.
    pub memslots: u32,
    /// Guest memory in bytes.
    pub memory_bytes: u64,
    /// `ept+ad`, `ept`, `npt` or `shadow`.
    pub tdp: String,
    /// Whether dirty logging is on.
    pub dirty_logging: bool,
    /// `detached`, `attached`, `sampling` or `refused`.
    pub state: String,
    /// With `refused`: the module's reason word.
    pub refusal: Option<String>,
}

/// The `vms` rows as JSON (an array).
pub fn list_json(rows: &[VmRow]) -> String {
    let items: Vec<VmJson> = rows
        .iter()
        .map(|r| {
            let (state, refusal) = match r.state {
                VmState::Refused(why) => ("refused".to_string(), Some(why.as_str().to_string())),
                s => (s.to_string(), None),
            };
            VmJson {
                vm: r.vm.to_string(),
                pid: r.vm.pid,
                fd: r.vm.fd,
                vcpus: r.vcpus,
                memslots: r.memslots,
                memory_bytes: r.memory_bytes,
                tdp: r.tdp.as_str().to_string(),
                dirty_logging: r.dirty_logging,
                state,
                refusal,
            }
        })
        .collect();
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&items).unwrap_or_default() + "\n"
}

/// The host as the module sees it (`version`): one line for `status`.
/// Says so when the module is not the version this tool was built with.
pub fn host(v: &Version<'_>) -> String {
    let mut o = format!(
        "module {} on Linux {} ({}",
        v.module,
        v.kernel,
        v.tdp.as_str()
    );
    let _ = match v.tdp_mmu {
        Some(on) => write!(o, ", TDP MMU {}", if on { "on" } else { "off" }),
        None => write!(o, ", no KVM loaded"),
    };
    let _ = write!(
        o,
        "); VM files by {}, TLB flushes by {}",
        v.vm_files, v.tlb_flush
    );
    if let Some(bits) = v.kvm_bits {
        let _ = write!(
            o,
            "; KVM's SPTE layout: A/D type at bits {}-{}, FROZEN_SPTE {:#x}",
            bits.ad_shift(),
            bits.ad_shift() + 1,
            bits.frozen()
        );
    }
    if v.module != MODULE_VERSION {
        let _ = write!(o, " (this tool was built for module {MODULE_VERSION})");
    }
    o
}

/// The `idle` file as `status` shows it: per bit sampled, the memory idle
/// for at least each bin, and never touched, of the memory mapped.
pub fn idle_lines(c: &IdleCounts) -> String {
    let mut o = String::new();
    let bins = c.bins.as_slice();
    for (what, bytes) in [("accessed", &c.accessed), ("written", &c.written)] {
        let Some(b) = bytes else {
            continue;
        };
        let per_bin: Vec<String> = bins
            .iter()
            .zip(b.bins.iter())
            .map(|(&ms, &n)| format!(">={} {}", duration_text(u64::from(ms)), human_bytes(n)))
            .collect();
        let _ = writeln!(
            o,
            "  idle       not {what:<8} {}; never {} of {} mapped",
            per_bin.join(", "),
            human_bytes(b.never),
            human_bytes(c.mapped)
        );
    }
    o
}

/// A bin's duration as the module writes it (`1s`, `10m`, `500ms`).
pub fn duration_text(ms: u64) -> String {
    let mut s = String::new();
    let _ = ept_core::heat::idle::write_duration(&mut s, ms);
    s
}

/// An idle age for a legend or an axis, two significant digits in the
/// largest unit it reaches: `720ms`, `6.5s`, `16m`, `1h`.
pub fn age_text(ms: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
    let (unit, size) = UNITS
        .iter()
        .copied()
        .find(|&(_, size)| ms >= size)
        .unwrap_or(("ms", 1));
    let v = ms as f64 / size as f64;
    if v >= 10.0 || size == 1 {
        format!("{v:.0}{unit}")
    } else {
        let s = format!("{v:.1}");
        format!("{}{unit}", s.strip_suffix(".0").unwrap_or(&s))
    }
}

/// The status of one VM: its settings and counters.
pub fn status(vm: &VmSnapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}  {}  ({} vCPU{}, {}, {})",
        vm.row.vm,
        state_text(vm.row.state),
        vm.row.vcpus,
        if vm.row.vcpus == 1 { "" } else { "s" },
        human_bytes(vm.row.memory_bytes),
        vm.row.tdp.as_str()
    );
    match vm.config.and_then(|c| c.settings) {
        Some(s) => {
            let _ = writeln!(
                o,
                "  settings   period {} ms, mode {}, granule {}, window {}, flush {}, walk {}, history {} rounds, idle bins {}",
                s.period_ms,
                s.track.as_str(),
                s.granule,
                s.window,
                s.flush.as_str(),
                s.walk.as_str(),
                s.history,
                s.idle
            );
        }
        None if vm.config.is_some() => {
            let _ = writeln!(o, "  settings   none: not being sampled");
        }
        None => {
            let _ = writeln!(o, "  not attached");
        }
    }
    let Some(st) = &vm.stats else {
        return o;
    };
    let _ = writeln!(
        o,
        "  rounds     {} (walk last {}, avg {}, max {}; flush last {}, avg {}; {} yields)",
        st.rounds,
        human_ns(st.walk_ns_last),
        human_ns(st.walk_ns_avg),
        human_ns(st.walk_ns_max),
        human_ns(st.flush_ns_last),
        human_ns(st.flush_ns_avg),
        st.yields
    );
    let dash =
        |v: Option<ept_core::procfs::fields::Centi>| v.map_or("-".to_string(), |c| c.to_string());
    let dirty = match st.dirty {
        DirtyStatus::Tracked => format!(
            "{} MiB dirty; dirty rate {} MB/s",
            dash(st.dirty_mib_last()),
            dash(st.dirty_mb_s())
        ),
        DirtyStatus::Off => "dirty bits not sampled (mode accessed)".to_string(),
        DirtyStatus::DirtyLogging => {
            "dirty bits refused: dirty logging is on for this VM".to_string()
        }
    };
    let _ = writeln!(
        o,
        "  last round {} MiB accessed, {}",
        dash(st.accessed_mib_last()),
        dirty
    );
    if st.dirty_partial_rounds > 0 {
        let _ = writeln!(
            o,
            "  partial    {} rounds stopped clearing dirty bits when dirty logging began: their dirty pages not counted",
            st.dirty_partial_rounds
        );
    }
    if let Some(idle) = &vm.idle {
        o.push_str(&idle_lines(&idle.counts));
    }
    let _ = writeln!(
        o,
        "  flushes    {} ({} rounds unflushed)",
        st.flushes, st.unflushed_rounds
    );
    let _ = writeln!(
        o,
        "  leaves     {} in the last round, {} in all; {} A/D bits cleared",
        st.leaves_last, st.leaves, st.bits_cleared
    );
    let _ = writeln!(
        o,
        "  memory     heat store {}, history {}",
        human_bytes(st.store_bytes),
        human_bytes(st.history_bytes)
    );
    let odd: Vec<String> = [
        ("cas_retries", st.cas_retries),
        ("frozen", st.frozen),
        ("untracked", st.untracked),
        ("unreachable", st.unreachable),
        ("malformed", st.malformed),
        ("cold_tables", st.cold_tables),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{k} {n}"))
    .collect();
    if !odd.is_empty() {
        let _ = writeln!(o, "  walker     {}", odd.join(", "));
    }
    o
}
