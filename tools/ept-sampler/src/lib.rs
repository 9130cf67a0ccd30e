// SPDX-License-Identifier: GPL-2.0

//! `ept-sampler`: the userspace tool of the ept_sampler kernel module.
//!
//! It reads and writes only `/proc/ept_sampler` (or a recording of it),
//! through the parsers and the command type of `ept-core`, which are
//! compiled from the same files as the module.

pub mod axis;
pub mod bins;
pub mod cli;
pub mod commands;
pub mod control;
pub mod error;
pub mod export;
#[cfg(test)]
mod fake_sys;
pub mod model;
pub mod params;
pub mod picture;
pub mod record;
pub mod render;
pub mod sharing;
pub mod source;
pub mod top;
pub mod trust;
