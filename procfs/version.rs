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
//! ```

use core::fmt;

use super::kv;

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
        kv::write(f, "tlb_flush", format_args!("{}", self.tlb_flush))
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
        })
    }
}
