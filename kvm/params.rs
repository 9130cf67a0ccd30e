// SPDX-License-Identifier: GPL-2.0

//! Which two-dimensional paging KVM uses on this host, from KVM's module
//! parameters (see [`super::sysfs`] for why they are read through sysfs),
//! and whether the module can flush a VM's TLBs.

use core::ffi::CStr;

use crate::procfs::version::{HostTdp, VendorModule};

use super::compat::TlbFlush;
use super::sysfs;

/// What the module found on the host, as last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Host {
    /// The TDP KVM uses.
    pub(crate) tdp: HostTdp,
    /// Whether KVM's TDP MMU is on; `None` when KVM is not loaded.
    pub(crate) tdp_mmu: Option<bool>,
    /// Whether KVM's TLB flush can be reached ([`TlbFlush::get`]).
    pub(crate) tlb_flush: bool,
}

impl Host {
    /// Before anything was read: no KVM.
    pub(crate) const UNKNOWN: Host = Host {
        tdp: HostTdp::NoKvm,
        tdp_mmu: None,
        tlb_flush: false,
    };

    /// Reads KVM's parameters and looks for its TLB flush (process
    /// context: sysfs reads sleep). The look takes a reference on kvm.ko
    /// for an instant: an `rmmod kvm` at that very moment fails with EBUSY,
    /// as it does while any VM exists.
    pub(crate) fn read() -> Host {
        let (tdp, tdp_mmu) = host_tdp();
        Host {
            tdp,
            tdp_mmu,
            tlb_flush: TlbFlush::get().is_some(),
        }
    }
}

/// A boolean module parameter: `Some(true)` for "Y", `None` when the
/// parameter (or its module) does not exist.
fn param_bool(path: &CStr) -> Option<bool> {
    let mut buf = [0u8; 8];
    match sysfs::read(path, &mut buf) {
        Ok("Y") | Ok("1") => Some(true),
        Ok("N") | Ok("0") => Some(false),
        _ => None,
    }
}

/// The host's TDP as KVM's parameters say it, and whether the TDP MMU (the
/// only MMU whose page tables the sampler can walk safely) is on.
fn host_tdp() -> (HostTdp, Option<bool>) {
    let tdp_mmu = param_bool(c"/sys/module/kvm/parameters/tdp_mmu");
    if let Some(ept) = param_bool(c"/sys/module/kvm_intel/parameters/ept") {
        let ad = param_bool(c"/sys/module/kvm_intel/parameters/eptad").unwrap_or(false);
        let tdp = match (ept, ad) {
            (true, true) => HostTdp::EptAd,
            (true, false) => HostTdp::Ept,
            (false, _) => HostTdp::Shadow(VendorModule::KvmIntel),
        };
        return (tdp, tdp_mmu);
    }
    if let Some(npt) = param_bool(c"/sys/module/kvm_amd/parameters/npt") {
        let tdp = if npt {
            HostTdp::Npt
        } else {
            HostTdp::Shadow(VendorModule::KvmAmd)
        };
        return (tdp, tdp_mmu);
    }
    (HostTdp::NoKvm, tdp_mmu)
}

/// The module parameter `test_hold_detach`: whether a detach waits (10 s
/// at most) between taking a VM out and removing its directory, a test's
/// window to open a file of it (kvm/helpers.c).
pub(crate) fn test_hold_detach() -> bool {
    // SAFETY: reads a module parameter (READ_ONCE); no preconditions.
    unsafe { super::bindings::ept_sampler_test_hold_detach() }
}
