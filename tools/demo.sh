#!/bin/bash
# demo.sh - `make demo`: checkpoint a running process and bring it back.
#
# Starts the lzwork test workload (64 MiB of patterned memory, counters, an
# open log file, FP state, a signal handler on an alternate stack), shows it
# counting, dumps it (which kills it), shows the images, restores it lazily
# (it resumes before its memory is back; the lazy-pages daemon serves its
# faults and fills the rest), asks it to verify its own state, prints its
# verdict and the daemon's statistics, then stops it.
#
#   MIB=N     memory to fill (default 64)
#   KEEP=1    keep the demo directory (images and logs) afterwards
set -euo pipefail

cd "$(dirname "$0")/.."
LZ=$PWD/build/lazarus
WORK=$PWD/build/test/lzwork
MIB=${MIB:-64}

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= D= N=; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
run() { printf '%s$ %s%s\n' "$D" "$*" "$N"; "$@"; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

[ -x "$LZ" ] && [ -x "$WORK" ] || die "build first: make"
[ "$(id -u)" = 0 ] || die "run as root (lazarus needs ptrace and CAP_CHECKPOINT_RESTORE)"

DIR=$(mktemp -d /tmp/lazarus-demo.XXXXXX)
mkdir -p "$DIR/work" "$DIR/img"
PID=

# Is $1 running (not gone, not a zombie)?
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# Wait until "$@" succeeds, up to $T seconds.
wait_until() {
	local t=$((T * 20))
	while ! "$@"; do
		t=$((t - 1))
		[ $t -gt 0 ] || return 1
		sleep 0.05
	done
}

cleanup() {
	local rc=$?

	if [ -n "$PID" ] && alive "$PID"; then
		kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	if [ $rc != 0 ] || [ "${KEEP:-0}" = 1 ]; then
		[ $rc != 0 ] && printf '%sdemo failed%s\n' "$R" "$N" >&2
		echo "demo files (images, logs) kept in $DIR" >&2
	else
		rm -rf "$DIR"
	fi
}
trap cleanup EXIT

# Ask lzwork to check itself (SIGUSR1) and print its verdict line.
verify() {
	rm -f "$DIR/work/result"
	kill -USR1 "$PID"
	T=120 wait_until test -e "$DIR/work/result" || die "no answer from $PID"
	cat "$DIR/work/result"
}

counter() { sed -n 's/.* ctr=\([0-9]*\).*/\1/p' "$DIR/work/result"; }

step "Start a workload: lzwork with $MIB MiB of patterned memory"
(
	# Only stdin, stdout and stderr: an inherited pipe or socket would make
	# the dump refuse the process.
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
	done
	cd "$DIR/work" && exec setsid "$WORK" --dir "$DIR/work" --mib "$MIB" \
		</dev/null >"$DIR/work/out" 2>&1
) &
PID=$!
T=60 wait_until test -e "$DIR/work/ready" || die "lzwork did not start"
echo "lzwork is pid $PID: $(cat "$DIR/work/ready")"

step "It is running: it appends a record to its log every 16 iterations"
sleep 1
run tail -n 2 "$DIR/work/log"
sleep 1
run tail -n 2 "$DIR/work/log"
verify
BEFORE=$(counter)

step "Checkpoint it: lazarus dump (the process is killed once its images are written)"
t0=$(now)
run "$LZ" dump -t "$PID" -D "$DIR/img" -o dump.log
echo "dumped in $(since "$t0")"
wait "$PID" 2>/dev/null || true # reap it: its pid must be free for the restore
alive "$PID" && die "pid $PID still running after the dump"
echo "pid $PID is gone"

step "The images"
run ls -la "$DIR/img"
echo
printf '%s$ %s%s\n' "$D" "lazarus show $DIR/img/core-$PID.img   (xsave shortened, registers in hex)" "$N"
"$LZ" show "$DIR/img/core-$PID.img" | /usr/bin/python3 -c '
import json, sys
def wrap(items, indent, width=100):
    lines, cur = [], ""
    for it in items:
        if cur and len(indent) + len(cur) + len(it) + 2 > width:
            lines.append(cur + ",")
            cur = ""
        cur += (", " if cur else "") + it
    return ("\n" + indent).join(lines + [cur])
j = json.load(sys.stdin)
print("{%s, %s, %s, \"entries\": [" % tuple(
    json.dumps({k: j[k]})[1:-1] for k in ("file", "kind", "version")))
for e in j["entries"]:
    e["xsave"] = e["xsave"][:24] + "... (%d bytes)" % (len(e["xsave"]) // 2)
    regs = [json.dumps({k: hex(v)})[1:-1] for k, v in e.pop("regs").items()]
    print("  {\"regs\": {" + wrap(regs, "            ") + "},")
    print("   " + wrap([json.dumps({k: v})[1:-1] for k, v in e.items()], "   ") + "}")
print("]}")'

step "Restore it lazily: lazarus restore --lazy-pages -d (returns once the process runs again)"
t0=$(now)
run "$LZ" restore -D "$DIR/img" --lazy-pages -d -o restore.log
echo "restored in $(since "$t0"): it runs before its $MIB MiB are back"
alive "$PID" || die "pid $PID is not running after the restore"
echo "pid $PID is back: $(ps -o pid=,stat=,rss=,cmd= -p "$PID")"

step "The lazy-pages daemon serves its faults and fills the rest in the background"
T=120 wait_until test -e "$DIR/img/lazy-pages-stats.json" || die "the lazy-pages daemon did not finish"
run tail -n 3 "$DIR/img/lazy-pages.log"
/usr/bin/python3 - "$DIR/img/lazy-pages-stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for p in s["processes"]:
    print("pid %d: %d pages on fault, %d by background fill, %d zero; all in place after %.1f ms"
          % (p["pid"], p["pages_fault"], p["pages_fill"], p["pages_zero"],
             p["time_to_complete_ns"] / 1e6))
PY

step "Ask it to verify its own memory, counters, FP state, files and signals"
sleep 1
VERDICT=$(verify)
AFTER=$(counter)
case "$VERDICT" in
PASS*) printf '%s%s%s\n' "$G" "$VERDICT" "$N" ;;
*) printf '%s%s%s\n' "$R" "$VERDICT" "$N"; exit 1 ;;
esac
echo "its counter went from $BEFORE (checked before the dump) to $AFTER: it carried on"
run tail -n 2 "$DIR/work/log"

step "Stop it"
kill -TERM "$PID"
T=60 wait_until eval '! alive "$PID"' || die "pid $PID did not stop"
echo "pid $PID exited"
printf '\n%sDone: lzwork was checkpointed, restored lazily and verified itself.%s\n' "$G" "$N"
