"""The command line contract outside dump/restore proper: usage errors,
log files, version."""
import subprocess

import harness


def lazarus(*args):
    return subprocess.run([str(harness.LAZARUS)] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=harness.LAZARUS_TIMEOUT)


def test_usage_errors():
    for args in (["no-such-command"], ["dump", "-D", "/tmp"], ["dump", "-t", "x", "-D", "/tmp"],
                 ["show"], ["restore", "--no-such-option"]):
        p = lazarus(*args)
        assert p.returncode == 2, f"lazarus {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
        assert p.stderr.strip(), f"lazarus {' '.join(args)}: no message"


def test_version_and_help():
    p = lazarus("--version")
    assert p.returncode == 0 and p.stdout.startswith("lazarus ")
    p = lazarus("--help")
    assert p.returncode == 0
    for word in ("dump", "restore", "show", "check", "--leave-running", "--restore-detached"):
        assert word in p.stdout


def test_log_file_relative_to_images_dir(env):
    """-o NAME puts the log in the images directory; -v4 logs debug lines."""
    w = env.lzwork(mib=1)
    w.check_pass()
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-o", "dump.log", "-v4")
    assert r.rc == 0 and not r.errors, r.describe()
    w.proc.wait(harness.EXIT_TIMEOUT)
    log = img / "dump.log"
    assert log.exists() and len(log.read_text().splitlines()) > 1, "dump.log missing or empty"
    assert not r.err.strip(), f"with -o nothing but errors goes to stderr:\n{r.err}"
