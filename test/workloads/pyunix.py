"""pyunix.py - a python3 socketserver over a unix socket and its client.

    pyunix.py --dir DIR

The server (this process) serves DIR/srv.sock with socketserver's
UnixStreamServer; its forked child is the client: over one connection it
sends n and reads back n + 1, for n = 0, 1, 2, ..., appending every 100th
n to DIR/progress. Ready: DIR/ready "pid=SERVER client=CLIENT". The client
answers SIGUSR1 with DIR/result "PASS pid=CLIENT n=N" (N: the last answer)
or "FAIL ...", and stops with FAIL on a wrong answer. SIGTERM ends both.
"""
import os
import signal
import socket
import socketserver
import sys
import time


def publish(d, name, text):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(d, name))


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"%d\n" % (int(line) + 1))


def client(d, path):
    state = {"check": False, "fail": None}
    signal.signal(signal.SIGUSR1, lambda *_: state.update(check=True))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rb")
    n = 0
    while True:
        s.sendall(b"%d\n" % n)
        got = f.readline()
        if state["fail"] is None and got != b"%d\n" % (n + 1):
            state["fail"] = f"sent {n}, got {got!r}"
        if n % 100 == 0:
            with open(os.path.join(d, "progress"), "a") as p:
                p.write(f"{n}\n")
        if state["check"]:
            state["check"] = False
            verdict = f"FAIL pid={os.getpid()} n={n}: {state['fail']}" if state["fail"] \
                else f"PASS pid={os.getpid()} n={n}"
            publish(d, "result", verdict + "\n")
        if state["fail"]:
            time.sleep(0.01)
            continue
        n += 1
        time.sleep(0.0005)


def main():
    d = sys.argv[sys.argv.index("--dir") + 1]
    path = os.path.join(d, "srv.sock")
    srv = socketserver.UnixStreamServer(path, Handler)
    pid = os.fork()
    if pid == 0:
        srv.socket.close()
        client(d, path)
        os._exit(0)

    def term(*_):
        os.kill(pid, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, term)
    publish(d, "ready", f"pid={os.getpid()} client={pid}\n")
    srv.serve_forever()


main()
