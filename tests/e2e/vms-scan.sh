#!/bin/sh
# The cost of finding VMs: five reads of /proc/ept_sampler/vms with one
# testvm guest running, at the kernel's default pid_max and at systemd's
# 4194304 (docs/PERFORMANCE.md, "Finding VMs"). A figure, not a test:
#
#   tests/vm/run --kernel 6.12 --testbed qemu-npt tests/e2e/vms-scan.sh
testvm --mem 64M --seconds 600 --write 16M+2M --truth /tmp/r.json >/tmp/r.out 2>&1 &
until grep -q '^testvm: running' /tmp/r.out; do sleep 0.1; done
for pm in 32768 4194304; do
	echo $pm >/proc/sys/kernel/pid_max
	t0=$(cut -d' ' -f1 /proc/uptime)
	for i in 1 2 3 4 5; do cat /proc/ept_sampler/vms >/dev/null; done
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "pid_max $pm: 5 reads of vms in $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
done
cat /proc/ept_sampler/vms
kill %1
