/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel primitives that C offers only as macros or inline functions, as
 * out-of-line functions Rust can call: the way rust/helpers/ wraps them for
 * the kernel crate, for the ones it does not wrap. Defined in kvm/helpers.c;
 * bindgen reads these declarations (kvm/bindings.h), so both sides agree on
 * the signatures by construction.
 */
#ifndef EPT_SAMPLER_HELPERS_H
#define EPT_SAMPLER_HELPERS_H

#include <linux/compiler_types.h>
#include <linux/spinlock_types.h>
#include <linux/types.h>

/* 7.3 annotates read locks as shared; 6.12 has only the exclusive form. */
#ifndef __acquires_shared
#define __acquires_shared(x) __acquires(x)
#define __releases_shared(x) __releases(x)
#endif

/*
 * read_lock()/read_unlock() on KVM's mmu_lock. No exported function is
 * right on every kernel: the _raw_read_unlock() fast path is inline on
 * non-preemptible kernels, and PREEMPT_RT replaces rwlock_t by an rtmutex
 * based lock (rt_read_lock()) with no _bh or _irq variants.
 */
void ept_sampler_read_lock(rwlock_t *lock) __acquires_shared(lock);
void ept_sampler_read_unlock(rwlock_t *lock) __releases_shared(lock);

/*
 * rcu_read_lock()/rcu_read_unlock(), with their lockdep annotations. The
 * kernel crate has an RCU guard only from 6.13 on.
 */
void ept_sampler_rcu_read_lock(void) __acquires_shared(RCU);
void ept_sampler_rcu_read_unlock(void) __releases_shared(RCU);

/*
 * cond_resched(), with its might-sleep check on debug kernels: the Rust
 * side would otherwise have to mirror which preemption models make it a
 * no-op, and would lose the check that no spinning lock or RCU read side
 * is held.
 */
void ept_sampler_cond_resched(void);

/*
 * Hands an accessed bit the sampler has just cleared on to the host page
 * it recorded an access to, so that page_idle, DAMON and reclaim still see
 * the access (KVM's aging reads the same bit). pfn is the first frame of a
 * leaf the caller found present, and cleared the accessed bit of, during
 * its current hold of mmu_lock for read: the page cannot be unmapped from
 * the VMM (KVM's MMU notifier) or removed from a guest_memfd (its
 * invalidation), let alone freed, before KVM has taken mmu_lock for write.
 * Returns whether the page was marked (not for memory that mm does not
 * track: see helpers.c). Atomic bit operations on the folio's flags, except
 * without CONFIG_PAGE_IDLE_FLAG, where folio_mark_accessed() may also queue
 * the folio for activation, as KVM's own zap path did under mmu_lock.
 */
bool ept_sampler_pass_accessed(u64 pfn);

/*
 * The module parameter test_no_tlb_flush: whether the module must act as
 * if it could not flush a VM's TLBs, to test the refusal a kernel with KVM
 * built in gets (kvm/compat.rs).
 */
bool ept_sampler_test_no_tlb_flush(void);

/*
 * The module parameter test_hold_detach: whether a detach must wait, after
 * taking the VM out and before removing its directory (kvm/sampler.rs).
 */
bool ept_sampler_test_hold_detach(void);

/*
 * The module-wide settings, defined in Rust (kvm/tunables.rs), for the
 * module parameters of the same names (kvm/helpers.c). The setters return
 * whether the value was taken (walk_budget has a range).
 */
u32 ept_sampler_walk_budget(void);
bool ept_sampler_set_walk_budget(u32 n);
bool ept_sampler_pass_accessed_on(void);
void ept_sampler_set_pass_accessed(bool pass);

struct file;

/*
 * get_file() and file_count(), both inline; their counter changed in 6.13
 * (f_count became the file_ref_t f_ref, which stores the count less one),
 * which these leave to the kernel's own code.
 */
void ept_sampler_get_file(struct file *file);
long ept_sampler_file_count(struct file *file);

#endif
