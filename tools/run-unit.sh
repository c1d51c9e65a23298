#!/bin/sh
# Run each C unit test binary; each test case forks itself with a timeout.
fail=0
for t in "$@"; do
	if timeout 120 "$t"; then :; else echo "FAIL: $t" >&2; fail=1; fi
done
exit $fail
