"""pythreads.py - a python3 program with threading that checks itself.

    pythreads.py --dir DIR

Four workers add to one shared counter under a Lock, each also counting its
own additions; one thread waits on a threading.Event, one on queue.get(),
both woken only by a check. DIR/ready: "pid=P tids=T0,T1,..." (the main
thread first, tmp + rename). SIGUSR1 asks for a check: the main thread
wakes the waiters, waits for their answers, and verifies that the shared
counter equals the sum of the workers' own counts, that every worker moved
since the last check and that every thread is alive with its tid unchanged;
it writes DIR/result "PASS seq=S pid=P total=N" or "FAIL seq=S pid=P: reasons".
SIGTERM exits 0.
"""
import os
import queue
import signal
import sys
import threading
import time

NR_WORKERS = 4


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.total = 0
        self.own = [0] * NR_WORKERS
        self.tids = {}
        self.event = threading.Event()
        self.queue = queue.Queue()
        self.answers = queue.Queue()
        self.stop = False


def worker(st, i):
    st.tids[f"w{i}"] = threading.get_native_id()
    while not st.stop:
        with st.lock:
            st.total += 1
            st.own[i] += 1
        time.sleep(0.001)


def event_waiter(st):
    st.tids["event"] = threading.get_native_id()
    while True:
        st.event.wait()
        st.event.clear()
        st.answers.put(("event", threading.get_native_id()))


def queue_waiter(st):
    st.tids["queue"] = threading.get_native_id()
    while True:
        st.queue.get()
        st.answers.put(("queue", threading.get_native_id()))


def publish(d, name, text):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(d, name))


def check(st, seq, last):
    fails = []
    st.event.set()
    st.queue.put(1)
    got = {}
    for _ in range(2):
        try:
            who, tid = st.answers.get(timeout=30)
            got[who] = tid
        except queue.Empty:
            fails.append("a waiter did not answer")
    for who in ("event", "queue"):
        if got.get(who) != st.tids[who]:
            fails.append(f"{who} waiter answered as {got.get(who)}, was {st.tids[who]}")
    with st.lock:
        total, own = st.total, list(st.own)
    if total != sum(own):
        fails.append(f"total {total} != sum of own counts {sum(own)}")
    for i, (now, before) in enumerate(zip(own, last)):
        if now <= before:
            fails.append(f"worker {i} stuck at {now}")
    alive = {t.native_id for t in threading.enumerate()}
    for who, tid in st.tids.items():
        if tid not in alive:
            fails.append(f"thread {who} ({tid}) is gone")
    verdict = "FAIL" if fails else "PASS"
    detail = (": " + "; ".join(fails)) if fails else ""
    return f"{verdict} seq={seq} pid={os.getpid()} total={total}{detail}\n", own


def main():
    d = sys.argv[sys.argv.index("--dir") + 1]
    st = State()
    # Only a flag in the handler: Event.set() there could deadlock on the
    # lock the interrupted main thread holds inside Event.wait().
    requested = [False]
    signal.signal(signal.SIGUSR1, lambda *_: requested.__setitem__(0, True))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    st.tids["main"] = threading.get_native_id()
    threads = [threading.Thread(target=worker, args=(st, i), daemon=True)
               for i in range(NR_WORKERS)]
    threads += [threading.Thread(target=event_waiter, args=(st,), daemon=True),
                threading.Thread(target=queue_waiter, args=(st,), daemon=True)]
    for t in threads:
        t.start()
    while len(st.tids) < len(threads) + 1:
        time.sleep(0.001)
    order = ["main"] + [f"w{i}" for i in range(NR_WORKERS)] + ["event", "queue"]
    publish(d, "ready", f"pid={os.getpid()} tids={','.join(str(st.tids[k]) for k in order)}\n")
    seq, last = 0, [0] * NR_WORKERS
    while True:
        time.sleep(0.01)
        if requested[0]:
            requested[0] = False
            seq += 1
            text, last = check(st, seq, last)
            publish(d, "result", text)


if __name__ == "__main__":
    main()
