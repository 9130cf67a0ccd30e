// SPDX-License-Identifier: GPL-2.0

//! The sampler: the VMs an administrator attached, their heat maps and proc
//! directories, and the kernel thread that samples them in rounds.
//!
//! One mutex guards the whole state; the thread holds it for a round, proc
//! readers and command writers for a read or a command. Anything that may
//! wait for those (removing proc entries, dropping the last reference on a
//! VM) happens after the mutex is released ([`Sampler::release`]).
//!
//! A VM's files find it by slot index and attach generation
//! ([`VmFileKey`]): a file of a detached VM whose directory is still being
//! removed finds nothing, never the VM attached after it; and a slot (and
//! the VM's name) is not given out again until the old directory is gone.

use core::ffi::{c_int, c_void};
use core::fmt::{self, Write};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::error::{code, Error, Result};
use kernel::prelude::*;
use kernel::sync::Mutex;

use crate::ept_walk::{Descent, Gfn, GfnRange};
use crate::heat::{Geometry, HeatMap, RootCounts, RoundEnd, Track, DEFAULT_REGION};
use crate::procfs::config::Config;
use crate::procfs::control::{Command, Flush, Settings, VmId, Walk, DEFAULT_WALK_BUDGET};
use crate::procfs::last_error::{self, Errno, LastError, MessageBuf, MESSAGE_MAX};
use crate::procfs::memslots::{self, Memslot, MemslotFlags};
use crate::procfs::stats::{DirtyStatus, StatsFile};
use crate::procfs::version::HostTdp;
use crate::procfs::vms::{self, Refusal, TdpKind, VmRow, VmState};
use crate::procfs::{heatmap, heatmap_bin, history, ProcDir, VmDir};

use super::bindings;
use super::compat::TlbFlush;
use super::discover::{self, FoundVm};
use super::file::VmFile;
use super::params::Host;
use super::round;
use super::vbuf::VBuf;
use super::vm::{Vendor, Vm};

/// Most VMs attached at once.
pub(crate) const MAX_VMS: usize = 16;

/// How long the thread sleeps at most: a VM whose process exited is found
/// and detached within this, whatever the sampling periods.
const IDLE_WAKE_MS: u64 = 100;

/// Memslots shown per VM; QEMU uses a dozen or so.
const MAX_SLOTS: usize = 32;

/// An unused entry of a memslot buffer.
const NO_SLOT: Memslot = Memslot {
    as_id: 0,
    id: 0,
    base_gfn: 0,
    npages: 0,
    flags: MemslotFlags {
        dirty_log: false,
        readonly: false,
    },
};

/// A failed command: what the write returns and why.
type Failure = (Errno, MessageBuf<MESSAGE_MAX>);

/// Builds a [`Failure`] from `format!`-style arguments.
fn failure(errno: Errno, args: fmt::Arguments<'_>) -> Failure {
    let mut msg = MessageBuf::new();
    let _ = msg.write_fmt(args);
    (errno, msg)
}

fn errno_of(e: Errno) -> Error {
    let n = i32::try_from(e.number()).unwrap_or(22);
    Error::from_errno(n.wrapping_neg())
}

/// The paging KVM uses for a VM, and why it cannot be sampled if so.
fn classify(vm: &Vm<'_>, host: Host) -> (TdpKind, core::result::Result<Vendor, Refusal>) {
    let vendor = vm.vendor();
    let kind = match (vendor, host.tdp) {
        (Some(Vendor::Intel), HostTdp::EptAd) => TdpKind::EptAd,
        (Some(Vendor::Intel), HostTdp::Ept) => TdpKind::Ept,
        (Some(Vendor::Amd), HostTdp::Npt) => TdpKind::Npt,
        _ => TdpKind::Shadow,
    };
    let verdict = match (vendor, kind) {
        (_, TdpKind::Shadow) | (None, _) => Err(Refusal::ShadowPaging),
        (_, TdpKind::Ept) => Err(Refusal::NoAdBits),
        _ if host.tdp_mmu != Some(true) => Err(Refusal::TdpMmuOff),
        _ if !host.tlb_flush => Err(Refusal::NoTlbFlush),
        (Some(v), _) => {
            let (kvm_type, private_mem) = vm.vm_type();
            vms::vm_type_refusal(kvm_type, private_mem).map_or(Ok(v), Err)
        }
    };
    (kind, verdict)
}

/// The guest frames a VM's memslots cover, in both address spaces, and the
/// memslots themselves (up to `slots.len()`). Returns (span, count).
fn memslots(vm: &Vm<'_>, slots: &mut [Memslot]) -> (GfnRange, usize) {
    let mut end = 0u64;
    let mut n = 0usize;
    vm.for_each_slot(|s| {
        end = end.max(s.base_gfn.saturating_add(s.npages));
        if let Some(slot) = slots.get_mut(n) {
            *slot = Memslot {
                as_id: s.as_id,
                id: s.id,
                base_gfn: s.base_gfn,
                npages: s.npages,
                flags: MemslotFlags {
                    dirty_log: s.flags & bindings::KVM_MEM_LOG_DIRTY_PAGES != 0,
                    readonly: s.flags & bindings::KVM_MEM_READONLY != 0,
                },
            };
            n += 1;
        }
    });
    (GfnRange::new(Gfn(0), Gfn(end)), n)
}

pub(crate) fn now_ns() -> u64 {
    // SAFETY: ktime_get() reads the monotonic clock; no preconditions.
    u64::try_from(unsafe { bindings::ktime_get() }).unwrap_or(0)
}

/// A VM being sampled.
pub(crate) struct Sampling {
    settings: Settings,
    map: HeatMap<VBuf<u16>, VBuf<u64>>,
    geometry: Geometry,
    store_bytes: u64,
    history_bytes: u64,
    dirty: DirtyStatus,
    next_due_ns: u64,
    /// `false` after `stop`: no more rounds, the heat map stays readable
    /// until the next `start` or `detach`.
    running: bool,
}

/// What a per-VM proc file keeps to find its VM: the slot and the attach
/// generation, packed into the file's private data (a `usize`).
#[derive(Clone, Copy)]
pub(crate) struct VmFileKey {
    index: usize,
    generation: u64,
}

impl VmFileKey {
    /// Bits of the private data that hold the slot index.
    const INDEX_BITS: u32 = 8;
    const INDEX_MASK: usize = (1 << Self::INDEX_BITS) - 1;

    /// The private data (the generation truncated to the bits left, which
    /// 2^56 attaches would take to repeat).
    pub(crate) fn data(self) -> usize {
        ((self.generation as usize) << Self::INDEX_BITS) | (self.index & Self::INDEX_MASK)
    }

    /// The key a file's private data holds (the generation as truncated).
    fn from_data(data: usize) -> Self {
        VmFileKey {
            index: data & Self::INDEX_MASK,
            generation: (data >> Self::INDEX_BITS) as u64,
        }
    }
}

// Slot indices fit in the bits kept for them, and generations in the 56
// bits of a 64-bit `usize` left.
const _: () = assert!(MAX_VMS <= VmFileKey::INDEX_MASK + 1);
const _: () = assert!(usize::BITS == 64);

/// One attached VM.
pub(crate) struct Attached {
    key: VmId,
    /// Where its files find it.
    file_key: VmFileKey,
    vendor: Vendor,
    /// KVM's TLB flush, held while the VM is attached.
    tlb: TlbFlush,
    /// Boxed: the state array lives in the mutex, built on the stack once.
    sampling: Option<KBox<Sampling>>,
    /// `/proc/ept_sampler/<pid>-<fd>/`; dropped before `file`.
    dir: Option<VmDir>,
    /// What keeps the VM alive.
    file: VmFile,
}

impl Attached {
    fn state(&self) -> VmState {
        if self.sampling.as_ref().is_some_and(|s| s.running) {
            VmState::Sampling
        } else {
            VmState::Attached
        }
    }

    /// Runs one round, examining at most `budget` entries per hold of
    /// `mmu_lock`, handing cleared accessed bits on to the host's pages if
    /// `pass_accessed`.
    fn run_round(&mut self, now: u64, budget: u64, pass_accessed: bool) {
        let vendor = self.vendor;
        let vm = Vm::new(&self.file);
        let Some(s) = self.sampling.as_mut() else {
            return;
        };
        // Dirty bits belong to KVM while it logs dirty pages (migration):
        // then only accessed bits are sampled. Logging that began since the
        // last round is left for the walk to find under `mmu_lock` (its
        // first hold, before any entry), as if it had begun during the
        // round: that round counts in `dirty_partial_rounds`, so that each
        // time logging begins while D bits are sampled is counted once,
        // whenever it falls.
        let dirty_logging = vm.dirty_logging();
        let known_logging = dirty_logging && s.dirty == DirtyStatus::DirtyLogging;
        let track = if known_logging && s.settings.track.dirty() {
            Track::Accessed
        } else {
            s.settings.track
        };
        s.dirty = match (s.settings.track.dirty(), known_logging) {
            (false, _) => DirtyStatus::Off,
            (true, true) => DirtyStatus::DirtyLogging,
            (true, false) => DirtyStatus::Tracked,
        };
        let descent = match s.settings.walk {
            Walk::Leaf => Descent::EveryTable,
            Walk::Upper => Descent::AccessedTables,
        };
        s.map.begin_round(now, track);
        let plan = round::Plan {
            format: round::format_of(vendor),
            mode: track.walker_mode(),
            descent,
            flush: (s.settings.flush == Flush::Round).then_some(&self.tlb),
            pass_accessed,
            budget,
        };
        let stats = round::run(&vm, &plan, &mut s.map);
        if stats.roots.dirty_stopped {
            // Logging began during the round: say so now, not from the
            // next round on.
            s.dirty = DirtyStatus::DirtyLogging;
        }
        s.map.end_round(&RoundEnd {
            walk_ns: stats.walk_ns,
            flush_ns: stats.flush_ns,
            walk: stats.roots.walk,
            yields: stats.roots.yields,
            longest_hold: stats.roots.longest_hold,
            flushed: stats.flushed,
            passed_accessed: stats.passed_accessed,
            roots: RootCounts {
                walked: stats.roots.walked,
                lost: stats.roots.lost,
                over_limit: stats.roots.overflow,
                invalid: stats.skipped.invalid,
                mirror: stats.skipped.mirror,
                guest_mode: stats.skipped.guest_mode,
            },
        });
        // The next round starts one period after this one was due; a VM
        // that fell behind starts again from now instead of catching up.
        let period = u64::from(s.settings.period_ms).saturating_mul(1_000_000);
        s.next_due_ns = s
            .next_due_ns
            .saturating_add(period)
            .max(now.saturating_add(period / 2));
    }
}

/// Everything the mutex guards.
pub(crate) struct State {
    /// `/proc/ept_sampler/`, the parent of the VMs' directories.
    pub(crate) root: Option<ProcDir>,
    vms: [Option<Attached>; MAX_VMS],
    /// Slots whose VM was taken out and whose directory is being removed
    /// ([`Sampler::release`]): neither the slot nor the VM's name is given
    /// out again until it is gone.
    removing: [Option<VmId>; MAX_VMS],
    /// The generation of the next attach (see [`VmFileKey`]).
    next_generation: u64,
    /// Set when the module unloads: nothing may be attached any more.
    closing: bool,
    /// The last failed command, for `last_error`.
    last_error: Option<Failure>,
    /// KVM's parameters as last read. `show` callbacks use this copy:
    /// reading sysfs inside one would nest two seq_file locks (lockdep
    /// reports it); opening `version` or `vms` and every `attach` refresh it.
    pub(crate) host: Host,
    /// Entries a round examines per hold of `mmu_lock` (`tune`, for tests).
    walk_budget: u32,
    /// Whether cleared accessed bits are handed on to the host's pages
    /// (`tune`, for tests and measurements; on by default).
    pass_accessed: bool,
}

impl State {
    fn find(&mut self, key: VmId) -> Option<&mut Attached> {
        self.vms.iter_mut().flatten().find(|a| a.key == key)
    }

    /// The VM the per-VM file with private data `data` serves, if it is
    /// still attached.
    fn by_file(&self, data: usize) -> Option<&Attached> {
        self.vms
            .get(VmFileKey::from_data(data).index)?
            .as_ref()
            .filter(|a| a.file_key.data() == data)
    }

    /// Takes the VM of slot `index` out, keeping the slot and the VM's name
    /// until [`Sampler::release`] has removed its directory.
    fn take(&mut self, index: usize) -> Option<Attached> {
        let a = self.vms.get_mut(index)?.take()?;
        if let Some(r) = self.removing.get_mut(index) {
            *r = Some(a.key);
        }
        Some(a)
    }
}

/// The sampler, shared by the module, its proc files and its thread.
#[pin_data]
pub(crate) struct Sampler {
    #[pin]
    pub(crate) state: Mutex<State>,
}

// Commands fail with a fixed-size message (no allocation on the error
// path); returning it by value is cheap next to what a command does.
#[allow(clippy::result_large_err)]
impl Sampler {
    /// Re-reads KVM's parameters now (process context, no seq_file lock).
    pub(crate) fn refresh_host(&self) {
        let host = Host::read();
        self.state.lock().host = host;
    }

    /// A sampler with nothing attached.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Sampler {
            state <- kernel::new_mutex!(State {
                root: None,
                vms: [const { None }; MAX_VMS],
                removing: [const { None }; MAX_VMS],
                next_generation: 1,
                closing: false,
                last_error: None,
                host: Host::UNKNOWN,
                walk_budget: DEFAULT_WALK_BUDGET,
                pass_accessed: true,
            }),
        })
    }

    /// Attaches the VM `fd` of process `pid`, or every VM of `pid`.
    fn attach(&self, pid: u32, fd: Option<u32>) -> core::result::Result<(), Failure> {
        let nr = i32::try_from(pid)
            .map_err(|_| failure(Errno::Einval, format_args!("pid {pid} is out of range")))?;
        let mut found: [Option<FoundVm>; MAX_VMS] = [const { None }; MAX_VMS];
        let mut n = 0;
        discover::for_each_vm(Some(nr), |vm| {
            if fd.is_some_and(|fd| fd != vm.fd) {
                return;
            }
            if let Some(slot) = found.get_mut(n) {
                *slot = Some(vm);
                n += 1;
            }
        });
        if n == 0 {
            return Err(match fd {
                Some(fd) => failure(
                    Errno::Enoent,
                    format_args!("process {pid} has no VM at fd {fd}"),
                ),
                None => failure(Errno::Enoent, format_args!("process {pid} has no KVM VM")),
            });
        }
        let host = Host::read();
        let mut attached = 0;
        let mut state = self.state.lock();
        state.host = host;
        if state.closing {
            return Err(failure(
                Errno::Enoent,
                format_args!("the module is unloading"),
            ));
        }
        // Without an fd, a refused VM is passed over (a process may run a
        // default VM beside a confidential one); the first refusal is the
        // answer only if nothing was attached.
        let mut first_refusal = None;
        for vm in found.into_iter().flatten() {
            let key = VmId { pid, fd: vm.fd };
            let verdict = classify(&Vm::new(&vm.file), state.host)
                .1
                .and_then(|vendor| {
                    // Found a moment ago (`host`), but only a VM that holds
                    // the flush is sampled.
                    TlbFlush::get()
                        .map(|tlb| (vendor, tlb))
                        .ok_or(Refusal::NoTlbFlush)
                });
            let (vendor, tlb) = match verdict {
                Ok(v) => v,
                Err(r) => {
                    let refused = failure(
                        Errno::Eopnotsupp,
                        format_args!("vm {key} cannot be sampled: {}", r.as_str()),
                    );
                    if fd.is_some() {
                        return Err(refused);
                    }
                    first_refusal.get_or_insert(refused);
                    continue;
                }
            };
            if state.removing.contains(&Some(key)) {
                if fd.is_some() {
                    return Err(failure(
                        Errno::Ebusy,
                        format_args!("vm {key} is being detached: try again"),
                    ));
                }
                continue;
            }
            if state
                .vms
                .iter()
                .flatten()
                .any(|a| a.key == key || a.file.same_as(vm.file.raw()))
            {
                if fd.is_some() {
                    return Err(failure(
                        Errno::Ebusy,
                        format_args!("vm {key} is already attached"),
                    ));
                }
                continue;
            }
            let free = state
                .vms
                .iter()
                .zip(state.removing.iter())
                .position(|(a, r)| a.is_none() && r.is_none());
            let Some(index) = free else {
                return Err(failure(
                    Errno::Ebusy,
                    format_args!("{MAX_VMS} VMs are attached already"),
                ));
            };
            // Taken now, used or not: files of a directory that fails half
            // way may be open already, and must never match a later VM.
            let file_key = VmFileKey {
                index,
                generation: state.next_generation,
            };
            state.next_generation = state.next_generation.wrapping_add(1);
            let root = state
                .root
                .as_ref()
                .ok_or_else(|| failure(Errno::Enoent, format_args!("no /proc tree")))?;
            // `removing` keeps the name free of any directory of ours, so
            // this fails only for want of memory.
            let dir = match VmDir::new(root, key, file_key.data()) {
                Ok(dir) => dir,
                Err((_, partial)) => {
                    // The slot and the name stay reserved until the partial
                    // directory is gone, as after a detach.
                    if let Some(r) = state.removing.get_mut(index) {
                        *r = Some(key);
                    }
                    drop(state);
                    drop(partial);
                    self.unreserve(index, key);
                    return Err(failure(
                        Errno::Enomem,
                        format_args!("cannot create /proc/ept_sampler/{key}"),
                    ));
                }
            };
            if let Some(slot) = state.vms.get_mut(index) {
                *slot = Some(Attached {
                    key,
                    file_key,
                    vendor,
                    tlb,
                    sampling: None,
                    dir: Some(dir),
                    file: vm.file,
                });
                attached += 1;
            }
        }
        if attached == 0 {
            return Err(first_refusal.unwrap_or_else(|| {
                failure(
                    Errno::Ebusy,
                    format_args!("every VM of process {pid} is attached already"),
                )
            }));
        }
        Ok(())
    }

    /// Starts sampling `key` with `settings`, or changes the settings of a
    /// VM being sampled (from its next round; a new geometry starts a new
    /// heat map).
    fn start(&self, key: VmId, settings: Settings) -> core::result::Result<(), Failure> {
        if settings.walk == Walk::Upper && settings.flush == Flush::None {
            return Err(failure(
                Errno::Einval,
                format_args!("walk=upper needs flush=round: without flushes upper-level A bits are not set again"),
            ));
        }
        let mut state = self.state.lock();
        let a = state
            .find(key)
            .ok_or_else(|| failure(Errno::Enoent, format_args!("vm {key} is not attached")))?;
        let vm = Vm::new(&a.file);
        if settings.track.dirty() && vm.dirty_logging() {
            return Err(failure(
                Errno::Ebusy,
                format_args!("vm {key} has dirty logging on: its dirty bits belong to KVM; use mode=accessed"),
            ));
        }
        let mut slots = [NO_SLOT; MAX_SLOTS];
        let (span, _) = memslots(&vm, &mut slots);
        let geometry = Geometry {
            span,
            granule: settings.granule,
            window: settings.window,
            region: DEFAULT_REGION,
            rounds: settings.history,
        };
        let now = now_ns();
        if let Some(s) = a.sampling.as_mut() {
            if s.geometry == geometry {
                s.settings = settings;
                if !s.running {
                    s.running = true;
                    s.next_due_ns = now;
                }
                return Ok(());
            }
        }
        let layout = geometry
            .layout()
            .map_err(|e| failure(Errno::Einval, format_args!("vm {key}: {e}")))?;
        let cells = VBuf::<u16>::zeroed(layout.store.words()).map_err(|_| {
            failure(
                Errno::Enomem,
                format_args!("vm {key}: no memory for the heat store"),
            )
        })?;
        let ring = VBuf::<u64>::zeroed(layout.history.words()).map_err(|_| {
            failure(
                Errno::Enomem,
                format_args!("vm {key}: no memory for the history"),
            )
        })?;
        let (store_bytes, history_bytes) = (cells.bytes() as u64, ring.bytes() as u64);
        let map = HeatMap::new(&layout, cells, ring)
            .map_err(|e| failure(Errno::Einval, format_args!("vm {key}: {e}")))?;
        let sampling = KBox::new(
            Sampling {
                settings,
                map,
                geometry,
                store_bytes,
                history_bytes,
                dirty: DirtyStatus::Off,
                next_due_ns: now,
                running: true,
            },
            GFP_KERNEL,
        )
        .map_err(|_| failure(Errno::Enomem, format_args!("vm {key}: no memory")))?;
        a.sampling = Some(sampling);
        Ok(())
    }

    /// Stops sampling `key`: no more rounds; it stays attached and its
    /// heat map, history and stats stay readable (the results of the run)
    /// until it is started again with another geometry or detached.
    fn stop(&self, key: VmId) -> core::result::Result<(), Failure> {
        let mut state = self.state.lock();
        let a = state
            .find(key)
            .ok_or_else(|| failure(Errno::Enoent, format_args!("vm {key} is not attached")))?;
        // Stopping a VM that is not sampling does nothing, like stopping
        // it twice.
        if let Some(s) = a.sampling.as_mut() {
            s.running = false;
        }
        Ok(())
    }

    /// Takes the VM `key` out of the state, for [`Sampler::release`].
    fn detach(&self, key: VmId) -> core::result::Result<Attached, Failure> {
        let mut state = self.state.lock();
        let index = state
            .vms
            .iter()
            .position(|s| s.as_ref().is_some_and(|a| a.key == key));
        index
            .and_then(|i| state.take(i))
            .ok_or_else(|| failure(Errno::Enoent, format_args!("vm {key} is not attached")))
    }

    /// Takes every VM out of the state, for [`Sampler::release`]; with
    /// `closing`, refuses new ones from then on.
    pub(crate) fn take_all(&self, closing: bool) -> [Option<Attached>; MAX_VMS] {
        let mut state = self.state.lock();
        state.closing |= closing;
        let mut all = [const { None }; MAX_VMS];
        for (i, out) in all.iter_mut().enumerate() {
            *out = state.take(i);
        }
        all
    }

    /// Drops a VM taken out of the state: its proc directory first (waiting
    /// for its readers), then its heat map and the VM reference; then gives
    /// its slot and name back. Must not be called with the state mutex held.
    pub(crate) fn release(&self, mut vm: Attached) {
        hold_for_test();
        drop(vm.dir.take());
        let (index, key) = (vm.file_key.index, vm.key);
        drop(vm);
        self.unreserve(index, key);
    }

    /// Gives slot `index` and the name of `key` back once the directory
    /// they were reserved for is gone.
    fn unreserve(&self, index: usize, key: VmId) {
        let mut state = self.state.lock();
        if let Some(r) = state.removing.get_mut(index).filter(|r| **r == Some(key)) {
            *r = None;
        }
    }

    /// Waits until no directory is being removed: the module's root may go
    /// only after a `detach` running in another task has removed the
    /// directory it took out (`proc_remove()` of the root would free it
    /// under that task's feet).
    pub(crate) fn wait_released(&self) {
        while self.state.lock().removing.iter().any(Option::is_some) {
            // SAFETY: process context (module unload); a one-jiffy sleep.
            unsafe { bindings::schedule_timeout_uninterruptible(1) };
        }
    }

    /// One pass of the thread: runs the rounds that are due and detaches
    /// VMs whose process closed them. Returns how long to sleep, in ms.
    fn tick(&self) -> u64 {
        let mut orphans: [Option<Attached>; MAX_VMS] = [const { None }; MAX_VMS];
        let now = now_ns();
        let mut next = now.saturating_add(IDLE_WAKE_MS * 1_000_000);
        {
            let mut state = self.state.lock();
            let budget = u64::from(state.walk_budget);
            let pass_accessed = state.pass_accessed;
            for (index, out) in orphans.iter_mut().enumerate() {
                if state
                    .vms
                    .get(index)
                    .and_then(Option::as_ref)
                    .is_some_and(|a| a.file.is_orphan())
                {
                    *out = state.take(index);
                    continue;
                }
                let Some(Some(a)) = state.vms.get_mut(index) else {
                    continue;
                };
                let running = a.sampling.as_ref().filter(|s| s.running);
                if running.is_some_and(|s| s.next_due_ns <= now) {
                    a.run_round(now, budget, pass_accessed);
                }
                if let Some(s) = a.sampling.as_ref().filter(|s| s.running) {
                    next = next.min(s.next_due_ns);
                }
            }
        }
        for vm in orphans.into_iter().flatten() {
            pr_info!(
                "{}-{}: the VM's process closed it; detached\n",
                vm.key.pid,
                vm.key.fd
            );
            self.release(vm);
        }
        next.saturating_sub(now_ns()) / 1_000_000
    }

    /// Records a failed command for `last_error` and the kernel log.
    fn note_error(&self, failure: &Failure) {
        let mut state = self.state.lock();
        state.last_error = Some((failure.0, {
            let mut m = MessageBuf::new();
            let _ = m.write_str(failure.1.as_str());
            m
        }));
        drop(state);
        // SAFETY: __printk_ratelimit() only touches its own state.
        if unsafe { bindings::__printk_ratelimit(bindings::c_str(c"ept_sampler")) } != 0 {
            pr_warn!("control: {}: {}\n", failure.0.name(), failure.1.as_str());
        }
    }
}

/// Waits while the module parameter `test_hold_detach` is set, 10 s at
/// most: a test's window between taking a VM out and removing its
/// directory.
fn hold_for_test() {
    let deadline = now_ns().saturating_add(10_000_000_000);
    // SAFETY: reads a module parameter; no preconditions.
    while unsafe { bindings::ept_sampler_test_hold_detach() } && now_ns() < deadline {
        // SAFETY: process context (a command's write, the thread, or the
        // module's unload); a short sleep.
        unsafe { bindings::schedule_timeout_uninterruptible(ms_to_jiffies(1)) };
    }
}

/// The sampler's kernel thread.
///
/// # Invariants
///
/// `task` is a kthread running [`thread_main`] that has not been stopped;
/// it runs until `drop` stops it.
pub(crate) struct Thread {
    task: ptr::NonNull<bindings::task_struct>,
}

// SAFETY: kthread_stop() may be called from any task.
unsafe impl Send for Thread {}
// SAFETY: no `&self` method.
unsafe impl Sync for Thread {}

impl Thread {
    /// Starts the thread for `sampler`.
    ///
    /// # Safety
    ///
    /// `sampler` must outlive the returned `Thread` (it is stopped on drop).
    pub(crate) unsafe fn start(sampler: &Sampler) -> Result<Self> {
        let data = ptr::from_ref(sampler).cast_mut().cast::<c_void>();
        // SAFETY: `thread_main` takes `data` as a `&Sampler`, which outlives
        // the thread (caller); the name has no format directives.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(thread_main),
                data,
                -1,
                bindings::c_str(c"ept_sampler"),
            )
        };
        if bindings::is_err(task) {
            return Err(bindings::ptr_err(task));
        }
        let task = ptr::NonNull::new(task).ok_or(code::ENOMEM)?;
        // SAFETY: a freshly created kthread, not yet running.
        unsafe { bindings::wake_up_process(task.as_ptr()) };
        // INVARIANT: created and started above.
        Ok(Thread { task })
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: the thread runs until kthread_should_stop() (invariant),
        // so it still exists; kthread_stop() wakes it and waits for it.
        unsafe { bindings::kthread_stop(self.task.as_ptr()) };
    }
}

/// Milliseconds to jiffies, rounded up, at least one.
fn ms_to_jiffies(ms: u64) -> core::ffi::c_long {
    let hz = u64::from(bindings::HZ);
    let j = ms.saturating_mul(hz).div_ceil(1000).max(1);
    core::ffi::c_long::try_from(j).unwrap_or(core::ffi::c_long::MAX)
}

/// The thread's body: rounds in process context, never from a timer, since
/// `mmu_lock` taken for read in a timer could deadlock against a writer.
///
/// # Safety
///
/// `data` is a `&Sampler` that outlives the thread (see [`Thread::start`]).
unsafe extern "C" fn thread_main(data: *mut c_void) -> c_int {
    // SAFETY: see the function's safety section.
    let sampler = unsafe { &*data.cast::<Sampler>() };
    // SAFETY: called from the kthread itself.
    while !unsafe { bindings::kthread_should_stop() } {
        let sleep = sampler.tick();
        // SAFETY: process context; an interruptible sleep that
        // kthread_stop() cuts short.
        unsafe { bindings::schedule_timeout_interruptible(ms_to_jiffies(sleep)) };
    }
    0
}

// --- what the proc files call ---------------------------------------------

/// The sampler the proc callbacks serve; set while the module's proc files
/// exist (see `ept_sampler.rs`).
static SAMPLER: AtomicPtr<Sampler> = AtomicPtr::new(ptr::null_mut());

/// Publishes (or, with NULL, withdraws) the sampler for the proc callbacks.
///
/// # Safety
///
/// A non-NULL `sampler` must stay valid until this is called again with
/// NULL, and that only after every proc file of the module was removed.
pub(crate) unsafe fn publish(sampler: *const Sampler) {
    SAMPLER.store(sampler.cast_mut(), Ordering::Release);
}

fn current() -> Option<&'static Sampler> {
    let p = SAMPLER.load(Ordering::Acquire);
    // SAFETY: published pointers stay valid while proc files exist
    // (`publish`), and only proc callbacks call this.
    unsafe { p.as_ref() }
}

/// A command written to `control`.
pub(crate) fn command(bytes: &[u8]) -> Result<()> {
    let sampler = current().ok_or(code::ENODEV)?;
    let result = match Command::parse(bytes) {
        Err(e) => Err(failure(Errno::Einval, format_args!("{e}"))),
        Ok(Command::Attach { pid, fd }) => sampler.attach(pid, fd),
        Ok(Command::Detach(key)) => sampler.detach(key).map(|vm| sampler.release(vm)),
        Ok(Command::DetachAll) => {
            sampler
                .take_all(false)
                .into_iter()
                .flatten()
                .for_each(|vm| sampler.release(vm));
            Ok(())
        }
        Ok(Command::Start { vm, settings }) => sampler.start(vm, settings),
        Ok(Command::Stop(vm)) => sampler.stop(vm),
        Ok(Command::Tune {
            walk_budget,
            pass_accessed,
        }) => {
            let mut state = sampler.state.lock();
            if let Some(n) = walk_budget {
                state.walk_budget = n;
            }
            if let Some(pass) = pass_accessed {
                state.pass_accessed = pass;
            }
            Ok(())
        }
    };
    result.map_err(|f| {
        sampler.note_error(&f);
        errno_of(f.0)
    })
}

/// `vms`: every VM on the host, attached or not.
pub(crate) fn show_vms(m: &mut dyn Write) -> fmt::Result {
    let Some(sampler) = current() else {
        return Ok(());
    };
    m.write_str(vms::HEADER)?;
    let mut result = Ok(());
    discover::for_each_vm(None, |found| {
        if result.is_err() {
            return;
        }
        let Ok(pid) = u32::try_from(found.pid) else {
            return;
        };
        let vm = Vm::new(&found.file);
        let mut slots = 0u32;
        let mut pages = 0u64;
        vm.for_each_slot(|s| {
            slots = slots.saturating_add(1);
            if s.as_id == 0 {
                pages = pages.saturating_add(s.npages);
            }
        });
        let host = sampler.state.lock().host;
        let (tdp, verdict) = classify(&vm, host);
        let state = {
            let state = sampler.state.lock();
            state
                .vms
                .iter()
                .flatten()
                .find(|a| a.file.same_as(found.file.raw()))
                .map(Attached::state)
        };
        let state = match (state, verdict) {
            (Some(s), _) => s,
            (None, Err(r)) => VmState::Refused(r),
            (None, Ok(_)) => VmState::Detached,
        };
        let row = VmRow {
            vm: VmId { pid, fd: found.fd },
            vcpus: vm.vcpus(),
            memslots: slots,
            memory_bytes: pages.saturating_mul(4096),
            tdp,
            dirty_logging: vm.dirty_logging(),
            state,
        };
        result = write!(m, "{row}");
    });
    result
}

/// `last_error`.
pub(crate) fn show_last_error(m: &mut dyn Write) -> fmt::Result {
    let Some(sampler) = current() else {
        return Ok(());
    };
    let state = sampler.state.lock();
    let last = state.last_error.as_ref().map(|(errno, msg)| LastError {
        errno: *errno,
        message: msg.as_str(),
    });
    last_error::render(m, last.as_ref())
}

/// Which per-VM file to show.
#[derive(Clone, Copy)]
pub(crate) enum VmFileKind {
    Config,
    Stats,
    Heatmap,
    History,
    Memslots,
}

/// A per-VM text file of the VM its private data `data` names (empty once
/// that VM is detached).
pub(crate) fn show_vm_file(m: &mut dyn Write, data: usize, kind: VmFileKind) -> fmt::Result {
    let Some(sampler) = current() else {
        return Ok(());
    };
    let state = sampler.state.lock();
    let Some(a) = state.by_file(data) else {
        return Ok(());
    };
    let vm = Vm::new(&a.file);
    match kind {
        VmFileKind::Config => {
            let config = Config {
                vm: a.key,
                state: a.state(),
                settings: a.sampling.as_ref().map(|s| s.settings),
            };
            write!(m, "{config}")
        }
        VmFileKind::Stats => match &a.sampling {
            Some(s) => {
                let stats = StatsFile::new(s.map.totals(), s.store_bytes, s.history_bytes, s.dirty);
                write!(m, "{stats}")
            }
            None => writeln!(m, "# vm {} is not being sampled", a.key),
        },
        VmFileKind::Heatmap => match &a.sampling {
            Some(s) => {
                let mut slots = [NO_SLOT; MAX_SLOTS];
                let (_, n) = memslots(&vm, &mut slots);
                heatmap::render(m, &s.map.view(), a.key, slots.get(..n).unwrap_or(&[]))
            }
            None => writeln!(m, "# vm {} is not being sampled", a.key),
        },
        VmFileKind::History => match &a.sampling {
            Some(s) => history::render(m, &s.map.view(), a.key),
            None => writeln!(m, "# vm {} is not being sampled", a.key),
        },
        VmFileKind::Memslots => {
            let mut slots = [NO_SLOT; MAX_SLOTS];
            let (_, n) = memslots(&vm, &mut slots);
            m.write_str(memslots::HEADER)?;
            for slot in slots.iter().take(n) {
                write!(m, "{slot}")?;
            }
            Ok(())
        }
    }
}

/// What an open `heatmap.bin` reads: the heat map as it was at open, or
/// nothing (an empty file) if the VM was not being sampled.
pub(crate) type HeatmapBinSnapshot = Option<heatmap_bin::BinSnapshot<VBuf<u16>>>;

/// Takes `heatmap.bin`'s snapshot of the VM its private data `data` names:
/// `ENOENT` once that VM is detached, `ENOMEM` if the copy cannot be made.
pub(crate) fn snapshot_heatmap_bin(data: usize) -> Result<HeatmapBinSnapshot> {
    let sampler = current().ok_or(code::ENODEV)?;
    let state = sampler.state.lock();
    let a = state.by_file(data).ok_or(code::ENOENT)?;
    let Some(s) = &a.sampling else {
        return Ok(None);
    };
    heatmap_bin::BinSnapshot::take(&s.map.view(), |n| VBuf::zeroed(n).ok())
        .map(Some)
        .ok_or(code::ENOMEM)
}

/// KVM's parameters as last read (see [`State::host`]).
pub(crate) fn host_params() -> Host {
    current().map_or(Host::UNKNOWN, |s| s.state.lock().host)
}

/// Re-reads KVM's parameters (from an open, see [`State::host`]).
pub(crate) fn refresh_host() {
    if let Some(sampler) = current() {
        sampler.refresh_host();
    }
}
