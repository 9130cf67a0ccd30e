#!/bin/sh
# Smoke test of testvm + page-idle inside a test kernel (busybox sh):
#
#   tests/vm/run --kernel 6.12 --testbed qemu-npt tests/e2e/testvm-smoke.sh [BACKING]...
#
# For each backing (default: anon thp hugetlb, then "switch") it starts testvm with a write
# and a read range, waits for its "running" line, runs page-idle, checks that
# the written and read pages come back young and the untouched ones idle, then
# stops testvm with SIGTERM and checks the final truth file. hugetlb pages
# cannot be tracked by page_idle (not on the LRU): for that backing only the
# VMM side is checked. Prints one "PASS"/"FAIL" line per check and exits 1 if
# any failed. "switch" runs a two-phase workload (--switch-on-signal and
# --then-write), switches it with SIGUSR2 and, once testvm says every vCPU
# completed a pass of the new phase, checks that the new write range is
# young and the old one idle.

backings=${*:-anon thp hugetlb switch}
fails=0
passes=0

check() { # NAME CONDITION-EXIT-STATUS DETAIL
	if [ "$2" = 0 ]; then
		echo "PASS $1 ($3)"
		passes=$((passes + 1))
	else
		echo "FAIL $1 ($3)"
		fails=$((fails + 1))
	fi
}

# field NAME LINE: value of NAME=... in LINE
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo 64 >/proc/sys/vm/nr_hugepages

# wait_running OUT PID: wait up to 60 s for testvm's "running" line
wait_running() {
	i=0
	while ! grep -q '^testvm: running' "$1"; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 "$2" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	cat "$1"
	grep -q '^testvm: running' "$1"
}

switch_test() {
	t=/tmp/truth-switch.json
	out=/tmp/testvm-switch.out
	# Emptied first: the shell truncates $out in the child, which may run
	# after wait_running's first look. Stopped by SIGTERM below, not by an
	# iteration count it could reach under load while page-idle measures.
	: >"$out"
	testvm --mem 64M --write 16M+4M --read 32M+1M --switch-on-signal --then-write 40M+4M \
		--dirty-log --seconds 600 --truth "$t" >"$out" 2>&1 &
	pid=$!
	wait_running "$out" $pid
	check "switch: testvm running" $? ""
	kill -USR2 $pid
	# "phase 1 running" comes once every vCPU completed a whole pass of
	# phase 1: every page of the new range is written, so mapped. (The
	# truth's "started" comes when the first such pass begins; page-idle
	# run then counted pages not yet mapped as not_present, not young.)
	i=0
	while ! grep -q '^testvm: phase 1 running' "$out"; do
		i=$((i + 1))
		[ $i -le 600 ] && kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^testvm: phase 1 running' "$out"
	check "switch: testvm says phase 1 runs" $? "$(grep '^testvm: phase' "$out")"
	[ "$(grep -c '"started": true,' "$t")" = 2 ]
	check "switch: truth shows phase 1 started" $? "$(grep '"start_s"' "$t" | tr -d ' \n')"
	idle=$(page-idle --truth "$t")
	check "switch: page-idle ran" $? ""
	echo "$idle"
	young=$(echo "$idle" | grep '^page-idle: young ')
	# The new write range (40M+4M) and the reads (32M+1M) are young, the
	# old write range (16M+4M) is not. A page off the LRU for a moment (in
	# a per-CPU batch) is "untrackable" to page_idle: it counts as neither.
	echo "$idle" | awk '
	function bytes(s) { return s ~ /M$/ ? s * 1048576 : s * 1024 }
	function hex(s,   i, v) {
		v = 0; s = tolower(substr(s, 3))
		for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
		return v
	}
	function cover(kind, lo, hi,   i, n, a, r, s, e, sum) {
		sum = 0
		for (i = 3; i <= f[kind, 0]; i++) {
			split(f[kind, i], r, "+"); s = hex(r[1]); e = s + bytes(r[2])
			if (e > lo && s < hi) sum += (e < hi ? e : hi) - (s > lo ? s : lo)
		}
		return sum
	}
	/^page-idle: (young|untrackable) / { f[$2, 0] = NF; for (i = 3; i <= NF; i++) f[$2, i] = $i }
	END {
		M = 1048576
		new = cover("young", 40 * M, 44 * M) + cover("untrackable", 40 * M, 44 * M)
		reads = cover("young", 32 * M, 33 * M) + cover("untrackable", 32 * M, 33 * M)
		exit !(new == 4 * M && reads == M && cover("young", 16 * M, 20 * M) == 0)
	}'
	check "switch: only phase-1 writes and reads young" $? "$young"
	kill -TERM $pid
	wait $pid
	check "switch: testvm exit status 0" $? "$(tail -1 "$out")"
}

for b in $backings; do
	if [ "$b" = switch ]; then
		switch_test
		continue
	fi
	t=/tmp/truth-$b.json
	out=/tmp/testvm-$b.out
	: >"$out"
	testvm --mem 64M --backing "$b" --vcpus 2 --write 16M+8M --read 32M+4M \
		--truth "$t" >"$out" 2>&1 &
	pid=$!
	wait_running "$out" $pid
	check "$b: testvm running" $? "after $i x 0.1 s"
	grep -q "\"pid\": $pid," "$t"
	check "$b: truth file names pid $pid" $? "$(grep -c . "$t") lines"
	vm=$(sed -n 's/.*vm=\([0-9]*-[0-9]*\).*/\1/p' "$out")
	[ -n "$vm" ] && [ -e "/proc/$pid/fd/${vm#*-}" ]
	check "$b: vm_fd is open in testvm" $? "$vm -> $(readlink "/proc/$pid/fd/${vm#*-}")"

	idle=$(page-idle --truth "$t")
	check "$b: page-idle ran" $? ""
	echo "$idle"
	w=$(echo "$idle" | grep '^page-idle: written ')
	r=$(echo "$idle" | grep '^page-idle: read ')
	u=$(echo "$idle" | grep '^page-idle: untouched ')
	if [ "$b" = hugetlb ]; then
		[ "$(field untrackable "$w")" = "$(field pages "$w")" ]
		check "$b: written pages untrackable by page_idle (expected)" $? "$w"
	else
		# All written/read pages young, except at most a few still in a
		# per-CPU LRU batch (reported as untrackable, never as idle).
		# Untouched pages in a THP with own pages are "untouched_shared".
		[ "$(field idle "$w")" = 0 ] && [ "$(field young "$w")" -ge $(($(field pages "$w") * 95 / 100)) ]
		check "$b: written pages young" $? "$w"
		[ "$(field idle "$r")" = 0 ] && [ "$(field young "$r")" -ge $(($(field pages "$r") * 95 / 100)) ]
		check "$b: read pages young" $? "$r"
		[ "$(field young "$u")" = 0 ]
		check "$b: untouched pages not young" $? "$u"
	fi

	kill -TERM $pid
	wait $pid
	check "$b: testvm exit status 0 after SIGTERM" $? "$(tail -1 "$out")"
	grep -q '"state": "done"' "$t"
	check "$b: final truth state done" $? "$(grep '"iterations"' "$t" | tr -d ' ,')"
done

echo "$passes passed, $fails failed"
[ $fails = 0 ]
