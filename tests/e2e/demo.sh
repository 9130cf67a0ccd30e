#!/bin/sh
# What `make demo` runs inside the 7.3 test kernel on the Bochs testbed
# (Intel EPT with A/D bits): a test VM with a known workload, and what
# ept-sampler sees of it, through the tool and then the raw /proc files.
set -e
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "the host: KVM's two-dimensional paging, as the module reports it"
run cat /proc/ept_sampler/version

say "a test VM: 64 MiB guest that writes 16M..20M and reads 32M..36M in a loop"
: >/tmp/testvm.out
testvm --mem 64M --backing anon --seconds 600 --write 16M+4M --read 32M+4M \
	--truth /tmp/truth.json >/tmp/testvm.out 2>&1 &
bg=$!
until grep -q '^testvm: running' /tmp/testvm.out; do sleep 0.2; done
cat /tmp/testvm.out
vm=$(sed -n 's/.* vm=\([0-9]*-[0-9]*\).*/\1/p' /tmp/testvm.out | head -1)

say "every VM on the host"
run ept-sampler list

say "attach and sample accessed and dirty bits every 100 ms"
run ept-sampler start --pid "${vm%-*}" --period-ms 100 --mode both
until [ "$(sed -n 's/^rounds //p' "/proc/ept_sampler/$vm/stats")" -ge 8 ]; do sleep 0.2; done
run ept-sampler status "$vm"

say "the heat map in the terminal (accessed and dirty in how many of the last 5 rounds)"
run ept-sampler heatmap "$vm" --columns 72 --rows 4 --color never

say "the same as data: one line per run of equal 4 KiB granules"
run ept-sampler heatmap "$vm" --format csv

say "the raw interface the tool reads: /proc/ept_sampler/$vm/"
run ls "/proc/ept_sampler/$vm/"
run cat "/proc/ept_sampler/$vm/stats"

say "idle page tracking's view of the same guest (the baseline)"
page-idle --truth /tmp/truth.json >/dev/null
page-idle --truth /tmp/truth.json --passes 2

kill $bg
wait $bg || true
# The module notices a VM's end on its own round: wait for that, not a time.
n=0
while [ -e "/proc/ept_sampler/$vm" ] && [ $n -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
say "the VM's process is gone: detached"
run ept-sampler list
