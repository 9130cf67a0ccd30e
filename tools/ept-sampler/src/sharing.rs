// SPDX-License-Identifier: GPL-2.0

//! Who else on the host clears the accessed bits ept-sampler samples.
//!
//! An SPTE has one accessed bit. KVM's aging notifier (`clear_young`)
//! clears it for whoever ages the VMM's mapping of a page: DAMON's
//! monitoring (each sample "mkolds" a page through `mmu_notifier_clear_young`),
//! MGLRU and reclaim. An access whose bit such a consumer clears before the
//! sampler's next round is lost to the sampler: the heat map under-counts
//! (single pages idle in a round in which they were read or written), while
//! every page it does show hot was accessed. Debian 13's kernel runs
//! DAMON_STAT from boot (`CONFIG_DAMON_STAT_ENABLED_DEFAULT=y`); the
//! testbed found it as pages accessed in 4 of 5 rounds of a guest touching
//! them hundreds of times per round.
//!
//! Found here: the DAMON users that run continuously and that the
//! administrator can turn off. Reclaim ages only under memory pressure and
//! has no switch; README says so.

use std::path::{Path, PathBuf};

/// A kernel facility now clearing accessed bits through KVM's aging
/// notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// What it is, as its documentation names it.
    pub name: String,
    /// The command that turns it off.
    pub off: String,
}

/// DAMON's built-in users with an `enabled` parameter, by module name.
const DAMON_MODULES: &[(&str, &str)] = &[
    ("damon_stat", "DAMON_STAT"),
    ("damon_reclaim", "DAMON_RECLAIM"),
    ("damon_lru_sort", "DAMON_LRU_SORT"),
];

/// The consumers running now, on a host whose sysfs is at `sys` (`/sys`).
/// A file that cannot be read (absent: not built; unreadable: not root)
/// counts as not running.
pub fn consumers(sys: &Path) -> Vec<Consumer> {
    let mut found = Vec::new();
    for (module, name) in DAMON_MODULES {
        let param: PathBuf = [*module, "parameters", "enabled"].iter().collect();
        let path = sys.join("module").join(&param);
        if read_word(&path).as_deref() == Some("Y") {
            found.push(Consumer {
                name: (*name).to_string(),
                off: format!(
                    "echo N > /sys/module/{} (or boot with {module}.enabled=N)",
                    param.display()
                ),
            });
        }
    }
    // DAMON contexts started through its sysfs interface (damo does so).
    let kdamonds = sys.join("kernel/mm/damon/admin/kdamonds");
    let mut ids: Vec<u64> = std::fs::read_dir(&kdamonds)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    for id in ids {
        if read_word(&kdamonds.join(id.to_string()).join("state")).as_deref() == Some("on") {
            found.push(Consumer {
                name: format!("DAMON kdamond {id}"),
                off: format!("echo off > /sys/kernel/mm/damon/admin/kdamonds/{id}/state"),
            });
        }
    }
    found
}

/// The file's first word, if it can be read.
fn read_word(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// What the tool says when `consumers` is not empty: one line per
/// consumer, after one line on what it costs.
pub fn warning(found: &[Consumer]) -> Option<String> {
    if found.is_empty() {
        return None;
    }
    let mut o = String::from(
        "warning: the host also clears accessed bits: ept-sampler misses an access whose bit is cleared before its next round (heat maps under-count)",
    );
    for c in found {
        o.push_str(&format!(
            "\nwarning: {} is on; turn it off: {}",
            c.name, c.off
        ));
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn nothing_built_nothing_found() {
        let sys = FakeSys::new("sharing-empty");
        assert_eq!(consumers(sys.path()), vec![]);
        assert_eq!(warning(&[]), None);
    }

    #[test]
    fn damon_stat_on_and_off() {
        let sys = FakeSys::new("sharing-stat");
        sys.put("module/damon_stat/parameters/enabled", "N\n");
        sys.put("module/damon_reclaim/parameters/enabled", "N\n");
        assert_eq!(consumers(sys.path()), vec![]);
        sys.put("module/damon_stat/parameters/enabled", "Y\n");
        let found = consumers(sys.path());
        assert_eq!(
            found,
            vec![Consumer {
                name: "DAMON_STAT".into(),
                off: "echo N > /sys/module/damon_stat/parameters/enabled (or boot with damon_stat.enabled=N)".into(),
            }]
        );
        let w = warning(&found).unwrap();
        assert_eq!(w.lines().count(), 2);
        assert!(w
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("warning: DAMON_STAT is on; turn it off: echo N > "));
    }

    #[test]
    fn kdamonds_on_in_order_off_ignored() {
        let sys = FakeSys::new("sharing-kdamonds");
        let k = "kernel/mm/damon/admin/kdamonds";
        sys.put(&format!("{k}/nr_kdamonds"), "3\n");
        sys.put(&format!("{k}/10/state"), "on\n");
        sys.put(&format!("{k}/2/state"), "on\n");
        sys.put(&format!("{k}/0/state"), "off\n");
        sys.put("module/damon_lru_sort/parameters/enabled", "Y\n");
        let names: Vec<String> = consumers(sys.path()).into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["DAMON_LRU_SORT", "DAMON kdamond 2", "DAMON kdamond 10"]
        );
    }
}
