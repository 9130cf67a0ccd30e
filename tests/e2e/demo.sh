#!/bin/sh
# What `make demo` runs inside the 7.3 test kernel on the Bochs (Intel EPT)
# testbed: a test VM with a known workload, and what ept-sampler sees of it.
set -e
say() { printf '\n### %s\n' "$*"; }

say "the host: KVM's two-dimensional paging, as the module reports it"
cat /proc/ept_sampler/version

say "a test VM: 64 MiB guest that writes 16M..20M and reads 32M..36M in a loop"
: >/tmp/testvm.out
testvm --mem 64M --backing anon --seconds 600 --write 16M+4M --read 32M+4M \
	--truth /tmp/truth.json >/tmp/testvm.out 2>&1 &
bg=$!
until grep -q '^testvm: running' /tmp/testvm.out; do sleep 0.2; done
cat /tmp/testvm.out
vm=$(sed -n 's/.* vm=\([0-9]*-[0-9]*\).*/\1/p' /tmp/testvm.out | head -1)

say "every VM on the host"
cat /proc/ept_sampler/vms

say "attach and sample accessed and dirty bits every 100 ms"
echo "attach pid=${vm%-*}" | tee /proc/ept_sampler/control
echo "start vm=$vm period_ms=100 mode=both" | tee /proc/ept_sampler/control
until [ "$(sed -n 's/^rounds //p' /proc/ept_sampler/$vm/stats)" -ge 8 ]; do sleep 0.2; done
ls /proc/ept_sampler/$vm/

say "the heat map: one line per run of equal 4 KiB granules (accessed/dirty in how many of the last 5 rounds)"
cat /proc/ept_sampler/$vm/heatmap

say "what a round costs"
cat /proc/ept_sampler/$vm/stats

say "idle page tracking's view of the same guest (the baseline)"
page-idle --truth /tmp/truth.json --wait-ms 200 >/dev/null
page-idle --truth /tmp/truth.json --wait-ms 1000

kill $bg
wait $bg || true
sleep 0.3
say "the VM's process is gone: detached"
cat /proc/ept_sampler/vms
