//! Live pass counters: how many whole passes each vCPU has completed, in a
//! small file that testvm maps shared and updates as the guest runs.
//!
//! A measurement of the guest's accesses needs a window that ends on an
//! event, not after a guessed time: `page-idle` marks pages idle, then waits
//! until every vCPU has completed whole passes that began after the mark
//! (every page of every range touched since), however slow the testbed is.
//! The truth file names the file (`passes_file`, an absolute path); its
//! contents are one native-endian `u64` per vCPU, nothing else, so its size
//! gives the number of vCPUs.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// A shared mapping of `len` u64 slots, unmapped on drop.
struct Mapping {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the mapping is only ever accessed through `AtomicU64`s, which may be
// shared between threads; it lives until `drop` unmaps it.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: every access is atomic.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `n` slots of `f` (`None`: zero-filled memory), writable or not.
    fn new(f: Option<&File>, n: usize, writable: bool, what: &Path) -> Result<Mapping, String> {
        if n == 0 {
            return Err(format!("{}: no counters", what.display()));
        }
        let (flags, fd) = match f {
            Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of n * 8 zero-filled bytes, or of
        // the first n * 8 bytes of an open file that callers have checked is
        // at least that long (testvm never truncates a counter file: a new
        // run unlinks it); the kernel chooses the address, so no existing
        // mapping is replaced.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), n * 8, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {}: {}",
                what.display(),
                std::io::Error::last_os_error()
            ));
        }
        let ptr = NonNull::new(p.cast::<AtomicU64>())
            .ok_or_else(|| format!("cannot map {}: null mapping", what.display()))?;
        Ok(Mapping { ptr, len: n })
    }

    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: ptr is page aligned (so 8-byte aligned) and maps len u64
        // slots (see `new`) until self is dropped; the borrow cannot outlive
        // self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no borrow of it
        // outlives self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len * 8);
        }
    }
}

/// testvm's side: the counters it increments, one per vCPU.
pub struct PassCounters(Mapping);

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
        Mapping::new(Some(&f), n, true, path).map(PassCounters)
    }

    /// `n` zeroed counters in memory of this process alone (no truth file).
    pub fn anonymous(n: usize) -> Result<PassCounters, String> {
        Mapping::new(None, n, true, Path::new("(anonymous)")).map(PassCounters)
    }

    /// One counter per vCPU.
    pub fn counters(&self) -> &[AtomicU64] {
        self.0.slots()
    }
}

/// A reader's side (page-idle): a read-only mapping of a running testvm's
/// counters.
pub struct PassReader(Mapping);

impl PassReader {
    pub fn open(path: &Path) -> Result<PassReader, String> {
        let f = File::open(path)
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
        Mapping::new(Some(&f), (size / 8) as usize, false, path).map(PassReader)
    }

    /// Number of vCPUs.
    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The counters now. Relaxed loads: the only atomic access Rust allows
    /// on read-only memory, and all a reader needs (the counts publish no
    /// other data).
    pub fn read(&self) -> Vec<u64> {
        self.0
            .slots()
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
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
