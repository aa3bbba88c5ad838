"""Polling until a deadline: the one loop every wait in the tool runs (a volume snapshot,
``/health``, the stand-in app's first commit).

Stdlib only (``ops.sample`` uses it and stays stdlib-only). The engine's lock wait is the
one loop that is not this: the engine is shipped alone to the machine's python3 and can
import nothing from ``ops``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(attempt: Callable[[], T | None], *, timeout: float, interval: float,
          expired: Callable[[int, float], BaseException],
          sleep: Callable[[float], object] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> T:
    """Call ``attempt()`` until it returns something other than None, and return that.

    ``attempt`` raises to stop early (a failed state is not worth waiting on). When one
    more ``interval`` would pass the deadline (``timeout`` seconds after the first call),
    the wait ends without sleeping past it: ``expired(polls, seconds_waited)`` builds the
    exception raised, so a message can say what happened (one poll in 0.1 s) rather than
    the limit. ``sleep`` may end early (a wait beside other work polls again at once).
    """
    started = clock()
    polls = 0
    while True:
        found = attempt()
        polls += 1
        if found is not None:
            return found
        waited = clock() - started
        if waited + interval > timeout:
            raise expired(polls, waited)
        sleep(interval)
