// SPDX-License-Identifier: GPL-2.0

//! Whether the kernel runs the module as a trusted one: its signature, as
//! the kernel judged it at load time, and lockdown.
//!
//! A distribution kernel (Debian's among them) checks module signatures
//! without enforcing them: an unsigned `ept_sampler.ko`, or one signed by a
//! key the kernel does not trust, loads and taints the kernel with `E`
//! (`TAINT_UNSIGNED_MODULE`), which `/sys/module/<name>/taint` lists. Under
//! UEFI Secure Boot the kernel is locked down (`/sys/kernel/security/lockdown`)
//! and refuses such a module outright: the operator signs it with a Machine
//! Owner Key enrolled in shim (README, "On a real host"). The tool says which
//! case the host is in, because after a kernel update or on the next host the
//! same module may no longer load.

use std::path::Path;

/// What the kernel says about the module and itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// The module's taint letters (`O` out of tree, `E` unsigned), if it is
    /// loaded and sysfs says.
    pub taint: Option<String>,
    /// The lockdown mode in force (`none`, `integrity`,
    /// `confidentiality`), where the kernel has lockdown and securityfs is
    /// mounted.
    pub lockdown: Option<String>,
}

impl Trust {
    /// Reads it from the host's sysfs at `sys` (`/sys`).
    pub fn read(sys: &Path) -> Trust {
        let taint = std::fs::read_to_string(sys.join("module/ept_sampler/taint"))
            .ok()
            .map(|t| t.trim().to_string());
        let lockdown = std::fs::read_to_string(sys.join("kernel/security/lockdown"))
            .ok()
            .and_then(|t| selected(&t));
        Trust { taint, lockdown }
    }

    /// Whether the kernel found no signature it trusts on the module.
    pub fn unsigned(&self) -> bool {
        self.taint.as_deref().is_some_and(|t| t.contains('E'))
    }

    /// One line for `status`, if there is something to say.
    pub fn line(&self) -> Option<String> {
        let lockdown = self.lockdown.as_deref().filter(|m| *m != "none");
        match (self.unsigned(), lockdown) {
            (false, None) => None,
            (true, None) => Some(
                "module: loaded without a signature the kernel trusts (taint E); under UEFI Secure Boot lockdown the kernel refuses it: sign it with an enrolled MOK key".into(),
            ),
            (false, Some(m)) => Some(format!(
                "kernel: lockdown {m}: a module loads only with a signature the kernel trusts"
            )),
            // Lockdown without enforcing signatures is a kernel that was
            // locked down after the module loaded (echo > lockdown).
            (true, Some(m)) => Some(format!(
                "module: loaded without a signature the kernel trusts (taint E), before lockdown {m}: it will not load again"
            )),
        }
    }
}

/// The bracketed word of a sysfs choice list: `none [integrity]
/// confidentiality` is `integrity`.
fn selected(list: &str) -> Option<String> {
    list.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn the_selected_word() {
        assert_eq!(
            selected("[none] integrity confidentiality\n").as_deref(),
            Some("none")
        );
        assert_eq!(
            selected("none integrity [confidentiality]").as_deref(),
            Some("confidentiality")
        );
        assert_eq!(selected("none integrity"), None);
        assert_eq!(selected(""), None);
    }

    #[test]
    fn nothing_known_nothing_said() {
        let t = Trust::read(Path::new("/nonexistent-sys"));
        assert_eq!(t, Trust::default());
        assert_eq!(t.line(), None);
    }

    #[test]
    fn unsigned_and_lockdown() {
        let sys = FakeSys::new("trust-cases");
        sys.put("module/ept_sampler/taint", "O\n");
        sys.put(
            "kernel/security/lockdown",
            "[none] integrity confidentiality\n",
        );
        let t = Trust::read(sys.path());
        assert_eq!(t.taint.as_deref(), Some("O"));
        assert_eq!(t.lockdown.as_deref(), Some("none"));
        assert!(!t.unsigned());
        assert_eq!(t.line(), None);

        sys.put("module/ept_sampler/taint", "OE\n");
        let t = Trust::read(sys.path());
        assert!(t.unsigned());
        assert!(t.line().unwrap().starts_with(
            "module: loaded without a signature the kernel trusts (taint E); under UEFI"
        ));

        sys.put(
            "kernel/security/lockdown",
            "none [integrity] confidentiality\n",
        );
        assert!(Trust::read(sys.path())
            .line()
            .unwrap()
            .ends_with("before lockdown integrity: it will not load again"));

        sys.put("module/ept_sampler/taint", "O\n");
        assert_eq!(
            Trust::read(sys.path()).line().as_deref(),
            Some("kernel: lockdown integrity: a module loads only with a signature the kernel trusts")
        );
    }
}
