/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What ept_sampler needs from the kernel beyond the `bindings` crate:
 * procfs/seq_file, file access, and KVM's internal structures (struct kvm,
 * the TDP MMU's struct kvm_mmu_page), generated against the target tree so
 * no offset is ever written by hand.
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
#include <linux/utsname.h>
#include <linux/kvm_host.h>
#include "mmu/mmu_internal.h"
#include "mmu/spte.h"
