"""The audit log: one JSON line per deploy, restore or emergency run, appended and fsynced.

The log is opened like every file the tool writes: never through a symlink (a planted
``deploys.jsonl -> steps.db`` would append JSON to the live database), never a FIFO
(opened non-blocking), never a file with a second name (a hard link to the database);
such a log is refused before anything happens and nothing is written.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from pathlib import Path

from ops.engine import user_name

APPEND = (os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
          | os.O_CLOEXEC)
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotALog(OSError):
    """The log's name is taken by something that is not our own regular file."""


def who() -> str:
    """The person or CI job behind this run, as well as we can tell."""
    actor = os.environ.get("GITHUB_ACTOR")
    if actor:
        return f"{actor} (GitHub Actions run {os.environ.get('GITHUB_RUN_ID', '?')})"
    return f"{user_name()}@{socket.gethostname()}"


def _open(path: Path, flags: int) -> int:
    """A descriptor on the log itself; NotALog (an OSError) for anything else."""
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        kinds = {errno.ELOOP: "a symlink", errno.EISDIR: "a directory",
                 errno.ENXIO: _no_reader_kind(path)}
        if exc.errno in kinds:
            raise NotALog(exc.errno, f"it is {kinds[exc.errno]}, not a regular file; "
                                     "refusing to write through it") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        kind = "another name of some file (a hard link)" if stat.S_ISREG(info.st_mode) else (
            "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket")
        raise NotALog(errno.EINVAL, f"it is {kind}, not a regular file; refusing to write "
                                    "through it")
    return fd


def _no_reader_kind(path: Path) -> str:
    """What gave ENXIO: a FIFO with no reader (opened O_WRONLY|O_NONBLOCK), or a socket."""
    try:
        return "a FIFO" if stat.S_ISFIFO(os.lstat(path).st_mode) else "a socket"
    except OSError:
        return "a FIFO or a socket"


def check_writable(path: Path, *, create: bool = True) -> None:
    """Create the log if needed and check it is ours (run before anything can happen
    unrecorded); raises OSError with a one-line ``strerror``. ``create`` False (a dry
    run's): the same verdict, nothing created or written: a log that exists is opened for
    appending and closed (the same checks), a missing one needs a writable folder."""
    path = Path(path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(_open(path, APPEND))
        return
    try:
        os.close(_open(path, APPEND & ~os.O_CREAT))
    except FileNotFoundError:
        folder = next(p for p in path.parents if os.path.lexists(p))
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES)) from None


def append(path: Path, entry: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    fd = _open(path, APPEND)
    try:
        if not _ends_a_line(path, os.fstat(fd).st_size):  # cut by a crash, or edited by
            line = "\n" + line  # hand: start a new line, never glue two records together
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_a_line(path: Path, size: int) -> bool:
    """The log is empty or its last byte is a newline (read through its own descriptor:
    the append one is write-only)."""
    if not size:
        return True
    fd = _open(path, READ)
    try:
        return os.pread(fd, 1, size - 1) == b"\n"
    finally:
        os.close(fd)


def read(path: Path) -> list[dict]:
    """Every entry; a log that is not our regular file reads as empty."""
    try:
        fd = _open(Path(path), READ)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as handle:
        text = handle.read().decode("utf-8", "replace")
    entries = []
    for line in text.splitlines():
        try:  # a line cut by a crash, or edited by hand, is skipped: the others still count
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
