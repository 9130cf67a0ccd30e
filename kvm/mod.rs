// SPDX-License-Identifier: GPL-2.0

//! The sampler's kernel glue: KVM and the kernel's C interfaces the
//! `kernel` crate does not wrap. Everything that knows a C layout or a
//! kernel version lives here.

pub(crate) mod bindings;
pub(crate) mod compat;
pub(crate) mod discover;
pub(crate) mod file;
pub(crate) mod mmu;
pub(crate) mod params;
pub(crate) mod round;
pub(crate) mod sampler;
pub(crate) mod sysfs;
pub(crate) mod thread;
pub(crate) mod time;
pub(crate) mod tunables;
pub(crate) mod vbuf;
pub(crate) mod vm;
