// SPDX-License-Identifier: GPL-2.0

//! The `ept-sampler` command.

use std::process::ExitCode;

use ept_sampler::error::Error;

fn main() -> ExitCode {
    let cli = ept_sampler::cli::parse();
    match ept_sampler::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ept-sampler: {e}");
            if matches!(e, Error::Usage(_)) {
                eprintln!("For more information, try '--help'.");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
