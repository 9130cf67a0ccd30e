// SPDX-License-Identifier: GPL-2.0

//! Who runs a VM: the names a QEMU process was given on its command line
//! (`-name guest=...`, the libvirt domain name, and `-uuid`), which the
//! exporter puts on its series so that they join with libvirt's.

use std::path::Path;

/// What a VM's process says of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vmm {
    /// QEMU's `-name` (its `guest=` part).
    pub domain: Option<String>,
    /// QEMU's `-uuid`.
    pub uuid: Option<String>,
}

impl Vmm {
    /// Reads `<proc>/<pid>/cmdline`; a process gone, or not QEMU, is
    /// nothing known.
    pub fn of_pid(proc: &Path, pid: u32) -> Vmm {
        std::fs::read(proc.join(pid.to_string()).join("cmdline"))
            .map(|raw| Vmm::from_cmdline(&raw))
            .unwrap_or_default()
    }

    /// From the NUL-separated arguments of `/proc/PID/cmdline`. Only a
    /// QEMU (a program whose file name starts with `qemu`: qemu-kvm,
    /// qemu-system-x86_64) is read, since another VMM's `-name` may mean
    /// something else.
    pub fn from_cmdline(raw: &[u8]) -> Vmm {
        let mut args = raw
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let is_qemu = args
            .next()
            .and_then(|argv0| {
                Path::new(&argv0)
                    .file_name()
                    .map(|n| n.to_string_lossy().starts_with("qemu"))
            })
            .unwrap_or(false);
        let mut vmm = Vmm::default();
        if !is_qemu {
            return vmm;
        }
        while let Some(arg) = args.next() {
            // QEMU takes `-opt` and `--opt` alike; the last one given wins,
            // as in QEMU.
            match arg
                .strip_prefix('-')
                .map(|a| a.strip_prefix('-').unwrap_or(a))
            {
                Some("name") => {
                    if let Some(guest) = args.next().as_deref().and_then(guest_name) {
                        vmm.domain = Some(guest);
                    }
                }
                Some("uuid") => {
                    if let Some(uuid) = args.next().filter(|u| is_uuid(u)) {
                        vmm.uuid = Some(uuid.to_ascii_lowercase());
                    }
                }
                _ => {}
            }
        }
        vmm
    }
}

/// The `guest` of a `-name` value: `guest=NAME,debug-threads=on`, or the
/// implied key's `NAME,process=...`. QEMU's option syntax: `,` separates
/// `key=value` pairs and `,,` is a comma inside a value.
fn guest_name(value: &str) -> Option<String> {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                parts.last_mut()?.push(',');
            }
            ',' => parts.push(String::new()),
            c => parts.last_mut()?.push(c),
        }
    }
    let mut guest = None;
    for (i, part) in parts.into_iter().enumerate() {
        match part.split_once('=') {
            Some(("guest", name)) => guest = Some(name.to_string()),
            Some(_) => {}
            // Only the first part may leave out its key.
            None if i == 0 => guest = Some(part),
            None => {}
        }
    }
    guest.filter(|g| !g.is_empty())
}

/// `8-4-4-4-12` hex digits, as QEMU requires of `-uuid`.
fn is_uuid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::Vmm;

    fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut raw = Vec::new();
        for a in args {
            raw.extend_from_slice(a.as_bytes());
            raw.push(0);
        }
        raw
    }

    #[test]
    fn libvirt_qemu() {
        // As libvirt starts QEMU.
        let raw = cmdline(&[
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=web-1,debug-threads=on",
            "-S",
            "-uuid",
            "8F6A1C2E-1b2c-4d5e-8f90-0123456789ab",
            "-m",
            "2048",
        ]);
        assert_eq!(
            Vmm::from_cmdline(&raw),
            Vmm {
                domain: Some("web-1".into()),
                uuid: Some("8f6a1c2e-1b2c-4d5e-8f90-0123456789ab".into()),
            }
        );
    }

    #[test]
    fn name_spellings() {
        let name = |v: &str| Vmm::from_cmdline(&cmdline(&["qemu-kvm", "--name", v])).domain;
        assert_eq!(name("plain"), Some("plain".into()));
        assert_eq!(name("plain,process=qemu-plain"), Some("plain".into()));
        assert_eq!(name("process=p,guest=late"), Some("late".into()));
        assert_eq!(name("guest=a,,b,debug-threads=on"), Some("a,b".into()));
        assert_eq!(name("process=p"), None);
        assert_eq!(name("guest="), None);
    }

    #[test]
    fn not_qemu_or_bad_values() {
        // Another VMM's -name is not a libvirt domain.
        let fc = cmdline(&["/usr/bin/firecracker", "-name", "x"]);
        assert_eq!(Vmm::from_cmdline(&fc), Vmm::default());
        // A uuid QEMU would refuse, a missing value, an empty command line.
        let bad = cmdline(&["qemu-system-x86_64", "-uuid", "1234", "-name"]);
        assert_eq!(Vmm::from_cmdline(&bad), Vmm::default());
        assert_eq!(Vmm::from_cmdline(b""), Vmm::default());
    }
}
