#!/bin/sh
# The end-to-end scenarios, run inside ONE boot of a test kernel on a testbed
# (tests/check runs it on every kernel x testbed pair through tests/vm/run).
# Each scenario reports one line, "ok NAME" or "FAIL NAME: why", followed by
# its own output indented when it failed. Exit status: number of failures.
#
# ept_sampler.ko is loaded when this starts ($EPT_SAMPLER_KO).

failures=0

# suite.sh [--only "NAME..."]: with --only, the scenarios named run and no
# other (tests/check runs the ones that depend on the TDP format alone on
# the slow Bochs testbed: see there). Scenarios not run are not reported.
only= ran=
if [ "${1:-}" = --only ]; then
	only=" $2 "
	shift 2
fi

# scenario NAME FUNCTION: runs FUNCTION in a subshell, output captured.
# The time after "ok NAME" is the testbed's own (virtual under Bochs).
# A scenario that fails runs once more: it passes only if that try passes,
# and then its first failure is reported on a line "flaky NAME: why"
# (tests/check lists every such line at the end) so that a flake stays
# visible.
scenario() {
	name=$1
	shift
	case "$only" in "" | *" $name "*) ;; *) return 0 ;; esac
	ran="$ran $name "
	try_scenario "$@" && return
	first=$why
	[ -z "$out" ] || echo "$out" | sed "s/^/    $name, first try| /"
	# A try that failed between rmmod and insmod (unload, process exit
	# and rmmod) must not fail the next for that reason.
	[ -e /proc/ept_sampler ] || insmod "$EPT_SAMPLER_KO" 2>/dev/null || true
	if try_scenario "$@"; then
		echo "flaky $name: $first"
		return
	fi
	failures=$((failures + 1))
	echo "FAIL $name: $why (first try: $first)"
	[ -z "$out" ] || echo "$out" | sed 's/^/    /'
}
# try_scenario FUNCTION: one try; prints "ok NAME" when it passes, else
# leaves the reason in $why; its output in $out either way.
try_scenario() {
	t0=$(cut -d' ' -f1 /proc/uptime)
	out=$( ( set -e; "$@" ) 2>&1 )
	rc=$?
	# Whatever a failed try left behind must not spoil the next one.
	# (Until they are gone, not for a guessed time; at most 3 s, as a
	# zombie still answers signal 0.)
	if killall testvm 2>/dev/null; then
		n=0
		while killall -0 testvm 2>/dev/null && [ $n -lt 60 ]; do n=$((n + 1)); sleep 0.05; done
	fi
	[ ! -w "$damon_stat" ] || echo N >"$damon_stat"
	if [ -w /proc/ept_sampler/control ]; then
		echo "detach all" >/proc/ept_sampler/control 2>/dev/null
		echo "tune walk_budget=8192 pass_accessed=yes" >/proc/ept_sampler/control 2>/dev/null
	fi
	if [ $rc -eq 0 ]; then
		echo "ok $name ($(took "$t0"))"
		[ -z "$out" ] || echo "$out" | sed 's/^/    /'
		return 0
	fi
	why=$(echo "$out" | grep -v '^ *$' | tail -1)
	why=${why:-exit status $rc, no message}
	return 1
}

fail() {
	echo "$*" >&2
	exit 1
}

# took T0: seconds since uptime T0, as "12.3s".
took() { awk -v a="$1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1fs", b - a }'; }

# --- helpers ----------------------------------------------------------------

# The testbed. Dirty bits are checked strictly on both: pages the guest only
# reads must come back clean. (Bochs was once thought to set the EPT D bit
# on reads: what kept D set on 7.3 was the walker reading KVM's A/D type
# from 6.12's bits 52-53, where 7.3 keeps EPT_SPTE_HOST_WRITABLE; see
# ept_walk/spte.rs, KvmBits.)
if grep -qw vmx /proc/cpuinfo; then
	testbed=bochs-ept expect_tdp=ept+ad
else
	testbed=qemu-npt expect_tdp=npt
fi

# The scenarios check heat maps against testvm's truth page by page: that
# holds where the sampler is the accessed bits' only consumer. Debian's
# kernel runs DAMON_STAT from boot, which clears the accessed bits of random
# pages through KVM's aging notifier: single pages then show idle in a round
# in which the guest touched them hundreds of times (found as a flake of
# lost-roots on debian-7.3). Off for the suite; accessed-bits-shared turns
# it on and checks that the tool says so.
damon_stat=/sys/module/damon_stat/parameters/enabled
[ ! -w $damon_stat ] || echo N >$damon_stat

# What some scenarios' observers need from the kernel beyond KVM. Debian's
# stock kernel (debian-7.3) is built without idle page tracking and without
# KVM_X86_SW_PROTECTED_VM VMs: a scenario that observes through them cannot
# run there. It is reported "not run: NAME (why)" (asked for by --only, it
# fails as a name that did not run); tests/check counts that as a failure
# unless the kernel is one known to lack it, and runs the scenario on the
# pairs whose kernel has what it needs (see there).
lacks() { # FACILITY: prints why this kernel lacks FACILITY, nothing if it has it
	case $1 in
	page_idle)
		[ -e /sys/kernel/mm/page_idle/bitmap ] ||
			echo "this kernel has no idle page tracking (CONFIG_IDLE_PAGE_TRACKING)"
		;;
	lockdown)
		# The lockdown LSM, and module signatures checked (the kernel is
		# tainted E, TAINT_UNSIGNED_MODULE, since ept_sampler.ko loaded):
		# else lockdown does not stop the module.
		{ [ -e /sys/kernel/security/lockdown ] || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null; } &&
			[ -e /sys/kernel/security/lockdown ] && [ $(($(cat /proc/sys/kernel/tainted) & 8192)) -ne 0 ] ||
			echo "this kernel has no lockdown LSM or does not check module signatures"
		;;
	damon_stat)
		[ -e $damon_stat ] || echo "this kernel has no DAMON_STAT (CONFIG_DAMON_STAT)"
		;;
	inet)
		# The exporter listens on loopback TCP.
		[ -e /proc/net/tcp ] || echo "this kernel has no TCP/IP (CONFIG_INET)"
		;;
	sw_protected)
		# KVM itself answers: KVM_CREATE_VM of that type fails with EINVAL
		# without CONFIG_KVM_SW_PROTECTED_VM. Any other failure is not a
		# missing facility: the scenario runs and shows it.
		testvm --mem 2M --iterations 1 --vm-type sw-protected >/tmp/swp.out 2>&1 ||
			! grep -q 'KVM_CREATE_VM.*Invalid argument' /tmp/swp.out ||
			echo "this kernel has no KVM_X86_SW_PROTECTED_VM (CONFIG_KVM_SW_PROTECTED_VM)"
		;;
	esac
}
# scenario_needing FACILITY NAME FUNCTION: scenario NAME FUNCTION where this
# kernel has FACILITY.
scenario_needing() {
	case "$only" in "" | *" $2 "*) ;; *) return 0 ;; esac
	missing=$(lacks "$1")
	if [ -n "$missing" ]; then
		echo "not run: $2 ($missing)"
		return 0
	fi
	shift
	scenario "$@"
}

# kv FILE KEY: the value of KEY in a "key value" file.
kv() { sed -n "s/^$2 //p" "$1"; }

# Starts testvm in the background with the given arguments; waits until the
# guest ran a whole pass. Sets $vm_pid, $vm_fd.
start_testvm() {
	truth=$1
	shift
	: >/tmp/testvm.out
	testvm --truth "$truth" "$@" >/tmp/testvm.out 2>&1 &
	vm_bg=$!
	i=0
	until grep -q '^testvm: running' /tmp/testvm.out; do
		kill -0 $vm_bg 2>/dev/null || { cat /tmp/testvm.out; fail "testvm exited before running"; }
		i=$((i + 1))
		[ $i -lt 600 ] || fail "testvm not running after 60 s"
		sleep 0.1
	done
	line=$(grep '^testvm: running' /tmp/testvm.out)
	vm_pid=$(echo "$line" | sed -n 's/.* pid=\([0-9]*\).*/\1/p')
	vm_fd=$(echo "$line" | sed -n 's/.* vm_fd=\([0-9]*\).*/\1/p')
	echo "$line"
}

# --- scenarios ----------------------------------------------------------------

# The testbed booted the kernel asked for (tests/vm/run names its release),
# and the version file names it and the TDP this testbed provides.
s_version() {
	v=/proc/ept_sampler/version
	cat $v
	echo "uname -r: $(uname -r)"
	[ "$(uname -r)" = "${EPT_VM_KERNEL_RELEASE:-unknown}" ] ||
		fail "uname -r is $(uname -r), the kernel asked for is ${EPT_VM_KERNEL_RELEASE:-unknown}"
	[ "$(kv $v tdp)" = "$expect_tdp" ] || fail "tdp is '$(kv $v tdp)', expected $expect_tdp on $testbed"
	[ "$(kv $v tdp_mmu)" = yes ] || fail "tdp_mmu is not yes"
	[ "$(kv $v kernel)" = "$(uname -r)" ] || fail "kernel is not $(uname -r)"
	[ -n "$(kv $v module)" ] || fail "no module version"
	# KVM's software SPTE bits, as each kernel's spte.h defines them
	# (SPTE_TDP_AD_SHIFT, FROZEN_SPTE; they moved in 6.13).
	case "$(uname -r)" in
	6.12.*) want="52 0x80000000000005a0" ;;
	*) want="60 0x80000000000001a0" ;;
	esac
	[ "$(kv $v spte_ad_shift) $(kv $v frozen_spte)" = "$want" ] ||
		fail "SPTE layout '$(kv $v spte_ad_shift) $(kv $v frozen_spte)', expected '$want' on $(uname -r)"
}

# /proc/ept_sampler is root's alone.
s_modes() {
	ls -ld /proc/ept_sampler /proc/ept_sampler/version
	[ "$(stat -c %a /proc/ept_sampler)" = 500 ] || fail "directory mode is not 0500"
	[ "$(stat -c %a /proc/ept_sampler/version)" = 400 ] || fail "version mode is not 0400"
}

# What the kernel thinks of the module, as `status` tells it: loaded
# without a signature it trusts (taint E: Debian's kernel checks signatures
# without enforcing them, and the test module is unsigned), and lockdown.
# Kernels without module signing (the self-built ones) taint O alone, and
# status says nothing of it.
s_trust() {
	grep -q ' /sys/kernel/security ' /proc/mounts || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
	taint=$(cat /sys/module/ept_sampler/taint)
	lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null || echo "n/a")
	echo "taint $taint; lockdown $lockdown"
	case "$(uname -r)" in *+deb13-*) case $taint in *E*) ;; *) fail "taint $taint on Debian's kernel: expected E (an unsigned module)" ;; esac ;; esac
	ept-sampler status >/tmp/st.out 2>&1 || fail "status failed: $(cat /tmp/st.out)"
	grep -E '^(module|kernel): ' /tmp/st.out || true
	case $taint in
	*E*) grep -q '^module: loaded without a signature the kernel trusts (taint E)' /tmp/st.out ||
		fail "taint $taint, and status does not say the module is unsigned" ;;
	*) ! grep -q 'taint E' /tmp/st.out || fail "taint $taint, and status says the module is unsigned" ;;
	esac
	case $lockdown in
	*"[none]"* | n/a) ! grep -qE 'lockdown (none|integrity|confidentiality)' /tmp/st.out || fail "lockdown $lockdown, and status says it is on" ;;
	*) grep -q "lockdown $(echo "$lockdown" | sed 's/.*\[\(.*\)\].*/\1/')" /tmp/st.out || fail "lockdown $lockdown, and status does not say so" ;;
	esac
}

# testvm runs a guest; the testbed really sets TDP accessed bits: idle page
# tracking (which reaches KVM's accessed bits through the MMU notifier) sees
# every page the guest writes or reads as young after a mark-idle.
s_accessed_bits() {
	start_testvm /tmp/t1.json --mem 64M --backing anon --seconds 600 \
		--write 16M+2M --read 32M+2M
	[ "$(readlink /proc/$vm_pid/fd/$vm_fd)" = "anon_inode:kvm-vm" ] || fail "truth's vm_fd is not a VM file"
	# A first pass puts every page on the LRU (page_idle cannot track pages
	# still in a per-CPU LRU batch); the second is the measurement.
	page-idle --truth /tmp/t1.json >/dev/null
	page-idle --truth /tmp/t1.json --passes 2 | tee /tmp/idle.out
	# Pages page_idle cannot track (not on an LRU list: hugetlb, or still in
	# a per-CPU batch) are counted apart: page_idle reads them back young
	# whatever happened, so they prove nothing either way.
	for cat in written read; do
		line=$(grep "^page-idle: $cat " /tmp/idle.out)
		num() { echo "$line" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
		pages=$(num pages) young=$(num young) idle=$(num idle) untrackable=$(num untrackable)
		[ "$pages" = 512 ] || fail "$cat: $pages pages, expected 512"
		[ "$idle" = 0 ] || fail "$cat: $idle of $pages touched pages came back idle"
		[ $((young + untrackable)) = "$pages" ] || fail "$cat: young $young + untrackable $untrackable != $pages"
		[ "$young" -ge $((pages / 2)) ] || fail "$cat: only $young of $pages pages trackable and young"
	done
	kill $vm_bg
	wait $vm_bg || true
	grep -q '"state": *"done"' /tmp/t1.json || fail "testvm did not finish cleanly: $(cat /tmp/testvm.out)"
}

# The module unloads cleanly, takes /proc/ept_sampler with it, and loads again.
s_unload() {
	rmmod ept_sampler
	[ ! -e /proc/ept_sampler ] || fail "/proc/ept_sampler still there after rmmod"
	insmod "$EPT_SAMPLER_KO"
	[ -e /proc/ept_sampler/version ] || fail "no version after reload"
	rmmod ept_sampler
}

# Lockdown (what UEFI Secure Boot turns on) after an unsigned module
# loaded: status says it will not load again, and it does not (the README's
# reason to sign it). Where the kernel checks module signatures and has the
# lockdown LSM (Debian's); the module is left unloaded.
s_lockdown() {
	[ -e /proc/ept_sampler ] || insmod "$EPT_SAMPLER_KO"
	echo integrity >/sys/kernel/security/lockdown
	grep -q '\[integrity\]' /sys/kernel/security/lockdown || fail "lockdown not raised: $(cat /sys/kernel/security/lockdown)"
	ept-sampler status >/tmp/st.out 2>&1 || fail "status failed: $(cat /tmp/st.out)"
	grep -E '^(module|kernel): ' /tmp/st.out || true
	grep -q '^module: loaded without a signature the kernel trusts (taint E), before lockdown integrity: it will not load again' /tmp/st.out ||
		fail "status does not say the module will not load again"
	rmmod ept_sampler
	if insmod "$EPT_SAMPLER_KO" 2>/tmp/insmod.out; then
		fail "the unsigned module loaded under lockdown"
	fi
	echo "insmod under lockdown: $(cat /tmp/insmod.out) / $(dmesg | grep -i lockdown | tail -1)"
}

# testvm's own checks on this testbed (backings, phase switch, page_idle),
# when tests/check adds them (not on the slow debug kernels: they test
# testvm, not the module).
s_testvm() {
	sh "$EPT_FILES/testvm-smoke.sh"
}

scenario version s_version
scenario proc-modes s_modes
scenario module-trust s_trust
scenario_needing page_idle accessed-bits s_accessed_bits
[ ! -f "$EPT_FILES/testvm-smoke.sh" ] || scenario_needing page_idle testvm-backings s_testvm
# The sampler's scenarios, where tests/check adds them (see there).
if [ -f "$EPT_FILES/sampler.sh" ]; then
	. "$EPT_FILES/sampler.sh"
	scenario accuracy-4k s_accuracy
	# Transparent huge pages depend on !PREEMPT_RT: on an RT kernel this
	# scenario cannot run, and it is not counted either way.
	if uname -v | grep -qw PREEMPT_RT; then
		echo "not run: thp-2m-leaves (a PREEMPT_RT kernel has no transparent huge pages)"
	else
		scenario thp-2m-leaves s_thp
	fi
	scenario phase-change s_phase
	scenario idle-age s_idle
	scenario_needing page_idle host-view s_host_view
	scenario host-view-cost s_host_view_cost
	scenario two-vms s_two_vms
	scenario yields s_yields
	scenario lost-roots s_lost_roots
	scenario_needing damon_stat accessed-bits-shared s_bits_shared
	scenario dirty-logging s_dirty_log
	scenario dirty-logging-begins s_dirty_log_begins
	scenario_needing sw_protected private-vm s_private_vm
	scenario non-root s_non_root
	scenario creds-at-open s_creds_at_open
	scenario dir-reuse s_dir_reuse
	scenario detach-window s_detach_window
	scenario heatmap-bin-snapshot s_bin_snapshot
	scenario readers-not-held s_readers_not_held
	scenario malformed-commands s_fuzz
	scenario module-params s_params
	# record/report through the tool (uses sampler.sh's helpers); before
	# the scenario that unloads the module.
	if [ -f "$EPT_FILES/tool-record.sh" ]; then
		. "$EPT_FILES/tool-record.sh"
		scenario record-report s_record_report
		scenario record-killed s_record_killed
	fi
	if [ -f "$EPT_FILES/tool-export.sh" ]; then
		. "$EPT_FILES/tool-export.sh"
		scenario_needing inet metrics-scrape s_export
	fi
	scenario process-exit-and-rmmod s_kill
fi
scenario unload s_unload
# Last: lockdown cannot be lifted once raised.
scenario_needing lockdown lockdown-refuses-unsigned s_lockdown
# A name in --only that no scenario has is a mistake, not a pass.
for name in $only; do
	case "$ran" in *" $name "*) ;; *)
		failures=$((failures + 1))
		echo "FAIL $name: no scenario of that name ran (--only, or a file missing)"
		;;
	esac
done
exit $failures
