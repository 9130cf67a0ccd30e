#!/bin/sh
# Captures /proc/ept_sampler from a real run, as fixtures for the tool's
# tests (tools/ept-sampler/tests/fixtures/README.md says how to unpack).
# Run: tests/vm/run --kernel 7.3 --testbed qemu-npt tests/e2e/capture-fixtures.sh >out.txt
set -e
dump() { # TAG: prints every file under /proc/ept_sampler as a shell archive
	for f in version vms last_error $(cd /proc/ept_sampler && ls -d */ 2>/dev/null | sed 's|/$||' | while read d; do for x in config stats heatmap history memslots idle; do echo "$d/$x"; done; done); do
		echo "=== $1/$f"
		cat "/proc/ept_sampler/$f"
	done
	for d in $(cd /proc/ept_sampler && ls -d */ 2>/dev/null); do
		echo "=== $1/${d}heatmap.bin.hex"
		od -An -tx1 -v "/proc/ept_sampler/${d}heatmap.bin" | tr -s ' \n' ' ' | fold -w 96
		echo
	done
	echo "=== end"
}
ctl() { echo "$*" >/proc/ept_sampler/control; }
start() { # NAME ARGS
	n=$1; shift
	testvm --truth /tmp/$n.json "$@" >/tmp/$n.out 2>&1 &
	until grep -q '^testvm: running' /tmp/$n.out; do sleep 0.1; done
	sed -n 's/.* vm=\([0-9]*-[0-9]*\).*/\1/p' /tmp/$n.out | head -1
}
# rounds VM: the VM's rounds; ends the capture (from the command
# substitution's subshell: $$ is the script) with testvm's words if its VM
# is gone.
rounds() {
	[ -e "/proc/ept_sampler/$1/stats" ] || {
		echo "capture: VM $1 is gone" >&2
		cat /tmp/a.out /tmp/b.out >&2
		kill -TERM $$
	}
	sed -n 's/^rounds //p' "/proc/ept_sampler/$1/stats"
}
a=$(start a --mem 256M --backing anon --seconds 600 --write 16M+8M --read 64M+8M --switch-on-signal --then-write 128M+8M)
b=$(start b --mem 128M --backing thp --seconds 600 --write 32M+16M)
c=$(start c --mem 64M --backing anon --seconds 600 --write 8M+4M)
# The tests name the guests 72-4, 85-4 and 96-4 (their pids in the first
# capture); pids differ from boot to boot, so what is printed renames them,
# through placeholders so that one guest's new name is never taken for
# another's old one.
names() {
	sed -E -e "s/(^|[^0-9])$a([^0-9]|\$)/\1@A@\2/g" \
		-e "s/(^|[^0-9])$b([^0-9]|\$)/\1@B@\2/g" \
		-e "s/(^|[^0-9])$c([^0-9]|\$)/\1@C@\2/g" \
		-e "s/\"pid\": ${a%-*},/\"pid\": @a@,/" \
		-e "s/\"pid\": ${b%-*},/\"pid\": @b@,/" \
		-e "s/\"pid\": ${c%-*},/\"pid\": @c@,/" |
		sed -e 's/@A@/72-4/g; s/@B@/85-4/g; s/@C@/96-4/g; s/@a@/72/; s/@b@/85/; s/@c@/96/'
}
# phase TAG: the dump, renamed; the capture stops if the dump failed (a
# guest gone) or a guest is no longer running.
phase() {
	dump "$1" >/tmp/dump.txt
	for n in a b c; do
		grep -q '^testvm: running' /tmp/$n.out && ! grep -q '^testvm: \(error\|failed\)' /tmp/$n.out || {
			echo "capture: testvm $n is not running:" >&2
			cat /tmp/$n.out >&2
			exit 1
		}
	done
	names </tmp/dump.txt
}
ctl attach pid=${a%-*}
ctl start vm=$a period_ms=100 mode=both idle=500ms,1s,2s,4s
ctl attach pid=${b%-*}
ctl start vm=$b period_ms=200 mode=accessed granule=2M
echo "start vm=$a period_ms=0" >/proc/ept_sampler/control 2>/dev/null || true
until [ "$(rounds $a)" -ge 30 ]; do sleep 0.2; done
until [ "$(rounds $b)" -ge 8 ]; do sleep 0.2; done
cat /tmp/a.json >/dev/null
phase phase1-cap
# Phase 2: testvm moves its writes (SIGUSR2), and a's window and history
# follow for 64 more rounds of its own (the whole history ring: every
# round it keeps is after the switch).
kill -USR2 "${a%-*}"
i=0
until grep -q '^testvm: phase 1 running' /tmp/a.out; do
	i=$((i + 1))
	[ $i -lt 600 ] || { echo "testvm a did not start phase 1 within 60 s" >&2; exit 1; }
	sleep 0.1
done
r=$(rounds $a)
until [ "$(rounds $a)" -ge $((r + 64)) ]; do sleep 0.2; done
phase phase2-cap
# Every guest still running when the capture ends (testvm writes its
# state into its truth file).
for n in a b c; do
	grep -q '"state": "running"' /tmp/$n.json || {
		echo "capture: testvm $n ended before the capture did:" >&2
		cat /tmp/$n.out /tmp/$n.json >&2
		exit 1
	}
done
echo "=== truth/a.json"; names </tmp/a.json; echo
echo "=== truth/b.json"; names </tmp/b.json; echo
echo "=== truth/c.json"; names </tmp/c.json; echo
echo "=== end"
