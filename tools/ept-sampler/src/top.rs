// SPDX-License-Identifier: GPL-2.0

//! `top`: a live full-screen view of every attached VM (ratatui).

use crate::error::Error;

/// `ept-sampler top`.
#[derive(Clone, Debug, clap::Args)]
pub struct TopArgs {
    /// Screen refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

/// Runs `top` against the module's files.
pub fn run(_root: &crate::source::ProcRoot, _args: &TopArgs) -> Result<(), Error> {
    Err(Error::Other("top is not built yet".into()))
}
