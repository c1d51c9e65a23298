#!/bin/bash
# fuzz-seed.sh O FUZZDIR - seed every fuzzer's corpus (FUZZDIR/corpus-*) from
# a real dump: start a small lzwork (1 MiB), dump it with O/lazarus into
# FUZZDIR/seed-dump (and lzevents, for pipes and event fds), and turn the images into each target's input format
# (FUZZDIR/mkseed, test/fuzz/mkseed.c). The seeds are made afresh from the
# current code on every `make fuzz`, so they follow image format changes.
# Needs root (ptrace and CAP_CHECKPOINT_RESTORE); otherwise the fuzzers
# start from whatever corpus is there.
set -euo pipefail
O=$(cd "$1" && pwd)
F=$(cd "$2" && pwd)
img=$F/seed-dump
work=$F/seed-work
pid=

if [ "$(id -u)" != 0 ]; then
	echo "fuzz-seed: not root: no fresh dump, the fuzzers start from their corpus as it is"
	exit 0
fi
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && { wait "$pid"; } 2>/dev/null
	return 0
}
trap cleanup EXIT
rm -rf "$img" "$work"
mkdir -p "$img" "$work"
for t in fuzz_image fuzz_verify fuzz_lazy_source fuzz_lazy_conn fuzz_lazy_msg; do
	mkdir -p "$F/corpus-$t"
done
(
	# Only stdin, stdout and stderr: an inherited pipe (make's jobserver)
	# would make the dump refuse the process.
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
	done
	cd "$work" && exec setsid "$O/test/lzwork" --dir "$PWD" --mib 1 </dev/null >out 2>&1
) &
pid=$!
for _ in $(seq 600); do
	[ -e "$work/ready" ] && break
	sleep 0.1
done
if ! [ -e "$work/ready" ] || ! "$O/lazarus" dump -R -t "$pid" -D "$img" >"$work/dump.out" 2>&1; then
	echo "fuzz-seed: could not dump lzwork (pid $pid) for the seeds:" >&2
	cat "$work/out" "$work/dump.out" >&2 2>/dev/null
	exit 1
fi
kill -TERM "$pid" # left running (-R): lzwork exits 0 on SIGTERM
wait "$pid" || true
pid=
"$F/mkseed" "$img" "$F"

# A second dump whose files.img holds pipes and event fds (lzevents), so
# the fuzzers start from those entries too (prefix "events-").
img2=$F/seed-dump-events
work2=$F/seed-work-events
rm -rf "$img2" "$work2"
mkdir -p "$img2" "$work2"
(
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
	done
	cd "$work2" && exec setsid "$O/test/lzevents" --dir "$PWD" </dev/null >out 2>&1
) &
pid=$!
for _ in $(seq 600); do
	[ -e "$work2/ready" ] && break
	sleep 0.1
done
if ! [ -e "$work2/ready" ] || ! "$O/lazarus" dump -R -t "$pid" -D "$img2" >"$work2/dump.out" 2>&1; then
	echo "fuzz-seed: could not dump lzevents (pid $pid) for the seeds:" >&2
	cat "$work2/out" "$work2/dump.out" >&2 2>/dev/null
	exit 1
fi
kill -TERM "$pid"
wait "$pid" || true
pid=
"$F/mkseed" "$img2" "$F" events-
