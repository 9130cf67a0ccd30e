// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/vms`: every KVM VM on the host, attached or not, one
//! [`VmRow`] per line.
//!
//! ```text
//! # vm vcpus memslots memory tdp dirty_logging state
//! 1234-12 2 3 1073741824 ept+ad no sampling
//! 1301-9 1 2 268435456 ept+ad yes attached
//! 1402-11 4 3 4294967296 shadow no refused:shadow-paging
//! ```
//!
//! `memory` is the guest memory in bytes (the sum of the address space 0
//! memslots); `tdp` is `ept+ad`, `ept` (no A/D bits), `npt` or `shadow`;
//! `state` is `detached`, `attached`, `sampling` or `refused:<reason>`.

use core::fmt;

use super::control::VmId;
use super::fields::{yes_no, yes_no_str, Columns, FormatError};

/// How KVM translates a VM's guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TdpKind {
    /// Intel EPT with accessed/dirty bits: samplable.
    EptAd,
    /// Intel EPT without accessed/dirty bits (`eptad=0`).
    Ept,
    /// AMD nested paging (always has A/D bits): samplable.
    Npt,
    /// Shadow paging, no TDP.
    Shadow,
}

impl TdpKind {
    /// The word for this value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TdpKind::EptAd => "ept+ad",
            TdpKind::Ept => "ept",
            TdpKind::Npt => "npt",
            TdpKind::Shadow => "shadow",
        }
    }

    /// Parses [`TdpKind::as_str`]'s words.
    pub fn parse(word: &str) -> Option<TdpKind> {
        Some(match word {
            "ept+ad" => TdpKind::EptAd,
            "ept" => TdpKind::Ept,
            "npt" => TdpKind::Npt,
            "shadow" => TdpKind::Shadow,
            _ => return None,
        })
    }
}

/// Why a VM cannot be sampled (`attach` returns `-EOPNOTSUPP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// KVM uses shadow paging for it.
    ShadowPaging,
    /// KVM's TDP MMU is off (`kvm.tdp_mmu=0`): its tables are not freed
    /// through RCU, so walking them from outside KVM is unsafe.
    TdpMmuOff,
    /// EPT without accessed/dirty bits (`kvm_intel.eptad=0`).
    NoAdBits,
    /// KVM's TLB flush cannot be reached (KVM built in on a kernel that
    /// exports it to KVM's own modules only): cached translations would
    /// never set a cleared accessed bit again.
    NoTlbFlush,
    /// A confidential VM (SEV-SNP, TDX): its private memory is mapped by
    /// tables or with protections the sampler cannot read as KVM's TDP MMU
    /// entries (TDX's live in the TDX module, behind mirror roots).
    ConfidentialVm,
    /// A VM that may have guest_memfd-private memory
    /// (`KVM_X86_SW_PROTECTED_VM`): private memory is not in the VMM's
    /// address space, and KVM zaps and rebuilds its mappings at every
    /// private/shared conversion; a heat map would show shared memory only,
    /// as if it were all.
    PrivateMemory,
    /// A VM type this module does not know (a kernel newer than it).
    UnknownVmType,
    /// A reason this reader does not know (written by a newer module).
    Other,
}

impl Refusal {
    /// The word after `refused:`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::ShadowPaging => "shadow-paging",
            Refusal::TdpMmuOff => "tdp-mmu-off",
            Refusal::NoAdBits => "no-ad-bits",
            Refusal::NoTlbFlush => "no-tlb-flush",
            Refusal::ConfidentialVm => "confidential-vm",
            Refusal::PrivateMemory => "private-memory",
            Refusal::UnknownVmType => "unknown-vm-type",
            Refusal::Other => "other",
        }
    }

    /// Parses [`Refusal::as_str`]'s words; any other word is
    /// [`Refusal::Other`].
    pub fn parse(word: &str) -> Refusal {
        match word {
            "shadow-paging" => Refusal::ShadowPaging,
            "tdp-mmu-off" => Refusal::TdpMmuOff,
            "no-ad-bits" => Refusal::NoAdBits,
            "no-tlb-flush" => Refusal::NoTlbFlush,
            "confidential-vm" => Refusal::ConfidentialVm,
            "private-memory" => Refusal::PrivateMemory,
            "unknown-vm-type" => Refusal::UnknownVmType,
            _ => Refusal::Other,
        }
    }
}

/// KVM's x86 VM types, KVM_CREATE_VM's argument
/// (`arch/x86/include/uapi/asm/kvm.h`, a stable ABI; TDX from 6.16 on).
pub mod vm_type {
    /// `KVM_X86_DEFAULT_VM`.
    pub const DEFAULT: u8 = 0;
    /// `KVM_X86_SW_PROTECTED_VM`.
    pub const SW_PROTECTED: u8 = 1;
    /// `KVM_X86_SEV_VM`.
    pub const SEV: u8 = 2;
    /// `KVM_X86_SEV_ES_VM`.
    pub const SEV_ES: u8 = 3;
    /// `KVM_X86_SNP_VM`.
    pub const SNP: u8 = 4;
    /// `KVM_X86_TDX_VM`.
    pub const TDX: u8 = 5;
}

/// Why a VM of type `kvm_type` (`kvm->arch.vm_type`) cannot be sampled,
/// if it cannot; `private_mem` is KVM's `kvm->arch.has_private_mem`. By
/// type, not by kernel version: a backport of a type does not make a
/// module wrong. SEV and SEV-ES VMs encrypt memory that stays in the VMM's
/// address space and mapped by ordinary TDP entries: they are sampled.
pub fn vm_type_refusal(kvm_type: u8, private_mem: bool) -> Option<Refusal> {
    match kvm_type {
        vm_type::SNP | vm_type::TDX => Some(Refusal::ConfidentialVm),
        t if t > vm_type::TDX => Some(Refusal::UnknownVmType),
        vm_type::SW_PROTECTED => Some(Refusal::PrivateMemory),
        _ if private_mem => Some(Refusal::PrivateMemory),
        _ => None,
    }
}

/// What the sampler does with a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmState {
    /// Not attached.
    Detached,
    /// Attached (pinned, has a directory), not sampling.
    Attached,
    /// Sampling on a timer.
    Sampling,
    /// Cannot be sampled.
    Refused(Refusal),
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmState::Detached => f.write_str("detached"),
            VmState::Attached => f.write_str("attached"),
            VmState::Sampling => f.write_str("sampling"),
            VmState::Refused(why) => write!(f, "refused:{}", why.as_str()),
        }
    }
}

impl VmState {
    /// Parses the words [`VmState`]'s `Display` writes.
    pub fn parse(word: &str) -> Option<VmState> {
        Some(match word {
            "detached" => VmState::Detached,
            "attached" => VmState::Attached,
            "sampling" => VmState::Sampling,
            _ => VmState::Refused(Refusal::parse(word.strip_prefix("refused:")?)),
        })
    }
}

/// One VM, one line of `vms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmRow {
    /// The VM.
    pub vm: VmId,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Number of memslots (all address spaces).
    pub memslots: u32,
    /// Guest memory in bytes (address space 0).
    pub memory_bytes: u64,
    /// How KVM translates its addresses.
    pub tdp: TdpKind,
    /// Whether dirty logging is on for any of its memslots (then its dirty
    /// bits belong to KVM and are not sampled).
    pub dirty_logging: bool,
    /// What the sampler does with it.
    pub state: VmState,
}

/// The header line of `vms`.
pub const HEADER: &str = "# vm vcpus memslots memory tdp dirty_logging state\n";

impl fmt::Display for VmRow {
    /// One line of `vms`, with its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} {} {} {} {} {}",
            self.vm,
            self.vcpus,
            self.memslots,
            self.memory_bytes,
            self.tdp.as_str(),
            yes_no_str(self.dirty_logging),
            self.state
        )
    }
}

/// Writes the whole `vms` file (the glue may instead write [`HEADER`] and
/// then each row as it walks KVM's list of VMs).
pub fn render(w: &mut dyn fmt::Write, rows: &[VmRow]) -> fmt::Result {
    w.write_str(HEADER)?;
    for row in rows {
        write!(w, "{row}")?;
    }
    Ok(())
}

/// Parses one data line of `vms`; columns after the known ones are
/// ignored.
pub fn parse_line(line: &str) -> Result<VmRow, FormatError> {
    let mut c = Columns::new(line);
    let vm = c.parsed("vm", |w| VmId::parse(w).ok())?;
    let vcpus = u32::try_from(c.number("vcpus")?).map_err(|_| FormatError::Bad("vcpus"))?;
    let memslots =
        u32::try_from(c.number("memslots")?).map_err(|_| FormatError::Bad("memslots"))?;
    Ok(VmRow {
        vm,
        vcpus,
        memslots,
        memory_bytes: c.number("memory")?,
        tdp: c.parsed("tdp", TdpKind::parse)?,
        dirty_logging: c.parsed("dirty_logging", yes_no)?,
        state: c.parsed("state", VmState::parse)?,
    })
}

/// Parses a whole `vms` file, one result per VM.
pub fn parse(text: &str) -> impl Iterator<Item = Result<VmRow, FormatError>> + '_ {
    super::fields::data_lines(text).map(parse_line)
}
