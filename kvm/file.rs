// SPDX-License-Identifier: GPL-2.0

//! [`VmFile`]: a counted reference to a KVM VM's file, which is what keeps a
//! VM (and kvm.ko and the vendor module, through the file's `f_op->owner`)
//! alive while the sampler uses it.

use core::ptr::NonNull;

use super::bindings;

/// One reference on the `struct file` of a KVM VM (`anon_inode:kvm-vm`).
///
/// # Invariants
///
/// `file` is a KVM VM file on which this value holds one reference; its
/// `kvm` is its `private_data`, the VM's `struct kvm`, alive as long as the
/// file is.
pub(crate) struct VmFile {
    file: NonNull<bindings::file>,
    kvm: NonNull<bindings::kvm>,
}

// SAFETY: a file reference may be used and dropped (fput) from any task.
unsafe impl Send for VmFile {}
// SAFETY: the methods only read the file's constant fields or its atomic
// reference count.
unsafe impl Sync for VmFile {}

impl VmFile {
    /// Takes a new reference on `file`; `None` for a file without a VM.
    ///
    /// # Safety
    ///
    /// `file` is a live KVM VM file on which a reference is held for the
    /// duration of the call (e.g. by an fd table whose lock is held).
    pub(crate) unsafe fn get(file: NonNull<bindings::file>) -> Option<Self> {
        // SAFETY: the caller guarantees `file` is live; `private_data` of a
        // VM file is set at creation to the VM and never changes.
        let kvm = NonNull::new(unsafe { (*file.as_ptr()).private_data }.cast())?;
        // SAFETY: the caller guarantees `file` is live and referenced.
        unsafe { bindings::ept_sampler_get_file(file.as_ptr()) };
        // INVARIANT: we took the reference just above; the caller says it
        // is a VM file, and `kvm` is its private data.
        Some(VmFile { file, kvm })
    }

    /// The VM.
    pub(crate) fn kvm(&self) -> NonNull<bindings::kvm> {
        self.kvm
    }

    /// Whether this is the last reference: the process that owned the VM
    /// closed it (or exited) and only the sampler keeps the VM alive.
    pub(crate) fn is_orphan(&self) -> bool {
        // SAFETY: the file is live and we hold a reference (invariant).
        unsafe { bindings::ept_sampler_file_count(self.file.as_ptr()) <= 1 }
    }

    /// The file, for reading its constant fields.
    pub(crate) fn raw(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    /// Whether `self` and `other` are the same open file.
    pub(crate) fn same_as(&self, other: *const bindings::file) -> bool {
        core::ptr::eq(self.file.as_ptr(), other)
    }
}

impl Drop for VmFile {
    fn drop(&mut self) {
        // fput() never releases synchronously: if this is the last
        // reference, the VM is destroyed from task_work when this task
        // returns to user space, or from delayed work for a kthread.
        // SAFETY: we own one reference (invariant) and give it back once.
        unsafe { bindings::fput(self.file.as_ptr()) };
    }
}
