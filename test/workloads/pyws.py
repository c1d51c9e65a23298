"""pyws.py - a python3 dict of a few hundred MiB queried by a fixed set of keys:
random access over a large heap, for the working-set tests and `make bench`.

    pyws.py --dir DIR --mib N [--keys K] [--seed S]

Builds a dict of about N MiB: key "k<i>" -> value(i), a bytes object of 96
bytes derived from i. DIR/ready: "pid=P entries=E keys=K" (tmp + rename).
Each SIGUSR1 is a round: look up the same K keys (drawn once by
random.Random(S) from the E), check each value against value(i), and write
DIR/answers (tmp + rename):

    PASS|FAIL pid=P round=R entries=E keys=K t_signal=NS t_first=NS t_done=NS
    <key> <crc32 of its value>          (K lines, in query order)

t_* are CLOCK_MONOTONIC ns (time.monotonic_ns, the clock of every process):
when the round began, when the first answer was known, when the last was.
The answers go to stdout too (the K lines, then "round R done"). A FAIL
line names the first wrong key. SIGTERM exits 0.
"""
import argparse
import os
import random
import signal
import sys
import time
import zlib

ENTRY_BYTES = 240  # key object + value object + dict slot, roughly


def value(i):
    return (b"%016x" % ((i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)) * 6


def write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.chdir(a.dir)
    entries = max(a.keys, a.mib * (1 << 20) // ENTRY_BYTES)
    table = {}
    for i in range(entries):
        table["k%d" % i] = value(i)
    keys = random.Random(a.seed).sample(range(entries), a.keys)
    names = ["k%d" % i for i in keys]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
    write_atomic("ready", f"pid={os.getpid()} entries={entries} keys={a.keys}\n")
    rnd = 0
    while True:
        sig = signal.sigwait({signal.SIGUSR1, signal.SIGTERM})
        if sig == signal.SIGTERM:
            return 0
        rnd += 1
        t_signal = time.monotonic_ns()
        t_first = 0
        lines, bad = [], None
        for i, name in zip(keys, names):
            v = table.get(name)
            if v != value(i) and bad is None:
                bad = name
            lines.append(f"{name} {zlib.crc32(v) if v is not None else -1}")
            if not t_first:
                t_first = time.monotonic_ns()
        t_done = time.monotonic_ns()
        verdict = "PASS" if bad is None else f"FAIL wrong={bad}"
        head = f"{verdict} pid={os.getpid()} round={rnd} entries={entries} keys={a.keys} " \
               f"t_signal={t_signal} t_first={t_first} t_done={t_done}"
        sys.stdout.write("\n".join(lines) + f"\nround {rnd} done\n")
        sys.stdout.flush()
        write_atomic("answers", head + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
