#!/usr/bin/env bash
# `ept-sampler top` tried the way a person would: started in a detached
# tmux session of 80x24 against a copy of the fixture files (--proc), keys
# sent with `tmux send-keys`, the screen read back with `tmux
# capture-pane -p` and checked. The expectations come from the fixture
# README and files (tests/fixtures/npt-7.3), not from top's output.
#
#   tools/ept-sampler/tests/tmux-top.sh [BINARY]
#
# BINARY defaults to $EPT_SAMPLER, then to the release build
# (target/x86_64-unknown-linux-gnu/release/ept-sampler). Prints "ok ..." or
# "FAIL ..." per check and "N passed, N failed"; exits non-zero on any
# failure. Uses a private tmux server (-L), so it never touches a user's
# sessions. Needs tmux (tests/setup installs it).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${1:-${EPT_SAMPLER:-$repo/target/x86_64-unknown-linux-gnu/release/ept-sampler}}
fixtures=$here/fixtures/npt-7.3

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

if ! command -v tmux >/dev/null; then
	echo "FAIL tmux is not installed (apt-get install tmux; tests/setup does it)"
	exit 1
fi
if [ ! -x "$bin" ]; then
	echo "FAIL no ept-sampler binary at $bin (cargo build --release)"
	exit 1
fi

# Short, so that the title (cut at 80 columns) shows everything.
work=$(mktemp -d /tmp/et.XXXX)
sock=ept-top-test-$$
tm() { tmux -L "$sock" "$@"; }
cleanup() {
	tm kill-server 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# A copy of phase2, so that writes to `control` land in a scratch file.
cp -r "$fixtures/phase2" "$work/proc"
: >"$work/proc/control"

screen() { tm capture-pane -p -t "$1"; }

# wait_for SESSION SECONDS PATTERN [absent]: polls the screen until the
# grep -E pattern is there (or, with "absent", gone).
wait_for() {
	local s=$1 t=$2 pat=$3 want=${4:-present} i
	local out
	for ((i = 0; i < t * 10; i++)); do
		# A pane that cannot be read proves nothing either way.
		if ! out=$(screen "$s"); then
			sleep 0.1
			continue
		fi
		if grep -Eq -- "$pat" <<<"$out"; then
			[ "$want" = present ] && return 0
		else
			[ "$want" = absent ] && return 0
		fi
		sleep 0.1
	done
	return 1
}

# Generous: a check that passes returns at once; only a failure waits this
# long (make check may run this while testbeds load the machine).
timeout=10

# check SESSION NAME PATTERN: the pattern comes on screen.
check() {
	if wait_for "$1" $timeout "$3"; then
		ok "$2"
	else
		fail "$2: no /$3/ on screen:"
		screen "$1" | sed 's/^/     | /'
	fi
}

# check_not SESSION NAME PATTERN: the pattern goes from the screen.
check_not() {
	if wait_for "$1" $timeout "$3" absent; then
		ok "$2"
	else
		fail "$2: /$3/ still on screen:"
		screen "$1" | sed 's/^/     | /'
	fi
}

# start SESSION ARGS...: top in a new 80x24 session; when it exits, the
# shell prints its status and whether the terminal is back in canonical
# mode (raw mode would show `-icanon`), then waits to be read.
start() {
	local s=$1
	shift
	tm new-session -d -s "$s" -x 80 -y 24 \
		"$(printf '%q ' "$bin" "$@"); echo \"top exited \$?\"; stty -a | tr ' ' '\n' | grep -x -- '-\\?icanon'; sleep 600"
	local size
	size=$(tm display-message -p -t "$s" '#{pane_width}x#{pane_height}')
	if [ "$size" = 80x24 ]; then ok "$s: pane is 80x24"; else fail "$s: pane is $size, not 80x24"; fi
}

keys() { tm send-keys -t "$1" "${@:2}"; }

# The control line a period change of VM $1 to $2 ms must write: the
# fixture's config with period_ms replaced (the fixtures' module had no idle
# bins: a config without them means the default ones, docs/procfs.md).
expected_start() {
	local c=$work/proc/$1/config idle
	idle=$(awk '$1=="idle"{print $2}' "$c")
	printf 'start vm=%s period_ms=%s mode=%s granule=%s window=%s flush=%s walk=%s history=%s idle=%s\n' \
		"$1" "$2" "$(awk '$1=="mode"{print $2}' "$c")" "$(awk '$1=="granule"{print $2}' "$c")" \
		"$(awk '$1=="window"{print $2}' "$c")" "$(awk '$1=="flush"{print $2}' "$c")" \
		"$(awk '$1=="walk"{print $2}' "$c")" "$(awk '$1=="history"{print $2}' "$c")" \
		"${idle:-1s,10s,1m,10m,1h}"
}

# --- a session: look, move, open the detail pane, change the period, quit
s=main
start $s --proc "$work/proc" top --interval-ms 200
check $s "title bar" '^ept-sampler top [0-9:]+Z \| /tmp/.* \| 3 VMs, 2 attached \| every 200ms'
if [ "$failed" -gt 0 ]; then
	echo "FAIL top did not come up; nothing else can be checked"
	echo
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
fi
# README: 72-4 and 85-4 sampled, 96-4 detached.
check $s "72-4 listed, selected, sampling" '^> 72-4 +sampling'
check $s "85-4 listed, sampling" '^  85-4 +sampling'
check $s "96-4 listed as not attached" '^  96-4 +not attached'
check $s "72-4 panel: mode both, 4K, period 100 ms" '^-- 72-4 .*both 4K \| period 100 ms'
check $s "85-4 panel: mode accessed, 2M, period 200 ms" '^-- 85-4 .*accessed 2M \| period 200 ms'
check $s "72-4 heat strip over 0..256M" '^  heat 0\|.*@.*\|256M$'
check $s "85-4 heat strip over 0..128M" '^  heat 0\|.*@.*\|128M$'
check $s "working-set line" '^  wss +16\.0M'
check $s "keys line" '^Up/Down/j/k select'

keys $s Down
check $s "Down selects 85-4" '^> 85-4 '
check_not $s "72-4 no longer selected" '^> 72-4 '
keys $s Enter
check $s "Enter opens 85-4's detail pane" '^-- 85-4 detail'
# memslots fixture of 85-4: slot 0 at 0x0, 0x8000000 bytes.
check $s "detail shows 85-4's memslot" 'memslots 0:0\.\.128M'
check $s "detail shows the history grid" '^ +r[0-9]+\|'
keys $s Escape
check_not $s "Esc closes the detail pane" 'detail \(Esc'
keys $s k
check $s "k selects 72-4 again" '^> 72-4 '

keys $s +
want=$(expected_start 72-4 200)
check $s "+ reports the new period" '72-4: period 200 ms: done'
if [ "$(cat "$work/proc/control")" = "${want%$'\n'}" ]; then
	ok "+ wrote: ${want%$'\n'}"
else
	fail "+ wrote '$(cat "$work/proc/control")', not '${want%$'\n'}'"
fi

# The module refusing: every write fails (as /dev/full does), and its
# reason is in last_error (the fixture's holds a refused period_ms=0).
rm "$work/proc/control"
ln -s /dev/full "$work/proc/control"
reason=$(cat "$work/proc/last_error")
keys $s -
check $s "a refused write shows the module's reason" "${reason#* }"
check $s "top still runs after a refusal" '^ept-sampler top [0-9:]+Z \|'

keys $s p
check $s "p pauses" '^ept-sampler top [0-9:]+Z \| PAUSED'
keys $s p
check_not $s "p resumes" 'PAUSED'

keys $s q
check $s "q quits with status 0" '^top exited 0$'
check $s "the terminal is restored (not raw)" '^icanon$'
check_not $s "the alternate screen is left" '^ept-sampler top [0-9:]+Z \|'

# --- a live directory that changes under top, as /proc does: phase1, then
# phase2, then VM 85-4 gone, then the module gone and back (the directory
# is a symlink swapped atomically, so a refresh never sees half a copy)
s=live
cp -r "$fixtures/phase1" "$work/p1"
cp -r "$fixtures/phase2" "$work/p2"
cp -r "$fixtures/phase2" "$work/p3"
rm -r "$work/p3/85-4"
grep -v '^85-4 ' "$fixtures/phase2/vms" >"$work/p3/vms"
swap() { ln -sfn "$1" "$work/live.new" && mv -T "$work/live.new" "$work/live"; }
swap "$work/p1"
rounds() { awk '$1=="rounds"{print $2}' "$fixtures/$1/72-4/stats"; }
start $s --proc "$work/live" top --interval-ms 300
check $s "live: phase1 read ($(rounds phase1) rounds)" "^-- 72-4 .*\\| $(rounds phase1) rounds"
keys $s Down
check $s "live: 85-4 selected" '^> 85-4 '
swap "$work/p2"
check $s "live: refreshed to phase2 ($(rounds phase2) rounds)" "^-- 72-4 .*\\| $(rounds phase2) rounds"
swap "$work/p3"
check $s "live: a VM that went away leaves the table" '\| 2 VMs, 1 attached \|'
check_not $s "live: no 85-4 row" '^[ >] 85-4 '
check $s "live: the selection moves to a VM still there" '^> 72-4 '
swap "$work/gone"
check $s "live: module gone: said on the status line" 'refresh failed: .*module is not loaded'
check $s "live: module gone: last good read stays" '^> 72-4 '
swap "$work/p2"
check $s "live: back: 85-4 again" '^  85-4 +sampling'
check_not $s "live: back: the failure is no longer shown" 'refresh failed'
keys $s q
check $s "live: q quits with status 0" '^top exited 0$'

# --- colour: on by default, off with --color never (the ramp stays)
s=color
start $s --proc "$work/proc" top
check $s "colour session draws" '^> 72-4 '
heat_line() { tm capture-pane -p -e -t "$s" | grep -a -- '  heat 0|' | head -1; }
if heat_line | grep -q $'\e\\['; then ok "heat strip is coloured"; else fail "heat strip has no colour: $(heat_line | cat -v)"; fi
keys $s q
check $s "colour session quits" '^top exited 0$'
s=nocolor
start $s --proc "$work/proc" top --color never
check $s "--color never: heat ramp still drawn" '^  heat 0\|.*@.*\|256M$'
# A foreground colour (30-38, 90-97); 39 is "default" and stays.
if heat_line | grep -Eq $'\e\\[([0-9]+;)*(3[0-8]|9[0-7])[;m]'; then
	fail "--color never: heat strip has colour: $(heat_line | cat -v)"
else
	ok "--color never: no colour on the heat strip"
fi
keys $s q

# --- a recording (phase1 then phase2 of the fixtures, see
# fixtures/recordings/README.md), one snapshot every 5 s
s=replay
rec=$here/fixtures/recordings/npt-7.3.rec.gz
start $s --proc "$work/proc" top --replay "$rec" --interval-ms 5000
check $s "replay: first snapshot is phase1 ($(rounds phase1) rounds)" "^-- 72-4 .*\| $(rounds phase1) rounds"
check $s "replay: title names the recording" '\| replay npt-7\.3\.rec\.gz'
keys $s +
check $s "replay: + is refused with a message" 'the period cannot be changed'
check $s "replay: second snapshot is phase2 ($(rounds phase2) rounds)" "^-- 72-4 .*\| $(rounds phase2) rounds"
check $s "replay: the end is said" 'end of the recording \(2 snapshots shown\)'
keys $s Down Enter
check $s "replay: keys work (detail of 85-4)" '^-- 85-4 detail'
keys $s q
check $s "replay: q quits with status 0" '^top exited 0$'

# --- Ctrl-C leaves cleanly too
s=ctrlc
start $s --proc "$work/proc" top
check $s "second session draws" '^> 72-4 '
keys $s C-c
check $s "Ctrl-C quits with status 0" '^top exited 0$'
check $s "the terminal is restored after Ctrl-C" '^icanon$'

# --- kill (SIGTERM) leaves cleanly: the terminal is restored
s=sigterm
start $s --proc "$work/proc" top
check $s "third session draws" '^> 72-4 '
shell=$(tm display-message -p -t $s '#{pane_pid}')
pid=$(pgrep -P "$shell" | head -1)
if [ -n "$pid" ]; then
	kill -TERM "$pid"
	check $s "SIGTERM: top exits with status 0" '^top exited 0$'
	check $s "the terminal is restored after SIGTERM" '^icanon$'
else
	fail "SIGTERM: no top process under the pane's shell $shell"
fi

# --- no module: an ordinary error before the screen is taken
s=nomodule
start $s --proc "$work/missing" top
check $s "no module: exit status 3" '^top exited 3$'
check $s "no module: says how to load it" 'module is not loaded'

# --- the terminal goes away (ssh dropped, tmux killed): top leaves too,
# instead of spinning on a dead terminal (crossterm's reader would)
s=hangup
start $s --proc "$work/proc" top
check $s "fifth session draws" '^> 72-4 '
shell=$(tm display-message -p -t $s '#{pane_pid}')
pid=$(pgrep -P "$shell" | head -1)
if [ -n "$pid" ]; then
	tm kill-session -t $s
	for ((i = 0; i < 30; i++)); do
		[ -d /proc/$pid ] && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ] || break
		sleep 0.1
	done
	if [ -d /proc/$pid ] && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ]; then
		fail "hangup: top (pid $pid) still runs 3 s after its terminal went away"
		kill -9 "$pid" 2>/dev/null
	else
		ok "hangup: top exits when its terminal goes away"
	fi
else
	fail "hangup: no top process under the pane's shell $shell"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
