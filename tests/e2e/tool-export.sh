# `ept-sampler export` end to end (issue 24), sourced by suite.sh inside a
# test kernel after sampler.sh (whose helpers es, start_vm, end_vm, rounds
# and wait_rounds it uses). `fail MSG` ends a scenario.
#
# s_export starts the exporter beside two testvm guests and scrapes it
# over loopback with busybox wget: every per-VM series against the
# module's files and testvm's truth, the host series, a VM stopped, a
# second exporter on the same port, one without the module.

# scrape ADDR OUT: GET /metrics into OUT, the response headers in OUT.head.
scrape() {
	wget -q -S -O "$2" "http://$1/metrics" 2>"$2.head" || { cat "$2.head"; fail "GET http://$1/metrics failed"; }
}

# series FILE NAME VM [LABEL=VALUE]: the value of the one series NAME of VM
# (with that label too) in an exposition; nothing, and why on stderr,
# unless there is exactly one (so that the caller's check fails).
series() {
	awk -v name="$2" -v vm="vm=\"$3\"" -v extra="${4:-}" '
		index($0, name "{") == 1 && index($0, vm) && (extra == "" || index($0, extra)) { n++; v = $NF }
		END { if (n != 1) exit 1; print v }' "$1" ||
		echo "$2 of $3${4:+ with $4}: not exactly one series" >&2
}

# no_series FILE NAME VM: fails if the exposition has NAME for VM.
no_series() {
	! grep -q "^$2{.*vm=\"$3\"" "$1" || fail "$2 served for $3: $(grep "^$2{.*vm=\"$3\"" "$1")"
}

# within V LO HI WHAT: fails unless LO <= V <= HI (decimal, any size).
within() {
	awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v + 0 >= lo + 0 && v + 0 <= hi + 0) }' ||
		fail "$4: $1, expected $2..$3"
}

# steady VM: the lines of VM's stats and idle files that hold from round to
# round while testvm's pattern does (the last round's pages, the idle
# bytes), to compare a scrape with.
steady() {
	grep -E '^(accessed_pages_last|dirty_pages_last) ' "/proc/ept_sampler/$1/stats"
	grep -E '^(mapped_bytes|never|idle) ' "/proc/ept_sampler/$1/idle"
}

s_export() {
	# Loopback, which the test kernel's init leaves down.
	ip link set lo up || fail "no loopback"
	start_vm exa --mem 128M --backing anon --seconds 600 --write 8M+4M --read 32M+4M
	a=$vm a_bg=$vm_bg
	start_vm exb --mem 64M --backing anon --seconds 600 --read 16M+2M
	b=$vm b_bg=$vm_bg
	es start --pid "${a%-*}" --period-ms 100 --mode both --idle 1s,2s,1h
	es start --pid "${b%-*}" --period-ms 100 --mode accessed
	# 25 rounds: the first rounds' dirty bits (KVM marks writable mappings
	# dirty when it makes them) are long cleared, and the 1 s bin has
	# filled.
	wait_rounds "$a" 25
	wait_rounds "$b" 25
	# Not on the scenario's output: a failed check must not leave it held.
	ept-sampler export --listen 127.0.0.1:0 >/dev/null 2>/tmp/exp.err &
	exp_bg=$!
	# The scenario runs in a subshell of its own: its end, failed or not,
	# ends the exporters it started.
	trap 'kill $exp_bg ${exp3_bg:-} 2>/dev/null || true' EXIT
	i=0
	until addr=$(sed -n 's|^ept-sampler export: serving http://\(.*\)/metrics$|\1|p' /tmp/exp.err) && [ -n "$addr" ]; do
		kill -0 $exp_bg 2>/dev/null || { cat /tmp/exp.err; fail "export exited before serving"; }
		i=$((i + 1))
		[ $i -lt 300 ] || fail "export not serving after 30 s: $(cat /tmp/exp.err)"
		sleep 0.1
	done
	# The per-round figures change between two reads of /proc only when
	# testvm's pattern does: a scrape between two equal readings must show
	# exactly them. The counters are bracketed by a read before and after.
	try=0
	while :; do
		steady "$a" >/tmp/a.before
		steady "$b" >/tmp/b.before
		cat "/proc/ept_sampler/$a/stats" >/tmp/a.stats0
		scrape "$addr" /tmp/m1
		cat "/proc/ept_sampler/$a/stats" >/tmp/a.stats1
		steady "$a" >/tmp/a.after
		steady "$b" >/tmp/b.after
		cmp -s /tmp/a.before /tmp/a.after && cmp -s /tmp/b.before /tmp/b.after && break
		try=$((try + 1))
		[ $try -lt 20 ] || fail "the guests' per-round figures never held still across a scrape"
	done
	cat /tmp/m1
	grep -qi '^ *content-type: text/plain; version=0.0.4' /tmp/m1.head || fail "content type: $(cat /tmp/m1.head)"
	[ "$(awk '$1 == "ept_sampler_up" { print $2 }' /tmp/m1)" = 1 ] || fail "ept_sampler_up is not 1"
	[ "$(awk '$1 == "ept_sampler_vms_unread" { print $2 }' /tmp/m1)" = 0 ] || fail "ept_sampler_vms_unread is not 0"
	[ "$(awk '$1 == "ept_sampler_vms" { print $2 }' /tmp/m1)" = "$(grep -vc '^#' /proc/ept_sampler/vms)" ] ||
		fail "ept_sampler_vms is not the rows of vms"
	module=$(kv /proc/ept_sampler/version module) kernel=$(kv /proc/ept_sampler/version kernel)
	grep -qx "ept_sampler_build_info{kernel=\"$kernel\",version=\"$module\"} 1" /tmp/m1 || fail "build_info: $(grep build_info /tmp/m1)"
	kb=4096
	for v in $a $b; do
		set -- $(awk -v vm="$v" '$1 == vm' /proc/ept_sampler/vms)
		mem=$4 tdp=$5
		[ "$(series /tmp/m1 ept_sampler_vm_memory_bytes "$v")" = "$mem" ] || fail "$v memory_bytes not $mem"
		# testvm is not QEMU: no domain, no uuid (empty labels are absent
		# labels to Prometheus).
		grep -qx "ept_sampler_vm_info{domain=\"\",pid=\"${v%-*}\",tdp=\"$tdp\",uuid=\"\",vm=\"$v\"} 1" /tmp/m1 ||
			fail "vm_info of $v: $(grep "^ept_sampler_vm_info{.*vm=\"$v\"" /tmp/m1)"
		[ "$(series /tmp/m1 ept_sampler_vm_sampling "$v" 'reason=""')" = 1 ] || fail "$v not sampling"
		# The figures as the module's files said them, around the scrape.
		cp "/tmp/$([ "$v" = "$a" ] && echo a || echo b).after" /tmp/steady
		acc=$(($(kv /tmp/steady accessed_pages_last) * kb))
		[ "$(series /tmp/m1 ept_sampler_vm_accessed_bytes "$v")" = "$acc" ] || fail "$v accessed_bytes not $acc"
		[ "$(series /tmp/m1 ept_sampler_vm_mapped_bytes "$v")" = "$(kv /tmp/steady mapped_bytes)" ] || fail "$v mapped_bytes"
		set -- $(kv /tmp/steady never)
		[ "$(series /tmp/m1 ept_sampler_vm_never_accessed_bytes "$v")" = "$1" ] || fail "$v never_accessed_bytes not $1"
		awk '$1 == "idle" { print $2, $3, $4 }' /tmp/steady >/tmp/bins
		while read -r bin na nw; do
			case $bin in *h) s=$((${bin%h} * 3600))s ;; *m) s=$((${bin%m} * 60))s ;; *) s=$bin ;; esac
			[ "$(series /tmp/m1 ept_sampler_vm_idle_bytes "$v" "idle_for=\"$s\"")" = "$na" ] || fail "$v idle_bytes $s not $na"
			if [ "$nw" != - ]; then
				[ "$(series /tmp/m1 ept_sampler_vm_write_idle_bytes "$v" "idle_for=\"$s\"")" = "$nw" ] || fail "$v write_idle_bytes $s not $nw"
			fi
		done </tmp/bins
	done
	# The counters of a, between the reads before and after the scrape.
	r=$(series /tmp/m1 ept_sampler_vm_rounds_total "$a")
	within "$r" "$(kv /tmp/a.stats0 rounds)" "$(kv /tmp/a.stats1 rounds)" "$a rounds_total"
	t0=$(($(kv /tmp/a.stats0 walk_ns_total) + $(kv /tmp/a.stats0 flush_ns_total)))
	t1=$(($(kv /tmp/a.stats1 walk_ns_total) + $(kv /tmp/a.stats1 flush_ns_total)))
	within "$(series /tmp/m1 ept_sampler_vm_scan_seconds_total "$a")" "$(awk -v t="$t0" 'BEGIN { printf "%.9f", t / 1e9 }')" \
		"$(awk -v t="$t1" 'BEGIN { printf "%.9f", t / 1e9 }')" "$a scan_seconds_total"
	# testvm's truth: a touches 8 MiB and writes 4 MiB of them each pass (its
	# own few pages besides), b reads 2 MiB and is not sampled for writes.
	acc_a=$(series /tmp/m1 ept_sampler_vm_accessed_bytes "$a")
	within "$acc_a" $((8 << 20)) $((8 << 20 | 100 << 10)) "$a accessed_bytes (truth 8 MiB)"
	within "$(series /tmp/m1 ept_sampler_vm_accessed_bytes "$b")" $((2 << 20)) $((2 << 20 | 100 << 10)) "$b accessed_bytes (truth 2 MiB)"
	dirty_a=$(series /tmp/m1 ept_sampler_vm_dirty_bytes "$a")
	[ "$dirty_a" = $(($(kv /tmp/a.after dirty_pages_last) * kb)) ] || fail "$a dirty_bytes not the stats'"
	within "$dirty_a" $((4 << 20)) $((4 << 20 | 100 << 10)) "$a dirty_bytes (truth 4 MiB)"
	# The rate is the dirty bytes over the round's interval: 100 ms, more
	# when a round overran on the emulator, and never under 50 ms (a late
	# round's next starts half a period after it ended: kvm/sampler.rs).
	# The exact formula is the unit tests' (tools/ept-sampler/tests/export.rs).
	within "$(series /tmp/m1 ept_sampler_vm_dirty_rate_bytes_per_second "$a")" 1 $((dirty_a * 20)) "$a dirty rate"
	for name in dirty_bytes dirty_rate_bytes_per_second never_written_bytes write_idle_bytes; do
		no_series /tmp/m1 "ept_sampler_vm_$name" "$b"
	done
	# A VM stopped: sampling 0 with the reason, its last round's figures
	# gone, its counters kept. The exporter reads /proc again after a
	# round's period at most: wait on the scrape itself.
	es stop "$b"
	i=0
	until scrape "$addr" /tmp/m2 && grep -q "^ept_sampler_vm_sampling{domain=\"\",reason=\"attached\",vm=\"$b\"} 0$" /tmp/m2; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "$b stopped, still served as sampling: $(grep "ept_sampler_vm_sampling" /tmp/m2)"
		sleep 0.1
	done
	no_series /tmp/m2 ept_sampler_vm_accessed_bytes "$b"
	no_series /tmp/m2 ept_sampler_vm_idle_bytes "$b"
	[ "$(series /tmp/m2 ept_sampler_vm_rounds_total "$b")" = "$(kv "/proc/ept_sampler/$b/stats" rounds)" ] ||
		fail "$b rounds_total after stop not its stats' rounds"
	# A second exporter on the same address: refused in words.
	if ept-sampler export --listen "$addr" 2>/tmp/exp2.err; then
		fail "a second exporter on $addr started"
	fi
	grep -q "cannot listen on $addr: .*in use" /tmp/exp2.err || fail "second exporter: $(cat /tmp/exp2.err)"
	# Without the module: ept_sampler_up 0, served, said once on stderr.
	ept-sampler --proc /tmp/no-module export --listen 127.0.0.1:0 >/dev/null 2>/tmp/exp3.err &
	exp3_bg=$!
	i=0
	until addr3=$(sed -n 's|^ept-sampler export: serving http://\(.*\)/metrics$|\1|p' /tmp/exp3.err) && [ -n "$addr3" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || fail "export without the module not serving: $(cat /tmp/exp3.err)"
		sleep 0.1
	done
	scrape "$addr3" /tmp/m3
	scrape "$addr3" /tmp/m3
	[ "$(grep -v '^#' /tmp/m3)" = "ept_sampler_up 0" ] || fail "without the module: $(cat /tmp/m3)"
	[ "$(grep -c 'serving ept_sampler_up 0: the ept_sampler module is not loaded' /tmp/exp3.err)" = 1 ] ||
		fail "export's words without the module: $(cat /tmp/exp3.err)"
	kill $exp_bg $exp3_bg
	wait $exp_bg $exp3_bg 2>/dev/null || true
	es detach --all
	end_vm exa "$a_bg"
	end_vm exb "$b_bg"
}
