#!/bin/sh
# run.sh BIN SECONDS MAX_LEN - run one libFuzzer target for SECONDS on its
# corpus (BIN's dir/corpus-NAME, seeded by tools/fuzz-seed.sh) and on the
# committed regression inputs (test/fuzz/regress/NAME/, read only).
#
# Success prints one summary line. A crash, leak, timeout (10 s for one
# input), out-of-memory or sanitizer report prints libFuzzer's whole report
# and fails; the input that did it is kept under BIN's dir/artifacts/.
set -u
bin=$1
secs=$2
maxlen=$3
name=$(basename "$bin")
dir=$(dirname "$bin")
log=$dir/$name.log
corpus=$dir/corpus-$name
regress=test/fuzz/regress/$name

mkdir -p "$corpus" "$dir/artifacts"
set -- "$corpus"
[ -d "$regress" ] && set -- "$@" "$regress"
if "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" "$@" >"$log" 2>&1; then
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
	cov=$(echo "$done_line" | sed -n 's/.*\(cov: [0-9]*\).*/\1/p')
	ft=$(echo "$done_line" | sed -n 's/.*\(ft: [0-9]*\).*/\1/p')
	corp=$(echo "$done_line" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
	echo "fuzz $name: ${secs}s, $runs runs ($rate/s), $cov, $ft, corpus $corp: ok"
	exit 0
else
	rc=$?
	cat "$log" >&2
	echo "fuzz $name: FAILED (exit $rc); the input is in $dir/artifacts/ (run $bin FILE)" >&2
	exit 1
fi
