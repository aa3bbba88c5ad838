"""The world's state file: read, written atomically, edited under an flock.

The same protocol serves the double and ``FlyWorld`` (tests/flyctl_double/state.py), so a
test may change the world while a ``fly`` process runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from .ids import rand_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..state import World


class Store:
    """The JSON state file; writes are flock-guarded and atomic (tmp + ``os.replace``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = path + ".lock"

    def load(self) -> World:
        with open(self.path, encoding="utf-8") as fh:
            return json.load(fh)

    def write(self, data: World) -> None:
        # Atomic for readers (tmp + rename).  No fsync: the state only has to survive the
        # test run, not a power cut, and fsync on every call would slow every test down.
        # One line by json.dumps: json.dump, and any indent, take the pure-Python encoder
        # (~6x the CPU, on every mutating call); `python3 -m json.tool FILE` shows it.
        tmp = f"{self.path}.tmp.{os.getpid()}.{rand_str(6)}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data))
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def mutate(self) -> Iterator[World]:
        """Lock, load, yield the state for in-place edits, then write it back atomically."""
        with self.locked():
            data = self.load()
            yield data
            self.write(data)
