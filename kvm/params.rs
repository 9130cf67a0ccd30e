// SPDX-License-Identifier: GPL-2.0

//! Which two-dimensional paging KVM uses on this host, from KVM's module
//! parameters (see [`super::sysfs`] for why they are read through sysfs).

use core::ffi::CStr;

use crate::procfs::version::{HostTdp, VendorModule};

use super::sysfs;

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
pub(crate) fn host_tdp() -> (HostTdp, Option<bool>) {
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
