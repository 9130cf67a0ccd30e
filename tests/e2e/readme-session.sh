#!/bin/sh
# Prints the tool session shown in README.md from a real run: a 256 MiB
# testvm guest that reads 64M+8M throughout and writes 16M+8M, then (on a
# signal) 128M+8M, sampled at the defaults, recorded across the switch.
# Run: tests/vm/run --kernel 7.3 --testbed qemu-npt tests/e2e/readme-session.sh >out.txt
set -e
# show CMD...: the command as typed, then what it printed (a refusal too).
show() {
	echo "\$ $*"
	"$@" 2>&1 || true
}
rounds() { sed -n 's/^rounds //p' "/proc/ept_sampler/$1/stats"; }
wait_rounds() { # VM N
	i=0
	until [ "$(rounds "$1")" -ge "$2" ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "$1: fewer than $2 rounds after 60 s" >&2; exit 1; }
		sleep 0.1
	done
}
testvm --mem 256M --backing anon --seconds 600 --write 16M+8M --read 64M+8M \
	--switch-on-signal --then-write 128M+8M >/tmp/t.out 2>&1 &
until grep -q '^testvm: running' /tmp/t.out; do sleep 0.1; done
vm=$(sed -n 's/.* vm=\([0-9]*-[0-9]*\).*/\1/p' /tmp/t.out | head -1)
show ept-sampler list
show ept-sampler start --pid "${vm%-*}" --mode both
wait_rounds "$vm" 20
# Recorded across the switch: 4 s of the first range, then the second.
ept-sampler record --duration 10s --interval-ms 2000 --vm "$vm" -o /tmp/run.rec.gz 2>/dev/null &
rec=$!
sleep 4
kill -USR2 "${vm%-*}"
until grep -q '^testvm: phase 1 running' /tmp/t.out; do sleep 0.1; done
wait $rec
echo "\$ ept-sampler record --duration 10s --interval-ms 2000 --vm $vm -o run.rec.gz"
show ept-sampler status "$vm"
show ept-sampler heatmap "$vm" --columns 80 --rows 6 --color never
show ept-sampler heatmap "$vm" --columns 80 --rows 6 --color never --color-by age
echo "\$ ept-sampler heatmap $vm --format csv | head -4"
ept-sampler heatmap "$vm" --format csv | head -4
echo "\$ ept-sampler report run.rec.gz"
ept-sampler report /tmp/run.rec.gz
show ept-sampler start "$vm" --granule 4K --window 6
show ept-sampler detach --all
