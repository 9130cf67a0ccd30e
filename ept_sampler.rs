// SPDX-License-Identifier: GPL-2.0

//! ept_sampler: samples the accessed and dirty bits of KVM's two-dimensional
//! page tables (Intel EPT, AMD NPT) and exports per-VM heat maps under
//! `/proc/ept_sampler/`.
//!
//! The data path, one folder each:
//! - [`ept_walk`]: entry formats and the table walker (pure, also compiled
//!   into the userspace tests and tool);
//! - [`kvm`]: glue to KVM's internals (bindgen output, kernel-version
//!   differences, KVM's module parameters);
//! - [`procfs`]: the `/proc/ept_sampler/` formats (pure) and entries (glue).

use kernel::prelude::*;
use kernel::sync::Arc;

// Pure code shared with the userspace crates (tools/ept-core compiles the
// same files): its `pub` items are that library's API, of which the module
// uses a part.
#[allow(unreachable_pub, dead_code, unused_imports)]
mod ept_walk;
#[allow(unreachable_pub, dead_code, unused_imports)]
mod heat;
mod kvm;
mod procfs;

module! {
    type: EptSampler,
    name: "ept_sampler",
    description: "Samples accessed/dirty bits of KVM's EPT/NPT page tables",
    license: "GPL",
}

/// The module's state. Teardown order matters and is spelled out in `drop`.
struct EptSampler {
    sampler: Arc<kvm::sampler::Sampler>,
    thread: Option<kvm::thread::Thread>,
}

impl kernel::Module for EptSampler {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let sampler = Arc::pin_init(kvm::sampler::Sampler::new(), GFP_KERNEL)?;
        // SAFETY: the Arc lives in the module state until `drop`, which
        // withdraws it after removing every proc file.
        unsafe { kvm::sampler::publish(&*sampler) };
        sampler.refresh_host();
        let mut module = EptSampler {
            sampler,
            thread: None,
        };
        // On an error below, `drop` undoes what was done.
        let root = procfs::create_root()?;
        module.sampler.state.lock().root = Some(root);
        // SAFETY: the thread is stopped in `drop` before the sampler goes.
        let thread = unsafe { kvm::thread::Thread::start(&*module.sampler, c"ept_sampler") }?;
        module.thread = Some(thread);
        pr_info!("ready: /proc/ept_sampler/\n");
        Ok(module)
    }
}

impl Drop for EptSampler {
    fn drop(&mut self) {
        // 1. No more rounds.
        drop(self.thread.take());
        // 2. Detach every VM and refuse new ones: their directories go
        //    before the root that contains them.
        for vm in self.sampler.take_all(true).into_iter().flatten() {
            self.sampler.release(vm);
        }
        // A `detach` written just before may still be removing the
        // directory it took out.
        self.sampler.wait_released();
        // 3. The root and the top-level files; proc_remove() waits for
        //    callbacks in progress.
        let root = self.sampler.state.lock().root.take();
        drop(root);
        // SAFETY: no proc file of the module exists any more.
        unsafe { kvm::sampler::publish(core::ptr::null()) };
    }
}
