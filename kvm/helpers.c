// SPDX-License-Identifier: GPL-2.0
/*
 * See helpers.h. Each function is the C primitive and nothing else, so
 * that what lockdep, sparse and PREEMPT_RT see is what KVM's own TDP MMU
 * walkers do (arch/x86/kvm/mmu/tdp_mmu.c).
 */
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/spinlock.h>

#include "helpers.h"

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
