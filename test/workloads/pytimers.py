#!/usr/bin/python3
"""pytimers.py - the real /usr/bin/python3 with an interval timer and a
POSIX timer.

    /usr/bin/python3 pytimers.py --dir DIR

signal.setitimer(ITIMER_REAL) every 20 ms, counted by a SIGALRM handler;
a POSIX timer (timer_create through ctypes: CLOCK_MONOTONIC, SIGEV_SIGNAL
SIGUSR2 with value 0x5e1f) every 25 ms, counted by a SIGUSR2 handler that
checks the value... Python handlers do not see siginfo, so the value is
checked in /proc/self/timers. Then DIR/ready says "pid=P id=TIMERID". On
SIGUSR1 it writes DIR/result (tmp + rename):
  "PASS|FAIL pid=P alarms=N usr2=N itimer_us=N id=TIMERID: why"
checking that getitimer shows the 20 ms interval, timer_gettime works on
the saved id with its 25 ms interval, and /proc/self/timers lists that id
with its signal, value and clock. SIGTERM exits 0.
"""
import ctypes
import os
import signal
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
counts = {"alarms": 0, "usr2": 0}
flags = {"check": False, "term": False}


class Sigevent(ctypes.Structure):
    _fields_ = [("value", ctypes.c_uint64), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("pad", ctypes.c_int * 12)]


class Itimerspec(ctypes.Structure):
    _fields_ = [("i_sec", ctypes.c_long), ("i_nsec", ctypes.c_long),
                ("v_sec", ctypes.c_long), ("v_nsec", ctypes.c_long)]


def on_signal(sig, frame):
    if sig == signal.SIGALRM:
        counts["alarms"] += 1
    elif sig == signal.SIGUSR2:
        counts["usr2"] += 1
    elif sig == signal.SIGUSR1:
        flags["check"] = True
    else:
        flags["term"] = True


def publish(d, name, text):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(d, name))


def check(d, timer, tid):
    why = ""
    interval = signal.getitimer(signal.ITIMER_REAL)[1]
    spec = Itimerspec()
    if abs(interval - 0.02) > 1e-6:
        why = f"itimer interval {interval}"
    elif libc.timer_gettime(timer, ctypes.byref(spec)):
        why = f"timer_gettime({tid}): {os.strerror(ctypes.get_errno())}"
    elif (spec.i_sec, spec.i_nsec) != (0, 25000000):
        why = f"timer interval {spec.i_sec}.{spec.i_nsec:09d}"
    else:
        with open("/proc/self/timers") as f:
            text = f.read()
        want = f"ID: {tid}\nsignal: {int(signal.SIGUSR2)}/{0x5e1f:016x}\n"
        if want not in text or "ClockID: 1\n" not in text:
            why = f"/proc/self/timers: {text!r}"
    publish(d, "result", f"{'FAIL' if why else 'PASS'} pid={os.getpid()} "
            f"alarms={counts['alarms']} usr2={counts['usr2']} itimer_us={int(interval * 1e6)} "
            f"id={tid}: {why or 'ok'}\n")


def main():
    d = sys.argv[sys.argv.index("--dir") + 1]
    for s in (signal.SIGALRM, signal.SIGUSR2, signal.SIGUSR1, signal.SIGTERM):
        signal.signal(s, on_signal)
    ev = Sigevent(value=0x5e1f, signo=int(signal.SIGUSR2), notify=0)  # SIGEV_SIGNAL
    timer = ctypes.c_void_p()
    if libc.timer_create(1, ctypes.byref(ev), ctypes.byref(timer)):  # CLOCK_MONOTONIC
        raise OSError(ctypes.get_errno(), "timer_create")
    spec = Itimerspec(0, 25000000, 0, 25000000)
    if libc.timer_settime(timer, 0, ctypes.byref(spec), None):
        raise OSError(ctypes.get_errno(), "timer_settime")
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    tid = timer.value or 0
    publish(d, "ready", f"pid={os.getpid()} id={tid}\n")
    while not flags["term"]:
        time.sleep(0.01)
        if flags["check"]:
            flags["check"] = False
            check(d, timer, tid)
    signal.setitimer(signal.ITIMER_REAL, 0)  # no SIGALRM into the interpreter's exit
    libc.timer_delete(timer)


main()
