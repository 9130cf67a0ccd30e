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

work=$(mktemp -d)
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

# wait_for SESSION SECONDS PATTERN: polls the screen for a grep -E pattern.
wait_for() {
	local s=$1 t=$2 pat=$3 i
	for ((i = 0; i < t * 10; i++)); do
		screen "$s" | grep -Eq -- "$pat" && return 0
		sleep 0.1
	done
	return 1
}

# check SESSION NAME PATTERN: one check, waiting up to 5 s for the pattern.
check() {
	if wait_for "$1" 5 "$3"; then
		ok "$2"
	else
		fail "$2: no /$3/ on screen:"
		screen "$1" | sed 's/^/     | /'
	fi
}

# check_not SESSION NAME PATTERN: the pattern is not on screen (after the
# screen has had time to change).
check_not() {
	sleep 0.5
	if screen "$1" | grep -Eq -- "$3"; then
		fail "$2: /$3/ still on screen:"
		screen "$1" | sed 's/^/     | /'
	else
		ok "$2"
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
# fixture's config with period_ms replaced.
expected_start() {
	local c=$work/proc/$1/config
	printf 'start vm=%s period_ms=%s mode=%s granule=%s window=%s flush=%s walk=%s history=%s\n' \
		"$1" "$2" "$(awk '$1=="mode"{print $2}' "$c")" "$(awk '$1=="granule"{print $2}' "$c")" \
		"$(awk '$1=="window"{print $2}' "$c")" "$(awk '$1=="flush"{print $2}' "$c")" \
		"$(awk '$1=="walk"{print $2}' "$c")" "$(awk '$1=="history"{print $2}' "$c")"
}

# --- a session: look, move, open the detail pane, change the period, quit
s=main
start $s --proc "$work/proc" top --interval-ms 200
check $s "title bar" '^ept-sampler top \|'
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
check $s "+ reports the new period" '72-4: period set to 200 ms'
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
check $s "top still runs after a refusal" '^ept-sampler top \|'

keys $s p
check $s "p pauses" '^ept-sampler top \| [0-9:]+Z \| PAUSED'
keys $s p
check_not $s "p resumes" 'PAUSED'

keys $s q
check $s "q quits with status 0" '^top exited 0$'
check_not $s "the terminal is restored (not raw)" '^-icanon$'
check_not $s "the alternate screen is left" '^ept-sampler top \|'

# --- Ctrl-C leaves cleanly too
s=ctrlc
start $s --proc "$work/proc" top
check $s "second session draws" '^> 72-4 '
keys $s C-c
check $s "Ctrl-C quits with status 0" '^top exited 0$'
check_not $s "the terminal is restored after Ctrl-C" '^-icanon$'

# --- no module: an ordinary error before the screen is taken
s=nomodule
start $s --proc "$work/missing" top
check $s "no module: exit status 3" '^top exited 3$'
check $s "no module: says how to load it" 'module is not loaded'

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
