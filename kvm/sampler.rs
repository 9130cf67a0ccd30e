// SPDX-License-Identifier: GPL-2.0

//! The sampler: the VMs an administrator attached, their heat maps and proc
//! directories, and the kernel thread that samples them in rounds.
//!
//! The state mutex guards the list of VMs and the host-wide settings, held
//! only to look a VM up, add or take one out. Each VM ([`VmEntry`]) has its
//! own lock on its heat map, which the thread holds for a round of that VM
//! and nothing else, and a summary published at the end of each round that
//! `stats`, `config` and `vms` read: no reader, command or unload waits for
//! a round of another VM, and those files wait for none at all. Anything
//! that may wait for proc readers (removing proc entries) happens after the
//! state mutex is released ([`Sampler::release`]).
//!
//! A VM's files find it by slot index and attach generation
//! ([`VmFileKey`]): a file of a detached VM whose directory is still being
//! removed finds nothing, never the VM attached after it; and a slot (and
//! the VM's name) is not given out again until the old directory is gone.

use core::fmt::{self, Write};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use kernel::error::{code, Error, Result};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

use crate::ept_walk::{Descent, Gfn, GfnRange};
use crate::heat::{self, Geometry, HeatMap, RootCounts, RoundEnd, Track, DEFAULT_REGION};
use crate::procfs::config::Config;
use crate::procfs::control::{Command, Flush, Settings, VmId, Walk};
use crate::procfs::idle::IdleFile;
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
use super::params::{self, Host};
use super::round;
use super::thread::{OnThread, ThreadMain};
use super::time::{now_ns, printk_ratelimit, sleep_ms};
use super::tunables;
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

/// The answer to a command on a VM that is not (or no longer) attached.
fn not_attached(key: VmId) -> Failure {
    failure(Errno::Enoent, format_args!("vm {key} is not attached"))
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

/// What `stats`, `config` and `vms` show of a VM, published whenever it
/// changes (a start, a stop, the end of a round) so that reading them never
/// waits for a round.
#[derive(Clone, Copy)]
struct Summary {
    /// Rounds are due (started, not stopped).
    running: bool,
    /// The settings of the heat map, if it has one.
    settings: Option<Settings>,
    /// Its statistics, if it has a heat map.
    stats: Option<StatsFile>,
}

impl Summary {
    /// A VM without a heat map (attached, never started).
    const NOT_SAMPLED: Summary = Summary {
        running: false,
        settings: None,
        stats: None,
    };

    fn of(s: &Sampling) -> Summary {
        Summary {
            running: s.running,
            settings: Some(s.settings),
            stats: Some(StatsFile::new(
                s.map.totals(),
                s.store_bytes,
                s.history_bytes,
                s.dirty,
            )),
        }
    }

    fn state(&self) -> VmState {
        if self.running {
            VmState::Sampling
        } else {
            VmState::Attached
        }
    }
}

/// One attached VM, shared (`Arc`) by the state, the thread during a round
/// and readers during a read: none of them holds the state mutex while it
/// uses the VM, so a round of one VM holds up neither the others nor
/// commands and readers of the state.
///
/// Lock order: the state mutex is never held while `sampling` or `summary`
/// is taken; `sampling` nests outside `summary`.
#[pin_data]
pub(crate) struct VmEntry {
    key: VmId,
    /// Where its files find it.
    file_key: VmFileKey,
    vendor: Vendor,
    /// KVM's TLB flush, held while the VM is attached.
    tlb: TlbFlush,
    /// What keeps the VM alive.
    file: VmFile,
    /// Set (under the state mutex) when the VM is taken out of the state:
    /// from then on no round begins and no command changes it.
    detached: AtomicBool,
    /// The heat map, held by the thread for a round of this VM, and by
    /// `start`, `stop`, `heatmap`, `history` and `heatmap.bin`'s open.
    #[pin]
    sampling: Mutex<Option<KBox<Sampling>>>,
    /// The copy of the heat map's summary the other files read.
    #[pin]
    summary: Mutex<Summary>,
}

impl VmEntry {
    /// Whether the VM was detached. Read under `sampling`: a round or
    /// command that finds it unset ends before [`Sampler::release`] returns.
    fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Relaxed)
    }

    fn summary(&self) -> Summary {
        *self.summary.lock()
    }

    /// Publishes the summary of `sampling` (held by the caller).
    fn publish(&self, sampling: Option<&Sampling>) {
        *self.summary.lock() = sampling.map_or(Summary::NOT_SAMPLED, Summary::of);
    }

    /// Runs one round of `s` (this VM's heat map, whose lock the caller
    /// holds), examining at most `budget` entries per hold of `mmu_lock`,
    /// handing cleared accessed bits on to the host's pages if
    /// `pass_accessed`.
    fn run_round(&self, s: &mut Sampling, now: u64, budget: u64, pass_accessed: bool) {
        let vm = Vm::new(&self.file);
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
        s.map.set_period(s.settings.period_ms);
        s.map.begin_round(now, track);
        let plan = round::Plan {
            format: round::format_of(self.vendor),
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
        // (A late start makes the next interval shorter than the period:
        // the heat map's clock measures the intervals, it does not assume
        // them.)
        let period = u64::from(s.settings.period_ms).saturating_mul(1_000_000);
        s.next_due_ns = s
            .next_due_ns
            .saturating_add(period)
            .max(now.saturating_add(period / 2));
        self.publish(Some(s));
    }
}

/// An attached VM as the state holds it: the VM and its directory.
pub(crate) struct Attached {
    vm: Arc<VmEntry>,
    /// `/proc/ept_sampler/<pid>-<fd>/`, removed by [`Sampler::release`]
    /// before the state's reference on the VM goes.
    dir: Option<VmDir>,
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
}

impl State {
    /// The attached VM `key`.
    fn find(&self, key: VmId) -> Option<Arc<VmEntry>> {
        self.vms
            .iter()
            .flatten()
            .find(|a| a.vm.key == key)
            .map(|a| a.vm.clone())
    }

    /// The VM the per-VM file with private data `data` serves, if it is
    /// still attached.
    fn by_file(&self, data: usize) -> Option<Arc<VmEntry>> {
        self.vms
            .get(VmFileKey::from_data(data).index)?
            .as_ref()
            .filter(|a| a.vm.file_key.data() == data)
            .map(|a| a.vm.clone())
    }

    /// Takes the VM of slot `index` out, keeping the slot and the VM's name
    /// until [`Sampler::release`] has removed its directory.
    fn take(&mut self, index: usize) -> Option<Attached> {
        let a = self.vms.get_mut(index)?.take()?;
        a.vm.detached.store(true, Ordering::Relaxed);
        if let Some(r) = self.removing.get_mut(index) {
            *r = Some(a.vm.key);
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
                .any(|a| a.vm.key == key || a.vm.file.same_as(vm.file.raw()))
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
            let entry = Arc::pin_init(
                pin_init!(VmEntry {
                    key,
                    file_key,
                    vendor,
                    tlb,
                    file: vm.file,
                    detached: AtomicBool::new(false),
                    sampling <- kernel::new_mutex!(None),
                    summary <- kernel::new_mutex!(Summary::NOT_SAMPLED),
                }),
                GFP_KERNEL,
            )
            .map_err(|_| failure(Errno::Enomem, format_args!("vm {key}: no memory")))?;
            // `removing` keeps the name free of any directory of ours, so
            // this fails only for want of memory.
            // A VM's directory lives in its `Attached` (or is the partial
            // one dropped below). The module's `drop` takes all VMs out,
            // releases them and waits for detaches in progress
            // (`wait_released`) before it takes the root out of the state,
            // and no attach gets here once it began (`closing`).
            // SAFETY: so every VM directory is dropped before the root.
            let dir = match unsafe { VmDir::new(root, key, file_key.data()) } {
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
                    vm: entry,
                    dir: Some(dir),
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
        let entry = self
            .state
            .lock()
            .find(key)
            .ok_or_else(|| not_attached(key))?;
        // Waits for a round of this VM in progress, of no other.
        let mut sampling = entry.sampling.lock();
        if entry.is_detached() {
            return Err(not_attached(key));
        }
        let vm = Vm::new(&entry.file);
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
        if let Some(s) = sampling.as_deref_mut() {
            if s.geometry == geometry {
                s.settings = settings;
                if !s.running {
                    s.running = true;
                    s.next_due_ns = now;
                }
                entry.publish(Some(s));
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
        let new = KBox::new(
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
        entry.publish(Some(&*new));
        *sampling = Some(new);
        Ok(())
    }

    /// Stops sampling `key`: no more rounds; it stays attached and its
    /// heat map, history and stats stay readable (the results of the run)
    /// until it is started again with another geometry or detached.
    fn stop(&self, key: VmId) -> core::result::Result<(), Failure> {
        let entry = self
            .state
            .lock()
            .find(key)
            .ok_or_else(|| not_attached(key))?;
        // Stopping a VM that is not sampling does nothing, like stopping
        // it twice.
        let mut sampling = entry.sampling.lock();
        if entry.is_detached() {
            return Err(not_attached(key));
        }
        if let Some(s) = sampling.as_deref_mut() {
            s.running = false;
            entry.publish(Some(s));
        }
        Ok(())
    }

    /// Takes the VM `key` out of the state, for [`Sampler::release`].
    fn detach(&self, key: VmId) -> core::result::Result<Attached, Failure> {
        let mut state = self.state.lock();
        let index = state
            .vms
            .iter()
            .position(|s| s.as_ref().is_some_and(|a| a.vm.key == key));
        index
            .and_then(|i| state.take(i))
            .ok_or_else(|| not_attached(key))
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
    ///
    /// The VM itself may outlive this in a read in progress (of `vms`), which
    /// only reads it; a new VM in its slot has another generation.
    pub(crate) fn release(&self, mut vm: Attached) {
        hold_for_test();
        drop(vm.dir.take());
        // A round (or command) of this VM in progress ends first: none
        // touches the VM once this returns (`detached` keeps new ones out).
        drop(vm.vm.sampling.lock());
        let (index, key) = (vm.vm.file_key.index, vm.vm.key);
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
            sleep_ms(1);
        }
    }

    /// One pass of the thread: runs the rounds that are due and detaches
    /// VMs whose process closed them. Returns how long to sleep, in ms.
    ///
    /// The state mutex is held only to list the VMs; each round holds its
    /// own VM's lock. Between two VMs the thread stops if asked to.
    fn tick(&self, me: &OnThread) -> u64 {
        let mut orphans: [Option<Attached>; MAX_VMS] = [const { None }; MAX_VMS];
        let mut vms: [Option<Arc<VmEntry>>; MAX_VMS] = [const { None }; MAX_VMS];
        {
            let mut state = self.state.lock();
            for (index, (orphan, vm)) in orphans.iter_mut().zip(vms.iter_mut()).enumerate() {
                let Some(Some(a)) = state.vms.get(index) else {
                    continue;
                };
                if a.vm.file.is_orphan() {
                    *orphan = state.take(index);
                } else {
                    *vm = Some(a.vm.clone());
                }
            }
        }
        // The module parameters (or `tune`), once per tick: every VM's
        // round of this tick runs with the same values.
        let (budget, pass_accessed) = (
            u64::from(tunables::walk_budget()),
            tunables::pass_accessed(),
        );
        for vm in orphans.into_iter().flatten() {
            pr_info!(
                "{}-{}: the VM's process closed it; detached\n",
                vm.vm.key.pid,
                vm.vm.key.fd
            );
            self.release(vm);
        }
        let mut next = now_ns().saturating_add(IDLE_WAKE_MS * 1_000_000);
        for vm in vms.iter().flatten() {
            if me.should_stop() {
                // kthread_stop() woke the thread already: no sleep.
                return 0;
            }
            let mut sampling = vm.sampling.lock();
            if vm.is_detached() {
                continue;
            }
            let Some(s) = sampling.as_deref_mut().filter(|s| s.running) else {
                continue;
            };
            let now = now_ns();
            if s.next_due_ns <= now {
                vm.run_round(s, now, budget, pass_accessed);
            }
            next = next.min(s.next_due_ns);
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
        if printk_ratelimit() {
            pr_warn!("control: {}: {}\n", failure.0.name(), failure.1.as_str());
        }
    }
}

/// Waits while the module parameter `test_hold_detach` is set, 10 s at
/// most: a test's window between taking a VM out and removing its
/// directory.
fn hold_for_test() {
    let deadline = now_ns().saturating_add(10_000_000_000);
    while params::test_hold_detach() && now_ns() < deadline {
        sleep_ms(1);
    }
}

impl ThreadMain for Sampler {
    /// Rounds in process context, never from a timer, since `mmu_lock`
    /// taken for read in a timer could deadlock against a writer.
    fn run(&self, me: &OnThread) {
        while !me.should_stop() {
            let sleep = self.tick(me);
            me.sleep_ms(sleep);
        }
    }
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

/// The published sampler, for the functions below, which only the proc
/// callbacks (procfs/tree.rs) may call: while one runs its file exists, so
/// the sampler is valid. (`'static` is a lie the callback's duration makes
/// true; nothing keeps the reference beyond it.)
fn current() -> Option<&'static Sampler> {
    let p = SAMPLER.load(Ordering::Acquire);
    // SAFETY: published pointers stay valid while proc files exist
    // (`publish`), and only proc callbacks reach this (see above).
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
            // The parser checked the range: a budget it accepts is set.
            if let Some(n) = walk_budget {
                tunables::set_walk_budget(n);
            }
            if let Some(pass) = pass_accessed {
                tunables::set_pass_accessed(pass);
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
        let (host, attached) = {
            let state = sampler.state.lock();
            let attached = state
                .vms
                .iter()
                .flatten()
                .find(|a| a.vm.file.same_as(found.file.raw()))
                .map(|a| a.vm.clone());
            (state.host, attached)
        };
        let (tdp, verdict) = classify(&vm, host);
        let state = attached.map(|vm| vm.summary().state());
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
    Idle,
}

/// A per-VM text file of the VM its private data `data` names (empty once
/// that VM is detached).
pub(crate) fn show_vm_file(m: &mut dyn Write, data: usize, kind: VmFileKind) -> fmt::Result {
    let Some(sampler) = current() else {
        return Ok(());
    };
    let Some(entry) = sampler.state.lock().by_file(data) else {
        return Ok(());
    };
    let key = entry.key;
    let vm = Vm::new(&entry.file);
    let not_sampled = |m: &mut dyn Write| writeln!(m, "# vm {key} is not being sampled");
    match kind {
        VmFileKind::Config => {
            let summary = entry.summary();
            let config = Config {
                vm: key,
                state: summary.state(),
                settings: summary.settings,
            };
            write!(m, "{config}")
        }
        VmFileKind::Stats => match entry.summary().stats {
            Some(stats) => write!(m, "{stats}"),
            None => not_sampled(m),
        },
        VmFileKind::Heatmap => match entry.sampling.lock().as_deref() {
            Some(s) => {
                let mut slots = [NO_SLOT; MAX_SLOTS];
                let (_, n) = memslots(&vm, &mut slots);
                heatmap::render(m, &s.map.view(), key, slots.get(..n).unwrap_or(&[]))
            }
            None => not_sampled(m),
        },
        VmFileKind::History => match entry.sampling.lock().as_deref() {
            Some(s) => history::render(m, &s.map.view(), key),
            None => not_sampled(m),
        },
        VmFileKind::Idle => match entry.sampling.lock().as_deref() {
            Some(s) => {
                let view = s.map.view();
                let counts = heat::idle::count(&view.store, view.clock, &s.settings.idle);
                write!(m, "{}", IdleFile { vm: key, counts })
            }
            None => not_sampled(m),
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
    let entry = sampler.state.lock().by_file(data).ok_or(code::ENOENT)?;
    let sampling = entry.sampling.lock();
    let Some(s) = sampling.as_deref() else {
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
