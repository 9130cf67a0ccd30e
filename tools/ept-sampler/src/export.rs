// SPDX-License-Identifier: GPL-2.0

//! `ept-sampler export`: Prometheus metrics of every VM, served on
//! `/metrics` ([`tiny_http`]) or written for node_exporter's textfile
//! collector. The metrics themselves are [`metrics`]'s.

pub mod metrics;
pub mod vmm;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ept_core::procfs::version::Version;
use ept_core::procfs::vms::VmState;

use crate::cli::ExportArgs;
use crate::error::Error;
use crate::model::Snapshot;
use crate::source::ProcRoot;

use self::vmm::Vmm;

/// The files of a VM's directory the metrics need (not the heat map).
const FILES: [&str; 3] = ["config", "stats", "idle"];

/// The textfile the collector reads, in `--textfile DIR`.
pub const TEXTFILE: &str = "ept_sampler.prom";

/// The longest a read serves scrapes: VMs come and go, a stop or the
/// module's unloading shows within it, whatever the VMs' periods.
const MAX_TTL: Duration = Duration::from_secs(1);

/// One read of the module, encoded.
pub struct Scrape {
    /// The exposition text.
    pub text: String,
    /// Why the module was not read (`ept_sampler_up 0`), if it was not.
    pub down: Option<String>,
    /// How long the text serves scrapes: the shortest period of the VMs
    /// being sampled (each VM has at most one round more by then), at most
    /// [`MAX_TTL`].
    pub ttl: Duration,
}

/// Reads `/proc/ept_sampler` under `proc_dir` and the VMM command lines
/// under `host_proc` once, and encodes the metrics. The module not loaded
/// or unreadable is `ept_sampler_up 0` with the reason in `down`, not an
/// error: a scrape must answer.
pub fn scrape(proc_dir: &Path, host_proc: &Path) -> Result<Scrape, Error> {
    // A VM whose files do not parse (detached while read) is left out of
    // the VM series and counted, not the whole host down.
    let read = || -> Result<(Snapshot, usize, String), Error> {
        let root = ProcRoot::open(proc_dir)?;
        let raw = root.snapshot_of(|_| true, &FILES)?;
        let version = raw.file("version").unwrap_or_default().to_string();
        Version::parse(&version).map_err(|e| Error::format("version", e))?;
        let (snap, unread) = raw.parse_each()?;
        Ok((snap, unread.len(), version))
    };
    // The encoder's and registry's errors are the exporter's own bugs,
    // never `up 0`.
    let internal = |e: prometheus::Error| Error::Other(format!("encoding the metrics: {e}"));
    match read() {
        Ok((snap, unread, text)) => {
            let version = Version::parse(&text).map_err(|e| Error::format("version", e))?;
            let families =
                metrics::families(&snap, &version, unread, &|pid| Vmm::of_pid(host_proc, pid))
                    .map_err(internal)?;
            Ok(Scrape {
                text: metrics::encode(&families).map_err(internal)?,
                down: None,
                ttl: ttl(&snap),
            })
        }
        Err(e) => Ok(Scrape {
            text: metrics::encode(&metrics::down().map_err(internal)?).map_err(internal)?,
            down: Some(e.to_string()),
            ttl: MAX_TTL,
        }),
    }
}

/// The shortest period of the VMs being sampled, at most [`MAX_TTL`].
fn ttl(snap: &Snapshot) -> Duration {
    snap.vms
        .iter()
        .filter(|v| v.row.state == VmState::Sampling)
        .filter_map(|v| v.config.as_ref()?.settings)
        .map(|s| Duration::from_millis(u64::from(s.period_ms)))
        .min()
        .map_or(MAX_TTL, |p| p.min(MAX_TTL))
}

/// The last read and when it began: the scrapes within its `ttl` share it.
#[derive(Default)]
pub struct Cache {
    last: Option<(Instant, Scrape)>,
}

impl Cache {
    /// The read current at `now`, or a new one by `read`, taken as begun
    /// at `now`. A failed read is not kept: the next scrape reads again.
    pub fn get(
        &mut self,
        now: Instant,
        read: impl FnOnce() -> Result<Scrape, Error>,
    ) -> Result<&Scrape, Error> {
        let current = self
            .last
            .as_ref()
            .is_some_and(|(at, s)| now.saturating_duration_since(*at) < s.ttl);
        if !current {
            self.last = None;
            self.last = Some((now, read()?));
        }
        match &self.last {
            Some((_, s)) => Ok(s),
            None => Err(Error::Other("no read of /proc/ept_sampler".into())),
        }
    }
}

/// Runs `export`.
pub fn run(proc_dir: &Path, a: &ExportArgs) -> Result<(), Error> {
    match &a.textfile {
        Some(dir) => textfile(proc_dir, a, dir),
        None => serve(proc_dir, a),
    }
}

/// Says on standard error when the module goes from read to not read and
/// back, once per change (a journal line, not one per scrape).
struct Health {
    last: Option<Option<String>>,
}

impl Health {
    fn note(&mut self, down: &Option<String>) {
        if self.last.as_ref() == Some(down) {
            return;
        }
        match down {
            Some(why) => eprintln!("ept-sampler export: serving ept_sampler_up 0: {why}"),
            None if self.last.is_some() => {
                eprintln!("ept-sampler export: the module is read again")
            }
            None => {}
        }
        self.last = Some(down.clone());
    }
}

/// Serves `/metrics` until killed.
fn serve(proc_dir: &Path, a: &ExportArgs) -> Result<(), Error> {
    let server = tiny_http::Server::http(a.listen).map_err(|e| {
        Error::Other(format!(
            "cannot listen on {}: {e} (another exporter on that port? --listen picks another address)",
            a.listen
        ))
    })?;
    // The address bound, not the one asked for: port 0 picks a free port
    // (the tests' way to run beside anything).
    let bound = server.server_addr().to_ip().unwrap_or(a.listen);
    eprintln!("ept-sampler export: serving http://{bound}/metrics");
    let mut health = Health { last: None };
    let mut cache = Cache::default();
    loop {
        // tiny_http's accept thread ends at its first error: then so does
        // the exporter, with that error (a restart, not a silent exit 0).
        let request = server
            .recv()
            .map_err(|e| Error::Other(format!("http://{bound}: no more requests: {e}")))?;
        let path = request.url().split('?').next().unwrap_or("");
        let method = request.method().clone();
        let response = match (&method, path) {
            (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics") => {
                // A failure here is the encoder's, not the module's (that
                // is `up 0`): answer 500 and serve on.
                match cache.get(Instant::now(), || scrape(proc_dir, &a.host_proc)) {
                    Ok(s) => {
                        health.note(&s.down);
                        text_response(200, prometheus::TEXT_FORMAT, s.text.clone())
                    }
                    Err(e) => {
                        eprintln!("ept-sampler export: {e}");
                        text_response(500, "text/plain", format!("{e}\n"))
                    }
                }
            }
            (tiny_http::Method::Get | tiny_http::Method::Head, "/") => text_response(
                200,
                "text/html; charset=utf-8",
                "<html><head><title>ept-sampler exporter</title></head><body>\
                 <h1>ept-sampler exporter</h1><p><a href=\"/metrics\">Metrics</a></p>\
                 </body></html>\n"
                    .into(),
            ),
            (tiny_http::Method::Get | tiny_http::Method::Head, _) => text_response(
                404,
                "text/plain",
                "not found: the metrics are on /metrics\n".into(),
            ),
            _ => with_header(
                text_response(405, "text/plain", "only GET and HEAD\n".into()),
                "Allow",
                "GET, HEAD",
            ),
        };
        // Written by a thread of its own, so that a client that does not
        // read cannot hold up the next scrape; one that went away is its
        // own business.
        std::thread::spawn(move || {
            let _ = request.respond(response);
        });
    }
}

/// `name: value`; a header tiny_http would refuse (never one of this
/// file's constants) is left out.
fn with_header<R: std::io::Read>(
    response: tiny_http::Response<R>,
    name: &str,
    value: &str,
) -> tiny_http::Response<R> {
    match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}

fn text_response(
    code: u16,
    content_type: &str,
    body: String,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let response = tiny_http::Response::from_string(body).with_status_code(code);
    with_header(response, "Content-Type", content_type)
}

/// Writes `DIR/ept_sampler.prom` every `--interval` (or once), through a
/// temporary file renamed into place, so that the collector never reads
/// half a file.
fn textfile(proc_dir: &Path, a: &ExportArgs, dir: &Path) -> Result<(), Error> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Usage(format!(
                "--textfile {}: not a directory",
                dir.display()
            )))
        }
        Err(e) => return Err(crate::source::io_error(dir.to_path_buf(), e)),
    }
    let target = dir.join(TEXTFILE);
    // Not *.prom: the collector ignores it while it is written. This
    // process's own, made new (never through a link someone put there).
    let temp: PathBuf = dir.join(format!(".{TEXTFILE}.{}.tmp", std::process::id()));
    let mut health = Health { last: None };
    loop {
        let written = scrape(proc_dir, &a.host_proc).and_then(|s| {
            health.note(&s.down);
            write_atomically(&temp, &target, s.text.as_bytes())
                .map_err(|e| crate::source::io_error(target.clone(), e))
        });
        match written {
            Err(e) if a.once => return Err(e),
            // A full disk or a passing error: said, and tried again at the
            // next interval (the collector keeps the last whole file).
            Err(e) => eprintln!("ept-sampler export: {e}"),
            Ok(()) if a.once => return Ok(()),
            Ok(()) => {}
        }
        std::thread::sleep(a.interval);
    }
}

/// Writes `text` to the new file `temp`, readable by all (the collector
/// runs as another user; the umask is not asked), then renames it to
/// `target`; on failure, `temp` is removed.
fn write_atomically(temp: &Path, target: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // A stale one of a process that had this pid and was killed mid-write.
    let _ = std::fs::remove_file(temp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(temp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text)?;
        f.sync_all()?;
        std::fs::rename(temp, target)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(temp);
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::{ttl, Cache, Scrape, MAX_TTL};
    use crate::error::Error;
    use crate::source::ProcRoot;

    fn read(n: &mut u32, ttl_ms: u64) -> Result<Scrape, Error> {
        *n += 1;
        Ok(Scrape {
            text: format!("read {n}"),
            down: None,
            ttl: Duration::from_millis(ttl_ms),
        })
    }

    /// Many scrapes within a read's period share it; the first after it,
    /// and the first after a failed read, read again. Time is given, not
    /// waited for.
    #[test]
    fn scrapes_within_a_period_share_one_read() {
        let mut cache = Cache::default();
        let mut n = 0;
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let text =
            |c: &mut Cache, at, n: &mut u32| c.get(at, || read(n, 100)).map(|s| s.text.clone());
        assert_eq!(text(&mut cache, t0, &mut n).ok().as_deref(), Some("read 1"));
        for at in [0, 1, 50, 99] {
            assert_eq!(
                text(&mut cache, t0 + ms(at), &mut n).ok().as_deref(),
                Some("read 1")
            );
        }
        assert_eq!(
            text(&mut cache, t0 + ms(100), &mut n).ok().as_deref(),
            Some("read 2")
        );
        assert!(cache
            .get(t0 + ms(250), || Err(Error::Other("x".into())))
            .is_err());
        assert_eq!(
            text(&mut cache, t0 + ms(251), &mut n).ok().as_deref(),
            Some("read 3")
        );
        assert_eq!(n, 3);
    }

    /// The period shared is the shortest of the VMs sampled (the fixture's
    /// 72-4 at 100 ms, 85-4 at 200 ms), at most a second.
    #[test]
    fn a_read_lasts_the_shortest_sampling_period() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npt-7.3/phase1");
        let raw = ProcRoot::open(&dir).unwrap().snapshot().unwrap();
        let mut snap = raw.parse().unwrap();
        assert_eq!(ttl(&snap), Duration::from_millis(100));
        for vm in &mut snap.vms {
            if let Some(s) = vm.config.as_mut().and_then(|c| c.settings.as_mut()) {
                s.period_ms = 60_000;
            }
        }
        assert_eq!(ttl(&snap), MAX_TTL);
        snap.vms.clear();
        assert_eq!(ttl(&snap), MAX_TTL);
    }
}
