// SPDX-License-Identifier: GPL-2.0

//! What `ept-sampler export` serves: one snapshot of the module's files as
//! Prometheus metric families, in base units (bytes, seconds).
//!
//! Every per-VM series carries `vm` (`<pid>-<fd>`, the module's name) and
//! `domain` (a QEMU VM's `-name guest=`, the libvirt domain name, so that
//! the series join with libvirt exporters' `libvirt_domain_*{domain=...}`;
//! empty, which Prometheus reads as absent, for other VMMs). What else is
//! known of the VM is in one info series, `ept_sampler_vm_info`, as those
//! exporters do it.
//!
//! The figures are the module's own: the last round's pages from `stats`,
//! the idle bins from `idle`, the size from `vms`. Nothing is averaged or
//! guessed here; a figure the module does not have (a bit the mode does
//! not sample, a counter an older module lacks, a VM not sampled now) is a
//! series left out, not a 0.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use ept_core::procfs::stats::DirtyStatus;
use ept_core::procfs::version::Version;
use ept_core::procfs::vms::VmState;

use crate::export::vmm::Vmm;
use crate::model::{Snapshot, VmSnapshot};

/// Bytes in the pages `stats` counts.
const PAGE: f64 = 4096.0;

/// The labels of every per-VM series.
const VM_LABELS: [&str; 2] = ["vm", "domain"];

/// The families of a host whose module could not be read: `up` 0 alone.
pub fn down() -> Result<Vec<MetricFamily>, prometheus::Error> {
    let registry = Registry::new();
    family(&registry, IntGaugeVec::new, "ept_sampler_up", UP_HELP, &[])?
        .with_label_values::<&str>(&[])
        .set(0);
    Ok(registry.gather())
}

const UP_HELP: &str =
    "1 if /proc/ept_sampler was read at this scrape, 0 if not (module not loaded, or unreadable)";

/// Every family of one read of the module: the host's, then each VM's.
/// `unread`: VMs whose files did not parse (they went away while read;
/// their rows are in `snap` without them). `vmm` names the process of a
/// pid (its QEMU `-name` and `-uuid`).
pub fn families(
    snap: &Snapshot,
    version: &Version<'_>,
    unread: usize,
    vmm: &dyn Fn(u32) -> Vmm,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let f = Families::new()?;
    f.unread
        .with_label_values::<&str>(&[])
        .set(i64::try_from(unread).unwrap_or(i64::MAX));
    f.up.with_label_values::<&str>(&[]).set(1);
    f.build_info
        .with_label_values(&[version.module, version.kernel])
        .set(1);
    f.vms
        .with_label_values::<&str>(&[])
        .set(i64::try_from(snap.vms.len()).unwrap_or(i64::MAX));
    for vm in &snap.vms {
        let who = vmm(vm.row.vm.pid);
        f.vm(vm, &who);
    }
    f.gather()
}

/// The families, registered in one registry for one scrape.
struct Families {
    registry: Registry,
    up: IntGaugeVec,
    build_info: IntGaugeVec,
    vms: IntGaugeVec,
    unread: IntGaugeVec,
    info: IntGaugeVec,
    sampling: IntGaugeVec,
    memory: GaugeVec,
    accessed: GaugeVec,
    dirty: GaugeVec,
    dirty_rate: GaugeVec,
    mapped: GaugeVec,
    idle: GaugeVec,
    write_idle: GaugeVec,
    never_accessed: GaugeVec,
    never_written: GaugeVec,
    sampled: GaugeVec,
    rounds: IntCounterVec,
    scan: CounterVec,
}

impl Families {
    fn new() -> Result<Families, prometheus::Error> {
        let registry = Registry::new();
        let reg = &registry;
        let with_idle = ["vm", "domain", "idle_for"];
        Ok(Families {
            up: family(reg, IntGaugeVec::new, "ept_sampler_up", UP_HELP, &[])?,
            build_info: family(reg, IntGaugeVec::new,
                "ept_sampler_build_info",
                "Always 1: the module's version and the kernel it runs on, as labels",
                &["version", "kernel"],
            )?,
            vms: family(reg, IntGaugeVec::new,
                "ept_sampler_vms",
                "KVM VMs on the host, attached or not",
                &[],
            )?,
            unread: family(reg, IntGaugeVec::new,
                "ept_sampler_vms_unread",
                "VMs whose files did not read whole at this scrape (detached while read; only their row's series are served)",
                &[],
            )?,
            info: family(reg, IntGaugeVec::new,
                "ept_sampler_vm_info",
                "Always 1: what is known of a VM, as labels (pid, QEMU -name and -uuid, two-dimensional paging)",
                &["vm", "pid", "domain", "uuid", "tdp"],
            )?,
            sampling: family(reg, IntGaugeVec::new,
                "ept_sampler_vm_sampling",
                "1 if the VM is being sampled; 0 with the reason (detached, attached: not started, or why the module refuses it)",
                &["vm", "domain", "reason"],
            )?,
            memory: family(reg, GaugeVec::new,
                "ept_sampler_vm_memory_bytes",
                "Guest memory in the VM's memslots",
                &VM_LABELS,
            )?,
            accessed: family(reg, GaugeVec::new,
                "ept_sampler_vm_accessed_bytes",
                "Memory the guest accessed in the last round (4 KiB pages; sampled VMs whose mode includes accessed bits)",
                &VM_LABELS,
            )?,
            dirty: family(reg, GaugeVec::new,
                "ept_sampler_vm_dirty_bytes",
                "Memory the guest wrote in the last round (4 KiB pages; sampled VMs whose dirty bits are tracked)",
                &VM_LABELS,
            )?,
            dirty_rate: family(reg, GaugeVec::new,
                "ept_sampler_vm_dirty_rate_bytes_per_second",
                "The last round's dirty bytes over the time they built up in",
                &VM_LABELS,
            )?,
            mapped: family(reg, GaugeVec::new,
                "ept_sampler_vm_mapped_bytes",
                "Memory mapped in the VM's two-dimensional page tables, as of the latest round",
                &VM_LABELS,
            )?,
            idle: family(reg, GaugeVec::new,
                "ept_sampler_vm_idle_bytes",
                "Mapped memory not accessed for at least idle_for (a lower bound; one series per idle bin of the VM)",
                &with_idle,
            )?,
            write_idle: family(reg, GaugeVec::new,
                "ept_sampler_vm_write_idle_bytes",
                "Mapped memory not written for at least idle_for (a lower bound; one series per idle bin of the VM)",
                &with_idle,
            )?,
            never_accessed: family(reg, GaugeVec::new,
                "ept_sampler_vm_never_accessed_bytes",
                "Mapped memory not accessed since sampling began",
                &VM_LABELS,
            )?,
            never_written: family(reg, GaugeVec::new,
                "ept_sampler_vm_never_written_bytes",
                "Mapped memory not written since sampling began",
                &VM_LABELS,
            )?,
            sampled: family(reg, GaugeVec::new,
                "ept_sampler_vm_sampled_seconds",
                "How long the VM has been sampled, at least (first round to latest)",
                &VM_LABELS,
            )?,
            rounds: family(
                reg,
                IntCounterVec::new,
                "ept_sampler_vm_rounds_total",
                "Sampling rounds finished (since the VM's heat map began)",
                &VM_LABELS,
            )?,
            scan: family(
                reg,
                CounterVec::new,
                "ept_sampler_vm_scan_seconds_total",
                "Time the sampler spent on the VM: its page table walks and TLB flushes (since the VM's heat map began)",
                &VM_LABELS,
            )?,
            registry,
        })
    }

    /// One VM's series.
    fn vm(&self, vm: &VmSnapshot, who: &Vmm) {
        let name = vm.row.vm.to_string();
        let domain = who.domain.as_deref().unwrap_or("");
        let labels = [name.as_str(), domain];
        self.info
            .with_label_values(&[
                name.as_str(),
                &vm.row.vm.pid.to_string(),
                domain,
                who.uuid.as_deref().unwrap_or(""),
                vm.row.tdp.as_str(),
            ])
            .set(1);
        self.memory
            .with_label_values(&labels)
            .set(vm.row.memory_bytes as f64);
        let reason = match vm.row.state {
            VmState::Sampling => None,
            VmState::Detached => Some("detached"),
            VmState::Attached => Some("attached"),
            VmState::Refused(why) => Some(why.as_str()),
        };
        self.sampling
            .with_label_values(&[name.as_str(), domain, reason.unwrap_or("")])
            .set(i64::from(reason.is_none()));
        // Counters stay while the VM is attached, stopped or not: they
        // only go back when its heat map starts over.
        if let Some(stats) = &vm.stats {
            self.rounds.with_label_values(&labels).inc_by(stats.rounds);
            if let (Some(walk), Some(flush)) = (stats.walk_ns_total, stats.flush_ns_total) {
                let ns = walk.saturating_add(flush);
                self.scan.with_label_values(&labels).inc_by(ns as f64 / 1e9);
            }
        }
        // The last round's figures hold only while rounds go on.
        let track = vm.config.as_ref().and_then(|c| c.settings).map(|s| s.track);
        let live = vm
            .stats
            .as_ref()
            .filter(|s| reason.is_none() && s.rounds > 0 && track.is_some());
        if let (Some(stats), Some(track)) = (live, track) {
            if track.accessed() {
                self.accessed
                    .with_label_values(&labels)
                    .set(stats.accessed_pages_last as f64 * PAGE);
            }
            if track.dirty() && stats.dirty == DirtyStatus::Tracked {
                let bytes = stats.dirty_pages_last as f64 * PAGE;
                self.dirty.with_label_values(&labels).set(bytes);
                if let Some(ns) = stats.interval_ns_last.filter(|&ns| ns > 0) {
                    self.dirty_rate
                        .with_label_values(&labels)
                        .set(bytes * 1e9 / ns as f64);
                }
            }
        }
        if let Some(idle) = vm.idle.as_ref().filter(|_| reason.is_none()) {
            let c = &idle.counts;
            self.mapped.with_label_values(&labels).set(c.mapped as f64);
            self.sampled
                .with_label_values(&labels)
                .set(c.sampled_ms as f64 / 1e3);
            let sides = [
                (&c.accessed, &self.idle, &self.never_accessed),
                (&c.written, &self.write_idle, &self.never_written),
            ];
            for (bytes, per_bin, never) in sides {
                let Some(bytes) = bytes else { continue };
                never.with_label_values(&labels).set(bytes.never as f64);
                for (&ms, &b) in c.bins.as_slice().iter().zip(bytes.bins.iter()) {
                    per_bin
                        .with_label_values(&[name.as_str(), domain, &idle_for(ms)])
                        .set(b as f64);
                }
            }
        }
    }

    fn gather(self) -> Result<Vec<MetricFamily>, prometheus::Error> {
        Ok(self.registry.gather())
    }
}

/// A family of `make`'s kind, registered in `reg`.
fn family<T: Collector + Clone + 'static>(
    reg: &Registry,
    make: impl FnOnce(Opts, &[&str]) -> Result<T, prometheus::Error>,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<T, prometheus::Error> {
    let f = make(Opts::new(name, help), labels)?;
    reg.register(Box::new(f.clone()))?;
    Ok(f)
}

/// An idle bin as the `idle_for` label: seconds, the base unit
/// (`0.5s`, `60s`, `3600s`), whatever unit the bin was given in.
pub fn idle_for(ms: u32) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{s}s")
    } else {
        let digits = format!("{frac:03}");
        format!("{s}.{}s", digits.trim_end_matches('0'))
    }
}

/// The text exposition of `families`.
pub fn encode(families: &[MetricFamily]) -> Result<String, prometheus::Error> {
    prometheus::TextEncoder::new().encode_to_string(families)
}

#[cfg(test)]
mod tests {
    use super::idle_for;

    #[test]
    fn idle_for_is_seconds() {
        assert_eq!(idle_for(500), "0.5s");
        assert_eq!(idle_for(1000), "1s");
        assert_eq!(idle_for(60_000), "60s");
        assert_eq!(idle_for(1_250), "1.25s");
        assert_eq!(idle_for(3_600_001), "3600.001s");
    }
}
