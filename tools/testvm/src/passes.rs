//! Live pass counters: how many whole passes each vCPU has completed, in a
//! small file that testvm maps shared and updates as the guest runs.
//!
//! A measurement of the guest's accesses needs a window that ends on an
//! event, not after a guessed time: `page-idle` marks pages idle, then waits
//! until every vCPU has completed whole passes that began after the mark
//! (every page of every range touched since), however slow the testbed is.
//! The truth file names the file (`passes_file`); its contents are one
//! native-endian `u64` per vCPU, nothing else, so its size gives the number
//! of vCPUs.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// A shared mapping of a pass-counter file.
pub struct PassCounters {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the mapping is only ever accessed through `AtomicU64`s, which may be
// shared between threads; it lives until `drop` unmaps it.
unsafe impl Send for PassCounters {}
// SAFETY: as for Send: every access is atomic.
unsafe impl Sync for PassCounters {}

impl PassCounters {
    /// Creates `path` anew with `n` zeroed counters and maps it. A file left
    /// by an earlier run is unlinked, not truncated: a reader still mapping
    /// it keeps its pages (truncating them under it would be a SIGBUS).
    pub fn create(path: &Path, n: usize) -> Result<PassCounters, String> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove old {}: {e}", path.display())),
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| format!("cannot create pass counters {}: {e}", path.display()))?;
        f.set_len((n * 8) as u64)
            .map_err(|e| format!("cannot size pass counters {}: {e}", path.display()))?;
        Self::map(Some(&f), n, path)
    }

    /// `n` zeroed counters in memory of this process alone (no truth file).
    pub fn anonymous(n: usize) -> Result<PassCounters, String> {
        Self::map(None, n, Path::new("(anonymous)"))
    }

    /// Maps the counters of a running testvm.
    pub fn open(path: &Path) -> Result<PassCounters, String> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open pass counters {}: {e}", path.display()))?;
        let size = f
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
        if size == 0 || size % 8 != 0 {
            return Err(format!(
                "{}: {size} bytes is not a whole number of counters",
                path.display()
            ));
        }
        Self::map(Some(&f), (size / 8) as usize, path)
    }

    fn map(f: Option<&File>, n: usize, path: &Path) -> Result<PassCounters, String> {
        if n == 0 {
            return Err(format!("{}: no counters", path.display()));
        }
        let (flags, fd) = match f {
            Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh shared mapping of n * 8 zero-filled bytes, or of
        // the first n * 8 bytes of an open file of at least that size; the
        // kernel chooses the address. Pages are 8-byte aligned, so each u64
        // slot is a valid AtomicU64.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                n * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let ptr = NonNull::new(p.cast::<AtomicU64>())
            .ok_or_else(|| format!("cannot map {}: null mapping", path.display()))?;
        Ok(PassCounters { ptr, len: n })
    }

    /// One counter per vCPU.
    pub fn counters(&self) -> &[AtomicU64] {
        // SAFETY: ptr maps len AtomicU64s (see `map`) until self is dropped,
        // and the returned borrow cannot outlive self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PassCounters {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no borrow of it
        // outlives self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len * 8);
        }
    }
}

/// Whether every vCPU has completed `passes` whole passes that began after
/// the moment `at` was read: a pass in progress then may have begun before
/// it, so each counter must have moved on by `passes + 1`.
pub fn whole_passes_since(at: &[u64], now: &[u64], passes: u64) -> bool {
    at.len() == now.len()
        && at
            .iter()
            .zip(now)
            .all(|(a, n)| n.saturating_sub(*a) > passes)
}
