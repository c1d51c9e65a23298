"""pytreethreads.py - a tree of multi-threaded python3 processes that check themselves.

    pytreethreads.py --dir DIR [--shape tree|single] [--mib M] [--threads T]

shape tree (default): the root forks a and b, a forks a1 (4 processes);
shape single: the root alone. Every process forks its children first, then
allocates M MiB of its own (random bytes, one slice per thread) and starts
T worker threads; each worker counts under the process's lock and, when
asked, hashes its own slice itself (so every thread faults on its own pages
at the same time after a lazy restore). Each process writes
DIR/ready-NAME "pid=P tids=MAIN,W0,..."; once every process has, the root
writes DIR/ready "pid=P NAME=PID ..." (tmp + rename).

The test drives it with files (tmp + rename, taken by unlinking them):
DIR/check-NAME: NAME's main thread asks every worker to hash its slice and
writes DIR/result-NAME "PASS name=N pid=P seq=S" or "FAIL ...: reasons"
(memory, every worker moved since the last check, pid and tids unchanged,
every thread alive). DIR/fork-NAME: NAME forks while its workers run; the
new child hashes all of the process's memory and writes
DIR/result-forked-NAME, exits 0; NAME reaps it and writes
DIR/result-fork-NAME "PASS name=N pid=P forked=K status=S". SIGTERM exits 0.
"""
import hashlib
import os
import signal
import sys
import threading
import time


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


D = arg("--dir", None)
SHAPE = arg("--shape", "tree")
MIB = int(arg("--mib", "16"))
NTHREADS = int(arg("--threads", "4"))


def path(name):
    return os.path.join(D, name)


def publish(name, text):
    with open(path(name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(path(name + ".tmp"), path(name))


def take(name):
    try:
        os.unlink(path(name))
        return True
    except FileNotFoundError:
        return False


class Proc:
    def __init__(self, name):
        self.name, self.pid = name, os.getpid()
        size = max(1, (MIB << 20) // NTHREADS) & ~4095 or 4096
        self.slices = []
        for i in range(NTHREADS):
            seed = os.urandom(4096)
            mem = bytearray(seed) * (size // 4096)
            # every page different: its index in the first word
            for p in range(0, len(mem), 4096):
                mem[p:p + 8] = (p ^ (i << 40) ^ self.pid).to_bytes(8, "little")
            self.slices.append((mem, hashlib.sha256(mem).hexdigest()))
        self.lock = threading.Lock()
        self.counts = [0] * NTHREADS
        self.req = [0] * NTHREADS
        self.done = [0] * NTHREADS
        self.ok = [True] * NTHREADS
        self.tids = [threading.get_native_id()] + [0] * NTHREADS
        self.threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                        for i in range(NTHREADS)]
        for t in self.threads:
            t.start()
        while 0 in self.tids:
            time.sleep(0.001)

    def worker(self, i):
        self.tids[i + 1] = threading.get_native_id()
        mem, digest = self.slices[i]
        while True:
            with self.lock:
                self.counts[i] += 1
            r = self.req[i]
            if r != self.done[i]:
                self.ok[i] = hashlib.sha256(mem).hexdigest() == digest
                self.done[i] = r
            time.sleep(0.001)

    def start_check(self, seq):
        for i in range(NTHREADS):
            self.req[i] = seq

    def answered(self, seq):
        return all(d == seq for d in self.done)

    def check(self, seq, last):
        """Once every worker answered seq (or gave up)."""
        fails = []
        for i in range(NTHREADS):
            if self.done[i] != seq:
                fails.append(f"worker {i} did not answer")
            elif not self.ok[i]:
                fails.append(f"worker {i}: memory differs")
        with self.lock:
            counts = list(self.counts)
        for i, (now, before) in enumerate(zip(counts, last)):
            if now <= before:
                fails.append(f"worker {i} stuck at {now}")
        if os.getpid() != self.pid:
            fails.append(f"pid {os.getpid()}, was {self.pid}")
        if threading.get_native_id() != self.tids[0]:
            fails.append(f"main tid {threading.get_native_id()}, was {self.tids[0]}")
        alive = {t.native_id for t in self.threads if t.is_alive()}
        for i, tid in enumerate(self.tids[1:]):
            if tid not in alive:
                fails.append(f"worker {i} ({tid}) is gone")
        try:
            tasks = sorted(int(t) for t in os.listdir(f"/proc/{self.pid}/task"))
        except OSError as e:
            tasks = str(e)
        if tasks != sorted(self.tids):
            fails.append(f"/proc/{self.pid}/task is {tasks}, want {sorted(self.tids)}")
        head = f"name={self.name} pid={os.getpid()} seq={seq}"
        if fails:
            return f"FAIL {head}: {'; '.join(fails)}\n", counts
        return f"PASS {head}\n", counts

    def fork(self):
        k = os.fork()
        if k == 0:
            good = all(hashlib.sha256(m).hexdigest() == d for m, d in self.slices)
            publish(f"result-forked-{self.name}",
                    f"{'PASS' if good else 'FAIL'} name={self.name} pid={os.getpid()}\n")
            os._exit(0)
        _, st = os.waitpid(k, 0)
        publish(f"result-fork-{self.name}",
                f"PASS name={self.name} pid={os.getpid()} forked={k} status={st}\n")

    def serve(self):
        publish(f"ready-{self.name}", f"pid={self.pid} tids={','.join(map(str, self.tids))}\n")
        seq, last, pending, deadline = 0, [0] * NTHREADS, False, 0
        while True:
            # A check runs in the workers while this thread goes on (a fork
            # asked meanwhile happens while they hash their slices).
            if not pending and take(f"check-{self.name}"):
                seq += 1
                self.start_check(seq)
                pending, deadline = True, time.monotonic() + 120
            if take(f"fork-{self.name}"):
                self.fork()
            if pending and (self.answered(seq) or time.monotonic() > deadline):
                text, last = self.check(seq, last)
                publish(f"result-{self.name}", text)
                pending = False
            time.sleep(0.005)


def child(name, then=None):
    k = os.fork()
    if k == 0:
        # Files of its own (shared open file descriptions are not dumped yet).
        fd = os.open(path(f"out-{name}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        fd = os.open("/dev/null", os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        if then:
            then()
        Proc(name).serve()
        os._exit(1)
    return k


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    names = {}
    if SHAPE == "tree":
        names["a"] = child("a", then=lambda: child("a1"))
        names["b"] = child("b")
    root = Proc("root")
    want = ["a", "a1", "b"] if SHAPE == "tree" else []
    while not all(os.path.exists(path(f"ready-{n}")) for n in want):
        time.sleep(0.002)
    for n in want:
        with open(path(f"ready-{n}")) as f:
            names[n] = int(f.read().split()[0].split("=")[1])
    publish("ready", f"pid={root.pid} " + " ".join(f"{n}={p}" for n, p in names.items()) + "\n")
    root.serve()


if __name__ == "__main__":
    main()
