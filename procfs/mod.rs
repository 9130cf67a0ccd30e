// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/`: the text formats (pure: `kv`, `version`, also
//! compiled into the userspace tool) and the proc entries that serve them
//! (kernel glue: `seq`, `tree`).

// `kv` and `version` are pure and shared with the userspace crates: their
// `pub` items are that library's API, of which the module uses a part.
mod entry;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod kv;
mod seq;
mod tree;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod version;
// Pure formats of the per-VM files and of control, shared with the tool.
#[allow(unreachable_pub, dead_code)]
pub(crate) mod config;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod control;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod fields;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod heatmap;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod heatmap_bin;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod history;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod idle;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod last_error;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod memslots;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod stats;
#[allow(unreachable_pub, dead_code)]
pub(crate) mod vms;

pub(crate) use entry::ProcDir;
pub(crate) use tree::{create_root, VmDir};
