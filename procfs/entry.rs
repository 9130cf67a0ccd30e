// SPDX-License-Identifier: GPL-2.0

//! Owned procfs directories and the three kinds of file the module serves:
//! text produced by one `show` call (`seq_file`), binary read at any offset,
//! and a command sink.

use core::ffi::{c_char, c_void, CStr};
use core::ptr::{self, NonNull};

use kernel::alloc::KBox;
use kernel::error::{code, Result};
use kernel::prelude::GFP_KERNEL;

use super::seq::{self, ShowFile};
use crate::kvm::bindings;
use crate::kvm::compat::user_slice;

/// Read-only for root.
pub(crate) const READ_ONLY: bindings::umode_t = 0o400;
/// Write-only for root.
pub(crate) const WRITE_ONLY: bindings::umode_t = 0o200;
/// A directory only root may enter.
pub(crate) const DIR_MODE: bindings::umode_t = 0o500;

/// A file read at any offset (`pread`), such as a binary layout, from a
/// snapshot taken when it is opened: however many reads a reader makes, it
/// reads one version of the file.
pub(crate) trait ReadAt {
    /// What an open file reads from.
    /// `Sync` too: concurrent reads (`pread`) of one open file share it.
    type Snapshot: Send + Sync;
    /// Takes the snapshot for an open of the file whose private data is
    /// `data`.
    fn open(data: usize) -> Result<Self::Snapshot>;
    /// Fills `buf` with the snapshot's bytes from `offset`; returns how many
    /// (0 at the end).
    fn read_at(snapshot: &Self::Snapshot, offset: u64, buf: &mut [u8]) -> usize;
}

/// A file that takes one command per `write`.
pub(crate) trait Command {
    /// Handles the bytes of one write. `data` is the file's private data.
    fn write(data: usize, bytes: &[u8]) -> Result<()>;
}

/// A procfs directory, removed with everything below it on drop.
///
/// # Invariants
///
/// `dir` is an entry made by `proc_mkdir_mode()`, removed only by its own
/// `drop`, which for a subdirectory runs before its parent's
/// ([`ProcDir::new_child`]): `proc_remove()` of a parent frees the entries
/// below it.
pub(crate) struct ProcDir {
    dir: NonNull<bindings::proc_dir_entry>,
}

// SAFETY: procfs entries may be created and removed from any task; procfs
// does its own locking.
unsafe impl Send for ProcDir {}
// SAFETY: `&self` methods only add entries below it, which procfs
// serialises (`proc_subdir_lock`).
unsafe impl Sync for ProcDir {}

impl ProcDir {
    /// Creates directory `name` in /proc.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        // SAFETY: NULL is /proc itself, which is never removed.
        unsafe { Self::make(name, ptr::null_mut()) }
    }

    /// Creates directory `name` below `parent`.
    ///
    /// # Safety
    ///
    /// The directory returned is dropped before `parent` is.
    pub(crate) unsafe fn new_child(name: &CStr, parent: &ProcDir) -> Result<Self> {
        // SAFETY: `parent` is live (its invariant) and outlives the child
        // (caller).
        unsafe { Self::make(name, parent.dir.as_ptr()) }
    }

    /// # Safety
    ///
    /// `parent` is NULL or a live directory that outlives the one made.
    unsafe fn make(name: &CStr, parent: *mut bindings::proc_dir_entry) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated (procfs copies it); `parent` is
        // NULL or a live directory (caller).
        let dir = unsafe { bindings::proc_mkdir_mode(bindings::c_str(name), DIR_MODE, parent) };
        // NULL also when the name is taken.
        let dir = NonNull::new(dir).ok_or(code::EEXIST)?;
        // INVARIANT: made by proc_mkdir_mode() just above, below a parent
        // that outlives it (caller).
        Ok(ProcDir { dir })
    }

    /// Adds a file whose content one [`ShowFile::show`] call produces,
    /// after [`ShowFile::prepare`] ran at open.
    pub(crate) fn add_show<T: ShowFile>(&self, name: &CStr, data: usize) -> Result<()> {
        self.add_ops(name, READ_ONLY, &ShowOps::<T>::OPS, data)
    }

    /// Adds a file with the given operations.
    fn add_ops(
        &self,
        name: &CStr,
        mode: bindings::umode_t,
        ops: &'static bindings::proc_ops,
        data: usize,
    ) -> Result<()> {
        // SAFETY: `name` is NUL-terminated (procfs copies it); `self.dir`
        // is live (invariant); `ops` lives forever; procfs stores `data`
        // for the callbacks without dereferencing it.
        let entry = unsafe {
            bindings::proc_create_data(
                bindings::c_str(name),
                mode,
                self.dir.as_ptr(),
                ops,
                data as *mut c_void,
            )
        };
        if entry.is_null() {
            Err(code::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// Adds a file read at any offset through [`ReadAt`].
    pub(crate) fn add_read_at<T: ReadAt>(&self, name: &CStr, data: usize) -> Result<()> {
        self.add_ops(name, READ_ONLY, &ReadAtOps::<T>::OPS, data)
    }

    /// Adds a file that takes commands through [`Command`]; a write needs
    /// CAP_SYS_ADMIN in the credentials the file was opened with.
    pub(crate) fn add_command<T: Command>(&self, name: &CStr, data: usize) -> Result<()> {
        self.add_ops(name, WRITE_ONLY, &CommandOps::<T>::OPS, data)
    }
}

impl Drop for ProcDir {
    fn drop(&mut self) {
        // SAFETY: live by the invariant and removed only here. proc_remove()
        // waits for reads and writes in progress, so no callback runs (and
        // no private data is used) after it returns.
        unsafe { bindings::proc_remove(self.dir.as_ptr()) };
    }
}

/// The private data of a proc file.
///
/// # Safety
///
/// `file` is a proc file being read or written.
unsafe fn private_data(file: *mut bindings::file) -> usize {
    // SAFETY: a proc file's inode is live while the file is; its i_private
    // is the data given at creation (pde_data()).
    unsafe { (*(*file).f_inode).i_private as usize }
}

/// `proc_create_single_data()` with an open hook: open runs
/// [`ShowFile::prepare`], then `single_open()`; reads go through seq_file.
struct ShowOps<T>(core::marker::PhantomData<T>);

impl<T: ShowFile> ShowOps<T> {
    const OPS: bindings::proc_ops = bindings::proc_ops {
        proc_open: Some(Self::open),
        proc_read_iter: Some(bindings::seq_read_iter),
        proc_lseek: Some(bindings::seq_lseek),
        proc_release: Some(bindings::single_release),
        // SAFETY: proc_ops is plain data; zero means "no such operation".
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// Called by procfs to open a file made by `add_show`.
    unsafe extern "C" fn open(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> core::ffi::c_int {
        // SAFETY: procfs passes the file's live inode; i_private is the
        // entry's data (pde_data()).
        let data = unsafe { (*inode).i_private };
        T::prepare(data as usize);
        // SAFETY: `file` is being opened; `seq::show::<T>` expects `data`
        // as the seq_file's private data, which single_open() stores.
        unsafe { bindings::single_open(file, Some(seq::show::<T>), data) }
    }
}

struct ReadAtOps<T>(core::marker::PhantomData<T>);

impl<T: ReadAt> ReadAtOps<T> {
    const OPS: bindings::proc_ops = bindings::proc_ops {
        proc_open: Some(Self::open),
        proc_read: Some(Self::read),
        proc_release: Some(Self::release),
        // SAFETY: proc_ops is plain data; zero means "no such operation".
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// Called by procfs to open a file made by `add_read_at`.
    unsafe extern "C" fn open(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> core::ffi::c_int {
        // SAFETY: procfs passes the file's live inode; i_private is the
        // entry's data (pde_data()).
        let data = unsafe { (*inode).i_private } as usize;
        let snapshot = match T::open(data) {
            Ok(s) => s,
            Err(e) => return e.to_errno(),
        };
        let snapshot = match KBox::new(snapshot, GFP_KERNEL) {
            Ok(b) => b,
            Err(_) => return code::ENOMEM.to_errno(),
        };
        // SAFETY: `file` is being opened and its private data is ours
        // until `release`, which takes the box back.
        unsafe { (*file).private_data = KBox::into_raw(snapshot).cast() };
        0
    }

    /// # Safety
    ///
    /// Called by procfs once per successful `open`, when the file is closed
    /// or its entry removed; no read runs then or after.
    unsafe extern "C" fn release(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> core::ffi::c_int {
        // SAFETY: the file being released; `open` set its private data.
        let snapshot = unsafe { (*file).private_data }.cast::<T::Snapshot>();
        if !snapshot.is_null() {
            // SAFETY: made by KBox::into_raw in `open`, taken back once: no
            // read runs any more (procfs's guarantee for release).
            drop(unsafe { KBox::from_raw(snapshot) });
        }
        0
    }

    /// # Safety
    ///
    /// Called by procfs for a read of a file made by `add_read_at`.
    unsafe extern "C" fn read(
        file: *mut bindings::file,
        buf: *mut c_char,
        len: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        // A bounded kernel buffer per call: readers loop, as with any file.
        let mut kbuf = [0u8; 512];
        let want = len.min(kbuf.len());
        // SAFETY: procfs passes a valid position for the read.
        let offset = unsafe { *pos };
        let Ok(offset) = u64::try_from(offset) else {
            return code::EINVAL.to_errno() as isize;
        };
        // SAFETY: a read of our file, opened by `open` (which set the
        // private data to a live snapshot that `release` alone frees, and
        // not while a read runs).
        let snapshot = unsafe { &*(*file).private_data.cast::<T::Snapshot>() };
        let Some(out) = kbuf.get_mut(..want) else {
            return code::EINVAL.to_errno() as isize;
        };
        let n = T::read_at(snapshot, offset, out).min(want);
        let Some(data) = out.get(..n) else {
            return code::EINVAL.to_errno() as isize;
        };
        if let Err(e) = user_slice(buf.cast_const(), len).writer().write_slice(data) {
            return e.to_errno() as isize;
        }
        // SAFETY: as above; n <= 512 cannot overflow the position.
        unsafe { *pos = (*pos).wrapping_add(n as bindings::loff_t) };
        n as isize
    }
}

/// Whether `file` was opened with CAP_SYS_ADMIN in the initial user
/// namespace (its `f_cred`, the opener's credentials).
///
/// # Safety
///
/// `file` is a live file.
unsafe fn opener_has_sys_admin(file: *mut bindings::file) -> bool {
    // SAFETY: `file` is live (caller) and its f_cred lives as long as it;
    // init_user_ns is a kernel global that lives forever, only its address
    // is taken.
    unsafe {
        bindings::file_ns_capable(
            file,
            ptr::addr_of_mut!(bindings::init_user_ns),
            bindings::CAP_SYS_ADMIN as i32,
        )
    }
}

/// Longest command accepted; longer writes are refused whole.
pub(crate) const MAX_COMMAND: usize = super::control::MAX_LINE;

struct CommandOps<T>(core::marker::PhantomData<T>);

impl<T: Command> CommandOps<T> {
    const OPS: bindings::proc_ops = bindings::proc_ops {
        proc_write: Some(Self::write),
        // SAFETY: as for `ReadAtOps::OPS`.
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// Called by procfs for a write to a file made by `add_command`.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const c_char,
        len: usize,
        _pos: *mut bindings::loff_t,
    ) -> isize {
        // The file mode already keeps everyone but root out; root in a
        // container without CAP_SYS_ADMIN is refused too. The credentials
        // asked are the opener's, not the writer's: a process that may
        // open the file but lacks the capability cannot hand the fd to a
        // privileged program and have it write for it (the confused
        // deputy), and an fd opened with the capability stays usable by
        // whoever it is given to, as with any file: the fd is the
        // capability.
        // SAFETY: procfs passes the file being written.
        let opener_may = unsafe { opener_has_sys_admin(file) };
        if !opener_may {
            return code::EPERM.to_errno() as isize;
        }
        if len > MAX_COMMAND {
            return code::EINVAL.to_errno() as isize;
        }
        let mut kbuf = [0u8; MAX_COMMAND];
        let Some(bytes) = kbuf.get_mut(..len) else {
            return code::EINVAL.to_errno() as isize;
        };
        if let Err(e) = user_slice(buf, len).reader().read_slice(bytes) {
            return e.to_errno() as isize;
        }
        // SAFETY: a write to our file (caller).
        let data = unsafe { private_data(file) };
        match T::write(data, bytes) {
            Ok(()) => len as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}
