"""SIGTERM and SIGHUP (a cancelled CI job, a closed terminal) unwind like Ctrl-C.

Every mutating task runs inside ``stop_on_signals()`` so its ``finally`` blocks run: the
audit line is written, locks are released and the "finish by hand" lines are printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so the audit line is written and the
    locks are released on the way out."""

    def __init__(self, signum: int):
        super().__init__(name(signum))
        self.name = name(signum)


def name(number: int) -> str:
    """A signal's name (``SIGKILL``), for a child that died by it (returncode -number)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def ended(returncode: int) -> str:
    """How a child ended, in words: ``exit status 3``, or ``killed by SIGKILL``."""
    return f"killed by {name(-returncode)}" if returncode < 0 else f"exit status {returncode}"


_SEEN: list[int] = []  # the stops this run is unwinding from (a signal, or Ctrl-C: 2)


def unwinding() -> None:
    """The run is unwinding from a stop (Ctrl-C): a SIGTERM now (GitHub cancels a job with
    SIGINT, then SIGTERM) is ignored like a second one, so the exit code stays the one
    the audit line already records and the cleanup is not cut short."""
    if not _SEEN:
        _SEEN.append(signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGTERM/SIGHUP into ``Terminated`` once; a second one while we clean up is
    ignored, so the cleanup (audit line, unlocks) is not cut short."""
    seen = _SEEN
    seen.clear()

    def handler(signum, frame):
        if not seen:
            seen.append(signum)
            raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except KeyboardInterrupt:
        unwinding()  # a SIGTERM after this Ctrl-C is ignored like a second one
        raise
    finally:
        for sig, old in previous.items():  # once stopping, a later signal must not kill
            # the run while it prints its last line (the default would: status -15)
            signal.signal(sig, _ignored if seen else old)


def _ignored(signum, frame) -> None:
    """A signal after the first, once its guard ended: dropped. A Python handler, not
    SIG_IGN, which the processes started after it would inherit (exec resets handlers)."""


# ---------------------------------------------------------------- Ctrl-C before a task runs

INTERRUPTED = 130  # ExitCode.INTERRUPTED (ops.errors is not imported this early)


TERMINATED = 143  # ExitCode.TERMINATED


def _stop_at_once(signum, frame):
    os.write(2, b"Interrupted.\n")
    os._exit(INTERRUPTED)


def _terminate_at_once(signum, frame):
    os.write(2, f"Terminated by {signal.Signals(signum).name}: no task had started.\n"
             .encode())
    os._exit(TERMINATED)


def interrupt_quietly_until_a_task_runs() -> None:
    """Ctrl-C while tasks.py is still imported, arguments parsed or config read (nothing
    changed yet) ends the run at once: "Interrupted.", exit 130, not Invoke's bare exit 1
    or an import traceback. ``task_started`` puts Python's Ctrl-C back for the task.
    SIGTERM and SIGHUP then (a CI job cancelled at once) end it the same way, exit 143,
    not a silent death; the task's own guard (``stop_on_signals``) takes over from them."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop_at_once)
        signal.signal(signal.SIGTERM, _terminate_at_once)
        signal.signal(signal.SIGHUP, _terminate_at_once)


def task_started() -> None:
    """Ctrl-C is KeyboardInterrupt again, so a task's ``finally`` blocks run; SIGTERM
    and SIGHUP are the task's guard's to handle (``stop_on_signals``)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _stop_at_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is _terminate_at_once:
            signal.signal(sig, signal.SIG_DFL)


def run_child(argv: list[str], *, timeout: float, env: dict | None = None):
    """``subprocess.run(argv, capture_output=True, text=True, timeout=…)`` that a signal's
    exception (Ctrl-C, SIGTERM, SIGHUP) cannot hang: the child is run and reaped by a thread,
    so the main thread, where Python runs signal handlers, never holds Popen's internal
    lock. (A stop raised just after Popen.wait took it left it held, and the next wait
    blocked forever: tests/test_fly_wait_interrupted.py.) On a stop the child is killed."""
    import subprocess

    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    result: list = []
    ended = threading.Event()

    def talk() -> None:
        try:
            result.append(proc.communicate())
        finally:
            ended.set()

    talker = threading.Thread(target=talk, daemon=True)
    try:
        talker.start()
        if not ended.wait(timeout):
            raise subprocess.TimeoutExpired(argv, timeout)
    except BaseException:
        if not ended.is_set():  # os.kill, not proc.kill: that polls, under Popen's lock
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
        until_reaped(proc, ended, talker)
        raise
    out, err = result[0] if result else ("", "")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def until_reaped(proc, ended: threading.Event, reaper: threading.Thread) -> None:
    """Wait until ``reaper`` has reaped ``proc`` (it sets ``ended``); when a stop came
    before that thread started, reap the child here."""
    while not ended.wait(0.1):
        if not reaper.is_alive():
            proc.wait()
            return
