// SPDX-License-Identifier: GPL-2.0

//! Glue to KVM and to the kernel's C interfaces the `kernel` crate does not
//! wrap. Everything that knows a C layout or a kernel version lives here.

pub(crate) mod bindings;
#[allow(dead_code)]
pub(crate) mod compat;
pub(crate) mod params;
pub(crate) mod sysfs;

// The sampler's pieces (issue 4), wired up as the sampler lands.
#[allow(dead_code)]
pub(crate) mod discover;
#[allow(dead_code)]
pub(crate) mod file;
#[allow(dead_code)]
pub(crate) mod mmu;
#[allow(dead_code)]
pub(crate) mod round;
pub(crate) mod sampler;
pub(crate) mod vbuf;
#[allow(dead_code)]
pub(crate) mod vm;
