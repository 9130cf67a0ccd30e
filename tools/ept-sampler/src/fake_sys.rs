// SPDX-License-Identifier: GPL-2.0

//! For unit tests of what the tool reads from `/sys`: a fresh directory
//! standing for it, removed when dropped.

use std::fs;
use std::path::{Path, PathBuf};

/// A directory standing for `/sys`.
pub struct FakeSys(PathBuf);

impl FakeSys {
    /// An empty one, unique to this test process and `name`.
    pub fn new(name: &str) -> FakeSys {
        let d = std::env::temp_dir().join(format!("ept-sys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        FakeSys(d)
    }

    /// Writes `text` to the file `rel` (a path below /sys), making its
    /// directories.
    pub fn put(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Its path, for the reader under test.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for FakeSys {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
