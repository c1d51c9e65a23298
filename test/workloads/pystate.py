#!/usr/bin/python3
"""pystate.py - a stateful Python workload for the real /usr/bin/python3.

    /usr/bin/python3 pystate.py --dir DIR

Each iteration advances a generator (suspended mid-iteration between
iterations), records what it yielded in a dict, appends one fixed-size line
to DIR/pylog (an open file object, flushed) and bumps a counter. Once set
up it writes DIR/ready (tmp + rename). On SIGUSR1 it writes its whole state
as JSON to DIR/result (tmp + rename) together with its own verdict, so a
test can check that a restored interpreter carried on where it was.
SIGTERM exits 0.
"""
import argparse
import json
import os
import signal
import sys
import time

MOD = (1 << 61) - 1
LINE = "{:08d} {:016x}\n"
LINE_LEN = len(LINE.format(0, 0))
SLOTS = 1000


def walker():
    """A generator with local state: yields (i, acc) forever."""
    i, acc = 0, 7
    while True:
        acc = (acc * 1000003 + i) % MOD
        yield i, acc
        i += 1


def expected(n):
    """What the state must be after n iterations, computed afresh."""
    g, d, last = walker(), {}, None
    for _ in range(n):
        last = next(g)
        d[last[0] % SLOTS] = list(last)
    return d, last


class State:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0
        self.gen = walker()
        self.slots = {}
        self.last = None
        self.file = open(os.path.join(directory, "pylog"), "w")
        self.checks = 0
        self.prev_n = 0
        self.asked = False

    def step(self):
        self.last = next(self.gen)
        self.slots[self.last[0] % SLOTS] = list(self.last)
        self.file.write(LINE.format(*self.last))
        self.file.flush()
        self.n += 1

    def verdict(self):
        errors = []
        d, last = expected(self.n)
        if d != self.slots:
            errors.append("dict differs from a fresh computation")
        if self.n and tuple(last) != tuple(self.last):
            errors.append(f"generator state {self.last} != {last}")
        off = os.lseek(self.file.fileno(), 0, os.SEEK_CUR)
        if off != self.n * LINE_LEN or self.file.tell() != off:
            errors.append(f"file offset {off} (tell {self.file.tell()}), want {self.n * LINE_LEN}")
        with open(self.file.name) as f:
            lines = f.read().splitlines(keepends=True)
        g = walker()
        for k, line in enumerate(lines):
            if line != LINE.format(*next(g)):
                errors.append(f"pylog line {k} is wrong: {line!r}")
                break
        if len(lines) != self.n:
            errors.append(f"pylog has {len(lines)} lines, want {self.n}")
        if self.n <= self.prev_n:
            errors.append(f"counter {self.n} did not advance past {self.prev_n}")
        return errors

    def report(self):
        self.checks += 1
        errors = self.verdict()
        out = {
            "verdict": "FAIL" if errors else "PASS",
            "errors": errors,
            "seq": self.checks,
            "pid": os.getpid(),
            "n": self.n,
            "prev_n": self.prev_n,
            "last": self.last,
            "next": list(next(self.gen)),  # consumed: the next step yields the one after
            "slots": {str(k): v for k, v in sorted(self.slots.items())},
            "offset": os.lseek(self.file.fileno(), 0, os.SEEK_CUR),
            "line_len": LINE_LEN,
        }
        # The generator moved on by one: keep the bookkeeping in step.
        self.last = tuple(out["next"])
        self.slots[self.last[0] % SLOTS] = list(self.last)
        self.file.write(LINE.format(*self.last))
        self.file.flush()
        self.n += 1
        self.prev_n = self.n
        publish(self.dir, "result", json.dumps(out, sort_keys=True) + "\n")


def publish(directory, name, text):
    tmp = os.path.join(directory, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(directory, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()

    st = State(args.dir)

    def on_usr1(signo, frame):
        st.asked = True

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    st.step()
    publish(args.dir, "ready", f"pid={os.getpid()}\n")
    while True:
        if st.asked:
            st.asked = False
            st.report()
        st.step()
        time.sleep(0.002)  # PEP 475: retried after a signal or a dump


if __name__ == "__main__":
    main()
