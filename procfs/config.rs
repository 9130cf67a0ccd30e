// SPDX-License-Identifier: GPL-2.0

//! `/proc/ept_sampler/<pid>-<fd>/config`: the settings in force, as
//! `key value` lines ([`super::kv`]).
//!
//! ```text
//! vm 1234-12
//! state sampling
//! period_ms 100
//! mode accessed
//! granule 4K
//! window 5
//! flush round
//! walk leaf
//! history 64
//! idle 1s,10s,1m,10m,1h
//! ```
//!
//! The setting lines are there when the VM has settings: while sampling,
//! and after `stop` (the last settings, which the heat map was built with).

use core::fmt;

use super::control::{Flush, Settings, VmId, Walk};
use super::fields::{kv_number, kv_parsed, FormatError};
use super::kv;
use super::vms::VmState;
use crate::heat::{Granule, IdleBins, Track};

/// The content of `config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The VM.
    pub vm: VmId,
    /// Its state (`attached` or `sampling` for a VM with a directory).
    pub state: VmState,
    /// The settings in force, if any.
    pub settings: Option<Settings>,
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        kv::write(f, "vm", format_args!("{}", self.vm))?;
        kv::write(f, "state", format_args!("{}", self.state))?;
        if let Some(s) = &self.settings {
            kv::write(f, "period_ms", format_args!("{}", s.period_ms))?;
            kv::write(f, "mode", format_args!("{}", s.track.as_str()))?;
            kv::write(f, "granule", format_args!("{}", s.granule))?;
            kv::write(f, "window", format_args!("{}", s.window))?;
            kv::write(f, "flush", format_args!("{}", s.flush.as_str()))?;
            kv::write(f, "walk", format_args!("{}", s.walk.as_str()))?;
            kv::write(f, "history", format_args!("{}", s.history))?;
            kv::write(f, "idle", format_args!("{}", s.idle))?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses the text of `config`; unknown keys are ignored.
    pub fn parse(text: &str) -> Result<Config, FormatError> {
        let vm = kv_parsed(text, "vm", |v| VmId::parse(v).ok())?;
        let state = kv_parsed(text, "state", VmState::parse)?;
        let settings = if kv::get(text, "period_ms").is_some() {
            let period_ms = u32::try_from(kv_number(text, "period_ms")?)
                .map_err(|_| FormatError::Bad("period_ms"))?;
            let window =
                u8::try_from(kv_number(text, "window")?).map_err(|_| FormatError::Bad("window"))?;
            let history = u16::try_from(kv_number(text, "history")?)
                .map_err(|_| FormatError::Bad("history"))?;
            Some(Settings {
                period_ms,
                track: kv_parsed(text, "mode", Track::parse)?,
                granule: kv_parsed(text, "granule", |v| Granule::parse(v).ok())?,
                window,
                flush: kv_parsed(text, "flush", Flush::parse)?,
                walk: kv_parsed(text, "walk", Walk::parse)?,
                history,
                // Older modules had no idle bins: theirs are the default.
                idle: match kv::get(text, "idle") {
                    None => IdleBins::DEFAULT,
                    Some(v) => IdleBins::parse(v).map_err(|_| FormatError::Bad("idle"))?,
                },
            })
        } else {
            None
        };
        Ok(Config {
            vm,
            state,
            settings,
        })
    }
}
