"""SIGTERM and SIGHUP (a cancelled CI job, a closed terminal) unwind like Ctrl-C.

Every mutating task runs inside ``stop_on_signals()`` so its ``finally`` blocks run: the
audit line is written, locks are released and the "finish by hand" lines are printed.
"""

from __future__ import annotations

import contextlib
import signal


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so the audit line is written and the
    locks are released on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGTERM/SIGHUP into ``Terminated`` once; a second one while we clean up is
    ignored, so the cleanup (audit line, unlocks) is not cut short."""
    seen = []

    def handler(signum, frame):
        if not seen:
            seen.append(signum)
            raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
