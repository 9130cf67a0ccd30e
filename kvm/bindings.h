/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What ept_sampler needs from the kernel beyond the `bindings` crate:
 * procfs/seq_file, file access, and KVM's internal structures (struct kvm,
 * the TDP MMU's struct kvm_mmu_page), generated against the target tree so
 * no offset is ever written by hand; and the module's own C helpers.
 */
#include <linux/capability.h>
#include <linux/err.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/rbtree.h>
#include <linux/sched.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/user_namespace.h>
#include <linux/utsname.h>
#include <linux/kvm_host.h>
#include "mmu/mmu_internal.h"
#include "mmu/spte.h"
#include "helpers.h"

/*
 * KVM's software SPTE bits that moved between kernels (SPTE_TDP_AD_SHIFT is
 * 52 on 6.12 and 60 on 7.3; FROZEN_SPTE's low bits 0x5a0 and 0x1a0), as
 * enum constants: bindgen turns enum constants into Rust consts, but skips
 * function-like macros such as BIT_ULL() and so FROZEN_SPTE. kvm/compat.rs
 * builds the walker's KvmBits from them. An enum constant is an int, so only
 * FROZEN_SPTE's low 12 bits go through one; the rest is asserted below.
 */
enum {
	EPT_SAMPLER_SPTE_AD_SHIFT = SPTE_TDP_AD_SHIFT,
	EPT_SAMPLER_FROZEN_SPTE_LOW = FROZEN_SPTE & 0xfff,
};

/*
 * What ept_walk/spte.rs takes as constant rather than from here: fail the
 * build, not the sampling, if KVM ever moves these.
 */
_Static_assert(SPTE_MMU_PRESENT_MASK == BIT_ULL(11),
	       "ept_walk: KVM's MMU-present bit is not bit 11");
_Static_assert(SHADOW_NONPRESENT_VALUE == BIT_ULL(63),
	       "ept_walk: SHADOW_NONPRESENT_VALUE is not bit 63");
_Static_assert(FROZEN_SPTE == (SHADOW_NONPRESENT_VALUE | EPT_SAMPLER_FROZEN_SPTE_LOW),
	       "ept_walk: FROZEN_SPTE is not bit 63 plus low bits");
_Static_assert(SPTE_TDP_AD_MASK == (3ULL << SPTE_TDP_AD_SHIFT) &&
	       SPTE_TDP_AD_ENABLED == 0 &&
	       SPTE_TDP_AD_DISABLED == (1ULL << SPTE_TDP_AD_SHIFT) &&
	       SPTE_TDP_AD_WRPROT_ONLY == (2ULL << SPTE_TDP_AD_SHIFT),
	       "ept_walk: KVM's A/D type encodings changed");
