// SPDX-License-Identifier: GPL-2.0

//! Reading small sysfs attributes from the kernel.
//!
//! KVM's vendor modules export no symbol that tells whether EPT, its A/D
//! bits or NPT are in use; their module parameters do, and sysfs shows them
//! exactly as an administrator sees them. Reading them through the VFS needs
//! no private symbol and stays correct across kernel versions.

use core::ffi::CStr;
use core::ptr;

use kernel::error::{code, Result};

use super::bindings;

/// Reads the file at `path` into `buf` and returns the text, trimmed of
/// trailing white space. Must be called in process context (it may sleep).
pub(crate) fn read<'a>(path: &CStr, buf: &'a mut [u8]) -> Result<&'a str> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let file = unsafe {
        bindings::filp_open(bindings::c_str(path), 0 /* O_RDONLY */, 0)
    };
    if bindings::is_err(file) {
        return Err(bindings::ptr_err(file));
    }
    let mut pos: bindings::loff_t = 0;
    // SAFETY: `file` was opened above and is not closed until after this
    // call; `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { bindings::kernel_read(file, buf.as_mut_ptr().cast(), buf.len(), &mut pos) };
    // SAFETY: `file` came from `filp_open` and is closed exactly once; no
    // one else holds this reference.
    unsafe { bindings::filp_close(file, ptr::null_mut()) };
    let n = usize::try_from(n).map_err(|_| code::EIO)?;
    let text = buf.get(..n).ok_or(code::EIO)?;
    let text = core::str::from_utf8(text).map_err(|_| code::EIO)?;
    Ok(text.trim_end())
}
