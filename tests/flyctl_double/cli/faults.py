"""Injected faults (``FlyWorld.fail/garbage/hang/drop_output_tail``): matching and applying them."""

from __future__ import annotations

import os
import sys
import time

from .output import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..state import Fault, World
    from .store import Store


def strip_globals(args: list[str]) -> list[str]:
    res: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("--verbose", "--debug") or a.startswith(("--access-token=", "--verbose=")):
            continue
        if a in ("-t", "--access-token"):
            i += 1
            continue
        res.append(a)
    return res


def is_subsequence(needle: Sequence[str], hay: Sequence[str]) -> bool:
    it = iter(hay)
    return all(any(w == h for h in it) for w in needle)


def _fault_live(fault: Fault, words: list[str]) -> bool:
    if fault.get("times") is not None and fault["times"] <= 0:
        return False
    return is_subsequence(fault.get("match", []), words)


def take_fault(store: Store, state: World, args: list[str]) -> Fault | None:
    """Consume the first live fault whose match words are a subsequence of argv."""
    words = strip_globals(args)
    if not any(_fault_live(f, words) for f in state.get("faults", [])):
        return None
    with store.mutate() as state:
        for fault in state.get("faults", []):
            if not _fault_live(fault, words):
                continue
            if fault.get("times") is not None:
                fault["times"] -= 1
            return dict(fault)
    return None


def stall(seconds: float, until: str | None) -> None:
    """A stalled tunnel: ``seconds``, or until the test creates the file ``until``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and os.path.exists(until)):
        time.sleep(min(0.02 if until else seconds, max(0.0, deadline - time.monotonic())))


def dropping_tail(run: Callable[[], int], lines: int) -> int:
    """Run the command, then lose the last ``lines`` lines of its stdout, as flyctl before
    v0.4.80 could (ssh/io.go returned before its output goroutines drained; PR #5045)."""
    import tempfile

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            return run()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            kept = tmp.read().splitlines(keepends=True)
            write_all(1, b"".join(kept[: max(0, len(kept) - lines)]))
