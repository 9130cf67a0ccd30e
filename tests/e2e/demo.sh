#!/bin/sh
# What `make demo` runs inside the 7.3 test kernel on the Bochs (Intel EPT)
# testbed: a test VM with a known workload, and what ept-sampler sees of it.
set -e
say() { printf '\n### %s\n' "$*"; }

say "the host: KVM's two-dimensional paging, as the module reports it"
cat /proc/ept_sampler/version

say "a test VM: 64 MiB guest, writes 16M..20M and reads 32M..36M in a loop"
: >/tmp/testvm.out
testvm --mem 64M --backing anon --seconds 600 --write 16M+4M --read 32M+4M \
	--truth /tmp/truth.json >/tmp/testvm.out 2>&1 &
vm=$!
until grep -q '^testvm: running' /tmp/testvm.out; do sleep 0.2; done
cat /tmp/testvm.out
ls -l /proc/*/fd/ 2>/dev/null | grep -m1 'kvm-vm' || true

say "idle page tracking's view of the same guest (the baseline to beat)"
page-idle --truth /tmp/truth.json --wait-ms 200 >/dev/null
page-idle --truth /tmp/truth.json --wait-ms 1000

kill $vm
wait $vm || true
say "done"
