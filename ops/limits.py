"""How much of a remote command's output is read: a host that never stops printing
(``yes``) must end in one line, not in gigabytes of memory and the 600 s timeout.

One ``Cap`` per command counts what both of its streams (stdout and stderr) delivered;
past either limit the reader stops, the command is stopped, and the caller raises
``OutputLimit`` with the command's name. The limits are far beyond anything the toolkit
reads (a listing of a thousand backups is ~300 kB; the engine's result is one line)."""

from __future__ import annotations

import threading

MAX_BYTES = 64 << 20  # 64 MiB from one command
MAX_LINES = 500_000  # lines from one command (each kept line costs memory of its own)
MAX_LINE = 1 << 20  # one read of a line stops here, so an endless line is read in parts


class OutputLimit(Exception):
    """A command printed more than its ``Cap`` allows (it has been stopped)."""


class Cap:
    """Counts one command's output; ``take`` says whether reading may go on."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_lines: int = MAX_LINES):
        self.max_bytes, self.max_lines = max_bytes, max_lines
        self.bytes = self.lines = 0
        self.over = False
        self._lock = threading.Lock()  # flyctl's stdout and stderr are read by two threads

    def take(self, data: bytes) -> bool:
        with self._lock:
            self.bytes += len(data)
            self.lines += data.count(b"\n")
            if self.bytes > self.max_bytes or self.lines > self.max_lines:
                self.over = True
            return not self.over

    def error(self) -> OutputLimit:
        return OutputLimit(f"printed more than {self.max_bytes >> 20} MiB or "
                           f"{self.max_lines:,} lines, and was stopped (a command that never "
                           "stops printing?)")
