// SPDX-License-Identifier: GPL-2.0

//! The files of `/proc/ept_sampler/` and of each attached VM's directory.

use core::fmt::{self, Write};
use core::ptr;

use kernel::error::{code, Error, Result};

use super::control::VmId;
use super::entry::{Command, ProcDir, ReadAt};
use super::seq::{SeqFile, ShowFile};
use super::version::{Version, MODULE_VERSION};
use crate::kvm::sampler::{self, VmFileKind};
use crate::kvm::{bindings, compat};

/// Creates `/proc/ept_sampler/` with its top-level files.
pub(crate) fn create_root() -> Result<ProcDir> {
    let root = ProcDir::new(c"ept_sampler")?;
    // On error `root` is dropped, removing whatever was created.
    root.add_show::<VersionFile>(c"version", 0)?;
    root.add_show::<VmsFile>(c"vms", 0)?;
    root.add_show::<LastErrorFile>(c"last_error", 0)?;
    root.add_command::<ControlFile>(c"control", 0)?;
    Ok(root)
}

/// `/proc/ept_sampler/<pid>-<fd>/`, removed on drop.
pub(crate) struct VmDir {
    _dir: ProcDir,
}

impl VmDir {
    /// Creates the directory of the VM `key`, whose files find it with
    /// `data` (their private data, a [`VmFileKey`](crate::kvm::sampler::VmFileKey)).
    ///
    /// On failure the partly built directory comes back with the error:
    /// the caller drops it once it no longer holds the sampler's mutex, since
    /// removing a proc entry waits for its readers, who may be waiting for
    /// that mutex.
    ///
    /// # Safety
    ///
    /// The directory (or the partial one) is dropped before `parent`.
    pub(crate) unsafe fn new(
        parent: &ProcDir,
        key: VmId,
        data: usize,
    ) -> core::result::Result<Self, (Error, Option<ProcDir>)> {
        let mut name = NameBuf::default();
        write!(name, "{key}\0").map_err(|_| (code::EINVAL, None))?;
        let cname = name.as_cstr().ok_or((code::EINVAL, None))?;
        // SAFETY: dropped before `parent` (caller).
        let dir = unsafe { ProcDir::new_child(cname, parent) }.map_err(|e| (e, None))?;
        let files = (|| {
            dir.add_show::<VmText<CONFIG>>(c"config", data)?;
            dir.add_show::<VmText<STATS>>(c"stats", data)?;
            dir.add_show::<VmText<HEATMAP>>(c"heatmap", data)?;
            dir.add_read_at::<HeatmapBin>(c"heatmap.bin", data)?;
            dir.add_show::<VmText<HISTORY>>(c"history", data)?;
            dir.add_show::<VmText<IDLE>>(c"idle", data)?;
            dir.add_show::<VmText<MEMSLOTS>>(c"memslots", data)
        })();
        match files {
            Ok(()) => Ok(VmDir { _dir: dir }),
            Err(e) => Err((e, Some(dir))),
        }
    }
}

/// A small stack buffer for formatting a proc entry's name.
#[derive(Default)]
struct NameBuf {
    buf: [u8; 32],
    len: usize,
}

impl NameBuf {
    fn as_cstr(&self) -> Option<&core::ffi::CStr> {
        core::ffi::CStr::from_bytes_with_nul(self.buf.get(..self.len)?).ok()
    }
}

impl Write for NameBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `/proc/ept_sampler/version`.
struct VersionFile;

impl ShowFile for VersionFile {
    fn prepare(_data: usize) {
        sampler::refresh_host();
    }

    fn show(m: &mut SeqFile, _data: usize) -> fmt::Result {
        let host = sampler::host_params();
        let version = Version {
            module: MODULE_VERSION,
            kernel: kernel_release(),
            tdp: host.tdp,
            tdp_mmu: host.tdp_mmu,
            vm_files: compat::VM_FILE_MECHANISM,
            tlb_flush: if host.tlb_flush {
                compat::FLUSH_MECHANISM
            } else {
                "none"
            },
            kvm_bits: Some(compat::KVM_BITS),
        };
        write!(m, "{version}")
    }
}

/// `/proc/ept_sampler/vms`.
struct VmsFile;

impl ShowFile for VmsFile {
    fn prepare(_data: usize) {
        sampler::refresh_host();
    }

    fn show(m: &mut SeqFile, _data: usize) -> fmt::Result {
        sampler::show_vms(m)
    }
}

/// `/proc/ept_sampler/last_error`.
struct LastErrorFile;

impl ShowFile for LastErrorFile {
    fn show(m: &mut SeqFile, _data: usize) -> fmt::Result {
        sampler::show_last_error(m)
    }
}

/// `/proc/ept_sampler/control`.
struct ControlFile;

impl Command for ControlFile {
    fn write(_data: usize, bytes: &[u8]) -> Result<()> {
        sampler::command(bytes)
    }
}

const CONFIG: u8 = 0;
const STATS: u8 = 1;
const HEATMAP: u8 = 2;
const HISTORY: u8 = 3;
const MEMSLOTS: u8 = 4;
const IDLE: u8 = 5;

/// A text file of a VM's directory; its data is the VM's file key.
struct VmText<const KIND: u8>;

impl<const KIND: u8> ShowFile for VmText<KIND> {
    fn show(m: &mut SeqFile, data: usize) -> fmt::Result {
        let kind = match KIND {
            CONFIG => VmFileKind::Config,
            STATS => VmFileKind::Stats,
            HEATMAP => VmFileKind::Heatmap,
            HISTORY => VmFileKind::History,
            IDLE => VmFileKind::Idle,
            _ => VmFileKind::Memslots,
        };
        sampler::show_vm_file(m, data, kind)
    }
}

/// `heatmap.bin`: read at any offset, from a copy taken at open.
struct HeatmapBin;

impl ReadAt for HeatmapBin {
    type Snapshot = sampler::HeatmapBinSnapshot;

    fn open(data: usize) -> Result<Self::Snapshot> {
        sampler::snapshot_heatmap_bin(data)
    }

    fn read_at(snapshot: &Self::Snapshot, offset: u64, buf: &mut [u8]) -> usize {
        snapshot.as_ref().map_or(0, |s| s.read_at(offset, buf))
    }
}

/// The running kernel's release (`uname -r`).
fn kernel_release() -> &'static str {
    // SAFETY: `init_uts_ns` is a kernel global that lives forever; only its
    // address is taken here, no reference to the whole mutable static.
    let release = unsafe { &(*ptr::addr_of!(bindings::init_uts_ns)).name.release };
    // SAFETY: `c_char` and `u8` have the same size and alignment; the
    // initial namespace's release is set at boot and never changes.
    let bytes: &'static [u8] =
        unsafe { core::slice::from_raw_parts(release.as_ptr().cast(), release.len()) };
    core::ffi::CStr::from_bytes_until_nul(bytes)
        .ok()
        .and_then(|s| s.to_str().ok())
        .unwrap_or("unknown")
}
