// SPDX-License-Identifier: GPL-2.0

//! [`VBuf`]: a zeroed, vmalloc'd array for the large per-VM stores (heat
//! cells, the history ring), sized once when sampling starts.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use kernel::error::{code, Result};

use super::bindings;

/// Element types for which all-zero bytes are a valid value.
///
/// # Safety
///
/// Implementors must be plain integers (or made of them): any bit pattern,
/// in particular all zeroes, is a valid value.
pub(crate) unsafe trait ZeroValid: Copy {}
// SAFETY: integers.
unsafe impl ZeroValid for u8 {}
// SAFETY: integers.
unsafe impl ZeroValid for u16 {}
// SAFETY: integers.
unsafe impl ZeroValid for u32 {}
// SAFETY: integers.
unsafe impl ZeroValid for u64 {}

/// `len` zeroed `T`s in vmalloc memory, freed on drop.
///
/// # Invariants
///
/// `ptr` points to a vmalloc allocation of `len * size_of::<T>()` bytes (or
/// is dangling when that is zero), exclusively owned.
pub(crate) struct VBuf<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: the buffer is exclusively owned; vfree() may run in any task.
unsafe impl<T: ZeroValid + Send> Send for VBuf<T> {}
// SAFETY: shared access only reads.
unsafe impl<T: ZeroValid + Sync> Sync for VBuf<T> {}

impl<T: ZeroValid> VBuf<T> {
    /// Allocates `len` zeroed elements; `ENOMEM` when memory is short, or
    /// when the size does not fit a `usize`.
    pub(crate) fn zeroed(len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(core::mem::size_of::<T>())
            .ok_or(code::ENOMEM)?;
        if bytes == 0 {
            // INVARIANT: nothing to allocate; a dangling pointer is never read.
            return Ok(VBuf {
                ptr: NonNull::dangling(),
                len,
                _owns: PhantomData,
            });
        }
        // SAFETY: vzalloc may sleep; callers are in process context. It
        // returns page-aligned memory, aligned for any integer type.
        let raw = unsafe { bindings::vzalloc_noprof(bytes as core::ffi::c_ulong) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(code::ENOMEM)?;
        // INVARIANT: a fresh allocation of exactly `bytes` bytes.
        Ok(VBuf {
            ptr,
            len,
            _owns: PhantomData,
        })
    }

    /// The allocation's size in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.len.saturating_mul(core::mem::size_of::<T>())
    }
}

impl<T: ZeroValid> Deref for VBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised (zeroed, `ZeroValid`) elements, owned.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> DerefMut for VBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> Drop for VBuf<T> {
    fn drop(&mut self) {
        if self.bytes() != 0 {
            // SAFETY: our own vmalloc allocation, freed once.
            unsafe { bindings::vfree(self.ptr.as_ptr().cast()) };
        }
    }
}
