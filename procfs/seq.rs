// SPDX-License-Identifier: GPL-2.0

//! A `seq_file` as a [`core::fmt::Write`] sink, for `show` callbacks.

use core::ffi::{c_int, c_void};
use core::fmt;

use crate::kvm::bindings;

/// The `seq_file` a `show` callback fills.
///
/// # Invariants
///
/// `ptr` points to the `seq_file` of a `show` call that is in progress.
pub(crate) struct SeqFile {
    ptr: *mut bindings::seq_file,
}

impl fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: by the type invariant `ptr` is valid for this show call;
        // `s` is valid for reads of `s.len()` bytes.
        let ret = unsafe { bindings::seq_write(self.ptr, s.as_ptr().cast(), s.len()) };
        // On overflow seq_file notes it and calls `show` again with a
        // larger buffer; stopping the formatting early is all we do.
        if ret == 0 {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

/// A file whose whole content is produced by one `show` call
/// (`proc_create_single_data`).
pub(crate) trait ShowFile {
    /// Runs when the file is opened, before any seq_file lock is taken:
    /// the place for work that must not nest inside one (reading sysfs
    /// through the VFS, which uses seq_file itself).
    fn prepare(_data: usize) {}

    /// Writes the file's content; `data` is the file's private data. Runs
    /// in process context; may sleep.
    fn show(m: &mut SeqFile, data: usize) -> fmt::Result;
}

/// The C `show` callback for `T`.
///
/// # Safety
///
/// Only to be called by the seq_file core, with the `seq_file` of a read in
/// progress.
pub(crate) unsafe extern "C" fn show<T: ShowFile>(
    m: *mut bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // SAFETY: the seq_file core passes the seq_file of the read in
    // progress; single_open() stored the entry's data in `private`.
    let data = unsafe { (*m).private } as usize;
    // INVARIANT: `m` is valid until we return; `file` does not outlive
    // this call.
    let mut file = SeqFile { ptr: m };
    // An error here is an overflow the seq_file core already knows about
    // (it retries with a larger buffer), not a failure of the read.
    let _ = T::show(&mut file, data);
    0
}
