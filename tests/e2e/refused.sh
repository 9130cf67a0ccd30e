#!/bin/sh
# Scenario 7 of the sampler: a host where KVM's tables cannot be sampled.
# tests/check boots Bochs with kvm_intel.eptad=0 (EPT without A/D bits) and
# QEMU with kvm.tdp_mmu=0 (the legacy MMU, whose tables are not RCU-freed),
# and runs this script there:
#
#   refused.sh REASON      REASON: no-ad-bits or tdp-mmu-off
#
# The VM is listed as refused with the reason, attach fails with EOPNOTSUPP
# and last_error says why, and nothing else breaks.
reason=${1:?reason}
fail() {
	echo "FAIL refused-$reason: $*"
	exit 1
}
cat /proc/ept_sampler/version
: >/tmp/r.out
testvm --mem 64M --seconds 600 --write 16M+2M --truth /tmp/r.json >/tmp/r.out 2>&1 &
bg=$!
i=0
until grep -q '^testvm: running' /tmp/r.out; do
	i=$((i + 1))
	[ $i -lt 600 ] || fail "testvm did not run: $(cat /tmp/r.out)"
	sleep 0.1
done
vm=$(sed -n 's/.* vm=\([0-9]*-[0-9]*\).*/\1/p' /tmp/r.out | head -1)
cat /proc/ept_sampler/vms
grep -q "^$vm .* refused:$reason\$" /proc/ept_sampler/vms || fail "vms does not show $vm refused:$reason"
if err=$(echo "attach pid=${vm%-*}" 2>&1 >/proc/ept_sampler/control); then
	fail "attach succeeded"
fi
echo "attach: $err"
cat /proc/ept_sampler/last_error
grep -q "^EOPNOTSUPP .*$reason" /proc/ept_sampler/last_error || fail "last_error does not give EOPNOTSUPP and $reason"
[ ! -e "/proc/ept_sampler/$vm" ] || fail "a directory was created for the refused VM"
kill $bg
wait $bg || true
grep -q '"state": *"done"' /tmp/r.json || fail "testvm did not end cleanly"
rmmod ept_sampler || fail "rmmod failed"
echo "ok refused-$reason"
