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
    /// nothing known. QEMU is known by its executable too (`/proc/PID/exe`:
    /// Proxmox starts it as `kvm`, a link to qemu-system-x86_64).
    pub fn of_pid(proc: &Path, pid: u32) -> Vmm {
        let dir = proc.join(pid.to_string());
        let exe_is_qemu = std::fs::read_link(dir.join("exe"))
            .ok()
            .is_some_and(|exe| is_qemu(&exe));
        std::fs::read(dir.join("cmdline"))
            .map(|raw| Vmm::parse(&raw, exe_is_qemu))
            .unwrap_or_default()
    }

    /// From the NUL-separated arguments of `/proc/PID/cmdline`. Only a
    /// QEMU (a program whose file name starts with `qemu`: qemu-kvm,
    /// qemu-system-x86_64) is read, since another VMM's `-name` may mean
    /// something else.
    pub fn from_cmdline(raw: &[u8]) -> Vmm {
        Vmm::parse(raw, false)
    }

    /// [`Vmm::from_cmdline`], or a QEMU whatever its `argv[0]`.
    fn parse(raw: &[u8], exe_is_qemu: bool) -> Vmm {
        let mut args = raw
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let argv0_is_qemu = args.next().is_some_and(|argv0| is_qemu(Path::new(&argv0)));
        let mut vmm = Vmm::default();
        if !(argv0_is_qemu || exe_is_qemu) {
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

/// A program whose file name starts with `qemu`.
fn is_qemu(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("qemu"))
}

/// The `guest` of a `-name` value: `guest=NAME,debug-threads=on`, or the
/// implied key's `NAME,process=...`, read as QEMU's option parser
/// (`get_opt_name_value`) reads it: `,` separates the parts, `,,` is a
/// comma inside a value, a part without `=` is a flag, and the first part
/// is the implied key's value when a `,` (or its end) comes before any
/// `=` in its raw text (so `a,,b=c` is the name `a,b=c`).
fn guest_name(value: &str) -> Option<String> {
    let mut rest = value;
    let mut first = true;
    let mut guest = None;
    while !rest.is_empty() {
        let end = rest.find(['=', ',']).unwrap_or(rest.len());
        let has_value = rest[end..].starts_with('=');
        if has_value || first {
            let (key, raw) = if has_value {
                (&rest[..end], &rest[end + 1..])
            } else {
                ("guest", rest)
            };
            let (val, after) = take_value(raw);
            if key == "guest" {
                guest = Some(val);
            }
            rest = after;
        } else {
            // A flag (`debug-threads` alone): no value to read.
            rest = rest[end..].strip_prefix(',').unwrap_or(&rest[end..]);
        }
        first = false;
    }
    guest.filter(|g| !g.is_empty())
}

/// A value up to the first lone `,` (`,,` is a comma in it), and what
/// follows that comma.
fn take_value(raw: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != ',' {
            value.push(c);
        } else if chars.peek().is_some_and(|&(_, n)| n == ',') {
            chars.next();
            value.push(',');
        } else {
            return (value, &raw[i + 1..]);
        }
    }
    (value, "")
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
        // QEMU decides the implied key on the raw text.
        assert_eq!(name("a,,b=c"), Some("a,b=c".into()));
        assert_eq!(name("x,debug-threads,guest=y"), Some("y".into()));
        assert_eq!(name("process=p"), None);
        assert_eq!(name("guest="), None);
    }

    #[test]
    fn not_qemu_or_bad_values() {
        // Another VMM's -name is not a libvirt domain.
        let fc = cmdline(&["/usr/bin/firecracker", "-name", "x"]);
        assert_eq!(Vmm::from_cmdline(&fc), Vmm::default());
        // Proxmox's `kvm`: QEMU by its executable.
        let pve = cmdline(&["/usr/bin/kvm", "-name", "vm100,debug-threads=on"]);
        assert_eq!(Vmm::parse(&pve, true).domain.as_deref(), Some("vm100"));
        // A uuid QEMU would refuse, a missing value, an empty command line.
        let bad = cmdline(&["qemu-system-x86_64", "-uuid", "1234", "-name"]);
        assert_eq!(Vmm::from_cmdline(&bad), Vmm::default());
        assert_eq!(Vmm::from_cmdline(b""), Vmm::default());
    }
}
