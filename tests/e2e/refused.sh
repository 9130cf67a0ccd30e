#!/bin/sh
# Scenario 7 of the sampler: a host where KVM's tables cannot be sampled.
# tests/check boots Bochs with kvm_intel.eptad=0 (EPT without A/D bits),
# QEMU with kvm.tdp_mmu=0 (the legacy MMU, whose tables are not RCU-freed),
# and QEMU with ept_sampler.test_no_tlb_flush=1 (as if KVM were built in,
# its TLB flush out of the module's reach), and runs this script there:
#
#   refused.sh REASON      REASON: no-ad-bits, tdp-mmu-off or no-tlb-flush
#
# The VM is listed as refused with the reason, attach fails with EOPNOTSUPP
# and last_error says why, the tool's start exits 6 (refused) and says why,
# and nothing else breaks.
reason=${1:?reason}
fail() {
	echo "FAIL refused-$reason: $*"
	exit 1
}
cat /proc/ept_sampler/version
flush=$(sed -n 's/^tlb_flush //p' /proc/ept_sampler/version)
if [ "$reason" = no-tlb-flush ]; then
	[ "$flush" = none ] || fail "version says tlb_flush '$flush', not none"
else
	case "$flush" in *kvm_flush_remote_tlbs) ;; *) fail "version says tlb_flush '$flush'" ;; esac
fi
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
rc=0
ept-sampler start --pid "${vm%-*}" >/tmp/start.out 2>&1 || rc=$?
cat /tmp/start.out
[ $rc = 6 ] || fail "ept-sampler start exited $rc, not 6 (refused)"
grep -q "$reason" /tmp/start.out || fail "ept-sampler start does not say $reason"
[ ! -e "/proc/ept_sampler/$vm" ] || fail "a directory was created by the tool's start"
kill $bg
wait $bg || true
grep -q '"state": *"done"' /tmp/r.json || fail "testvm did not end cleanly"
rmmod ept_sampler || fail "rmmod failed"
echo "ok refused-$reason"
