#!/bin/sh
# A soak of testvm guests, to tell testbed failures from the sampler's (not
# part of the gate; it prints figures). Run inside a test kernel:
#
#   tests/vm/run --kernel 7.3 --testbed qemu-npt --mem 2048 tests/e2e/guest-soak.sh ARM [N] [COMPACT]
#
# ARM: nothing (no VM sampled), accessed or sampled (guest a sampled in
# mode accessed / both at 100 ms; b always in accessed 2M at 200 ms unless
# nothing). N runs (4) of capture-fixtures.sh's three guests, 10 s, SIGUSR2
# to a, 15 s more; COMPACT=1 compacts memory every second meanwhile. A
# guest that dies (testvm "unexpected exit Shutdown") is printed with the
# VM's counters; the last line counts them. Measured 2026-12-05 on 7.3 x
# qemu-npt: guests die with nothing sampled under QEMU's multi-threaded TCG
# (6 in 51 guest-runs over all arms), none with accel=tcg,thread=single (0
# in 45): see the issue notes.
arm=$1 n=${2:-4} COMPACT=${3:-0}
if [ "${COMPACT:-0}" = 1 ]; then
	( while :; do echo 1 >/proc/sys/vm/compact_memory; sleep 1; done ) &
	compactor=$!
fi
ctl() { echo "$*" >/proc/ept_sampler/control; }
start() { # NAME ARGS
	nm=$1; shift
	testvm --truth /tmp/$nm.json "$@" >/tmp/$nm.out 2>&1 &
	echo $! >/tmp/$nm.pid
}
vmof() { until grep -q '^testvm: running' /tmp/$1.out; do sleep 0.1; done; sed -n 's/.* vm=\([0-9]*-[0-9]*\).*/\1/p' /tmp/$1.out | head -1; }
fails=0 i=0
while [ $i -lt $n ]; do
	i=$((i + 1))
	start a --mem 256M --backing anon --seconds 600 --write 16M+8M --read 64M+8M --switch-on-signal --then-write 128M+8M
	start b --mem 128M --backing thp --seconds 600 --write 32M+16M
	start c --mem 64M --backing anon --seconds 600 --write 8M+4M
	a=$(vmof a) b=$(vmof b) c=$(vmof c)
	case $arm in
	sampled) ctl attach pid=${a%-*}; ctl start vm=$a period_ms=100 mode=both idle=500ms,1s,2s,4s ;;
	accessed) ctl attach pid=${a%-*}; ctl start vm=$a period_ms=100 mode=accessed ;;
	none) ;;
	esac
	if [ "$arm" != nothing ]; then
		ctl attach pid=${b%-*}
		ctl start vm=$b period_ms=200 mode=accessed granule=2M
	fi
	sleep 10
	kill -USR2 ${a%-*}
	sleep 15
	for g in a b c; do
		if ! kill -0 $(cat /tmp/$g.pid) 2>/dev/null || grep -q '^testvm: \(error\|failed\)' /tmp/$g.out; then
			fails=$((fails + 1))
			echo "run $i: guest $g failed:"
			sed 's/^/    /' /tmp/$g.out | tail -5
			[ ! -e /proc/ept_sampler/$a/stats ] || grep -E '^(rounds|yields|cas_retries|frozen|roots_lost) ' /proc/ept_sampler/$a/stats | tr '\n' ' '
			echo
			dmesg | tail -5
		fi
	done
	echo "run $i done: $(grep -h '^rounds ' /proc/ept_sampler/*/stats 2>/dev/null | tr '\n' ' ')"
	kill $(cat /tmp/a.pid /tmp/b.pid /tmp/c.pid) 2>/dev/null
	for g in a b c; do wait $(cat /tmp/$g.pid) 2>/dev/null; done
	ctl detach all
done
echo "arm $arm compact ${COMPACT:-0}: $fails guest failures in $n runs; $(grep -E '^(compact_migrate_scanned|pgmigrate_success|thp_collapse_alloc|compact_success) ' /proc/vmstat | tr '\n' ' ')"
[ -z "${compactor:-}" ] || kill $compactor
