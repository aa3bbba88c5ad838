"""A signal that interrupts the wait for flyctl (or litestream, or a local probe) ends the
run, never hangs it.

Popen.wait(timeout) takes an internal lock in a loop; a signal's exception raised just after
it took the lock left it held, and the next wait() blocked forever on a zombie flyctl (seen
once in the suite: a SIGHUP during deploy's backup step hung the run for minutes). ops.fly
now reaps flyctl in a thread of its own, so the main thread, where Python runs signal
handlers, never holds that lock.

Python runs a signal's handler where the profiler's ``c_return`` event fires: just after a
C function returns. The test raises there, right after the main thread took a lock inside
subprocess (exactly the unlucky moment), and also interrupts every wait with a real timer
signal at spread-out moments; every run must end and leave nothing running."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

STRESS = textwrap.dedent("""
    import os, random, signal, sys
    from ops import fly, signals

    RUNS = {"fly": lambda: fly._execute(["sh", "-c", "sleep 0.05"], None, None, 10),
            "child": lambda: signals.run_child(["sh", "-c", "sleep 0.05"], timeout=10)}

    class Stop(BaseException):  # as the tool's own stops: Terminated, KeyboardInterrupt
        pass

    def on_alarm(signum, frame):
        raise Stop()

    def unlucky(frame, event, arg):
        # as a signal handled just after subprocess took its lock, before its `try`
        if (event == "c_return" and getattr(arg, "__name__", "") == "acquire"
                and frame.f_code.co_filename.endswith("subprocess.py")):
            sys.setprofile(None)
            raise Stop()

    signal.signal(signal.SIGALRM, on_alarm)
    fly.GRACE = 0.5
    random.seed(int(sys.argv[1]))
    ended = 0
    for n in range(int(sys.argv[2])):
        signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0005, 0.03))
        if n % 2:
            sys.setprofile(unlucky)
        try:
            RUNS[sys.argv[3]]()
        except Stop:
            pass
        sys.setprofile(None)
        signal.setitimer(signal.ITIMER_REAL, 0)
        ended += 1
    # nothing was left running (a timer that fires inside Popen() itself, before it returns
    # a process to wait for, leaves that short child to end alone: it is reaped here)
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
        except ChildProcessError:
            break
    else:
        print("a child was still running")
        sys.exit(1)
    print("ended", ended)
""")


@pytest.mark.parametrize("run", ["fly", "child"])  # flyctl; litestream and local probes
def test_every_interrupted_wait_for_a_child_ends_and_reaps_it(run):
    try:
        done = subprocess.run([sys.executable, "-c", STRESS, "7", "60", run],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"an interrupted wait for flyctl hung: {hung.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ended 60", done.stdout
