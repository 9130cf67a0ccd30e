// SPDX-License-Identifier: GPL-2.0

//! The module's host-wide settings in force: its module parameters
//! `walk_budget` and `pass_accessed` (`/sys/module/ept_sampler/parameters`,
//! set at load from `/etc/modprobe.d`, by root in sysfs, or by `tune`).
//!
//! `status` shows them, and says what `pass_accessed=N` costs the host: the
//! accessed bits the sampler clears are then lost to reclaim, page_idle and
//! DAMON, which see a sampled VM's memory as idle however busy it is. A
//! setting meant for a measurement can outlive it in a modprobe.d file.

use std::path::Path;

use ept_core::procfs::control::DEFAULT_WALK_BUDGET;

/// Where the module's parameters are, below /sys.
const DIR: &str = "module/ept_sampler/parameters";

/// The module parameters, as sysfs shows them; `None` for one that cannot
/// be read (the module is not loaded, or is older than the parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// Entries a round examines per hold of KVM's `mmu_lock`.
    pub walk_budget: Option<u32>,
    /// Whether cleared accessed bits are handed on to the host's pages.
    pub pass_accessed: Option<bool>,
}

impl Params {
    /// Reads them from the host's sysfs at `sys` (`/sys`).
    pub fn read(sys: &Path) -> Params {
        let read = |name: &str| std::fs::read_to_string(sys.join(DIR).join(name)).ok();
        Params {
            walk_budget: read("walk_budget").and_then(|t| t.trim().parse().ok()),
            pass_accessed: read("pass_accessed").and_then(|t| match t.trim() {
                "Y" => Some(true),
                "N" => Some(false),
                _ => None,
            }),
        }
    }

    /// The lines for `status`: the values (the budget's default beside
    /// it when it is another), and what `pass_accessed=N` means.
    pub fn lines(&self) -> Option<String> {
        let mut shown = Vec::new();
        if let Some(b) = self.walk_budget {
            shown.push(if b == DEFAULT_WALK_BUDGET {
                format!("walk_budget {b}")
            } else {
                format!("walk_budget {b} (default {DEFAULT_WALK_BUDGET})")
            });
        }
        if let Some(p) = self.pass_accessed {
            shown.push(format!("pass_accessed {}", if p { 'Y' } else { 'N' }));
        }
        if shown.is_empty() {
            return None;
        }
        let mut text = format!("parameters: {}", shown.join(", "));
        if self.pass_accessed == Some(false) {
            text.push_str(&format!(
                "\nwarning: pass_accessed is N: the accessed bits ept-sampler clears are not handed on; host reclaim, page_idle and DAMON see sampled VMs' memory as idle (echo Y > /sys/{DIR}/pass_accessed)"
            ));
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn not_loaded_nothing_said() {
        let sys = FakeSys::new("params-none");
        assert_eq!(Params::read(sys.path()), Params::default());
        assert_eq!(Params::default().lines(), None);
    }

    #[test]
    fn defaults_then_other_values() {
        let sys = FakeSys::new("params");
        sys.put(&format!("{DIR}/walk_budget"), "8192\n");
        sys.put(&format!("{DIR}/pass_accessed"), "Y\n");
        let p = Params::read(sys.path());
        assert_eq!(
            p,
            Params {
                walk_budget: Some(8192),
                pass_accessed: Some(true)
            }
        );
        assert_eq!(
            p.lines().as_deref(),
            Some("parameters: walk_budget 8192, pass_accessed Y")
        );

        sys.put(&format!("{DIR}/walk_budget"), "64\n");
        sys.put(&format!("{DIR}/pass_accessed"), "N\n");
        let text = Params::read(sys.path()).lines().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "parameters: walk_budget 64 (default 8192), pass_accessed N"
        );
        assert!(lines[1].starts_with("warning: pass_accessed is N: "));
        assert!(lines[1].ends_with("(echo Y > /sys/module/ept_sampler/parameters/pass_accessed)"));
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn unreadable_values_left_out() {
        let sys = FakeSys::new("params-odd");
        sys.put(&format!("{DIR}/walk_budget"), "lots\n");
        sys.put(&format!("{DIR}/pass_accessed"), "N\n");
        let p = Params::read(sys.path());
        assert_eq!(p.walk_budget, None);
        assert_eq!(
            p.lines().unwrap().lines().next(),
            Some("parameters: pass_accessed N")
        );
    }
}
