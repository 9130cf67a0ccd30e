// SPDX-License-Identifier: GPL-2.0

//! Running each subcommand.

use std::io::Write;
use std::path::Path;

use ept_core::heat::{StoreLayout, DEFAULT_WINDOW};
use ept_core::procfs::control::{Command as Ctl, Settings, VmId};
use ept_core::procfs::version::Version;
use ept_core::procfs::vms::VmState;

use crate::bins::{self, ColorBy};
use crate::cli::{
    AttachArgs, Cli, ColorWhen, Command, DetachArgs, HeatFormat, HeatmapArgs, ListArgs, ManArgs,
    StartArgs, StatusArgs,
};
use crate::control::{resolve, resolve_in, send, several_vms, state_of, vm_rows, vms_of};
use crate::error::Error;
use crate::model::{VmSnapshot, VM_FILES};
use crate::params::Params;
use crate::picture::{self, Picture, PictureFormat};
use crate::render::{data, term, text};
use crate::sharing;
use crate::source::{io_error, ProcRoot};
use crate::trust::Trust;

/// Runs the command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    // Opened only by the commands that use the module: completions, the
    // man page, report and top --replay work on a machine without it.
    let root = || ProcRoot::open(&cli.proc_dir);
    match &cli.command {
        Command::List(a) => list(&root()?, a),
        Command::Attach(a) => attach(&root()?, a),
        Command::Detach(a) => detach(&root()?, a),
        Command::Start(a) => start(&root()?, a),
        Command::Stop(a) => {
            let root = root()?;
            let vm = resolve_in(&root, &a.vm)?;
            send(&root, &Ctl::Stop(vm))?;
            say(format_args!("stopped {vm}"))
        }
        Command::Status(a) => status(&root()?, a),
        Command::Heatmap(a) => heatmap(&root()?, a),
        Command::Top(a) if a.replay.is_some() => crate::top::run_replay(a),
        Command::Top(a) => crate::top::run(&root()?, a),
        Command::Record(a) => crate::record::record(&root()?, a),
        Command::Report(a) => crate::record::report(a),
        // Not `root()`: a module not loaded is `ept_sampler_up 0`.
        Command::Export(a) => crate::export::run(&cli.proc_dir, a),
        Command::Completions(a) => {
            let mut cmd = crate::cli::command();
            clap_complete::generate(a.shell, &mut cmd, "ept-sampler", &mut std::io::stdout());
            Ok(())
        }
        Command::Man(a) => man(a),
    }
}

/// Where the host's sysfs is (for [`sharing::consumers`]).
const SYS: &str = "/sys";

/// Prints one line on standard output.
fn say(args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    out(&format!("{args}\n"))
}

/// Prints text on standard output; a closed pipe (`| head`) is not an
/// error worth a message.
fn out(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
            path: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn list(root: &ProcRoot, a: &ListArgs) -> Result<(), Error> {
    let rows = vm_rows(root)?;
    if a.json {
        out(&text::list_json(&rows))
    } else {
        out(&text::list_table(&rows))
    }
}

fn attach(root: &ProcRoot, a: &AttachArgs) -> Result<(), Error> {
    send(
        root,
        &Ctl::Attach {
            pid: a.pid,
            fd: a.fd,
        },
    )?;
    // Name what was attached: the process's VMs now attached.
    let rows = vm_rows(root)?;
    let names: Vec<String> = vms_of(&rows, a.pid, a.fd)
        .into_iter()
        .filter(|r| matches!(r.state, VmState::Attached | VmState::Sampling))
        .map(|r| r.vm.to_string())
        .collect();
    if names.is_empty() {
        say(format_args!("attached pid {}", a.pid))
    } else {
        say(format_args!("attached {}", names.join(" ")))
    }
}

fn detach(root: &ProcRoot, a: &DetachArgs) -> Result<(), Error> {
    match &a.vm {
        Some(word) if !a.all => {
            let vm = resolve_in(root, word)?;
            send(root, &Ctl::Detach(vm))?;
            say(format_args!("detached {vm}"))
        }
        _ => {
            send(root, &Ctl::DetachAll)?;
            say(format_args!("detached every VM"))
        }
    }
}

/// The `start` command for `vm` with the flags' settings, checked by the
/// module's own parser before anything is written (a window too large for
/// the granule is a usage error here, not a refusal).
pub fn start_command(vm: VmId, a: &StartArgs) -> Result<Ctl, Error> {
    let max = StoreLayout::max_window(a.granule);
    let settings = Settings {
        period_ms: a.period_ms,
        track: a.mode.track(),
        granule: a.granule,
        window: a.window.unwrap_or(DEFAULT_WINDOW.min(max)),
        flush: a.flush.flush(),
        walk: a.walk.walk(),
        history: a.history,
        idle: a.idle,
    };
    let command = Ctl::Start { vm, settings };
    let line = command.to_string();
    Ctl::parse(line.as_bytes()).map_err(|e| {
        Error::Usage(format!(
            "invalid setting: {e} (see `ept-sampler start --help`)"
        ))
    })?;
    Ok(command)
}

fn start(root: &ProcRoot, a: &StartArgs) -> Result<(), Error> {
    let rows = vm_rows(root)?;
    let vm = match (a.pid, &a.vm) {
        (Some(pid), _) => {
            match vms_of(&rows, pid, a.fd).as_slice() {
                [] => {
                    // Not listed: let the module say why (no such process,
                    // not a VM file).
                    send(root, &Ctl::Attach { pid, fd: a.fd })?;
                    let again = vm_rows(root)?;
                    match vms_of(&again, pid, a.fd).as_slice() {
                        [one] => one.vm,
                        _ => return Err(Error::NoVm(format!("of pid {pid}"))),
                    }
                }
                [one] => {
                    // A refused VM is attached too, so that the module
                    // says why it cannot be sampled.
                    if matches!(one.state, VmState::Detached | VmState::Refused(_)) {
                        send(
                            root,
                            &Ctl::Attach {
                                pid,
                                fd: Some(one.vm.fd),
                            },
                        )?;
                    }
                    one.vm
                }
                many => return Err(several_vms(pid, many, "pick one with --fd")),
            }
        }
        (None, Some(word)) => {
            let vm = resolve(word, &rows)?;
            if state_of(&rows, vm) == Some(VmState::Detached) {
                return Err(Error::NotAttached(vm.to_string()));
            }
            if let Some(VmState::Refused(why)) = state_of(&rows, vm) {
                return Err(Error::Refused {
                    command: format!("start {vm}"),
                    reason: format!("the VM cannot be sampled: {}", text::refusal_text(why)),
                });
            }
            vm
        }
        (None, None) => return Err(Error::Usage("start: name a VM or --pid".into())),
    };
    let command = start_command(vm, a)?;
    send(root, &command)?;
    let line = command.to_string();
    let settings = line.split_once(' ').map_or("", |(_, s)| s);
    say(format_args!("started {vm}: {settings}"))?;
    if let Some(w) = sharing::warning(&sharing::consumers(Path::new(SYS))) {
        eprintln!("{w}");
    }
    Ok(())
}

/// The parsed files of one attached VM: `files` of its directory (of
/// [`VM_FILES`]; `status` polls often and needs no heat map).
pub fn vm_snapshot(root: &ProcRoot, word: &str, files: &[&str]) -> Result<VmSnapshot, Error> {
    let rows = vm_rows(root)?;
    let vm = resolve(word, &rows)?;
    match state_of(&rows, vm) {
        None => return Err(Error::NoVm(vm.to_string())),
        Some(VmState::Detached | VmState::Refused(_)) => {
            return Err(Error::NotAttached(vm.to_string()))
        }
        Some(_) => {}
    }
    let snap = root.snapshot_of(|id| id == vm, files)?.parse()?;
    let found = snap
        .vms
        .into_iter()
        .find(|v| v.row.vm == vm)
        .ok_or_else(|| Error::NoVm(vm.to_string()))?;
    if found.config.is_none() {
        // Listed as attached, but its directory is gone: detached since.
        return Err(Error::NotAttached(vm.to_string()));
    }
    Ok(found)
}

/// The files of a VM `status` reads.
const STATUS_FILES: &[&str] = &["config", "stats", "idle"];

fn status(root: &ProcRoot, a: &StatusArgs) -> Result<(), Error> {
    if let Some(word) = &a.vm {
        let vm = vm_snapshot(root, word, STATUS_FILES)?;
        return out(&text::status(&vm));
    }
    // Only what status prints: heat maps and histories can be large.
    let raw = root.snapshot_of(|_| true, STATUS_FILES)?;
    let host = match raw.file("version") {
        Some(t) => text::host(&Version::parse(t).map_err(|e| Error::format("version", e))?),
        None => String::from("module: no version file"),
    };
    let sys = Path::new(SYS);
    let host = [
        Some(host),
        Params::read(sys).lines(),
        Trust::read(sys).line(),
        sharing::warning(&sharing::consumers(sys)),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n");
    let snap = raw.parse()?;
    let attached: Vec<&VmSnapshot> = snap.vms.iter().filter(|v| v.config.is_some()).collect();
    if attached.is_empty() {
        return say(format_args!(
            "{host}\nno VM attached ({} on the host, see `ept-sampler list`)",
            snap.vms.len()
        ));
    }
    let text: Vec<String> = attached.iter().map(|v| text::status(v)).collect();
    out(&format!("{host}\n\n{}", text.join("\n")))
}

fn heatmap(root: &ProcRoot, a: &HeatmapArgs) -> Result<(), Error> {
    let picture = a.png.is_some() || a.svg.is_some();
    // Pictures draw the history and the stats too.
    let files: &[&str] = if picture {
        &VM_FILES
    } else {
        &["config", "heatmap", "memslots"]
    };
    let vm = vm_snapshot(root, &a.vm, files)?;
    let name = vm.row.vm.to_string();
    let (header, runs) = vm
        .heatmap
        .as_ref()
        .ok_or_else(|| Error::NotSampling(name.clone()))?;
    // Only the views colour (CSV and JSON carry the ages as they are).
    let coloured = picture || matches!(a.format, None | Some(HeatFormat::Text));
    if coloured
        && a.color_by == ColorBy::Age
        && !bins::has_ages(runs, false)
        && !bins::has_ages(runs, true)
    {
        return Err(Error::Other(format!(
            "VM {name}: the heat map has no idle ages to colour by (a module without them, \
             or no round has vouched for them yet: see `ept-sampler status {name}`)"
        )));
    }
    let mut pic = Picture::from_vm(&vm);
    if let Some(heat) = pic.heat.as_mut() {
        heat.by = a.color_by;
    }
    if let Some(path) = &a.png {
        picture::write_picture(&pic, path, PictureFormat::Png, a.width, a.height)?;
    }
    if let Some(path) = &a.svg {
        picture::write_picture(&pic, path, PictureFormat::Svg, a.width, a.height)?;
    }
    match a.format {
        None if picture => Ok(()),
        None | Some(HeatFormat::Text) => {
            let color = match a.color {
                ColorWhen::Always => true,
                ColorWhen::Never => false,
                ColorWhen::Auto => term::color_wanted(),
            };
            let opts = term::Options {
                columns: a.columns.unwrap_or_else(term::terminal_columns),
                rows: a.rows,
                palette: term::Palette::detect(color),
                by: a.color_by,
            };
            out(&term::heatmap(header, runs, &vm.memslots, &opts))
        }
        Some(HeatFormat::Json) => out(&data::json(header, runs, &vm.memslots)?),
        Some(HeatFormat::Csv) => out(&data::csv(runs)?),
    }
}

fn man(a: &ManArgs) -> Result<(), Error> {
    let cmd = crate::cli::command();
    match &a.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir.clone(), e))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| io_error(dir.clone(), e))
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| io_error("man page".into(), e))?;
            out(&String::from_utf8_lossy(&buf))
        }
    }
}
