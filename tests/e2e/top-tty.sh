# `ept-sampler top`, the live view, on a real terminal inside a testbed
# (issue 6, scenario 3): against the live module and a real VM, driven by
# keys the way a person would, checked from what the terminal shows.
# A POSIX sh library (busybox ash) for tests/e2e/realvm.sh, which sources
# it; it needs tmux in the testbed (tests/vm/run --with-qemu carries it) and
# a kernel with CONFIG_UNIX (tmux's client and server talk over a socket).
#
#   top_tty VM OUT MIN_HOT_MIB PERIOD_MS MODE WINDOW
#
# Starts `ept-sampler top` in a private tmux server (-L) on a 100x30
# terminal, waits for VM's row, then: Enter opens VM's detail pane, + and -
# lengthen the period one step and shorten it back (each a real `start`
# to the module, checked in its config), p pauses and resumes, Esc closes
# the pane, q quits. After each key the screen must show what the key did;
# the row must say `sampling` with at least MIN_HOT_MIB hot, and the
# settings on screen must be PERIOD_MS, MODE, WINDOW and agree with the
# module's /proc/ept_sampler/VM/config. The screens go to OUT (a text file
# for the artefacts; on a failure it ends with the screen at the failure)
# and, when all passed, to stdout. Returns 0, or 1 after printing the
# screen and, as the last line on stderr, why.
#
# The period ends where it started (+ then -); a period change keeps the
# heat map and its history (docs/procfs.md), so the caller's later
# scenarios see the same sampler.
#
# Waits are in the testbed's own seconds (virtual under Bochs, about 4
# host seconds each): generous, since a check that passes returns at once.

TOP_TTY_WAIT=${TOP_TTY_WAIT:-60}
# The module's directory; another (a copy of fixture files) only to try
# this library out on a host.
TOP_TTY_PROC=${TOP_TTY_PROC:-/proc/ept_sampler}

# tt_tmux ARGS...: the private server, with a home and socket directory of
# its own; TERM is one whose terminfo tests/vm/run ships.
tt_tmux() {
	TMUX_TMPDIR=$tt_dir HOME=$tt_dir TERM=screen tmux -L ept-top-tty "$@"
}

tt_screen() { tt_tmux capture-pane -p -t top 2>/dev/null; }

# tt_keep TITLE: appends the screen now to OUT under TITLE.
tt_keep() {
	{
		echo "=== $1"
		tt_screen || echo "(the pane could not be read)"
		echo
	} >>"$tt_out"
}

# tt_fail REASON: the screen, then REASON as the last line; ends the
# server (and top with it).
tt_fail() {
	tt_keep "at the failure: $1"
	echo "--- screen at the failure:" >&2
	tt_screen | sed 's/^/  | /' >&2
	tt_tmux kill-server 2>/dev/null || true
	echo "top_tty: $1" >&2
	return 1
}

# tt_wait WHAT SECONDS COMMAND...: polls COMMAND (given the screen as
# $tt_now) every 0.5 s; fails with WHAT (and $tt_why, which COMMAND may
# set) when the time is up.
tt_wait() {
	tt_what=$1 tt_s=$2 tt_n=$(($2 * 2)) tt_why=
	shift 2
	while :; do
		tt_now=$(tt_screen) || tt_now=
		if "$@"; then return 0; fi
		tt_n=$((tt_n - 1))
		[ $tt_n -gt 0 ] || { tt_fail "$tt_what: not on screen within $tt_s s${tt_why:+ ($tt_why)}"; return 1; }
		sleep 0.5
	done
}
tt_has() { printf '%s\n' "$tt_now" | grep -Eq -- "$1"; }
tt_lacks() { ! tt_has "$1"; }
# The VM's row of the table: "> VM  STATE  HOT  DIRTY ...", the selection
# mark removed.
tt_row() { printf '%s\n' "$tt_now" | awk -v vm="$tt_vm" '{ sub(/^[> ]*/, "") } $1 == vm' | head -1; }
tt_row_ready() {
	tt_r=$(tt_row)
	tt_why="row: ${tt_r:-none}"
	[ -n "$tt_r" ] || return 1
	set -- $tt_r
	[ "$2" = sampling ] && awk -v h="$3" -v w="$tt_hot" 'BEGIN { exit !(h + 0 >= w) }'
}
# tt_config KEY: the module's setting.
tt_config() { sed -n "s/^$1 //p" "$TOP_TTY_PROC/$tt_vm/config"; }
tt_config_period_is() { [ "$(tt_config period_ms)" = "$1" ]; }

# tt_key NAME KEY: sends KEY (a tmux key name) and notes it in OUT.
tt_key() {
	echo "top_tty: key $2 ($1)"
	tt_tmux send-keys -t top "$2" || { tt_fail "tmux could not send $2"; return 1; }
}

top_tty() {
	tt_vm=$1 tt_out=$2 tt_hot=$3 tt_period=$4 tt_mode=$5 tt_window=$6
	[ -n "$tt_window" ] || { echo "top_tty: usage: top_tty VM OUT MIN_HOT_MIB PERIOD_MS MODE WINDOW" >&2; return 1; }
	tt_dir=/tmp/top-tty
	# A server left by an earlier call that ended early goes first.
	! command -v tmux >/dev/null || [ ! -d "$tt_dir" ] || tt_tmux kill-server 2>/dev/null || true
	rm -rf "$tt_dir" && mkdir -p "$tt_dir"
	: >"$tt_out"
	command -v tmux >/dev/null || { echo "top_tty: no tmux in the testbed (tests/vm/run --with-qemu carries it)" >&2; return 1; }
	[ -f "$TOP_TTY_PROC/$tt_vm/config" ] || { echo "top_tty: no $TOP_TTY_PROC/$tt_vm/config" >&2; return 1; }
	# What the caller started must be what the module runs: the screen is
	# then checked against both.
	for tt_kv in "period_ms $tt_period" "mode $tt_mode" "window $tt_window"; do
		set -- $tt_kv
		[ "$(tt_config "$1")" = "$2" ] ||
			{ echo "top_tty: the module's config says $1 $(tt_config "$1"), the caller expects $2" >&2; return 1; }
	done
	tt_longer=$(awk -v p="$tt_period" 'BEGIN { split("10 20 50 100 200 500 1000 2000 5000 10000 30000 60000", s, " "); for (i = 1; i <= 12; i++) if (s[i] > p) { print s[i]; exit } }')
	[ -n "$tt_longer" ] || { echo "top_tty: no period step above $tt_period ms" >&2; return 1; }

	# top in a 100x30 terminal; when it ends, the shell in the pane says
	# with what status (on screen and in a file) and whether the terminal
	# is back in canonical mode, then waits to be read. Status and mode are
	# one line, written at once: a check that waited for the status alone
	# once read the screen before the mode was printed beside it, and took
	# the missing "icanon" for a terminal left raw.
	tt_tmux new-session -d -s top -x 100 -y 30 \
		"ept-sampler --proc $TOP_TTY_PROC top; echo \"top-exit \$?\" >$tt_dir/exit; echo \"\$(cat $tt_dir/exit) tty \$(stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\{0,1\\}icanon')\"; exec sleep 3600" ||
		{ echo "top_tty: tmux could not start a session" >&2; return 1; }
	tt_size=$(tt_tmux display-message -p -t top '#{pane_width}x#{pane_height}') || tt_size=unknown
	[ "$tt_size" = 100x30 ] || { tt_fail "the pane is $tt_size, not 100x30"; return 1; }

	# 1. The table: the VM sampling, its buffer hot (the hot MiB are a
	#    window's worth: they may take a refresh or two to fill).
	tt_wait "top's title bar" "$TOP_TTY_WAIT" tt_has '^ept-sampler top [0-9:]+Z \| .* [0-9]+ VMs, [0-9]+ attached' || return 1
	tt_wait "$tt_vm sampling with at least $tt_hot MiB hot" "$TOP_TTY_WAIT" tt_row_ready || return 1
	tt_keep "$tt_vm sampling, $(set -- $(tt_row); echo "$3") MiB hot"
	echo "top_tty: row: $(tt_row)"
	# The panel under the table: mode, period of the module's config.
	tt_wait "$tt_vm's panel with mode $tt_mode, period $tt_period ms" 10 \
		tt_has "^-- $tt_vm sampling \\| $tt_mode [0-9]+[KMG] \\| period $tt_period ms \\|" || return 1

	# 2. Select the VM (Up until it is marked: it may not be the first
	#    row) and open its detail pane: the settings the module runs.
	tt_i=0
	while tt_now=$(tt_screen) && tt_lacks "^> $tt_vm "; do
		tt_i=$((tt_i + 1))
		[ $tt_i -le 20 ] || { tt_fail "Up/Down never select $tt_vm"; return 1; }
		tt_key select Down || return 1
		sleep 0.5
	done
	tt_key "detail pane" Enter || return 1
	tt_wait "$tt_vm's detail pane" 10 tt_has "^-- $tt_vm detail \\(Esc closes\\)" || return 1
	tt_wait "the detail pane's settings: period ${tt_period}ms mode $tt_mode window $tt_window" 10 \
		tt_has "^  period ${tt_period}ms mode $tt_mode granule [0-9]+[KMG] window $tt_window " || return 1
	tt_wait "the keys line of the detail pane" 10 tt_has 'Enter/d/Esc close' || return 1
	tt_keep "Enter: $tt_vm's detail pane"

	# 3. + lengthens the period one step: the module runs it (config),
	#    the pane shows it; - brings it back.
	tt_key "longer period" + || return 1
	tt_wait "+: '$tt_vm: period $tt_longer ms: done'" 10 tt_has "$tt_vm: period $tt_longer ms: done" || return 1
	tt_config_period_is "$tt_longer" || { tt_fail "+: the module's period_ms is $(tt_config period_ms), not $tt_longer"; return 1; }
	tt_wait "+: the detail pane with period ${tt_longer}ms" 10 tt_has "^  period ${tt_longer}ms mode $tt_mode " || return 1
	tt_keep "+: period $tt_longer ms"
	tt_key "shorter period" - || return 1
	tt_wait "-: '$tt_vm: period $tt_period ms: done'" 10 tt_has "$tt_vm: period $tt_period ms: done" || return 1
	tt_config_period_is "$tt_period" || { tt_fail "-: the module's period_ms is $(tt_config period_ms), not $tt_period"; return 1; }
	tt_wait "-: the detail pane with period ${tt_period}ms" 10 tt_has "^  period ${tt_period}ms mode $tt_mode " || return 1
	tt_keep "-: period $tt_period ms again"

	# 4. p pauses refreshing (said in the title), p resumes.
	tt_key pause p || return 1
	tt_wait "p: PAUSED in the title" 10 tt_has '^ept-sampler top [0-9:]+Z \| PAUSED \|' || return 1
	tt_keep "p: paused"
	tt_key resume p || return 1
	tt_wait "p again: PAUSED gone" 10 tt_lacks 'PAUSED' || return 1

	# 5. Esc closes the pane: the table and the VM's panel are back.
	tt_key "close the pane" Escape || return 1
	tt_wait "Esc: the detail pane closed" 10 tt_lacks ' detail \(Esc closes\)' || return 1
	tt_wait "Esc: $tt_vm's row back, sampling" 10 tt_row_ready || return 1
	tt_keep "Esc: the table again"

	# 6. q leaves with status 0 and the terminal as it was.
	tt_key quit q || return 1
	tt_wait "q: 'top-exit 0 tty icanon'" 10 tt_has '^top-exit [0-9]+ tty( |$)' || return 1
	tt_keep "q: top ended"
	[ "$(cat "$tt_dir/exit" 2>/dev/null)" = "top-exit 0" ] ||
		{ tt_fail "q: top exited with '$(cat "$tt_dir/exit" 2>/dev/null)', not 'top-exit 0'"; return 1; }
	tt_has '^top-exit [0-9]+ tty icanon$' || { tt_fail "q: the terminal is left in raw mode (no icanon)"; return 1; }
	tt_lacks '^ept-sampler top [0-9:]+Z' || { tt_fail "q: top's screen is still shown (alternate screen not left)"; return 1; }
	tt_tmux kill-server 2>/dev/null || true
	cat "$tt_out"
	echo "top_tty: $tt_vm on a 100x30 tmux terminal: row, panel, detail pane, + and - (module config followed), pause, Esc, q: all as expected"
}
