// SPDX-License-Identifier: GPL-2.0

//! The pure half of ept-sampler, for userspace.
//!
//! The kernel module compiles these modules into itself from the same files
//! (`#[path]`, no copies), so what the tests here check is what the module
//! runs. Everything here uses only `core`.
//!
//! The module tree mirrors the kernel crate's, so that the pure files can
//! name each other as `crate::ept_walk`, `crate::heat` and
//! `crate::procfs::...` in both crates: `procfs` here holds only the pure
//! format files of the kernel's `procfs/` (its proc entries are glue).

#![no_std]

#[path = "../../../ept_walk/mod.rs"]
pub mod ept_walk;

#[path = "../../../heat/mod.rs"]
pub mod heat;

/// The formats of `/proc/ept_sampler/`: one renderer and one parser per
/// file, shared with the module. (The `path` on this inline module makes
/// the repository's `procfs/` the directory of the files named in it.)
#[path = "../../../procfs"]
pub mod procfs {
    pub mod config;
    pub mod control;
    pub mod fields;
    pub mod heatmap;
    pub mod heatmap_bin;
    pub mod history;
    pub mod idle;
    pub mod kv;
    pub mod last_error;
    pub mod memslots;
    pub mod stats;
    pub mod version;
    pub mod vms;
}
