/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Locking primitives that C offers only as macros or inline functions, as
 * out-of-line functions Rust can call: the way rust/helpers/ wraps them for
 * the kernel crate, for the ones it does not wrap. Defined in kvm/helpers.c;
 * bindgen reads these declarations (kvm/bindings.h), so both sides agree on
 * the signatures by construction.
 */
#ifndef EPT_SAMPLER_HELPERS_H
#define EPT_SAMPLER_HELPERS_H

#include <linux/compiler_types.h>
#include <linux/spinlock_types.h>

/*
 * read_lock()/read_unlock() on KVM's mmu_lock. No exported function is
 * right on every kernel: the _raw_read_unlock() fast path is inline on
 * non-preemptible kernels, and PREEMPT_RT replaces rwlock_t by an rtmutex
 * based lock (rt_read_lock()) with no _bh or _irq variants.
 */
void ept_sampler_read_lock(rwlock_t *lock) __acquires(lock);
void ept_sampler_read_unlock(rwlock_t *lock) __releases(lock);

/*
 * rcu_read_lock()/rcu_read_unlock(), with their lockdep annotations. The
 * kernel crate has an RCU guard only from 6.13 on.
 */
void ept_sampler_rcu_read_lock(void) __acquires(RCU);
void ept_sampler_rcu_read_unlock(void) __releases(RCU);

#endif
