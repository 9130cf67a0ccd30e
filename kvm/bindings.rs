// SPDX-License-Identifier: GPL-2.0

//! The module's own bindgen output for `kvm/bindings.h`, generated against
//! the target kernel tree at build time (see `Kbuild`), so struct layouts
//! always match the running KVM.

#![allow(
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ptr_cast_constness,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    improper_ctypes,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn
)]

// Blocklisted in bindgen_parameters, as the kernel's own bindings do, so that
// sizes come out as `usize`/`isize`.
type __kernel_size_t = usize;
type __kernel_ssize_t = isize;
type __kernel_ptrdiff_t = isize;

include!("kvm_bindings_generated.rs");

/// A C string's address for a C function taking `const char *`.
///
/// The kernel's clippy configuration forbids `CStr::as_ptr` (the kernel's
/// `char` is unsigned, core's `c_char` signed on x86); the bytes are the same.
pub(crate) fn c_str(s: &core::ffi::CStr) -> *const core::ffi::c_char {
    s.to_bytes_with_nul().as_ptr().cast()
}

/// `MAX_ERRNO` from `include/linux/err.h`.
const MAX_ERRNO: usize = 4095;

/// `IS_ERR()`: whether a pointer returned by a kernel function encodes an
/// errno instead of pointing at an object.
pub(crate) fn is_err<T>(ptr: *const T) -> bool {
    (ptr as usize) >= 0usize.wrapping_sub(MAX_ERRNO)
}

/// `PTR_ERR()` for a pointer [`is_err`] accepted.
pub(crate) fn ptr_err<T>(ptr: *const T) -> kernel::error::Error {
    // An error pointer holds a negative errno in -MAX_ERRNO..0.
    kernel::error::Error::from_errno(ptr as isize as i32)
}
