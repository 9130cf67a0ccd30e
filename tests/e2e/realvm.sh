#!/bin/sh
# Sampling a real VM (issue 6): inside a test kernel booted with
# `tests/vm/run --with-qemu`, Debian's QEMU runs a small Linux guest under
# KVM; in the guest, guest-work maps a buffer, prints the guest-physical
# ranges of its pages and then works in phases the host steps through (write
# the whole buffer, read a part of it, idle). The sampler must see exactly
# that. Each scenario reports "ok NAME" or "FAIL NAME: why" (like suite.sh);
# exit status: the number of failures.
#
#   realvm.sh [SIZE READ COLD]     buffer sizes for guest-work (32M 8M 8M)
#
# Needs top-tty.sh next to it (tests/vm/run --add) and tmux in the testbed
# (--with-qemu carries it).
#
# Files (artefacts, see tests/vm/run --artefacts): the heat map of each
# phase (CSV and PNG from ept-sampler), top's screens (--batch, and the live
# view on a terminal), each phase's `ept-sampler report` (CSV), the
# history, the guest's console, and /proc/ept_sampler in the write phase.
size=${1:-32M} read_size=${2:-8M} cold_size=${3:-8M}
# Our output port runs at the kernel's default 9600 baud, which Bochs
# honours in virtual time: 12 times faster for the artefacts.
stty -F /dev/ttyS1 115200 2>/dev/null || true
period_ms=200 window=5
# top_tty: `ept-sampler top` on a real terminal (tmux), driven by keys.
. "$EPT_FILES/top-tty.sh"
# In each phase, after its checks, ept-sampler record takes 4 snapshots
# rec_ms apart for the working-set scenario.
rec_ms=1000
failures=0
state=/tmp/realvm.state
: >$state

scenario() { # NAME FUNCTION: FUNCTION runs in a subshell; state in $state
	name=$1
	shift
	ts=$(cut -d' ' -f1 /proc/uptime)
	out=$( (
		set -e
		. $state
		"$@"
	) 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "ok $name ($(awk -v a="$ts" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1fs", b - a }'))"
	else
		failures=$((failures + 1))
		echo "FAIL $name: $(echo "$out" | grep -v '^ *$' | tail -1)"
	fi
	[ -z "$out" ] || echo "$out" | sed 's/^/    /'
	true
}
fail() {
	echo "$*" >&2
	exit 1
}
save() { echo "$1=$2" >>$state; }
kv() { sed -n "s/^$2 //p" "$1"; }
# artefact NAME FILE: hands FILE to the host (tests/vm/run decodes it).
# Text goes gzipped (NAME.gz): Bochs sends the serial port at its baud rate
# in virtual time, a few KB a second.
artefact() {
	echo "@@ept-vm-artefact $1@@"
	base64 "$2"
	echo "@@ept-vm-artefact-end@@"
}
artefact_gz() {
	gzip -9 -c "$2" >"/tmp/artefact.gz"
	artefact "$1.gz" /tmp/artefact.gz
}

# Dirtiness is checked alike on both testbeds: pages only read must come
# back clean. On 7.3 x bochs-ept they did not while the walker read KVM's
# A/D type from 6.12's bits (7.3 moved them: ept_walk/spte.rs, KvmBits);
# realvm-untouched-not-dirty guards that.
gl=/tmp/guest.console

# until_ SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s (guest-virtual
# seconds on Bochs, whose clock is virtual).
until_() {
	t=$(($1 * 5)) what=$2
	shift 2
	while ! "$@"; do
		t=$((t - 1))
		[ $t -gt 0 ] || fail "$what: not within the time limit"
		sleep 0.2
	done
}
guest_says() { tr -d '\r' <$gl | grep -q "$1"; }
# alive PID: running (a child that ended stays a zombie until waited for).
# One read of stat decides: the shell reaps any child while it waits for
# another (busybox ash waits for any pid), so QEMU's /proc entry can vanish
# between two looks; a stat that cannot be read is not a live process. (It
# was once "exists" then "grep finds no Z": the grep could not open the
# file, QEMU had just been reaped, and it was counted alive and "killed".)
alive() {
	al_stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# The state is the first field after the command name's ")".
	case "${al_stat##*) }" in Z* | X* | x* | "") return 1 ;; esac
}
rounds() { kv "/proc/ept_sampler/$vm/stats" rounds; }
rounds_at_least() { [ "$(rounds)" -ge "$1" ]; }

# --- start QEMU in this shell (its exit status is checked at the end) ----
# The inner guest's TSC: under TCG the test kernel's TSC runs at the host's
# rate, under Bochs at its virtual rate; the nested guest cannot calibrate
# reliably, so it is told (tsc_early_khz, as in the testbed notes).
khz=$(dmesg | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9]*\)\.\([0-9]\{3\}\).*/\1\2/p' | tail -1)
[ -n "$khz" ] || khz=$(dmesg | sed -n 's/.*tsc: Detected \([0-9]*\)\.\([0-9]\{3\}\) MHz.*/\1\2/p' | tail -1)
[ -n "$khz" ] || echo "warning: no TSC frequency in the test kernel's dmesg: the inner guest may hang calibrating"
mkfifo /tmp/gw.in /tmp/gw.out
: >$gl
t0=$(cut -d' ' -f1 /proc/uptime)
# gw.rate=20: a pass every 50 ms. The inner guest sleeps between read passes
# and, nested under an emulator on a busy host, sometimes wakes 100+ ms late;
# at 10 passes a second a 200 ms round then saw no read at all now and then.
# Named as libvirt names its domains: the exporter's domain and uuid labels.
domain=realvm-e2e uuid=5f3b0a8e-2c41-4d7a-9e16-0b7c3d2a8f41
qemu-system-x86_64 -name "guest=$domain,debug-threads=on" -uuid $uuid \
	-enable-kvm -cpu host -M pc -nodefaults -smp 1 -m 256M \
	-display none -no-reboot -kernel /opt/realvm/bzImage -initrd /opt/realvm/guest.cpio.gz \
	-append "console=ttyS0 panic=-1 quiet tsc_early_khz=$khz tsc=reliable gw.size=$size gw.read-size=$read_size gw.cold-size=$cold_size gw.rate=20 gw.control=/dev/ttyS1" \
	-serial file:$gl -serial pipe:/tmp/gw </dev/null >/tmp/qemu.out 2>&1 &
qemu=$!
save qemu $qemu
echo "QEMU pid $qemu, inner guest tsc_early_khz=$khz, buffer $size (read $read_size, cold $cold_size)"

# 1. The guest boots and reports where its buffers are.
s_boot() {
	until_ 300 "guest-work's ranges" guest_says '^guest-work: ranges done'
	for k in write read cold; do
		tr -d '\r' <$gl | awk -v k=$k '$1 == "guest-work:" && $2 == "range" && $3 == k { print $4 "," $5 }' >/tmp/r.$k
	done
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "guest booted and mapped its buffers $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after QEMU started"
	echo "write: $(wc -l </tmp/r.write) ranges, read: $(wc -l </tmp/r.read), cold: $(wc -l </tmp/r.cold)"
	head -3 /tmp/r.write
	[ -s /tmp/r.write ] && [ -s /tmp/r.cold ] || fail "no ranges from guest-work"
}

# 2. The VM is listed, with QEMU's memslots (RAM, ROMs, BIOS, SMM), and
#    attaches by the QEMU pid.
s_list_attach() {
	ept-sampler list | tee /tmp/list
	vm=$(awk -v p="$qemu" '$1 ~ "^" p "-" { print $1 }' /tmp/list)
	[ -n "$vm" ] || fail "ept-sampler list shows no VM of pid $qemu"
	[ "$(echo "$vm" | wc -l)" = 1 ] || fail "QEMU has several VMs: $vm"
	save vm "$vm"
	ept-sampler attach --pid "$qemu"
	ept-sampler list | awk -v vm="$vm" '$1 == vm' | tee /tmp/list.vm
	grep -q ' attached$' /tmp/list.vm || fail "$vm not attached after ept-sampler attach"
	cat "/proc/ept_sampler/$vm/memslots"
	slots=$(grep -vc '^#' "/proc/ept_sampler/$vm/memslots")
	[ "$(awk '{ print $3 }' /tmp/list.vm)" = "$slots" ] || fail "list shows $(awk '{ print $3 }' /tmp/list.vm) memslots, memslots has $slots"
	# "memory" counts every slot of address space 0: RAM and ROMs.
	awk -v vm="$vm" '
	$1 == vm { n = $3; mem = $4 }
	END { if (mem < 268435456 || n < 2) { printf "memory %s in %s memslots, expected 256M of RAM and ROM slots\n", mem, n; exit 1 } }' /proc/ept_sampler/vms ||
		fail "vms: wrong guest memory"
	# SeaBIOS is mapped read-only just below 4 GiB (its low copy below
	# 1 MiB is in ordinary slots); SMM is address space 1 on -M pc with KVM.
	awk '
	/^#/ { next }
	$2 == 0 && $6 ~ /readonly/ && $4 + $5 == 4294967296 { bios = 1 }
	$2 == 0 { ram += $5 }
	$2 == 1 { smm++ }
	END {
		printf "address space 0: %d MiB in memslots; BIOS read-only below 4G: %s; SMM slots: %d\n", ram / 1048576, bios ? "yes" : "no", smm
		exit !(bios && smm > 0 && ram >= 268435456)
	}' "/proc/ept_sampler/$vm/memslots" || fail "memslots: expected the BIOS ROM below 4G and SMM (address space 1)"
}

# snapshot PHASE: waits for a whole window inside the phase, keeps the heat
# map, the rounds it covers, the stats, and the history as it is then (the
# ring of 512 rounds outlives a phase, not the whole run: on a loaded
# testbed the write phase's rounds were gone by the end).
snapshot() {
	# Round r+1 may have cleared some bits before the phase began, so
	# round r+2 may still see the last phase: the window starts at r+3.
	r=$(rounds)
	until_ 120 "$window rounds in phase $1" rounds_at_least $((r + window + 2))
	ept-sampler heatmap "$vm" --format csv >"/tmp/heat.$1"
	cp "/proc/ept_sampler/$vm/stats" "/tmp/stats.$1"
	cp "/proc/ept_sampler/$vm/history" "/tmp/history.$1"
	echo "first=$((r + 3)) last=$(kv "/tmp/stats.$1" rounds)" >"/tmp/rounds.$1"
	tr '\n' ' ' <"/tmp/stats.$1"
	echo
}

# check PHASE: the heat map of PHASE against guest-work's ranges: the
# phase's hot part accessed in every round of the window (and dirty as the
# phase says), every known-cold page never accessed nor dirtied; precision
# and recall over the known pages; hot memory outside them (the guest's
# kernel, its console, its page tables) reported as background.
check() {
	: >"/tmp/stale.$1"
	awk -F, -v phase="$1" -v win=$window -v stale="/tmp/stale.$1" '
	function lo(a, b) { return a > b ? a : b }
	function hi(a, b) { return a < b ? a : b }
	function ovl(kind, s, e,   i, t) { t = 0; for (i = 0; i < n[kind]; i++) if (hi(e, E[kind, i]) > lo(s, S[kind, i])) t += hi(e, E[kind, i]) - lo(s, S[kind, i]); return t }
	FILENAME != ARGV[4] { k = FILENAME; sub(/.*\./, "", k); i = n[k]++; S[k, i] = $1 + 0; E[k, i] = $2 + 0; next }
	$1 == "start" { next }
	{
		s = $1 + 0; e = $2 + 0; leaf = $4; acc = $5; dirty = $6
		w = ovl("write", s, e); r = ovl("read", s, e); c = ovl("cold", s, e)
		if (phase == "write") { h = w; cold = c; dwant = "yes" }
		else if (phase == "read") { h = r; cold = w - r + c; dwant = "no" }
		else { h = 0; cold = w + c; dwant = "any" }
		if (h > 0) {
			want += h; leafb[leaf] += h
			if (acc == win) found += h
			else { printf "hot %s..%s accessed in %s of %d rounds\n", $1, $2, acc, win; bad = 1 }
			if (dwant == "yes" && dirty != win) { printf "written %s..%s dirty in %s of %d rounds\n", $1, $2, dirty, win; bad = 1 }
			if (dwant == "no" && dirty != 0) { printf "read %s..%s dirty in %s rounds\n", $1, $2, dirty; bad = 1 }
		}
		if (cold > 0 && acc != 0) { printf "cold %s..%s accessed %s dirty %s\n", $1, $2, acc, dirty; bad = 1 }
		# Dirty but not accessed: a D bit that was not cleared (checked
		# apart, in realvm-untouched-not-dirty).
		if (cold > 0 && acc == 0 && dirty != 0) printf "cold %s..%s accessed %s dirty %s\n", $1, $2, acc, dirty > stale
		# A run can hold buffer pages and background pages alike.
		if (acc > 0 && acc != "-") { known += h + cold; tp += h; bg += e - s - h - cold }
		if (dirty > 0 && dirty != "-") bgd += e - s - h - cold
	}
	END {
		printf "%s phase: precision %.1f%% recall %.1f%% (over the pages whose truth is known: %d KiB hot, %d KiB cold);", phase, known ? 100 * tp / known : 100, want ? 100 * found / want : 100, want / 1024, (ovl("write", 0, 4503599627370496) + ovl("cold", 0, 4503599627370496) - want) / 1024
		printf " leaves of the hot part:"; for (l in leafb) printf " %s=%d KiB", l, leafb[l] / 1024
		printf "; background (guest kernel) %d KiB accessed, %d KiB dirty", bg / 1024, bgd / 1024
		printf "\n"
		# The buffers are whole 2 MiB guest frames and the host backs guest
		# RAM with THP: KVM maps them with 2 MiB leaves, reported as such.
		for (l in leafb) if (l != "2M") { printf "%d KiB of the hot part reported with leaf %s, expected 2M\n", leafb[l] / 1024, l; bad = 1 }
		exit bad
	}' /tmp/r.write /tmp/r.read /tmp/r.cold "/tmp/heat.$1" || fail "$1 phase: the heat map does not match the guest's buffers"
}

# next_phase NAME: asks guest-work for its next phase and waits for it.
next_phase() {
	echo next >/tmp/gw.in
	until_ 120 "guest phase $1" guest_says "^guest-work: phase $1 "
}

png() { # PHASE: the tool's picture of the heat map, kept as an artefact
	ept-sampler heatmap "$vm" --png "/tmp/heat-$1.png" --width 800 --height 400
	[ -s "/tmp/heat-$1.png" ] || fail "no PNG written"
	echo "heat-$1.png: $(wc -c <"/tmp/heat-$1.png") bytes"
}

# capture PHASE: the text files of /proc/ept_sampler that the tool reads,
# as a shell archive ("=== PATH" before each), with the guest's ranges: the
# tool's fixture of a real QEMU guest is unpacked from it
# (tools/ept-sampler/tests/fixtures/README.md).
capture() {
	{
		for f in version vms last_error "$vm/config" "$vm/stats" "$vm/heatmap" "$vm/history" "$vm/memslots"; do
			echo "=== $1/$f"
			cat "/proc/ept_sampler/$f"
		done
		for k in write read cold; do
			echo "=== truth/ranges.$k"
			cat "/tmp/r.$k"
		done
		echo "=== end"
	} >"/tmp/proc-$1.txt"
}

# top_screen PHASE: one screen of `ept-sampler top` (its --batch text, the
# same drawing as the live view), kept as an artefact; the VM's row must say
# sampling with at least the buffer's MiB hot (the guest rewrites it all).
top_screen() {
	ept-sampler top --batch 1 --size 100x30 >"/tmp/top-$1.txt" || fail "ept-sampler top --batch failed"
	cat "/tmp/top-$1.txt"
	row=$(awk -v vm="$vm" '{ sub(/^[> ]*/, "") } $1 == vm' "/tmp/top-$1.txt")
	[ -n "$row" ] || fail "top shows no row for $vm"
	set -- $row
	[ "$2" = sampling ] || fail "top says $vm is $2, not sampling"
	want=${size%M}
	awk -v hot="$3" -v want="$want" 'BEGIN { exit !(hot + 0 >= want) }' ||
		fail "top: $vm hot $3 MiB, below the ${want} MiB buffer the guest rewrites"
}

# record PHASE: the tool records the VM for 3 s (4 snapshots) in PHASE,
# after its checks. Not during them: on Bochs the test kernel has one CPU
# and does not preempt itself; a recorder reading the module's files then
# keeps QEMU from running for whole rounds now and then, and the checks
# want the guest's pages in every round. (Measured: the read phase's
# pages missed one round in five with a recorder running throughout.)
# Niced for the same reason (busybox has renice, not nice): the guest's
# pages should be touched in every round while the tool records them.
record() {
	ept-sampler record --vm "$vm" --interval-ms $rec_ms --duration $((3 * rec_ms / 1000))s -o "/tmp/ws-$1.rec.gz" &
	renice -n 10 -p $! >/dev/null
	wait $! || fail "ept-sampler record failed in phase $1"
}

# 3. Sampling while the guest rewrites its buffer: hot and dirty; the
#    tool's pictures of it: heatmap --png, top (its --batch text, and the
#    live view on a terminal, driven by keys).
s_write() {
	ept-sampler start "$vm" --period-ms $period_ms --mode both --window $window --history 512
	cat "/proc/ept_sampler/$vm/config" | tr '\n' ' '
	echo
	guest_says '^guest-work: phase write ' || fail "guest not in its write phase"
	snapshot write
	check write
	capture write
	png write
	top_screen write
	top_tty "$vm" /tmp/top-tty-write.txt "${size%M}" $period_ms both $window
	record write
}
# 3b. The exporter names the VM as libvirt exporters do: QEMU's -name
#     guest= as the domain on every series of the VM, its -uuid in the info
#     series (a textfile: the test kernels need no TCP/IP for it).
s_metrics() {
	mkdir -p /tmp/prom
	ept-sampler export --textfile /tmp/prom --once || fail "ept-sampler export --textfile failed"
	prom=/tmp/prom/ept_sampler.prom
	grep "vm=\"$vm\"" $prom
	tdp=$(awk -v vm="$vm" '$1 == vm { print $5 }' /proc/ept_sampler/vms)
	grep -qx "ept_sampler_vm_info{domain=\"$domain\",pid=\"$qemu\",tdp=\"$tdp\",uuid=\"$uuid\",vm=\"$vm\"} 1" $prom ||
		fail "no vm_info with domain $domain and uuid $uuid: $(grep '^ept_sampler_vm_info' $prom)"
	n=$(grep -c "vm=\"$vm\"" $prom)
	named=$(grep "vm=\"$vm\"" $prom | grep -c "domain=\"$domain\"")
	[ "$n" -ge 10 ] && [ "$named" = "$n" ] || fail "$named of the $n series of $vm carry domain=\"$domain\""
	grep -qx "ept_sampler_vm_sampling{domain=\"$domain\",reason=\"\",vm=\"$vm\"} 1" $prom || fail "$vm not served as sampling"
	echo "$n series of $vm, each with domain=\"$domain\"; uuid $uuid in ept_sampler_vm_info"
}
# 4. Only the read part is read: hot, not dirty; the rest of the buffer cold.
s_read() {
	next_phase read
	snapshot read
	check read
	png read
	record read
}
# 5. Idle: the whole buffer cold.
s_idle() {
	next_phase idle
	snapshot idle
	check idle
	png idle
	record idle
}

near() { # WHAT GOT WANT [PARTS]: GOT pages within WANT/PARTS (a tenth), or 4 MiB
	tol=$(($3 / ${4:-10}))
	[ $tol -ge 1024 ] || tol=1024
	d=$(($2 - $3))
	[ ${d#-} -le $tol ] || fail "$1: $2 pages above the idle background, expected $3 +- $tol"
	echo "$1: $2 pages above the idle background (truth $3)"
}

# 6. The working set the tool reports over time follows the phases: the
#    recording of each phase (record, above) read back with ept-sampler
#    report. Each row gives the mean MiB accessed per round over the rounds
#    since the row before; the rows whose rounds all lie in the phase (from
#    its window's first round on: not the first row, which covers every
#    round kept) give the phase's working set.
s_working_set() {
	wp=$(awk -F, '{ t += $2 - $1 } END { print t / 4096 }' /tmp/r.write)
	rp=$(awk -F, '{ t += $2 - $1 } END { print t / 4096 }' /tmp/r.read)
	: >/tmp/ws
	for p in write read idle; do
		ept-sampler report "/tmp/ws-$p.rec.gz" --vm "$vm" | sed -n '/^ *time /,/^$/p'
		ept-sampler report "/tmp/ws-$p.rec.gz" --vm "$vm" --format csv >"/tmp/report-$p.csv"
		. "/tmp/rounds.$p"
		# Columns by name, from the report's header row.
		awk -F, -v p=$p -v a="$first" '
		NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
		$c["ws_mib"] != "" && $c["rounds"] - $c["new_rounds"] + 1 >= a {
			k = $c["new_rounds"]; n += k; ws += k * $c["ws_mib"]; rows++
			series = series sprintf(" %.1f", $c["ws_mib"])
		}
		END {
			printf "%s: %d report rows from round %d on, working set MiB:%s; mean %d pages\n", p, rows, a, series, n ? ws * 256 / n : -1
			exit !(rows >= 2)
		}' "/tmp/report-$p.csv" >>/tmp/ws || fail "fewer than two rows of the report inside the $p phase: $(tail -1 /tmp/ws)"
	done
	cat /tmp/ws
	pages() { sed -n "s/^$1: .*; mean \([0-9-]*\) pages$/\1/p" /tmp/ws; }
	wa=$(pages write) ra=$(pages read) ia=$(pages idle)
	# The guest's kernel keeps a background of pages busy in every phase
	# (whole 2 MiB leaves: the sampler cannot see finer); the idle phase
	# measures it. Above it: the buffer, then the read part, each within a
	# fifth or two 2 MiB leaves. (A fifth, not a tenth: nested under an
	# emulator, with the recorder running beside it, the guest now and then
	# ends a 200 ms round short of a whole pass over its 32 MiB: 7110 of
	# 8192 pages seen on QEMU with 6.12. The phases stay far apart.)
	near "write phase, working set" $((wa - ia)) "$wp" 5
	near "read phase, working set" $((ra - ia)) "$rp" 5
	[ "$wa" -gt "$ra" ] && [ "$ra" -gt "$ia" ] || fail "the working set does not fall from write ($wa) to read ($ra) to idle ($ia)"
}

# mean PHASE 1|2: mean pages accessed (1) or dirtied (2) per round in
# PHASE's window, from the module's history (s_untouched_clean).
mean() { sed -n "s/^$1 .*mean \([0-9-]*\) pages accessed, \([0-9-]*\) dirty/\\$2/p" /tmp/dirty; }

# 7. Pages nobody touched during a window are not dirty in it: the D bits
#    the sampler clears stay clear (the phases' checks above report such
#    pages apart, here they fail); dirty pages per round follow the writes.
s_untouched_clean() {
	for p in write read idle; do
		[ -f "/tmp/stale.$p" ] || fail "phase $p not checked"
		[ ! -s "/tmp/stale.$p" ] || { sed "s/^/$p phase: /" "/tmp/stale.$p"; bad=1; }
	done
	[ -z "${bad:-}" ] || fail "known-cold pages dirty in every round without being accessed: their D bits are not cleared"
	echo "known-cold pages: neither accessed nor dirty in any phase"
	cp "/proc/ept_sampler/$vm/history" /tmp/history
	for p in write read idle; do
		[ -f "/tmp/history.$p" ] || fail "no history kept in phase $p"
		. "/tmp/rounds.$p"
		awk -v p=$p -v a="$first" -v b="$last" '
		$1 == "round" && $2 >= a && $2 <= b {
			for (i = 3; i < NF; i += 2) v[$i] = $(i + 1)
			n++; acc += v["accessed_pages"]; dirty += v["dirty_pages"]
		}
		END { printf "%s rounds %d..%d: mean %d pages accessed, %d dirty\n", p, a, b, n ? acc / n : -1, n ? dirty / n : -1 }' "/tmp/history.$p"
	done | tee /tmp/dirty
	wp=$(awk -F, '{ t += $2 - $1 } END { print t / 4096 }' /tmp/r.write)
	near "write phase, dirty" $(($(mean write 2) - $(mean idle 2))) "$wp"
	near "read phase, dirty" $(($(mean read 2) - $(mean idle 2))) 0
}

# 8. The guest powers off while sampled: QEMU exits 0, the VM is detached
#    and gone (no splat: tests/vm/run checks the console).
s_shutdown() {
	echo next >/tmp/gw.in
	until_ 120 "guest-work's end" guest_says '^guest-work: done'
	n=0
	while alive "$qemu"; do
		n=$((n + 1))
		[ $n -lt 150 ] || fail "QEMU still running 30 s after the guest finished"
		sleep 0.2
	done
	n=0
	while [ -e "/proc/ept_sampler/$vm" ]; do
		n=$((n + 1))
		[ $n -lt 50 ] || fail "$vm still attached 10 s after QEMU ended"
		sleep 0.2
	done
	! grep -q "^$vm " /proc/ept_sampler/vms || fail "$vm still listed"
	echo "QEMU gone, $vm detached"
}

scenario realvm-boot s_boot
scenario realvm-list-attach s_list_attach
scenario realvm-write-phase s_write
scenario realvm-metrics-labels s_metrics
scenario realvm-read-phase s_read
scenario realvm-idle-phase s_idle
scenario realvm-working-set s_working_set
scenario realvm-untouched-not-dirty s_untouched_clean
scenario realvm-shutdown s_shutdown
# QEMU's exit status is only ours to wait for (it is this shell's child);
# a QEMU that had to be ended does not count as exiting 0.
killed=
if alive "$qemu"; then
	kill "$qemu"
	killed=" (still running at the end: killed)"
fi
wait "$qemu"
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
if [ $rc = 0 ] && [ -z "$killed" ]; then
	echo "ok realvm-qemu-exit-0"
else
	failures=$((failures + 1))
	echo "FAIL realvm-qemu-exit-0: QEMU exited $rc$killed"
	sed 's/^/    /' /tmp/qemu.out
fi
echo "QEMU ran $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
for p in write read idle; do [ ! -s "/tmp/heat-$p.png" ] || artefact "realvm-heat-$p.png" "/tmp/heat-$p.png"; done
[ ! -s /tmp/top-write.txt ] || artefact realvm-top-write.txt /tmp/top-write.txt
[ ! -s /tmp/top-tty-write.txt ] || artefact_gz realvm-top-tty-write.txt /tmp/top-tty-write.txt
for p in write read idle; do [ ! -f "/tmp/report-$p.csv" ] || artefact_gz "realvm-report-$p.csv" "/tmp/report-$p.csv"; done
for p in write read idle; do [ ! -f "/tmp/heat.$p" ] || artefact_gz "realvm-heatmap-$p.csv" "/tmp/heat.$p"; done
[ ! -f /tmp/history ] || artefact_gz realvm-history.txt /tmp/history
[ ! -f /tmp/proc-write.txt ] || artefact_gz realvm-proc-write.txt /tmp/proc-write.txt
artefact_gz realvm-guest-console.txt $gl
exit $failures
