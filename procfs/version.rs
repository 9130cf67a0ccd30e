// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/version`: what the module is and what it found on the
//! host, as `key value` lines ([`super::kv`]).
//!
//! ```text
//! module 0.1.0
//! kernel 7.3.4
//! tdp ept+ad
//! tdp_mmu yes
//! vm_files anon-inode-name+fops-owner
//! tlb_flush symbol_get:kvm_flush_remote_tlbs
//! spte_ad_shift 60
//! frozen_spte 0x80000000000001a0
//! ```

use core::fmt;

use super::{fields, kv};
use crate::ept_walk::KvmBits;
use crate::heat::parse_decimal;

/// The module's version, shown in `version` and checked by the tool.
pub const MODULE_VERSION: &str = "0.1.0";

/// A KVM vendor module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorModule {
    /// `kvm_intel` (VMX).
    KvmIntel,
    /// `kvm_amd` (SVM).
    KvmAmd,
}

/// The two-dimensional paging KVM uses on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostTdp {
    /// Intel EPT with accessed/dirty bits (`kvm_intel.ept=Y eptad=Y`).
    EptAd,
    /// Intel EPT without accessed/dirty bits (`eptad=N`): not samplable.
    Ept,
    /// AMD nested paging (`kvm_amd.npt=Y`).
    Npt,
    /// The vendor module is loaded with TDP off: shadow paging.
    Shadow(VendorModule),
    /// No KVM vendor module is loaded.
    NoKvm,
}

impl HostTdp {
    /// The word used for this value in `version`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostTdp::EptAd => "ept+ad",
            HostTdp::Ept => "ept",
            HostTdp::Npt => "npt",
            HostTdp::Shadow(VendorModule::KvmIntel) => "shadow-intel",
            HostTdp::Shadow(VendorModule::KvmAmd) => "shadow-amd",
            HostTdp::NoKvm => "none",
        }
    }

    /// Parses [`HostTdp::as_str`]'s words.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "ept+ad" => HostTdp::EptAd,
            "ept" => HostTdp::Ept,
            "npt" => HostTdp::Npt,
            "shadow-intel" => HostTdp::Shadow(VendorModule::KvmIntel),
            "shadow-amd" => HostTdp::Shadow(VendorModule::KvmAmd),
            "none" => HostTdp::NoKvm,
            _ => return None,
        })
    }
}

/// The content of `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// The module's version ([`MODULE_VERSION`] on the module side).
    pub module: &'a str,
    /// The running kernel's release.
    pub kernel: &'a str,
    /// The TDP KVM uses.
    pub tdp: HostTdp,
    /// Whether KVM's TDP MMU is on; `None` when KVM is not loaded.
    pub tdp_mmu: Option<bool>,
    /// How the module recognises VM files on this kernel.
    pub vm_files: &'a str,
    /// How the module flushes a VM's TLBs on this kernel.
    pub tlb_flush: &'a str,
    /// KVM's software SPTE bits the module was built for (they moved
    /// between 6.12 and 7.3): the A/D type field and `FROZEN_SPTE`.
    /// `None` from a module that does not say.
    pub kvm_bits: Option<KvmBits>,
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

impl fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        kv::write(f, "module", format_args!("{}", self.module))?;
        kv::write(f, "kernel", format_args!("{}", self.kernel))?;
        kv::write(f, "tdp", format_args!("{}", self.tdp.as_str()))?;
        kv::write(f, "tdp_mmu", format_args!("{}", yes_no(self.tdp_mmu)))?;
        kv::write(f, "vm_files", format_args!("{}", self.vm_files))?;
        kv::write(f, "tlb_flush", format_args!("{}", self.tlb_flush))?;
        if let Some(bits) = self.kvm_bits {
            kv::write(f, "spte_ad_shift", format_args!("{}", bits.ad_shift()))?;
            kv::write(f, "frozen_spte", format_args!("{:#x}", bits.frozen()))?;
        }
        Ok(())
    }
}

/// Why a `version` text could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionError {
    /// A required key is missing.
    Missing(&'static str),
    /// A value is not one this parser knows.
    BadValue(&'static str),
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionError::Missing(key) => write!(f, "missing {key}"),
            VersionError::BadValue(key) => write!(f, "bad {key}"),
        }
    }
}

impl<'a> Version<'a> {
    /// Parses the text of `version`; unknown keys are ignored.
    pub fn parse(text: &'a str) -> Result<Self, VersionError> {
        let need = |key: &'static str| kv::get(text, key).ok_or(VersionError::Missing(key));
        let tdp = HostTdp::parse(need("tdp")?).ok_or(VersionError::BadValue("tdp"))?;
        let tdp_mmu = match need("tdp_mmu")? {
            "yes" => Some(true),
            "no" => Some(false),
            "unknown" => None,
            _ => return Err(VersionError::BadValue("tdp_mmu")),
        };
        Ok(Version {
            module: need("module")?,
            kernel: need("kernel")?,
            tdp,
            tdp_mmu,
            // Added after the first release: optional for readers.
            vm_files: kv::get(text, "vm_files").unwrap_or("unknown"),
            tlb_flush: kv::get(text, "tlb_flush").unwrap_or("unknown"),
            kvm_bits: match (kv::get(text, "spte_ad_shift"), kv::get(text, "frozen_spte")) {
                (None, None) => None,
                (Some(shift), Some(frozen)) => {
                    let shift = parse_decimal(shift)
                        .ok()
                        .and_then(|s| u32::try_from(s).ok())
                        .ok_or(VersionError::BadValue("spte_ad_shift"))?;
                    let frozen =
                        fields::hex(frozen).ok_or(VersionError::BadValue("frozen_spte"))?;
                    // A layout the walker could not use is not one a module
                    // was built for.
                    Some(
                        KvmBits::new(shift, frozen)
                            .ok_or(VersionError::BadValue("spte_ad_shift"))?,
                    )
                }
                (None, Some(_)) => return Err(VersionError::Missing("spte_ad_shift")),
                (Some(_), None) => return Err(VersionError::Missing("frozen_spte")),
            },
        })
    }
}
