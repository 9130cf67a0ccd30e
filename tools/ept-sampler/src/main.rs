// SPDX-License-Identifier: GPL-2.0

//! The `ept-sampler` command.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ept-sampler: not built yet");
    ExitCode::from(ept_sampler::error::exit::FAILURE)
}
