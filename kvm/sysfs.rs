// SPDX-License-Identifier: GPL-2.0

//! Reading small sysfs attributes from the kernel.
//!
//! KVM's vendor modules export no symbol that tells whether EPT, its A/D
//! bits or NPT are in use; their module parameters do, and sysfs shows them
//! exactly as an administrator sees them. Reading them through the VFS needs
//! no private symbol and stays correct across kernel versions.

use core::ffi::CStr;
use core::ptr::{self, NonNull};

use kernel::error::{code, Result};

use super::bindings;

/// Reads the file at `path` into `buf` and returns the text, trimmed of
/// trailing white space. Must be called in process context (it may sleep).
pub(crate) fn read<'a>(path: &CStr, buf: &'a mut [u8]) -> Result<&'a str> {
    let n = KernelFile::open(path)?.read(buf)?;
    let text = buf.get(..n).ok_or(code::EIO)?;
    let text = core::str::from_utf8(text).map_err(|_| code::EIO)?;
    Ok(text.trim_end())
}

/// A file the kernel opened by path for reading, closed on drop.
///
/// # Invariants
///
/// `file` came from `filp_open()` and is closed only by `drop`.
struct KernelFile {
    file: NonNull<bindings::file>,
}

impl KernelFile {
    /// Opens `path` read-only (process context: it may sleep).
    fn open(path: &CStr) -> Result<Self> {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let file = unsafe {
            bindings::filp_open(bindings::c_str(path), 0 /* O_RDONLY */, 0)
        };
        if bindings::is_err(file) {
            return Err(bindings::ptr_err(file));
        }
        let file = NonNull::new(file).ok_or(code::ENOENT)?;
        // INVARIANT: opened just above.
        Ok(KernelFile { file })
    }

    /// Reads from the start of the file into `buf`; returns the bytes read.
    fn read(&self, buf: &mut [u8]) -> Result<usize> {
        let mut pos: bindings::loff_t = 0;
        // SAFETY: `file` is open (invariant); `buf` is valid for writes of
        // `buf.len()` bytes and `pos` for the call.
        let n = unsafe {
            bindings::kernel_read(
                self.file.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut pos,
            )
        };
        usize::try_from(n).map_err(|_| code::EIO)
    }
}

impl Drop for KernelFile {
    fn drop(&mut self) {
        // SAFETY: opened by `open` and closed once, here (invariant); no one
        // else holds this reference.
        unsafe { bindings::filp_close(self.file.as_ptr(), ptr::null_mut()) };
    }
}
