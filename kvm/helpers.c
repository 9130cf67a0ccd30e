// SPDX-License-Identifier: GPL-2.0
/*
 * See helpers.h. Each locking function is the C primitive and nothing
 * else, so that what lockdep, sparse and PREEMPT_RT see is what KVM's own
 * TDP MMU walkers do (arch/x86/kvm/mmu/tdp_mmu.c).
 */
#include <linux/fs.h>
#include <linux/kstrtox.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/page_idle.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>

#include "helpers.h"

/*
 * A C module parameter: the kernel crate of 6.12 has no module parameters
 * for Rust. Read-only at run time, so that a VM's refusal cannot change
 * while it is listed.
 */
static bool test_no_tlb_flush;
module_param(test_no_tlb_flush, bool, 0444);
MODULE_PARM_DESC(test_no_tlb_flush,
		 "For tests: act as if KVM's TLB flush could not be reached, so that every VM is refused (no-tlb-flush)");

bool ept_sampler_test_no_tlb_flush(void)
{
	return test_no_tlb_flush;
}

/*
 * For tests: while set, a detach holds the window between taking the VM out
 * and removing its directory open (for 10 s at most), so that a scenario
 * can act inside it without racing. Root may set it at run time.
 */
static bool test_hold_detach;
module_param(test_hold_detach, bool, 0644);
MODULE_PARM_DESC(test_hold_detach,
		 "For tests: hold every detach (up to 10 s) after the VM is taken out and before its /proc directory is removed");

bool ept_sampler_test_hold_detach(void)
{
	return READ_ONCE(test_hold_detach);
}

/*
 * The module-wide settings an operator sets in /etc/modprobe.d and reads or
 * changes in /sys/module/ept_sampler/parameters: walk_budget and
 * pass_accessed. C declares them (module_param_cb() is a macro, and 6.12's
 * kernel crate has no module parameters for Rust); the values, their
 * defaults and their range live on the Rust side (kvm/tunables.rs), which
 * `tune` in the control file changes too, so that there is one of each.
 * A value out of range fails the load (or the sysfs write) with -EINVAL.
 */
static int walk_budget_set(const char *val, const struct kernel_param *kp)
{
	unsigned int n;

	/* -EINVAL for every bad value, above UINT_MAX (-ERANGE) too. */
	if (kstrtouint(val, 0, &n))
		return -EINVAL;
	return ept_sampler_set_walk_budget(n) ? 0 : -EINVAL;
}

static int walk_budget_get(char *buffer, const struct kernel_param *kp)
{
	return sysfs_emit(buffer, "%u\n", ept_sampler_walk_budget());
}

static const struct kernel_param_ops walk_budget_ops = {
	.set = walk_budget_set,
	.get = walk_budget_get,
};
module_param_cb(walk_budget, &walk_budget_ops, NULL, 0644);
__MODULE_PARM_TYPE(walk_budget, "uint");
MODULE_PARM_DESC(walk_budget,
		 "Page-table entries a round examines per hold of KVM's mmu_lock, 16..1048576 (default 8192): smaller lets vCPU faults and memslot changes in sooner, at more lock round trips");

static int pass_accessed_set(const char *val, const struct kernel_param *kp)
{
	bool pass;
	/* A bare "pass_accessed" on the command line means yes, as for bool. */
	int err = kstrtobool(val ? val : "1", &pass);

	if (err)
		return err;
	ept_sampler_set_pass_accessed(pass);
	return 0;
}

static int pass_accessed_get(char *buffer, const struct kernel_param *kp)
{
	return sysfs_emit(buffer, "%c\n", ept_sampler_pass_accessed_on() ? 'Y' : 'N');
}

static const struct kernel_param_ops pass_accessed_ops = {
	.flags = KERNEL_PARAM_OPS_FL_NOARG,
	.set = pass_accessed_set,
	.get = pass_accessed_get,
};
module_param_cb(pass_accessed, &pass_accessed_ops, NULL, 0644);
__MODULE_PARM_TYPE(pass_accessed, "bool");
MODULE_PARM_DESC(pass_accessed,
		 "Hand each accessed bit the sampler clears on to the host's page, so that reclaim, page_idle and DAMON still see the guest's accesses (default Y; N only to measure what they lose)");

void ept_sampler_get_file(struct file *file)
{
	get_file(file);
}

long ept_sampler_file_count(struct file *file)
{
	return file_count(file);
}

void ept_sampler_read_lock(rwlock_t *lock)
{
	read_lock(lock);
}

void ept_sampler_read_unlock(rwlock_t *lock)
{
	read_unlock(lock);
}

void ept_sampler_rcu_read_lock(void)
{
	rcu_read_lock();
}

void ept_sampler_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void ept_sampler_cond_resched(void)
{
	cond_resched();
}

bool ept_sampler_pass_accessed(u64 pfn)
{
	struct page *page;
	struct folio *folio;

	/*
	 * Only pages that reclaim, page_idle and DAMON look at: ordinary
	 * memory (a struct page that is not reserved: the zero page and
	 * ZONE_DEVICE memory are, and "should in general not be touched except
	 * by its owner") that is anonymous or belongs to a file, i.e. has a
	 * mapping, as every folio on an LRU list has, or isolated from one by
	 * reclaim, which is when PG_young is read. A driver's pages mapped
	 * into the VMM with VM_PFNMAP or VM_MIXEDMAP have none and are left
	 * alone: nothing in mm reads their flags (KVM 6.12 marked every
	 * non-reserved page, 7.3 only those it got through GUP).
	 */
	if (!pfn_valid(pfn))
		return false;
	page = pfn_to_page(pfn);
	if (PageReserved(page) || is_zone_device_page(page))
		return false;
	folio = page_folio(page);
	if (!READ_ONCE(folio->mapping))
		return false;
#ifdef CONFIG_PAGE_IDLE_FLAG
	/*
	 * What mm/page_idle.c does when it clears a young bit on its own
	 * behalf: the folio is no longer idle (page_idle and DAMON's vaddr
	 * and paddr checks read PG_idle), and PG_young makes the next
	 * folio_referenced() count the access, which is what both the classic
	 * LRU and MGLRU's eviction ask before reclaiming a mapped folio.
	 * (MGLRU's aging asks KVM alone and never sees PG_young: under MGLRU a
	 * page kept warm only by the guest ages on, and is kept when eviction
	 * reaches it.)
	 * folio_mark_accessed() would not do: with MGLRU on it only bumps the
	 * folio's reference count and leaves PG_idle set, and on the classic
	 * LRU it would activate the folio on every second round, which an
	 * accessed bit in a page table never does by itself.
	 *
	 * Each flag is tested before it is changed: a page the guest keeps
	 * using is already young and not idle, and a plain read of a flag
	 * costs far less than a locked read-modify-write of the folio's flags
	 * word (folio_mark_accessed() tests PG_idle first for the same
	 * reason).
	 */
	if (folio_test_idle(folio))
		folio_clear_idle(folio);
	if (!folio_test_young(folio))
		folio_set_young(folio);
#else
	/* Without PG_young, the one way left to tell reclaim. */
	folio_mark_accessed(folio);
#endif
	return true;
}
