// SPDX-License-Identifier: GPL-2.0
/*
 * Harness self-test: a module whose only job is a real WARN() with a
 * backtrace, to prove that tests/vm/run fails a run whose kernel warned.
 */
#include <linux/module.h>
#include <linux/bug.h>

static int __init ept_vm_warn_init(void)
{
	WARN(1, "ept-vm harness self-test\n");
	return 0;
}

static void __exit ept_vm_warn_exit(void)
{
}

module_init(ept_vm_warn_init);
module_exit(ept_vm_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("tests/vm/run self-test: WARN on load");
