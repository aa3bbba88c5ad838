"""The SQLite backup engine: make, check, list, delete and restore backups.

Standard library only, and self-contained, because the same file is shipped to
``python3`` on the production machine (``python3 -I -S - <command> ...`` over
``fly ssh console``: ``PYTHON3``) as well as imported locally. Run as a script, it prints one
result line ``__OPS_RESULT__ {json}`` that the caller parses (see ``main``).

Safety rules this module keeps (see DESIGN.md, "Mechanisms that must be right"):
- the live database is only ever read through SQLite, read-only, and never
  checkpointed; it is never opened with plain file I/O once connections exist;
- a backup is written under a hidden temporary name, fsynced, verified, and only
  then linked to its final name, so a crash never leaves a file that looks like a
  backup, and an existing backup is never overwritten;
- size and SHA-256 are recorded beside each backup (``NAME.sha256`` in the form
  ``sha256sum -c`` accepts, ``NAME.json`` with the rest);
- a live database with another name (a hard link) is refused: SQLite keeps a -wal per
  name, so through the wrong one a copy misses, or is undone by, the app's writes;
- no lock, temporary or sidecar is ever opened through a symlink or reused: files
  are created new (``O_EXCL|O_NOFOLLOW``), sidecars are read non-blocking and only
  when they are regular files, and backups are linked into place, never renamed over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import shlex
import signal
import sqlite3
import stat
import struct
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

UTC = dt.timezone.utc  # noqa: UP017 - the engine also runs on the machine's python3 >= 3.8
# matched with fullmatch: ASCII digits only, and no "$" that would accept a trailing newline
NAME_PATTERN = re.compile(r"steps-([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2})\.db")
NAME_FORMAT = "steps-%Y-%m-%dT%H-%M-%S.db"
TMP_PREFIX = ".tmp-"
# restore --from's staged upload (remote.upload_staging): written with no lock, so a sweep
# takes one only when unwritten for STAGED_AGE seconds (its run is gone: kill -9)
STAGED_PREFIX = ".upload-"
STAGED_AGE = 3600
# its exact name (remote.upload_staging: ``.upload-NAME.PID``): nothing else is swept as one
STAGED_NAME = re.compile(r"\.upload-steps-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}"
                         r"\.db\.[0-9]{1,10}", re.ASCII)
LOCK_NAME = ".backup.lock"
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_FULL = 13  # sqlite3.SQLITE_FULL exists only on Python >= 3.11
RESULT_MARK = "__OPS_RESULT__"
# How every script starts python3 on a machine, this engine and the probes that choose it
# alike. -I: no PYTHON* variable reaches it (PYTHONUNBUFFERED, which many images set, makes
# ``python3 -`` read this ~150 KB program a byte at a time: twice the CPU), and neither a
# PYTHONPATH nor a module in the working folder can shadow the standard library. -S: no
# ``site``, so no site-packages or .pth code runs; the engine is standard library only.
PYTHON3 = "python3 -I -S"
CHECKS = ("integrity", "quick")
STEP_PAGES = 4096  # pages per backup step; the read transaction we hold keeps steps consistent
HASH_CHUNK = 1 << 20
SIDECAR_LIMIT = 1 << 16  # a sidecar larger than this is not one of ours
# NAME.json lists every table's row count: 2,500 tables make ~120 KB, so a record may be
# larger than the other sidecars; above this it is not one of ours (a sane cap)
RECORD_LIMIT = 4 << 20
FUTURE_SLACK = 600  # seconds a name may be ahead of our clock before it is "dated in the future"
# files are created new (never truncated), and no path we open may be a symlink
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
READ_SAFE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class EngineError(Exception):
    """A failure with a message fit for a user; ``kind`` maps to an exit code."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


@dataclass
class BackupFile:
    name: str
    path: str
    created: str  # ISO 8601 UTC, from the name
    size: int
    sha256: str | None = None  # recorded beside the file, if it was
    # cheap evidence the file is what this tool wrote: a manifest and a .sha256 that agree
    # with each other, the file's size and its SQLite header (see ``manifest_agrees``)
    verified: bool = False
    # what NAME.json says it is (``backup_identity``): kind, the database it copies, and
    # for a restore's safety backup or an adopted one, which restore / who and when
    kind: str = "backup"
    source: str | None = None
    restore: dict | None = None
    adopted: dict | None = None
    uploaded: str | None = None  # an upload's (kind upload) publish time: its grace's start


@dataclass
class BackupResult:
    name: str
    path: str
    created: str
    size: int
    sha256: str
    check: str
    seconds: float
    source: str
    strategy: str = "engine"
    sqlite_version: str = sqlite3.sqlite_version
    host: str = field(default_factory=lambda: host_name())
    tables: dict | None = None  # rows per table, for backup.drill to compare against
    content_sha256: str | None = None  # describe(): the logical content, layout-free
    content_format: str | None = None  # how content_sha256 was computed (CONTENT_FORMATS)
    kind: str = "backup"  # KINDS: "safety" for a restore's safety backup, never `latest`
    restore: dict | None = None  # a safety backup's restore: {"when", "backup"} it replaced
    adopted: dict | None = None  # backup.adopt: {"when", "by"} for an old unrecorded backup


@dataclass
class VerifyResult:
    name: str
    ok: bool
    check: str
    size: int
    sha256: str
    recorded_sha256: str | None
    problems: list[str]


# ---------------------------------------------------------------- names


def backup_name(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime(NAME_FORMAT)


def parse_created(name: str) -> dt.datetime | None:
    """The UTC time encoded in a backup's name, or None if it is not one of ours."""
    match = NAME_PATTERN.fullmatch(name)
    if not match:
        return None
    try:
        parsed = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H-%M-%S")
    except ValueError:
        return None
    # years 1-99 are not dates JavaScript's Date keeps: engine.js's parseCreated refuses them
    return parsed.replace(tzinfo=UTC) if parsed.year >= 100 else None


def check_name(name: str) -> str:
    """Refuse anything that is not a plain backup file name (no paths, no ``..``)."""
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise EngineError(f"not a backup name: {name!r} (give a file name, not a path)", "usage")
    if parse_created(name) is None:
        raise EngineError(
            f"not a backup name: {name!r} (expected steps-YYYY-MM-DDTHH-MM-SS.db)", "usage"
        )
    return name


def iso(when: dt.datetime) -> str:
    """Four digits of year whatever the year (strftime gives ``100`` for 0100, which no
    parser reads back: a backup named for year 100 crashed every listing)."""
    when = when.astimezone(UTC)
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z"


def parse_iso(stamp: str) -> dt.datetime:
    """An RFC 3339 time as written by ``iso`` or flyctl (``Z``, fractions allowed). One
    whose offset puts it outside the calendar in UTC (``9999-12-31T23:59:59-05:00``) is a
    ValueError too: converting it would raise OverflowError, which no caller expects."""
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        try:
            when.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"a time outside the calendar in UTC: {stamp!r}") from None
    return when


# ---------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike, on_bytes=None, cancel=None) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            digest.update(chunk)
            done += len(chunk)
            if on_bytes:
                on_bytes(done)
    return digest.hexdigest()


def fsync_path(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Create a new small file with mode 0600 and fsync it.

    Never follows a symlink nor reuses an existing file; if writing fails (a full
    disk), the file this call created is removed again.
    """
    fd = os.open(path, NEW_FILE, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def read_small(path: Path, limit: int = SIDECAR_LIMIT) -> bytes | None:
    """A small regular file's bytes, or None for anything else.

    Symlinks, FIFOs, directories, devices, missing or oversized files are all None:
    opened non-blocking and checked by handle, so no planted file can hang a task.
    """
    try:
        fd = os.open(path, READ_SAFE)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if len(data) > limit else data


def sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".sha256"), path.with_name(path.name + ".json")


def _is_sha256(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def read_recorded_sha256(path: Path) -> str | None:
    """The digest in ``NAME.sha256`` (``sha256sum`` form, naming this file), or None."""
    raw = read_small(sidecars(path)[0])
    try:
        fields = raw.decode("ascii").split() if raw is not None else []
    except UnicodeDecodeError:
        return None
    if len(fields) == 2 and _is_sha256(fields[0]) and fields[1].lstrip("*") == path.name:
        return fields[0]
    return None


RECORD_DEPTH = 8  # nesting a record may have: ours have 2 (the object and `tables`)


def parse_record(text: str):
    """A record's JSON (``NAME.json``, a sidecar): at most ``RECORD_LIMIT`` characters
    and ``RECORD_DEPTH`` levels deep, else ValueError, never a RecursionError (50 KB of
    ``[`` is one bad record, not a crash). The depth is counted before parsing."""
    if len(text) > RECORD_LIMIT:
        raise ValueError(f"longer than {RECORD_LIMIT} characters")
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > RECORD_DEPTH:
                raise ValueError(f"nested deeper than {RECORD_DEPTH} levels")
        elif char in "]}":
            depth -= 1
    return json.loads(text, parse_constant=no_constant)


def no_constant(word: str):
    """JSON's grammar has no NaN or Infinity, though Python's json reads them: a record or
    a machine's answer holding one was not written by this tool (json.loads' parse_constant)."""
    raise ValueError(f"not a JSON number: {word}")


def read_record(path: Path) -> bytes | None:
    """``NAME.json``'s bytes (at most ``RECORD_LIMIT``), read like every sidecar, or None."""
    return read_small(sidecars(path)[1], RECORD_LIMIT)


def read_manifest(path: Path) -> dict | None:
    """``NAME.json`` as a dict with the types this tool writes, or None."""
    raw = read_record(path)
    try:
        data = parse_record(raw.decode("utf-8")) if raw is not None else None
    except ValueError:  # bad JSON or bad UTF-8, too long or too deep
        return None
    if not isinstance(data, dict) or data.get("name") != path.name:
        return None
    size = data.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not _is_sha256(data.get("sha256")):
        return None
    return data


def recorded_sha256s(path: Path) -> dict[str, str]:
    """Every checksum recorded for a backup, by where it was found."""
    found = {}
    digest = read_recorded_sha256(path)
    if digest:
        found[sidecars(path)[0].name] = digest
    manifest = read_manifest(path)
    if manifest:
        found[sidecars(path)[1].name] = manifest["sha256"]
    return found


def header_agrees(path: Path, size: int) -> bool:
    """The SQLite header is sane and, where it records one, its page count x page size
    is the file's size (a cut or grown file fails this without reading it all)."""
    try:
        fd = os.open(path, READ_SAFE)
    except OSError:
        return False
    try:
        header = os.read(fd, 100)
    except OSError:
        return False
    finally:
        os.close(fd)
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        return False
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return False
    pages = int.from_bytes(header[28:32], "big")
    if pages and header[24:28] == header[92:96]:  # the in-header size is valid
        return pages * page_size == size
    return size >= page_size and size % page_size == 0


def manifest_agrees(path: Path, size: int) -> bool:
    """Cheap evidence that a file is the backup this tool wrote: ``NAME.json`` and
    ``NAME.sha256`` both readable and naming the same checksum, the recorded size is the
    file's, and its SQLite header agrees with that size. Not proof: only a full
    checksum (``verify_backup``) is."""
    manifest = read_manifest(path)
    return (manifest is not None and manifest["size"] == size
            and read_recorded_sha256(path) == manifest["sha256"] and header_agrees(path, size))


def read_page_size(path: Path) -> int:
    """The page size in a database file's header (bytes 16-17; 1 means 65536)."""
    with open(path, "rb") as handle:
        raw = handle.read(18)[16:18]
    size = int.from_bytes(raw, "big") if len(raw) == 2 else 4096
    return 65536 if size == 1 else size or 4096


def check_sqlite_file(path: Path, what: str) -> None:
    """Fail clearly on a missing path, a directory, or a file that is not SQLite."""
    if not path.exists():
        raise EngineError(f"{what} not found: {path}", "not_found")
    if path.is_dir():
        raise EngineError(f"{what} is a directory, not a database file: {path}", "usage")
    try:  # non-blocking and checked by handle: a FIFO must not hang the task
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError as exc:
        raise EngineError(f"cannot read {what} {path}: permission denied", "error") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EngineError(f"{what} is not a regular file: {path}", "usage")
        header = os.read(fd, len(SQLITE_HEADER))
    finally:
        os.close(fd)
    if what == "database":  # a corrupt one too: moved aside, the app's name would keep it
        refuse_other_names(path, info)
    if header != SQLITE_HEADER:
        raise EngineError(f"{what} is not a SQLite database: {path}", "corrupt")


# SQLite names a database's -wal and -shm after the name it was opened by, so a database
# with two names (hard links) has two WALs: through one name a backup misses what the app
# committed through the other, a restore's copy is undone when the app's WAL is replayed
# over it, and two checkpoints write one file (SQLite itself logs "multiple links to
# file"). A live database with another name is refused, except our own crash leftovers of
# a restore (``place_restored``'s temporary, ``move_aside``'s new name): no app opens those.
def own_names(name: str) -> re.Pattern:
    return re.compile(rf"{re.escape(TMP_PREFIX)}restore-{re.escape(name)}\.[0-9]+|"
                      rf"{re.escape(name)}\.(corrupt|stale)-[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}"
                      rf"T[0-9]{{2}}-[0-9]{{2}}-[0-9]{{2}}Z(-[0-9]+)?")


def refuse_other_names(path, info: os.stat_result | None = None) -> None:
    """Raise for a live database with a name no restore of ours left (``own_names``);
    ``info``: its stat (followed), else read here (a missing path is not judged here)."""
    if info is None:
        try:
            info = os.stat(path)
        except OSError:
            return
    if not stat.S_ISREG(info.st_mode) or info.st_nlink == 1:
        return
    real = Path(os.path.realpath(path))
    ours, others = own_names(real.name), []
    with contextlib.suppress(OSError), os.scandir(real.parent) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                seen = entry.stat(follow_symlinks=False)
                if (entry.name != real.name and seen.st_ino == info.st_ino
                        and seen.st_dev == info.st_dev):
                    others.append(entry.name)
    foreign = sorted((name for name in others if not ours.fullmatch(name)), key=shell_order)
    outside = info.st_nlink - 1 - len(others)  # names in other folders
    if not foreign and outside <= 0:
        return
    top = real.parent  # a hard link stays on its filesystem: look from where that starts
    with contextlib.suppress(OSError):
        while top.parent != top and top.parent.stat().st_dev == info.st_dev:
            top = top.parent
    raise EngineError(other_names_said(
        path, [name_shown(str(real.parent / name)) for name in foreign], outside,
        f"find {shlex.quote(str(top))} -xdev -samefile {shlex.quote(str(real))} 2>/dev/null"),
        "linked")


def other_names_said(path, shown: list[str | None], outside: int, find: str) -> str:
    """``refuse_other_names``'s line, word for word what engine.js and the sqlite3 CLI say
    (a dry run reads it through the shell, its run through python3): what to do first, then
    the names (three at most; a line cut on the machine loses only names), with the
    ``find`` that lists them all when some are not shown. ``shown``: ``name_shown``'s, each
    name beside it in byte order (None: one it cannot show as it stands)."""
    count = len(shown) + max(outside, 0)
    names = f"{count} other names (hard links)" if count > 1 else "another name (a hard link)"
    said = (f"database {path} has {names}: remove every name but the one the app opens (if "
            "that is not this one, set db.path or db.remote_path to it first): SQLite keeps a "
            "-wal per name, so through another name a backup misses the app's writes and its "
            "-wal can undo a restore. Nothing was changed. ")
    listed = [name for name in shown[:3] if name is not None]
    hidden = len(shown) - len(listed)
    if not hidden and outside <= 0:
        return said + f"The other name{'s' if count > 1 else ''}: {', '.join(listed)}"
    more = (f", and {hidden} not shown" if listed else "not shown") if hidden else ""
    parts = ([f"{len(shown)} beside it ({', '.join(listed)}{more})"] if shown else []) + (
        [f"{outside} outside its folder"] if outside > 0 else [])
    return said + f"The other name{'s' if count > 1 else ''}, which `{find}` lists: " + \
        " and ".join(parts)


def shell_order(name: str) -> tuple[int, bytes]:
    """The order the sqlite3 CLI's shell walks a folder (``* .[!.]* ..?*``, each sorted
    byte by byte), so all three engines list the same three names first."""
    raw = os.fsencode(name)
    return (2 if raw.startswith(b"..") else 1 if raw.startswith(b".") else 0), raw


SHOWN_AS_IS = frozenset(range(0x20, 0x7F)) - set(b"'\"\\`")  # what the shell's fail() keeps


def name_shown(path: str) -> str | None:
    """A path as ``other_names_said`` lists it, exactly as the sqlite3 CLI's shell can: in
    single quotes, pasteable as it stands. None (counted, and the find lists it) for a name
    over 100 bytes or with a byte outside printable ASCII, a quote, a backslash or a
    backtick (one would pair with the find's own when the line is laid out)."""
    raw = os.fsencode(path)
    if len(raw.rsplit(b"/", 1)[-1]) > 100 or not set(raw) <= SHOWN_AS_IS:
        return None
    return f"'{path}'"


def mkdir_private(directory: Path) -> None:
    """Create ``directory`` and every missing folder above it 0700 (``mkdir(parents=True)``
    makes those above with the umask's 0755: `backup.download` into a missing backup.dir
    left it 0755 around its private `fly-<app>`); existing folders keep their mode."""
    missing = []
    for path in (Path(directory), *Path(directory).parents):
        if path.exists() or path.is_symlink():
            break
        missing.append(path)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another run:
            path.mkdir(mode=0o700)  # it keeps its mode


def prepare_dir(directory: Path) -> None:
    """The backup folder, created private (0700: backups hold every user's data) as
    backup.download creates it; an existing folder keeps its mode."""
    try:
        mkdir_private(directory)
    except (FileExistsError, NotADirectoryError) as exc:
        raise EngineError(f"backup folder is not a folder: {directory}", "usage") from exc
    except OSError as exc:
        raise EngineError(
            f"cannot create backup folder {directory}: {exc.strerror}", "usage"
        ) from exc
    if not directory.is_dir():
        raise EngineError(f"backup folder is not a folder: {directory}", "usage")
    refuse_unwritable(directory)


def refuse_unwritable(directory: Path) -> None:
    """A folder this process cannot write into is refused before anything (``prepare_dir``,
    and a restore's dry run, which writes nothing but gives the run's verdict)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise EngineError(f"{NOT_WRITABLE.format(folder=directory)}; nothing was changed: "
                          f"{NOT_WRITABLE_FIX}", "usage")


NOT_WRITABLE = "backup folder is not writable: {folder}"
NOT_WRITABLE_FIX = "make it writable, or set backup.dir to a folder that is"


# ---------------------------------------------------------------- lock


def _open_lock_file(lock_path: Path, create: bool = True) -> int:
    """The lock file opened for ``file_lock`` (created 0600 if missing): only a regular
    file with one link, never followed through a symlink, never blocking on a FIFO.
    ``create`` False (``lock_holder``): opened to read, never made."""
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    try:
        fd = os.open(lock_path, flags | os.O_NOFOLLOW | os.O_NONBLOCK
                     | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        if not create and exc.errno == errno.ENOENT:
            raise
        kinds = {errno.ELOOP: "a symlink", errno.EISDIR: "a directory", errno.ENXIO: "a socket"}
        if exc.errno not in kinds:
            raise EngineError(f"cannot open the lock file {lock_path}: "
                              f"{exc.strerror or exc}", "error") from None
        raise EngineError(f"refusing the lock file {lock_path}: {kinds[exc.errno]}, not a "
                          "regular file this tool made; remove it if nothing else needs it",
                          "error") from None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        kind = "another name of some file (a hard link)" if stat.S_ISREG(info.st_mode) else (
            "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a directory"  # opened to read
            if stat.S_ISDIR(info.st_mode) else "a device or socket")
        raise EngineError(f"refusing the lock file {lock_path}: {kind}, not a regular "
                          "file this tool made; remove it if nothing else needs it", "error")
    return fd


@contextlib.contextmanager
def file_lock(lock_path: Path, wait: float = 0.0, what: str = "another backup",
              on_wait=None, role: str = ""):
    """An exclusive lock on ``lock_path`` naming its holder (who, where, since when).

    ``on_wait(holder)`` is called once if we have to wait for it.

    ``flock`` is released by the kernel when the holder dies, even by ``kill -9``,
    so a crashed run never leaves a stale lock behind.

    The lock file is rewritten with the holder's name, so it must be our own kind of
    file: a symlink (never followed), a FIFO (opened non-blocking), a directory, a
    device or a hard link to another file is refused and left as it is.
    """
    fd = _open_lock_file(lock_path)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        unnamed: list = []  # when the holder was first seen without its name
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
                if naming_soon(holder, unnamed):  # try the lock, and its name, again
                    time.sleep(0.01)
                    continue
                if on_wait and time.monotonic() < deadline:
                    on_wait(holder or "unknown")  # say once why we are not moving
                    on_wait = None
                if time.monotonic() >= deadline:
                    hint = " (use --lock-wait SECONDS to wait for it)" if wait <= 0 else ""
                    who = RESTORE_ROLE if holder.startswith(f"{RESTORE_ROLE} ") else what
                    raise EngineError(
                        f"{who} holds the lock {lock_path}: {holder or 'unknown'}{hint}",
                        "locked",
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)  # empty (a holder killed by -9 left its name): read as "not yet"
        os.pwrite(fd, holder_text(role).encode(), 0)  # one write into an empty file
        try:
            yield
        finally:  # our name goes with the lock: the next holder's file starts empty, so
            with contextlib.suppress(OSError):  # its name is never one that has left
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def lock_holder(lock_path: Path) -> str | None:
    """Who holds the ``file_lock`` at ``lock_path`` (its own record: "... since WHEN";
    "unknown" for a holder that names none), or None when nobody does: a dry run's look,
    taking nothing and creating nothing. A lock file the run would refuse (a symlink, a
    FIFO) is refused here with the run's error. Linux's /proc/locks is read, so not even a
    shared lock is taken (a run with no lock wait meeting it would give up); elsewhere a
    shared lock is tried and let go at once (a ``file_lock`` meeting it finds the file
    empty and tries again: ``naming_soon``)."""
    try:
        fd = _open_lock_file(lock_path, create=False)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        held = _flocked(info)
        if held is None:  # no /proc/locks
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                held = False
            except BlockingIOError:
                held = True
        if not held:
            return None
        return os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)


def _flocked(info: os.stat_result) -> bool | None:
    """Whether a process holds a flock on this file (None: there is no /proc/locks).
    /proc/locks lists it; outside the top pid namespace (a container) it hides a lock whose
    taker has exited (flock(1)'s, on a shell's open file: review-break #1), so there the
    "lock:" lines of every readable /proc/PID/fdinfo are read too (``remote.IS_HELD``)."""
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"

    def names(fields: list[str]) -> bool:
        if os.major(info.st_dev):
            return device in fields
        # an anonymous device (overlayfs): /proc/locks names the file system below it,
        # so the inode alone is matched
        return any(f.endswith(f":{info.st_ino}") for f in fields)

    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as listing:
            if any(names(line.split()) for line in listing):
                return True
    except OSError:
        return None
    if _top_pid_namespace():
        return False
    return any(names(line.split()) for line in _fdinfo_locks())


def _top_pid_namespace() -> bool:
    """Whether /proc is the machine's top pid namespace's: only there are the kernel's
    threads seen (pid 2 is kthreadd), and only there does /proc/locks list every lock."""
    try:
        return Path("/proc/2/comm").read_text(errors="replace").strip() == "kthreadd"
    except OSError:
        return False


def _fdinfo_locks():
    """The "lock:" lines of every /proc/PID/fdinfo this user may read."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as text:
                    yield from (line for line in text if line.startswith("lock:"))
            except OSError:
                continue


def lock_verdict(lock_path: Path, holder: str | None, wait: float,
                 what: str = "another backup") -> str | None:
    """What a run meeting ``holder`` at ``lock_path`` does, in its own words (a dry run's
    verdict): None if the lock is free; refused at once with ``file_lock``'s own error
    (kind "locked", exit 4) when it waits for nothing; otherwise the line saying how long
    it would wait, and that it ends as that error if the lock is still held then."""
    if holder is None:
        return None
    who = RESTORE_ROLE if holder.startswith(f"{RESTORE_ROLE} ") else what
    if wait <= 0:
        raise EngineError(f"{who} holds the lock {lock_path}: {holder} (use --lock-wait "
                          "SECONDS to wait for it)", "locked")
    return (f"{who} holds the lock {lock_path}: {holder}; the run would wait up to "
            f"{wait:g}s for it, then stop with exit 4 if it is still held")


HOLDER_GRACE = 1.0  # seconds a holder may take to write its name after its flock


def naming_soon(holder: str, unnamed: list, grace: float = HOLDER_GRACE) -> bool:
    """Whether a refused ``file_lock`` should try again before naming the holder (break
    #6 of the s18 review: a run saw "unknown"). A holder writes its name right after its
    flock, into a file its predecessor emptied: an empty file is a holder between the
    two (or one just gone), so the lock and the name are tried again for ``grace``
    seconds from the first empty read (``unnamed`` keeps it); a shell script on the
    machine never writes one, and is "unknown" after that."""
    if holder:
        return False
    unnamed[:] = unnamed or [time.monotonic()]
    return time.monotonic() < unnamed[0] + grace


def user_name() -> str:
    """Who runs this: $USER, else $LOGNAME, else the account of our uid (tmux, cron and
    `sudo -i` may set neither: the lock holder showed as `unknown`)."""
    name = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not name:
        try:
            import pwd

            name = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError, OSError):
            name = ""
    return name or "unknown"


RESTORE_ROLE = "a restore"  # how a restore names itself in the backup folder's lock


def holder_text(role: str = "") -> str:
    """Who holds a lock: ``[ROLE by ]USER (pid N on HOST) since WHEN``."""
    user = os.environ.get("GITHUB_ACTOR") or user_name()
    stamp = iso(dt.datetime.now(UTC))
    return (f"{role} by " if role else "") + \
        f"{user} (pid {os.getpid()} on {host_name()}) since {stamp}"


def backup_lock(directory: Path, wait: float = 0.0, on_wait=None):
    """One backup (or cleanup) per backup folder at a time. Inside ``held_backup_lock``
    of the same folder it is already ours (flock would refuse a second descriptor).
    ``on_wait(holder)``: told once when it must wait (``file_lock``)."""
    if holds_backup_lock(directory):
        return contextlib.nullcontext()
    return file_lock(directory / LOCK_NAME, wait, "another backup", on_wait=on_wait)


_HELD_FOLDERS: set = set()  # backup folders whose lock this process holds across steps


def holds_backup_lock(directory) -> bool:
    return os.path.realpath(directory) in _HELD_FOLDERS


@contextlib.contextmanager
def held_backup_lock(directory, wait: float = 0.0, on_wait=None):
    """The folder's backup lock held across several steps (a restore: from the chosen
    backup's check to the end, as on the machine); the backup made meanwhile (its safety
    backup) runs under it, and no other backup or cleanup can remove the chosen one.
    ``on_wait(holder)``: told once when it must wait (``file_lock``). Already ours (restore
    --from-replica takes it as it publishes the backup it then restores): held on."""
    key = os.path.realpath(directory)
    if key in _HELD_FOLDERS:
        yield
        return
    with file_lock(Path(directory) / LOCK_NAME, wait, "another backup", on_wait=on_wait,
                   role=RESTORE_ROLE):
        _HELD_FOLDERS.add(key)
        try:
            yield
        finally:
            _HELD_FOLDERS.discard(key)


@dataclass
class Leftover:
    name: str  # printable: bytes that are not UTF-8 are shown as U+FFFD
    size: int


def _leftover_entries(directory: Path) -> list[tuple[os.DirEntry, int]]:
    """Hidden temporaries an interrupted run left (never directories; symlinks not followed)."""
    found = []
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return []
    for entry in entries:
        staged = STAGED_NAME.fullmatch(entry.name) is not None
        if not entry.name.startswith(TMP_PREFIX) and not staged:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if staged and not (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
                           and time.time() - info.st_mtime > STAGED_AGE):  # ours, unwritten
            continue
        if not stat.S_ISDIR(info.st_mode):
            found.append((entry, info.st_size))
    return sorted(found, key=lambda pair: pair[0].name)


def printable(name: str) -> str:
    """A file name as text any terminal or JSON parser accepts (undecodable bytes as U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def list_leftovers(directory: str | os.PathLike) -> list[Leftover]:
    """What ``remove_stale_temporaries`` would delete, with sizes (an interrupted copy is
    as large as the database)."""
    return [Leftover(printable(entry.name), size)
            for entry, size in _leftover_entries(Path(directory))]


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Delete what an interrupted run left; only call while holding the lock."""
    removed = []
    for entry, _ in _leftover_entries(directory):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)  # a symlink goes, never what it points to
            removed.append(printable(entry.name))
    return removed


# ---------------------------------------------------------------- backup


def human_size(size: float) -> str:
    """Bytes as people read them, in SI units (``260.0 MB``): the one formatter every line
    uses (``ops.ui`` hands it to the tasks as ``human_bytes``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _space_needed(source: Path) -> int:
    wal = source.with_name(source.name + "-wal")
    return source.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def no_space_error(directory: Path, needed: int, free: int, prefix: str) -> EngineError:
    """A full-folder error in human sizes that also carries the numbers (``needed``,
    ``free``), so a caller can say what a cleanup would free."""
    error = EngineError(f"{prefix} {directory}: {human_size(free)} free, the backup needs "
                        f"about {human_size(needed)}", "no_space")
    error.needed, error.free = needed, free
    return error


# socket and shutil each for one call: ~4 ms more of every remote step's import (the engine
# runs as `python3 -` for each one), for what these two lines say exactly as they do
def host_name() -> str:
    """gethostname(2), which on Linux is uname's node name (socket.gethostname's)."""
    return os.uname().nodename


def free_bytes(path) -> int:
    """Bytes free to this user where ``path`` is (shutil.disk_usage's ``free``)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _free_space_check(source: Path, directory: Path) -> None:
    needed = _space_needed(source)
    free = free_bytes(directory)
    if free < needed:
        raise no_space_error(directory, needed, free, "not enough free space in")


def _deadline_progress(deadline: float | None, on_pages):
    def progress(status, remaining, total):
        if on_pages:
            on_pages(total - remaining, total)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError

    return progress


def copy_database(
    source: Path, target: Path, *, timeout: float | None = None, on_pages=None
) -> None:
    """Online copy of a live (WAL) database: one consistent snapshot, never restarted.

    The source connection is read-only and holds one read transaction for the
    whole copy, so the copy is the database as of its first step while the app
    keeps writing, and writes by other processes never restart the copy (they
    would between steps without that transaction). The copy still runs in steps so
    progress can be shown and a deadline enforced.
    """
    src = sqlite3.connect(sqlite_uri(source, f"mode=ro{_snapshot_flag(source)}"), uri=True,
                          timeout=5.0)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(target, timeout=0)
        try:
            # the file is ours alone until published: no rollback journal and no syncs per
            # step (one fsync follows); measured -24 % on the copy, byte-identical output
            dst.execute("PRAGMA journal_mode=OFF")
            dst.execute("PRAGMA synchronous=OFF")
            deadline = None if not timeout else time.monotonic() + timeout
            with _flushing(target):
                src.backup(dst, pages=STEP_PAGES,
                           progress=_deadline_progress(deadline, on_pages))
        except TimeoutError:
            raise EngineError(f"backup did not finish within {timeout:g}s", "timeout") from None
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc):
            raise _full_error(source, target) from exc
        if not os.access(source.parent, os.W_OK) and "unable to open" in str(exc):
            raise EngineError(
                f"cannot read database {source}: its folder is read-only to us and SQLite "
                "needs to create the -shm file there; run as a user who can write it, or "
                "copy the database and its -wal elsewhere", "read_only") from exc
        raise EngineError(f"cannot read database {source}: {exc}", "corrupt") from exc
    finally:
        src.close()


FLUSH_EVERY = 0.05  # seconds between a copy's flushes to the disk


@contextlib.contextmanager
def _flushing(path: Path, every: float = FLUSH_EVERY):
    """Push a file's writes to the disk while it is being written, not all at the end.

    One fsync of a whole gigabyte made the app's own commits wait behind it (measured
    at 1 GB with a commit every 50 ms: worst commit 170-490 ms; 57-68 ms with this, for
    3-6 % more backup time). A failed flush is raised when the block ends: a write
    error the kernel reported once must not be lost.
    """
    fd = os.open(path, READ_SAFE)  # never through a symlink, like every file of ours
    sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
    done, failed = threading.Event(), []

    def flush():
        while not done.wait(every):
            try:
                sync(fd)
            except OSError as exc:
                failed.append(exc)
                return

    thread = threading.Thread(target=flush, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        os.close(fd)
    if failed:
        raise failed[0]


def sqlite_uri(path, query: str) -> str:
    """``path`` as a SQLite URI with ``query`` (``mode=ro&immutable=1``): every byte but
    letters, digits and ``/_.-~`` percent-encoded. Unescaped, a ``#`` or ``?`` in a folder's
    name ends the path there: ``bk#1/steps-….db`` opened ``bk``, a missing file SQLite read
    as an empty, healthy database, and a restore copied it over production (review-break
    s19 #1). Leading slashes collapse to one (``//x`` would be read as a host)."""
    text = os.fspath(path)
    if text.startswith("//"):
        text = "/" + text.lstrip("/")
    return f"file:{urllib.parse.quote(text, safe='/')}?{query}"


def _snapshot_flag(source: Path) -> str:
    """``&immutable=1`` for a database on a read-only mount (a mounted snapshot).

    There SQLite cannot create the ``-shm`` a WAL database needs. With no ``-wal`` file
    nothing can be writing and the file alone is the whole database, so it is read as
    immutable; with a ``-wal`` and its ``-shm`` SQLite reads both read-only; a ``-wal``
    without ``-shm`` holds commits SQLite cannot read there, so we say so.
    """
    try:
        if not os.statvfs(source.parent).f_flag & os.ST_RDONLY:
            return ""
    except OSError:
        return ""
    wal, shm = (source.with_name(source.name + suffix) for suffix in ("-wal", "-shm"))
    if not wal.exists() or wal.stat().st_size == 0:
        return "&immutable=1"
    if shm.exists():
        return ""
    raise EngineError(
        f"database {source} is in a read-only folder with a -wal file but no -shm: SQLite "
        "cannot read its newest commits there; copy the database and its -wal into a "
        "writable folder and back up that copy", "read_only")


def run_check(path: Path, check: str = "integrity", *, mmap_size: int = 0,
              cancel=None, cache_bytes: int = 0, readahead: bool = True,
              on_open=None) -> list[str]:
    """Problems reported by SQLite's own check (empty list means the file is sound).

    ``mmap_size`` > 0 maps up to that many bytes: faster on a cold file, but the
    process's memory then grows with the database, so it is off unless asked for.
    ``cancel`` (a ``threading.Event``) stops the check within milliseconds when set.
    ``cache_bytes`` > 0: SQLite's page cache for the check (default ~2 MB): an
    integrity_check looks each row up in every index, and a cache that holds the indexes
    saves most of its reads (benchmarks/replica_checks.py).
    ``readahead=False`` turns the kernel's read-ahead off on SQLite's descriptor
    (``no_readahead``); ``on_open()`` is called once the file is open (and advised).
    """
    if check not in CHECKS:
        raise EngineError(f"unknown check {check!r}: use one of {', '.join(CHECKS)}", "usage")
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    try:
        # immutable: a finished backup is never written, and this leaves no -wal/-shm beside it
        conn = sqlite3.connect(sqlite_uri(path, "mode=ro&immutable=1"), uri=True,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        if mmap_size > 0:
            conn.execute(f"PRAGMA mmap_size={int(mmap_size)}")
        if cache_bytes > 0:
            conn.execute(f"PRAGMA cache_size=-{max(1, int(cache_bytes) // 1024)}")
        if not readahead:
            conn.execute("PRAGMA schema_version").fetchone()  # SQLite has opened the file
            no_readahead(path)
        if on_open:
            on_open()
        with _cancellable(conn, cancel):
            rows = [row[0] for row in conn.execute(f"PRAGMA {pragma}")]
    except (sqlite3.DatabaseError, MemoryError) as exc:  # SQLITE_NOMEM is a MemoryError
        if check_could_not_run(exc):
            raise EngineError(check_not_run(path, pragma, str(exc) or "out of memory"),
                              check_failure_kind(exc)) from None
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else problem_lines(rows)


# SQLite's answers that say the check itself could not run (no memory, an I/O error, a
# full temp store, no file descriptor, interrupted, locked): no verdict on the file, whose
# check must not read as "damaged" (review-break s19 #2: "restore another backup instead"
# for a sound backup loses the writes since). SQLITE_CORRUPT/NOTADB and the rest are.
CHECK_NOT_RUN_CODES = (5, 6, 7, 9, 10, 13, 14)  # BUSY LOCKED NOMEM INTERRUPT IOERR FULL CANTOPEN
CHECK_NOT_RUN_WORDS = ("out of memory", "disk i/o error", "disk is full", "unable to open",
                       "interrupted", "database is locked", "killed")


def check_could_not_run(exc: BaseException | str) -> bool:
    """Whether a check's failure is the check not running rather than a verdict (pure)."""
    if isinstance(exc, MemoryError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; the words otherwise
    if code is not None and code & 0xFF in CHECK_NOT_RUN_CODES:
        return True
    return any(word in str(exc).lower() for word in CHECK_NOT_RUN_WORDS)


def check_failure_kind(exc: BaseException | str) -> str:
    return "no_space" if "full" in str(exc).lower() else "check_failed"


def check_not_run(path, pragma: str, why) -> str:
    """The one sentence for a check that could not run (the engines and the shell say it)."""
    return (f"the {pragma} of {Path(path).name} could not run ({why or 'no answer'}): "
            "the file was not judged, nothing was changed; this says nothing about the "
            "file: look at the memory and disk where it ran, then run again")


def no_readahead(path) -> None:
    """``posix_fadvise(POSIX_FADV_RANDOM)`` on this process's descriptors open on ``path``
    (Linux; elsewhere nothing): the kernel then reads only the pages asked for.

    SQLite's check walks one b-tree after another, and the pages of a table and of its
    indexes are interleaved in the file: read-ahead on each miss brings in the other
    b-trees' pages, which a cache smaller than the database evicts before their turn.
    Measured on 269 MB in 128 MiB at 32 MiB/s (benchmarks/shape_phases.py): the
    check alone read 535 MiB in 18.6 s with read-ahead, 354 MiB in 13.2 s without; with a
    4,000 IOPS cap as well, the backup's shared pass took the same time either way
    (docs/performance.md). Only for a file nothing else in this process reads at once:
    its other descriptors would lose their read-ahead too.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    real = os.path.realpath(path)
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                os.posix_fadvise(int(fd), 0, 0, os.POSIX_FADV_RANDOM)
        except OSError:  # the listing's own descriptor, or one closed meanwhile
            continue


def problem_lines(rows) -> list[str]:
    """SQLite's check rows as one problem per line: a row may hold many lines, and the
    first starts with a "*** in database main ***" line. A problem text never carries a
    newline into an error, whose one shown line would then lose the rest (review-op #5)."""
    lines = [line.strip() for row in rows for line in str(row).splitlines()]
    return [line for line in lines if line and not line.startswith("*** in database")]


class Cancelled(Exception):
    """Another part of the same backup failed or the user pressed Ctrl-C: stop now."""


@contextlib.contextmanager
def _cancellable(conn, cancel):
    """Let ``cancel.set()`` abort the statement running on ``conn`` (SQLite's progress
    handler runs every few thousand VM steps, about a millisecond apart)."""
    if cancel is None:
        yield
        return
    conn.set_progress_handler(cancel.is_set, 20000)
    try:
        yield
    except sqlite3.OperationalError:
        if cancel.is_set():
            raise Cancelled from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


def _unique_name(directory: Path, clock) -> tuple[str, dt.datetime]:
    """A name for a backup started now that does not exist yet (waits for the next second)."""
    for _ in range(5):
        now = clock()
        name = backup_name(now)
        # taken if anything has the name or a sidecar's name (a symlink or junk included)
        final = directory / name
        if not any(os.path.lexists(path) for path in (final, *sidecars(final))):
            return name, now
        time.sleep(1.0 - (now.timestamp() % 1.0) + 0.01)
    raise EngineError(f"backup {name} already exists in {directory}", "exists")


# ~64 lines, 12 of them its docstring and keyword list: the phases in their order.
def create_backup(
    source: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    check: str = "integrity",
    timeout: float | None = None,
    lock_wait: float = 0.0,
    on_pages=None,
    clock=lambda: dt.datetime.now(UTC),
    on_phase=None,
    mmap_size: int = 0,
    content_hash: bool = True,
    restore: dict | None = None,
) -> BackupResult:
    """Make one verified backup of ``source`` in ``directory``.

    ``restore`` ({"when", "backup"}) makes it a restore's safety backup: recorded as
    ``kind: safety``, listed as such and never ``latest`` (``latest_of``).

    ``on_phase(phase, done=None, total=None, finished=False)`` follows each phase
    (``copy``, then ``fsync``, the check, ``sha256`` and ``counts`` at once; ``stopping``
    on Ctrl-C). ``mmap_size`` maps the new copy for its check (see ``run_check``).
    A backup records its size, SHA-256 and row counts, never a content hash (issue 21:
    the drill and the restore's proof compute it from the verified file);
    ``content_hash`` (``backup.content_hash``) is accepted and ignored.
    """
    source, directory = Path(source), Path(directory)
    phase = on_phase or _no_phase
    if check not in CHECKS:
        raise EngineError(f"unknown check {check!r}: use one of {', '.join(CHECKS)}", "usage")
    check_sqlite_file(source, "database")
    prepare_dir(directory)
    with backup_lock(directory, lock_wait):
        remove_stale_temporaries(directory)
        _free_space_check(source, directory)
        started = time.monotonic()
        name, when = _unique_name(directory, clock)
        final = directory / name
        tmp = directory / f"{TMP_PREFIX}{name}.{os.getpid()}"
        made = []  # only what this run created is ever removed
        try:
            with _as_backup_error(source, tmp, phase):
                os.close(os.open(tmp, NEW_FILE, 0o600))
                made = [tmp, tmp.with_name(tmp.name + "-journal")]
                phase("copy")
                copy_database(source, tmp, timeout=timeout, on_pages=on_pages)
                phase("copy", finished=True)
                problems, digest, described = verify_new_copy(
                    tmp, check, mmap_size=mmap_size, on_phase=phase)
                if problems:
                    raise EngineError(
                        f"the new backup failed {check}_check: {problems[0]}", "verify_failed")
                result = BackupResult(
                    **described, name=name, path=str(final), created=iso(when),
                    size=tmp.stat().st_size, sha256=digest, check=check,
                    seconds=round(time.monotonic() - started, 3),
                    source=os.path.abspath(source),  # a backup's identity: which database
                    **safety_marks(restore))
                publish(tmp, final, result)
        finally:
            for path in made:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return result


@contextlib.contextmanager
def _as_backup_error(source: Path, tmp: Path, phase):
    """A backup's failures as one EngineError (a full disk counted as it will be once
    ``tmp`` is gone: the caller removes it afterwards); Ctrl-C says it is stopping."""
    try:
        yield
    except KeyboardInterrupt:
        phase("stopping")  # what is left is removed by the caller, before Ctrl-C goes on
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _full_error(source, tmp) from exc
        raise EngineError(f"backup failed: {exc.strerror or exc}") from exc
    except sqlite3.Error as exc:
        if "full" in str(exc):
            raise _full_error(source, tmp) from exc
        raise EngineError(f"backup failed: {exc}") from exc


def _no_phase(name, done=None, total=None, finished=False) -> None:
    pass


OPEN_WAIT = 10.0  # seconds the hash and the counts wait for the check to open the copy


def verify_new_copy(tmp: Path, check: str = "integrity", *, mmap_size: int = 0,
                    on_phase=None, counts: bool = True,
                    cache_bytes: int = 0) -> tuple[list[str], str, dict]:
    """(problems, SHA-256, ``BackupResult``'s tables) of a fresh copy, in one read of it.

    What publishing needs and nothing more (issue 21): fsync, SQLite's check and the
    checksum, plus the row counts (``counts``). They read the same just-written file,
    so they run at once (SQLite and hashlib release the GIL) and share its pages in the
    cache: on a machine whose memory is smaller than the database every pass that does
    not share them reads the whole file from the disk again. The content hash is not
    computed here: a backup whose SHA-256 matches its record has the content it had
    when it was made, so the drill and the restore's proof hash the verified file when
    they run. The first
    failure, or Ctrl-C, cancels the others within milliseconds; Ctrl-C is re-raised
    once every worker has stopped. ``cache_bytes``: see ``run_check``.
    """
    phase = on_phase or _no_phase
    cancel = threading.Event()
    opened = threading.Event()  # the check's descriptor is advised before others open
    size = tmp.stat().st_size
    found: dict = {"content": {"tables": None, "content_sha256": None, "content_format": None}}
    pragma = "integrity_check" if check == "integrity" else "quick_check"

    def fsync_and_hash():
        opened.wait(OPEN_WAIT)
        phase("fsync")
        fsync_path(tmp)
        phase("fsync", finished=True)
        phase("sha256", 0, size)
        found["sha256"] = sha256_file(tmp, lambda done: phase("sha256", done, size), cancel)
        phase("sha256", size, size, finished=True)

    def sqlite_check():
        phase(pragma)
        try:  # read-ahead off: its scattered reads share the cache with the hash's
            found["problems"] = run_check(tmp, check, mmap_size=mmap_size, cancel=cancel,
                                          cache_bytes=cache_bytes, readahead=False,
                                          on_open=opened.set)
        finally:
            opened.set()
        if found["problems"]:
            cancel.set()  # the backup is refused: the other passes are moot
        phase(pragma, finished=True)

    def row_counts():
        opened.wait(OPEN_WAIT)
        phase("counts")
        found["content"]["tables"] = count_rows(tmp, cancel=cancel)
        phase("counts", finished=True)

    jobs = (sqlite_check, fsync_and_hash) + ((row_counts,) if counts else ())
    failures = _at_once(jobs, cancel)
    if found.get("problems"):
        return found["problems"], "", {}
    for exc in failures:
        if not isinstance(exc, Cancelled):
            raise exc
    return [], found["sha256"], found["content"]


def _at_once(jobs, cancel: threading.Event) -> list[BaseException]:
    """Run ``jobs`` in threads until all end; the first failure sets ``cancel`` (the
    others stop within milliseconds); returns the failures. Ctrl-C cancels, waits for
    every thread, and is re-raised."""
    failures: list[BaseException] = []

    def worker(job):
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting thread
            failures.append(exc)
            cancel.set()

    threads = [threading.Thread(target=worker, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.05)  # short waits: Ctrl-C is seen at once
    except KeyboardInterrupt:
        cancel.set()
        for thread in threads:
            thread.join()
        raise
    return failures


def _full_error(source: Path, tmp: Path) -> EngineError:
    """The folder filled up mid-backup: free space counted as it will be once ``tmp`` is gone."""
    try:
        free = free_bytes(tmp.parent) + os.lstat(tmp).st_size
    except OSError:
        free = 0
    try:
        needed = _space_needed(source)
    except OSError:
        needed = 0
    return no_space_error(tmp.parent, needed, free, "backup folder is full:")


def publish(tmp: Path | None, final: Path, result: BackupResult) -> None:
    """Write both sidecars under hidden names, then link them and last the backup into
    place: a link fails rather than overwrite, and never follows a symlink.

    Nothing this run did not create is ever replaced, and on any failure (a full disk
    at any step included) everything it created is removed: the backup appears last
    and only with both sidecars beside it. Once its last link exists the publish is
    complete: a signal then leaves the backup with its records (checked by inode).
    """
    contents = {
        sidecars(final)[0]: f"{result.sha256}  {final.name}\n",
        sidecars(final)[1]: json.dumps(asdict(result), indent=2) + "\n",
    }
    staged, links = [], []
    try:
        for path, text in contents.items():
            hidden = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
            write_private(hidden, text)  # creates it new, or fails having left nothing
            staged.append((hidden, path))
        links = [*staged, *([(tmp, final)] if tmp is not None else [])]  # None: adopt's
        for source, path in links:  # records only, beside a file already in place
            os.link(source, path, follow_symlinks=False)
    except BaseException as exc:
        # A signal (SIGTERM, Ctrl-C) can land just after a link returned: what is ours is
        # told by the inode, never by how far the loop got. Once the last link is ours the
        # publish is complete and the backup stays, with its records, as the signal goes
        # on; before that, every link this run made goes and all else under its names stays.
        if links and _same_file(*links[-1]):
            with contextlib.suppress(OSError):
                fsync_path(final.parent)
            raise
        _unlink_all(path for source, path in links if _same_file(source, path))
        if isinstance(exc, FileExistsError):
            name = Path(exc.filename2 or exc.filename or final).name
            raise EngineError(f"{name} already exists; not overwritten", "exists") from None
        raise
    finally:
        _unlink_all(hidden for hidden, _ in staged)
    fsync_path(final.parent)


def _same_file(source: Path, path: Path) -> bool:
    """Whether ``path`` is a hard link to ``source`` (same device and inode), unfollowed."""
    try:
        return os.path.samestat(os.lstat(source), os.lstat(path))
    except OSError:
        return False


def _unlink_all(paths) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# ---------------------------------------------------------------- list / verify / delete


def list_backups(directory: str | os.PathLike) -> list[BackupFile]:
    """Every file named like a backup, oldest first; anything else is ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    with os.scandir(directory) as listing:
        entries = list(listing)
    for entry in entries:
        created = parse_created(entry.name)  # None for undecodable names too
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if created is None or not stat.S_ISREG(info.st_mode):
            continue  # a symlink or a FIFO named like a backup is not one
        path = directory / entry.name
        found.append(
            BackupFile(
                name=entry.name,
                path=str(path),
                created=iso(created),
                size=info.st_size,
                sha256=read_recorded_sha256(path),
                verified=manifest_agrees(path, info.st_size),
                **backup_identity(_any_manifest(path), directory),
            )
        )
    return sorted(found, key=lambda item: item.name)


def in_future(created: str, now: dt.datetime) -> bool:
    """Dated more than ``FUTURE_SLACK`` ahead of ``now``: a clock that ran ahead, or junk."""
    return (parse_iso(created) - now).total_seconds() > FUTURE_SLACK


def resolve_backup(directory: str | os.PathLike, which: str,
                   source: str | None = None) -> list[BackupFile]:
    """``latest``, ``all`` or one backup's name, as the files it means; ``latest`` by
    ``latest_of`` (``source``: the database whose backups it may name)."""
    return pick_backups(list_backups(directory), which, lambda backups: latest_of(
        backups, dt.datetime.now(UTC), source, where=str(directory)), str(directory))


def pick_backups(backups: list[BackupFile], which: str, latest, where: str) -> list[BackupFile]:
    """``latest``, ``all`` or one name out of a listing: the one rule every target's
    restore, verify and drill use. ``latest(backups)`` is the target's ``latest_of``;
    ``where`` names the folder (and host) in the not-found error."""
    if which in ("latest", "all"):
        if not backups:
            raise EngineError(f"no backups in {where}", "not_found")
        return backups if which == "all" else [latest(backups)]
    check_name(which)
    match = [item for item in backups if item.name == which]
    if not match:
        raise EngineError(f"no backup named {which} in {where}", "not_found")
    return match


def verify_backup(path: str | os.PathLike, check: str | None = "integrity", *,
                  mmap_size: int = 0) -> VerifyResult:
    """Check a backup against every checksum recorded for it, and SQLite's own check.

    Records that disagree, or a file that matches none, fail as a checksum mismatch; a
    backup with no usable record at all is "unverifiable", never ok. ``check`` None: the
    checksum only, for a file this process checked a moment ago (restore --from-replica).
    """
    path = Path(path)
    problems: list[str] = []
    try:
        check_sqlite_file(path, "backup")
    except EngineError as exc:
        problems.append(str(exc))
        return VerifyResult(path.name, False, check, _size(path), "", None, problems)
    records = recorded_sha256s(path)
    recorded = next(iter(records.values()), None)
    digest = sha256_file(path)
    problems.extend(checksum_problems(records, digest))
    if check is not None:
        problems.extend(run_check(path, check, mmap_size=mmap_size))
    if not records:  # a sound file, but nothing says it is the one that was backed up
        problems.append(UNVERIFIABLE)
    return VerifyResult(path.name, not problems, check, _size(path), digest, recorded, problems)


def copy_for_upload(path: str | os.PathLike,
                    directory: str | os.PathLike | None) -> tuple[Path, str]:
    """One read of ``path`` through one handle (never through a symlink, never a FIFO):
    its bytes into a new private file in ``directory`` and their SHA-256, computed while
    reading. What is verified and uploaded is then that copy, so a file changed after
    its check can never be the one restored (``restore --from``). ``directory`` None (the
    dry run's): the same read, nothing written; ``path`` itself is what is verified."""
    path = Path(path)
    try:
        fd = os.open(path, READ_SAFE)
    except OSError as exc:
        raise EngineError(f"cannot read {path}: {exc.strerror or exc}", "not_found") from exc
    digest = hashlib.sha256()
    # a new private folder: the name is free
    copy = path if directory is None else Path(directory) / path.name
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EngineError(f"{path} is not a regular file", "usage")
        os.set_blocking(fd, True)
        out = None if directory is None else os.open(copy, NEW_FILE, 0o600)
        try:
            while chunk := os.read(fd, HASH_CHUNK):
                digest.update(chunk)
                view = memoryview(chunk) if out is not None else b""
                while view:
                    view = view[os.write(out, view):]
        finally:
            if out is not None:
                os.close(out)
    finally:
        os.close(fd)
    return copy, digest.hexdigest()


def verify_copy(original: str | os.PathLike, copy: str | os.PathLike, digest: str,
                check: str | None = "integrity") -> VerifyResult:
    """``verify_backup`` of ``copy_for_upload``'s copy, against the records beside the
    original (its ``NAME.sha256`` and ``NAME.json``) and the SHA-256 read with it."""
    original, copy = Path(original), Path(copy)
    problems: list[str] = []
    try:
        check_sqlite_file(copy, "backup")
    except EngineError as exc:  # named as the operator named it, not as the private copy
        return VerifyResult(original.name, False, check, _size(copy), digest, None,
                            [str(exc).replace(str(copy), str(original))])
    records = recorded_sha256s(original)
    problems.extend(checksum_problems(records, digest))
    if check is not None:  # None: see verify_backup
        problems.extend(run_check(copy, check))
    if not records:
        problems.append(UNVERIFIABLE)
    return VerifyResult(original.name, not problems, check, _size(copy), digest,
                        next(iter(records.values()), None), problems)


UNVERIFIABLE = ("unverifiable: no usable checksum record beside it (its .sha256 and .json are "
                "missing or unreadable)")


def checksum_problems(records: dict, digest: str) -> list:
    """What the recorded checksums (``recorded_sha256s``) say of a file with SHA-256
    ``digest``: records that disagree, or one the file does not match, is a mismatch.
    Pure, so the machine's sqlite3 strategy is judged by the very same rule."""
    recorded = next(iter(records.values()), None)
    if len(set(records.values())) > 1:
        return ["SHA-256 mismatch: the records disagree ("
                + ", ".join(f"{where} {value[:12]}…" for where, value in records.items())
                + f"), file has {digest[:12]}…"]
    if recorded and recorded != digest:
        return [f"SHA-256 mismatch: recorded {recorded[:12]}…, file has {digest[:12]}…"]
    return []


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def delete_backups(directory: str | os.PathLike, names: list[str]) -> list[str]:
    """Delete backups by name, with their sidecars; only names in our pattern."""
    directory = Path(directory)
    paths = [directory / check_name(name) for name in names]  # all valid, or nothing deleted
    deleted = []
    for path in paths:
        if _is_regular(path):
            path.unlink()  # the backup first: a half-done delete never leaves it unprotected
            deleted.append(path.name)
        for extra in sidecars(path):
            if not os.path.isdir(extra) or os.path.islink(extra):  # never a planted folder
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(extra)
    if deleted:
        fsync_path(directory)
    return deleted


# ---------------------------------------------------------------- which backup is which
# (issue 16 #2-4, #14) A backup's record says what it is: an ordinary backup, a restore's
# safety backup (never `latest`: a retried restore would put back what it replaced) or an
# old unrecorded backup adopted by `backup.adopt`; and which database it copies.

# "upload": restore --from's file, published on the server for its restore; retention
# leaves it for a bounded grace or until a restore of it begins (``retention``). Never
# `latest`: latest is the newest backup made from the live database by a backup task,
# never a copy the tool made for a restore (review-break s20 #1)
KINDS = ("backup", "safety", "adopted", "upload")
LATEST_KINDS = ("backup", "adopted")  # what `latest` may name
UNRECORDED = "unrecorded"  # a backup whose NAME.json is missing or unreadable


def unrecorded_reason(name: str) -> str:
    """Why ``latest`` skips a backup with no readable record (it fails closed: a safety
    backup whose record was lost must never be put back by a retried restore)."""
    return (f"{name} has no readable record {name}.json (missing, not a regular file or "
            f"over {RECORD_LIMIT} bytes), so it may be a restore's safety backup: `latest` "
            f"skips it; name it to use it, or `invoke backup.adopt {name}` if it is an old "
            "backup made without records")


def safety_marks(restore: dict | None) -> dict:
    """The record fields of a restore's safety backup ({} for an ordinary backup)."""
    if restore is None:
        return {}
    return {"kind": "safety", "restore": {"when": str(restore.get("when") or ""),
                                          "backup": str(restore.get("backup") or "")}}


def backup_identity(manifest: dict | None, directory=None) -> dict:
    """``BackupFile``'s kind, source, restore and adopted from ``NAME.json``.

    No readable record (missing, not a regular file, over ``RECORD_LIMIT``: the old npm
    scripts' backups, or a safety backup whose record was lost) is ``UNRECORDED``, never
    ``latest``: a lost record must not turn a safety backup into an ordinary one. A kind
    this tool never writes is kept as it is, so ``latest`` never names it. With
    ``directory`` (where the backup is now), a folder that moved with its database
    (a renamed project) keeps its source: the recorded source is taken relative to the
    folder the record names (``path``)."""
    if manifest is None:  # no readable record: what it is (a safety backup?) is unknown
        return {"kind": UNRECORDED}
    if not manifest:
        return {}
    kind = manifest.get("kind", "backup")
    found = {"kind": kind if isinstance(kind, str) and len(kind) <= 20 else "unknown"}
    source = manifest.get("source")
    if isinstance(source, str) and 0 < len(source) <= 4096 and "\0" not in source:
        found["source"] = _moved_with_folder(source, manifest.get("path"), directory)
    for key in ("restore", "adopted"):
        value = manifest.get(key)
        if isinstance(value, dict):
            found[key] = {k: v for k, v in value.items()
                          if isinstance(k, str) and isinstance(v, str) and len(v) <= 200}
    uploaded = manifest.get("uploaded")  # read as the listing's sh reads it (UPLOADED_TIME)
    if isinstance(uploaded, str) and re.fullmatch(UPLOADED_TIME, uploaded):
        found["uploaded"] = uploaded
    return found


UPLOADED_TIME = r"[0-9TZ:.+-]{1,40}"  # an upload's ``uploaded`` time, as a listing takes it


def _moved_with_folder(source: str, recorded_path, directory) -> str:
    """``source`` as seen from ``directory`` when the backup folder moved since the
    record was written (both absolute local paths); else as recorded."""
    if directory is None or not isinstance(recorded_path, str) or not (
            os.path.isabs(source) and os.path.isabs(recorded_path)):
        return source
    then, now = os.path.dirname(recorded_path), os.path.abspath(directory)
    if then == now:
        return source
    return os.path.normpath(os.path.join(now, os.path.relpath(source, then)))


def _any_manifest(path: Path) -> dict | None:
    """``NAME.json`` as any JSON object, for what it says the backup is: a record that
    fails ``read_manifest``'s checks still marks a safety backup (the listing's sh reads
    it the same way), so a damaged record errs towards "not `latest`"."""
    raw = read_record(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        return data
    # not a JSON object (cut, hostile, too deep): read the fields as the listing's sh does
    text = raw.decode("utf-8", "replace").replace("\n", "").replace("\r", "")
    found = {key: hits[-1] for key in ("kind", "source")
             if (hits := re.findall(rf'"{key}": *"([^"\\]*)"', text))}
    return found


def source_folder(path: Path) -> Path:
    """A source's own folder inside ``backup.dir`` (``db-…``, ``fly-…``, ``ssh-…``), refused
    when something planted has its name: a symlink would send the backups elsewhere."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise EngineError(f"{path} is not a folder this tool made (a symlink or a file has "
                          "its name): refusing to write backups through it; remove it", "usage")
    return path


def same_source(recorded: str | None, source: str | None) -> bool:
    """Whether a backup recorded as made from ``recorded`` counts as ``source``'s:
    unknown on either side (an old record, no source asked for) counts; a path is
    compared as written and as resolved (a symlinked folder is the same database)."""
    if not recorded or not source:
        return True
    if recorded == source:
        return True
    try:
        return os.path.realpath(recorded) == os.path.realpath(source)
    except (OSError, ValueError):
        return False


def latest_reason(item, now: dt.datetime, source: str | None = None, *,
                  unrecorded_ok: bool = False) -> str | None:
    """Why ``item`` may not be ``latest`` (None if it may): the one rule for every
    target and task (restore, drill, verify, download, status, retention's good one).
    ``unrecorded_ok``: a backup without a readable record counts (``backup.status``, as
    the app's /health counts the old npm scripts' backups); never for a choice."""
    if in_future(item.created, now):
        return "dated in the future"
    if item.kind == "safety":
        return "a restore's safety backup"
    if item.kind == "upload":
        return "uploaded by restore --from"
    if item.kind == UNRECORDED and not unrecorded_ok:
        return "with no readable record (NAME.json)"
    if item.kind == UNRECORDED:
        return None if same_source(item.source, source) else "of another database"
    if item.kind not in LATEST_KINDS:
        return f"of kind {item.kind!r}"
    if not same_source(item.source, source):
        return "of another database"
    return None


def latest_candidates(backups, now: dt.datetime, source: str | None = None, *,
                      unrecorded_ok: bool = False) -> list:
    """The backups ``latest`` may name, oldest first (``latest_reason`` is None)."""
    return [item for item in backups
            if latest_reason(item, now, source, unrecorded_ok=unrecorded_ok) is None]


def latest_of(backups, now: dt.datetime, source: str | None = None, *, where: str = ""):
    """The newest backup ``latest`` may name; a not_found error that says what the
    folder holds instead (safety backups, ones dated ahead, other databases')."""
    found = latest_candidates(backups, now, source)
    if found:
        return max(found, key=lambda item: (item.created, item.name))
    reasons: dict[str, int] = {}
    for item in backups:
        reason = latest_reason(item, now, source)
        reasons[reason] = reasons.get(reason, 0) + 1
    held = "; ".join(f"{count} {reason}" for reason, count in reasons.items())
    lost = [item.name for item in backups if item.kind == UNRECORDED]
    raise EngineError(f"no backup in {where or 'the folder'} that `latest` can name"
                      + (f" (it holds: {held}; name one to use it)" if held else "")
                      + (f"; {unrecorded_reason(lost[-1])}" if lost else ""),
                      "not_found")


def skipped_unrecorded(backups, chosen) -> str | None:
    """The one-line notice when ``latest`` passed over a newer backup whose record is
    missing or unreadable (None when it did not)."""
    newer = [item.name for item in backups if item.kind == UNRECORDED
             and (item.created, item.name) > (chosen.created, chosen.name)]
    return unrecorded_reason(newer[-1]) if newer else None


# ---------------------------------------------------------------- adopt (issue 16 #14)


def unrecorded(directory) -> list:
    """Backups with no usable checksum record at all (the old npm scripts'), oldest first."""
    return [item for item in list_backups(directory) if not recorded_sha256s(Path(item.path))]


def adopt_backups(directory, which: str, *, by: str, dry_run: bool = False,
                  lock_wait: float = 0.0) -> list[dict]:
    """Give backups made without records (the old npm scripts') the records this tool
    writes, after a full ``integrity_check``: ``NAME.sha256`` and ``NAME.json`` marked
    ``kind: adopted`` with when and by whom. ``which`` is ``all`` (every unrecorded
    backup) or one name. Under the folder's backup lock; a name whose sidecar is taken in
    any form is refused, never written through; ``dry_run`` checks and writes nothing.
    One verdict per backup: ``adopted`` (or ``would adopt``) or why not."""
    directory = Path(directory)
    with backup_lock(directory, lock_wait):
        if which == "all":
            chosen = unrecorded(directory)
        else:
            chosen = [item for item in list_backups(directory) if item.name == check_name(which)]
            if not chosen:
                raise EngineError(f"no backup named {which} in {directory}", "not_found")
            if recorded_sha256s(Path(chosen[0].path)):
                raise EngineError(f"{which} already has a checksum record: nothing to adopt "
                                  f"(`invoke backup.verify {which}` checks it)", "usage")
        return [_adopt_one(Path(item.path), by, dry_run) for item in chosen]


def _adopt_one(path: Path, by: str, dry_run: bool) -> dict:
    verdict = {"name": path.name, "ok": False, "adopted": False, "sha256": None,
               "problem": None}
    taken = [side.name for side in sidecars(path) if os.path.lexists(side)]
    if taken:
        verdict["problem"] = (f"{', '.join(taken)} exists but is not a usable record: "
                              "look at it and remove it by hand first")
        return verdict
    started = time.monotonic()
    try:
        check_sqlite_file(path, "backup")
        digest = sha256_file(path)
        problems = run_check(path, "integrity")
        if problems:
            verdict["problem"] = f"integrity_check failed: {problems[0]}"
            return verdict
        tables = count_rows(path)  # no content hash (issue 21): the drill computes it
        if sha256_file(path) != digest:
            verdict["problem"] = "the file changed while it was checked"
            return verdict
    except EngineError as exc:
        verdict["problem"] = str(exc)
        return verdict
    verdict.update(ok=True, sha256=digest)
    if dry_run:
        return verdict
    created = parse_created(path.name)
    result = BackupResult(
        name=path.name, path=str(path), created=iso(created), size=path.stat().st_size,
        sha256=digest, check="integrity", seconds=round(time.monotonic() - started, 3),
        source="", strategy="adopted", tables=tables, content_sha256=None,
        content_format=None, kind="adopted",
        adopted={"when": iso(dt.datetime.now(UTC)), "by": by[:200]})
    try:
        publish(None, path, result)
    except (OSError, EngineError) as exc:
        verdict.update(ok=False, problem=f"cannot write its records: "
                                         f"{getattr(exc, 'strerror', None) or exc}")
        return verdict
    verdict["adopted"] = True
    return verdict


# ---------------------------------------------------------------- restore


def restore_into(backup: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a backup into a database through SQLite's backup API.

    One transaction on the target, so a stale ``-wal`` beside the target can never
    be replayed over the restored content (the failure of ``cp backup live``).
    """
    backup, target = Path(backup), Path(target)
    check_sqlite_file(backup, "backup")
    src = sqlite3.connect(sqlite_uri(backup, "mode=ro&immutable=1"), uri=True)
    dst = sqlite3.connect(target, timeout=10.0)
    try:
        src.backup(dst, pages=-1)
    except sqlite3.Error as exc:
        raise EngineError(f"restore into {target} failed: {exc}") from exc
    finally:
        dst.close()
        src.close()


# ---------------------------------------------------------------- content: row counts and hash

BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (the module constants need Python 3.11)
RESTORE_LOCK = ".restore.lock"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _user_tables(conn) -> list[str]:
    """Tables holding the app's data, by name (no sqlite_* internals, no virtual tables)."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]


ROWID_NAMES = ("_rowid_", "rowid", "oid")  # the rowid's names, unless a column takes one


def _row_order(conn, table: str) -> str:
    """json-1 and quote-1: the real rowid's name (the first no column shadows), or the
    primary key's order (a WITHOUT ROWID table), or "" when neither can be read: the
    rows are then sorted by their own lines (a full ordered scan, never a loop)."""
    columns = _columns(conn, table)
    taken = {name.lower() for name, _ in columns}
    free = [name for name in ROWID_NAMES if name not in taken]
    if not free:
        return ""
    try:
        conn.execute(f"SELECT {free[0]} FROM {_quote(table)} LIMIT 0")
        return free[0]
    except sqlite3.OperationalError:
        pass  # WITHOUT ROWID
    keys = sorted((row[5], row[1]) for row in conn.execute(
        f"PRAGMA table_info({_quote(table)})") if row[5])
    return ", ".join(_quote(name) for _, name in keys)


CONTENT_FORMAT = "json-2"  # how content_sha256 is computed now; recorded beside it
JSON1_FORMAT = "json-1"  # before json-2: no rowids, pragmas, sqlite_sequence or -0.0
LEGACY_FORMAT = "quote-1"  # records without content_format (the first drills) used this
CONTENT_FORMATS = (CONTENT_FORMAT, JSON1_FORMAT, LEGACY_FORMAT)
JSON_ARGS = 100  # columns per json_array() call (SQLite allows 127 arguments by default)
JSONB = sqlite3.sqlite_version_info >= (3, 45, 0)  # json_array reads a BLOB as JSONB since
BLOB_STOPS = ("JSON cannot hold BLOB", "malformed JSON")  # before 3.45; _guarded_sql's


def _value_sql(column: str) -> str:
    """quote-1: SQL that writes one value with its type: quote() keeps 1, '1', x'31' and
    NULL apart; a REAL is written with 17 digits so no two doubles look alike."""
    c = _quote(column)
    return f"CASE typeof({c}) WHEN 'real' THEN 'F' || printf('%!.17g', {c}) ELSE quote({c}) END"


def _tagged_sql(column: str) -> str:
    """json-1, any value: integers and NULL as JSON writes them, everything else as a
    string tagged with its type (REAL to 17 digits, BLOB in hex), so no two values of
    different types or different doubles look alike. Integers come first: the cheap case."""
    c = _quote(column)
    return (f"CASE typeof({c}) WHEN 'integer' THEN {c} WHEN 'text' THEN 't' || {c} "
            f"WHEN 'real' THEN 'r' || printf('%!.17g', {c}) WHEN 'blob' THEN 'b' || hex({c}) END")


def _guarded_sql(column: str) -> str:
    """json-1, a TEXT-affinity column: its text as it is, and a BLOB stops the query, so
    the table is hashed tagged. Before 3.45 json_array refuses a BLOB itself; from 3.45
    it would read one as JSONB (x'00' is null), so there a guard stops it ("malformed
    JSON": 'b' and hex digits are never JSON). Same hash either way; the guard costs
    about a quarter more, so it is only used where it is needed."""
    c = _quote(column)
    if not JSONB:
        return c
    return f"CASE WHEN typeof({c}) = 'blob' THEN json('b' || hex({c})) ELSE {c} END"


def _text_affinity(declared: str) -> bool:
    """SQLite stores only TEXT, NULL or BLOB in such a column (its affinity rules)."""
    kind = (declared or "").upper()
    return "INT" not in kind and any(word in kind for word in ("CHAR", "CLOB", "TEXT"))


def _columns(conn, table: str) -> list[tuple[str, str]]:
    """(name, declared type) of each column, in order."""
    return [(row[1], row[2]) for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]


def _row_sql(columns: list[tuple[str, str]], fmt: str = LEGACY_FORMAT,
             tagged: bool = False) -> str:
    """One row as one line of text, written by SQLite.

    json-1 writes the row with ``json_array`` (in C, about 3x faster than quote-1). A
    TEXT-affinity column goes in as it is (its text is JSON-quoted, NULL is null); a BLOB
    there stops the query (``_guarded_sql``), and the caller then asks for ``tagged``
    rows, where every column is tagged (``_tagged_sql``)."""
    if fmt == LEGACY_FORMAT:
        return " || ',' || ".join(_value_sql(name) for name, _ in columns) or "''"
    values = [_guarded_sql(name) if _text_affinity(declared) and not tagged
              else _tagged_sql(name) for name, declared in columns]
    groups = [values[i:i + JSON_ARGS] for i in range(0, len(values), JSON_ARGS)]
    return " || ".join(f"json_array({', '.join(group)})" for group in groups) or "'[]'"


# json-2: the content as one stream of lines, every line written by SQLite itself, so
# that any engine (python3 here, the sqlite3 CLI piped into sha256sum, Node) computes
# the same SHA-256 by running the same SQL and hashing what it prints:
#   P[user_version,application_id]
#   S[type,name,tbl_name,sql]          each schema entry but sqlite_*, by type, name
#   T[table,"rowid"|"sorted"]          each user table by name, then sqlite_sequence
#   [rowid,v1,v2,...]                  its rows ("rowid": the real rowid first, rowid
#   [v1,v2,...]                        order; "sorted": no reachable rowid, rows in
#                                      the order of these lines' bytes)
# A value is JSON: an integer as a number, text as a string, NULL as null, a REAL as
# {"r":"HEX"}, its IEEE-754 bits, big-endian, from hex(ieee754_to_blob(x)) (exact and the
# same in every SQLite version, unlike printf's text; -0.0 is 8000000000000000, infinities
# are 7FF0... and FFF0...; SQLite stores a NaN as NULL), a BLOB as {"b":"HEX"}.
# ieee754_to_blob is the sqlite3 CLI's own (its shell extension); the python3 and Node
# engines register it on each connection that hashes (``_hash_functions``). The rowid is
# read as _rowid_, rowid or oid, the first name no column shadows; when a table's
# columns shadow all three, its INTEGER PRIMARY KEY (the rowid itself) if it has one,
# else the rows are sorted. WITHOUT ROWID tables are sorted (their key is unique).
# Every line ends with a newline; the SHA-256 of all of them is the content hash.
HASH_HEAD_SQL = (
    "SELECT 'P' || json_array((SELECT user_version FROM pragma_user_version), "
    "(SELECT application_id FROM pragma_application_id))",
    "SELECT 'S' || json_array(type, name, tbl_name, sql) FROM sqlite_master "
    "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
)
_VALUE_SQL = (  # one column's value, x its quoted name, as SQL text built by SQL
    "'CASE typeof(' || x || ') WHEN ''real'' THEN json_object(''r'', "
    "hex(ieee754_to_blob(' || x || '))) WHEN ''blob'' THEN json_object(''b'', hex(' || x || "
    "')) ELSE ' || x || ' END'")
# (head line, quoted table, "rowid"|"sorted", rowid expression, row SQL) per table, in
# hash order. Plain SQL (recursive, no ordered aggregates), for SQLite 3.16 and later.
HASH_PLAN_SQL = f"""
WITH t(n, q, s, seq) AS (
  SELECT name, '"' || replace(name, '"', '""') || '"', coalesce(sql, ''),
         name = 'sqlite_sequence'
  FROM sqlite_master WHERE type = 'table'
  AND (name NOT LIKE 'sqlite\\_%' ESCAPE '\\' OR name = 'sqlite_sequence')
  AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%'),
c(n, cid, pk, ipk, lname, x) AS (
  SELECT t.n, p.cid, p.pk, upper(p.type) = 'INTEGER', lower(p.name),
         '"' || replace(p.name, '"', '""') || '"'
  FROM t JOIN pragma_table_info(t.n) AS p),
k(n, rid) AS (
  SELECT n, CASE
    WHEN upper(substr(s, length(rtrim(s, replace(s, ')', ''))) + 1)) LIKE '%WITHOUT%ROWID%'
      THEN NULL
    WHEN NOT EXISTS (SELECT 1 FROM c WHERE c.n = t.n AND lname = '_rowid_') THEN '_rowid_'
    WHEN NOT EXISTS (SELECT 1 FROM c WHERE c.n = t.n AND lname = 'rowid') THEN 'rowid'
    WHEN NOT EXISTS (SELECT 1 FROM c WHERE c.n = t.n AND lname = 'oid') THEN 'oid'
    WHEN (SELECT count(*) FROM c WHERE c.n = t.n AND pk > 0) = 1
      THEN (SELECT x FROM c WHERE c.n = t.n AND pk = 1 AND ipk) END
  FROM t),
e(n, i, v) AS (
  SELECT n, 0, rid FROM k WHERE rid IS NOT NULL
  UNION ALL
  SELECT c.n, c.cid + (k.rid IS NOT NULL), {_VALUE_SQL} FROM c JOIN k ON k.n = c.n),
r(n, i, acc) AS (
  SELECT n, i, v FROM e WHERE i = 0
  UNION ALL
  SELECT r.n, r.i + 1, r.acc || CASE WHEN (r.i + 1) % {JSON_ARGS} = 0
    THEN ') || json_array(' ELSE ', ' END || e.v
  FROM r JOIN e ON e.n = r.n AND e.i = r.i + 1)
SELECT 'T' || json_array(t.n, CASE WHEN k.rid IS NULL THEN 'sorted' ELSE 'rowid' END)
       AS head, t.q AS q, CASE WHEN k.rid IS NULL THEN 'sorted' ELSE 'rowid' END AS key,
       k.rid AS rid, 'json_array(' || r.acc || ')' AS row_sql
FROM t JOIN k ON k.n = t.n JOIN r ON r.n = t.n
WHERE r.i = (SELECT max(i) FROM e WHERE e.n = t.n)
ORDER BY t.seq, t.n"""
# The same plan as SQL statements whose output is the stream after the head lines: what
# the sqlite3 CLI runs (``sqlite3 DB "$plan" | sqlite3 DB | sha256sum``, see ops.remote).
HASH_STATEMENTS_SQL = f"""SELECT 'SELECT ' || quote(head) || ';' || char(10) || CASE key
  WHEN 'rowid' THEN 'SELECT ' || row_sql || ' FROM ' || q || ' ORDER BY ' || rid || ';'
  ELSE 'SELECT v FROM (SELECT ' || row_sql || ' AS v FROM ' || q || ') ORDER BY v;' END
FROM ({HASH_PLAN_SQL})"""


def ieee754_to_blob(value):
    """The sqlite3 CLI's ieee754_to_blob: a REAL's 8 IEEE-754 bytes, big-endian."""
    return struct.pack(">d", value)


IEEE754_PROBE_SQL = "SELECT hex(ieee754_to_blob(-0.5)) = 'BFE0000000000000'"


def _hash_functions(conn) -> None:
    """json-2 writes a REAL as hex(ieee754_to_blob(x)): a SQLite library has no such
    function (only the CLI's shell does), so every connection that hashes gets this one,
    once (SQLite refuses to replace a function while one of its statements is running)."""
    try:
        if conn.execute(IEEE754_PROBE_SQL).fetchone() == (1,):
            return
    except sqlite3.OperationalError:
        pass
    conn.create_function("ieee754_to_blob", 1, ieee754_to_blob, deterministic=True)


def _describe_stream(conn, digest, chunk: int) -> dict:
    """json-2: feed the stream above to ``digest``; rows per user table."""
    _hash_functions(conn)
    for sql in HASH_HEAD_SQL:
        for (line,) in conn.execute(sql):
            digest.update(line + b"\n")
    counts = {}
    for head, table, key, rid, row_sql in conn.execute(HASH_PLAN_SQL).fetchall():
        digest.update(head + b"\n")
        table, rid, row_sql = (part.decode("utf-8", "surrogateescape")
                               for part in (table, rid or b"", row_sql))
        if key == b"rowid":
            count = _hash_by_rowid(conn, table, row_sql, digest, chunk, rowid=rid)
        else:
            count = 0
            for (line,) in conn.execute(f"SELECT v FROM (SELECT {row_sql} AS v FROM {table}) "
                                        "ORDER BY v"):
                digest.update(line + b"\n")
                count += 1
        name = json.loads(head[1:].decode("utf-8", "surrogateescape"))[0]
        if name != "sqlite_sequence":
            counts[name] = count
    return counts


def best_format(conn) -> str:
    """json-1 where SQLite has its JSON functions (built in since 3.38, usual before)."""
    try:
        conn.execute("SELECT json_array(1)").fetchone()
        return CONTENT_FORMAT
    except sqlite3.OperationalError:
        return LEGACY_FORMAT


def describe(conn, fmt: str | None = None, chunk: int = 5000,
             on_begin=None, begun: bool = False) -> tuple[dict, str, str]:
    """(rows per table, content hash, its format) in one read transaction.

    The hash is a dbhash-style SHA-256 of the logical content: the schema, then each
    table in name order, each row in rowid (or primary key) order, each value with its
    type, one line per row. Page size, free pages and layout do not enter it, so a
    backup, its restore and a VACUUM of either hash alike when their content is the
    same. SQLite itself writes the rows, ``chunk`` at a time, which keeps Python out of
    the per-row work. ``fmt`` (default: the best this SQLite has) must be the one a
    record names for the hashes to compare. ``on_begin(conn)`` runs first in the
    transaction (a restore's proof reads ``data_version`` there, starting the snapshot);
    ``begun``: the caller has begun that transaction (this ends it all the same).
    """
    if fmt is not None and fmt not in CONTENT_FORMATS:
        raise EngineError(f"unknown content hash format {fmt!r}", "verify_failed")
    digest = hashlib.sha256()
    counts = {}
    if not begun:
        conn.execute("BEGIN")
    try:
        if on_begin is not None:
            on_begin(conn)
        best = best_format(conn)
        if fmt in (CONTENT_FORMAT, JSON1_FORMAT) and best != CONTENT_FORMAT:
            raise EngineError(f"SQLite {sqlite3.sqlite_version} here has no JSON functions: "
                              f"it cannot compute a {fmt} content hash", "verify_failed")
        fmt = fmt or best
        conn.text_factory = bytes  # text exactly as stored, whatever its encoding
        if fmt == CONTENT_FORMAT:
            return _describe_stream(conn, digest, chunk), digest.hexdigest(), fmt
        conn.text_factory = str
        tables = [(table, _row_order(conn, table), _columns(conn, table))
                  for table in _user_tables(conn)]
        conn.text_factory = bytes
        for (line,) in conn.execute(
                "SELECT quote(type) || ',' || quote(name) || ',' || quote(tbl_name) || ',' || "
                "quote(sql) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "ORDER BY type, name"):
            digest.update(b"S" + line + b"\n")
        for table, order, columns in tables:
            name = table.encode("utf-8", "surrogatepass")
            if fmt == LEGACY_FORMAT:
                digest.update(b"T" + name + b"\n")
                counts[table] = _hash_rows(conn, table, order, _row_sql(columns), digest, chunk)
                continue
            counts[table], line = _hash_table(conn, table, order, columns, chunk)
            digest.update(b"T" + name + b" " + line + b"\n")
    finally:
        conn.execute("COMMIT")
        conn.text_factory = str
    return counts, digest.hexdigest(), fmt


def _hash_table(conn, table: str, order: str, columns, chunk: int) -> tuple[int, bytes]:
    """json-1: (rows, "plain|tagged SHA-256") of one table; which rows were written is
    part of the line, so plain and tagged rows can never be mistaken for each other."""
    for tagged in (False, True):
        rows = hashlib.sha256()
        try:
            count = _hash_rows(conn, table, order, _row_sql(columns, JSON1_FORMAT, tagged),
                               rows, chunk)
        except sqlite3.OperationalError as exc:
            if tagged or not any(words in str(exc) for words in BLOB_STOPS):
                raise
            continue
        return count, (b"tagged " if tagged else b"plain ") + rows.hexdigest().encode()
    raise AssertionError("unreachable: tagged rows never fail for a BLOB")


def _hash_rows(conn, table: str, order: str, row_sql: str, digest, chunk: int) -> int:
    """Feed a table's rows to ``digest`` in key order, one line each; the row count."""
    if order in ROWID_NAMES:
        return _hash_by_rowid(conn, _quote(table), row_sql, digest, chunk, rowid=order)
    sql = (f"SELECT {row_sql} FROM {_quote(table)} ORDER BY {order}" if order else
           f"SELECT v FROM (SELECT {row_sql} AS v FROM {_quote(table)}) ORDER BY v")
    count = 0
    for (line,) in conn.execute(sql):
        digest.update(line + b"\n")
        count += 1
    return count


def _hash_by_rowid(conn, quoted: str, row_sql: str, digest, chunk: int,
                   rowid: str = "rowid") -> int:
    """Feed a rowid table's rows to ``digest`` in rowid order, ``chunk`` rows per query.

    ``rowid`` must name the real rowid (never a column that shadows it: NULLs or
    duplicates there would loop or skip rows): rowids are unique integers, so each
    query starts after the last one's end and the loop ends."""
    count, last = 0, None
    while True:
        where, args = ("", ()) if last is None else (f"WHERE {rowid} > ?", (last,))
        last_id, n, lines = conn.execute(
            f"SELECT max(r), count(*), group_concat(v, char(10)) FROM (SELECT {rowid} AS r, "
            f"{row_sql} AS v FROM {quoted} {where} ORDER BY {rowid} LIMIT {int(chunk)})",
            args).fetchone()
        if not n:
            return count
        if not isinstance(last_id, int) or (last is not None and last_id <= last):
            raise EngineError(f"{quoted}: {rowid} is not the rowid here", "corrupt")
        digest.update(lines + b"\n")
        count, last = count + n, last_id


def describe_file(path, *, live: bool = False, cancel=None,
                  fmt: str | None = None) -> tuple[dict, str, str]:
    """``describe`` a finished file (immutable: nothing written beside it), or a live
    database read through SQLite (its -wal included, never checkpointed)."""
    mode = "mode=ro" if live else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(sqlite_uri(path, mode), uri=True, timeout=10.0,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise EngineError(f"cannot open {path}: {exc}", "corrupt") from exc
    try:
        with _cancellable(conn, cancel):
            return describe(conn, fmt)
    except sqlite3.DatabaseError as exc:
        raise EngineError(f"cannot read {path}: {exc}", "corrupt") from exc
    finally:
        conn.close()


def count_rows(path, *, live: bool = False, cancel=None) -> dict:
    """Rows per table (cheap next to ``describe``: no hashing), of a file or a live database;
    ``cancel`` (a ``threading.Event``) stops it within milliseconds when set."""
    mode = "mode=ro" if live else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(sqlite_uri(path, mode), uri=True, timeout=10.0)
        try:
            with _cancellable(conn, cancel):
                return {table: conn.execute(f"SELECT count(*) FROM {_quote(table)}"
                                            ).fetchone()[0] for table in _user_tables(conn)}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise EngineError(f"cannot read {path}: {exc}", "corrupt") from exc


def check_live(path, check: str = "integrity") -> list[str]:
    """SQLite's check of a live database, through a normal connection (reads its -wal)."""
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    try:
        conn = sqlite3.connect(sqlite_uri(path, "mode=ro"), uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        rows = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    except (sqlite3.DatabaseError, MemoryError) as exc:  # not run: no verdict (run_check)
        if check_could_not_run(exc) and "locked" not in str(exc):
            raise EngineError(check_not_run(path, pragma, str(exc) or "out of memory"),
                              check_failure_kind(exc)) from None
        return problem_lines([exc])
    finally:
        conn.close()
    return [] if rows == ["ok"] else problem_lines(rows)


def read_drill_record(path) -> dict:
    """What ``NAME.json`` recorded for a drill, checked: a malformed one raises, an old one
    (or none) is {}. Read like every sidecar, so a planted FIFO or symlink cannot hang it."""
    manifest_path = sidecars(Path(path))[1]
    if not os.path.lexists(manifest_path):
        return {}
    raw = read_record(Path(path))
    if raw is None:
        raise EngineError(f"{manifest_path.name} is not a regular file of at most "
                          f"{RECORD_LIMIT} bytes", "verify_failed")
    try:
        data = parse_record(raw.decode("utf-8"))
    except ValueError as exc:
        raise EngineError(f"{manifest_path.name} is not readable JSON ({exc})",
                          "verify_failed") from None
    return checked_manifest(data, manifest_path.name)


def checked_manifest(raw, what: str) -> dict:
    """The recorded counts, hash and its format, if any, after checking their types.

    Row counts with ``content_sha256: null`` are a record (``backup.content_hash`` off);
    a hash without a format is the first one, quote-1."""
    if not isinstance(raw, dict):
        raise EngineError(f"{what} is not a JSON object", "verify_failed")
    tables, content = raw.get("tables"), raw.get("content_sha256")
    fmt = raw.get("content_format")
    if tables is None and content is None:
        return {}
    if not isinstance(tables, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in tables.items()):
        raise EngineError(f"{what}: `tables` must map table names to row counts",
                          "verify_failed")
    if content is None and "content_sha256" in raw and fmt is None:  # recorded as off
        return {"tables": tables, "content_sha256": None, "content_format": None}
    if not isinstance(content, str) or not re.fullmatch(r"[0-9a-f]{64}", content):
        raise EngineError(f"{what}: `content_sha256` must be 64 hex digits", "verify_failed")
    fmt = LEGACY_FORMAT if fmt is None else fmt
    if fmt not in CONTENT_FORMATS:
        raise EngineError(f"{what}: `content_format` must be one of "
                          f"{', '.join(CONTENT_FORMATS)}", "verify_failed")
    found = {"tables": tables, "content_sha256": content, "content_format": fmt}
    version = raw.get("sqlite_version")
    if isinstance(version, str) and re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){1,3}", version):
        found["sqlite_version"] = version  # named when a hash differs (see differences)
    return found


def differences(recorded: dict, tables: dict, content: str,
                side: str = "recorded") -> list[str]:
    """What differs between a backup's record (or, ``side="backup file"``, the backup
    file itself, described now) and its restored content (pure)."""
    found = []
    for table in sorted(set(recorded["tables"]) | set(tables)):
        want, got = recorded["tables"].get(table), tables.get(table)
        if want != got:
            found.append(f"table {table}: {side} {want if want is not None else 'absent'} "
                         f"rows, restored {got if got is not None else 'absent'}")
    if recorded["content_sha256"] is not None and recorded["content_sha256"] != content:
        version = recorded.get("sqlite_version")
        other = (f" (recorded with SQLite {version}, compared with {sqlite3.sqlite_version})"
                 if version and version != sqlite3.sqlite_version else "")
        found.append(f"content hash: {side} {recorded['content_sha256'][:12]}…, "
                     f"restored {content[:12]}…{other}")
    return found


def content_sha256_of(path, fmt: str | None, record: dict | None = None) -> str | None:
    """A verified backup's content hash in ``fmt``, computed now from the file (issue 21:
    a backup records none); a ``record`` holding one in that format (an old backup's) is
    used as is. None without a format or when the file cannot be read."""
    if not fmt:
        return None
    if record and record.get("content_sha256") and record.get("content_format") == fmt:
        return record["content_sha256"]
    if path is None:
        return None
    try:
        return describe_file(path, fmt=fmt)[1]
    except EngineError:
        return None


# ---------------------------------------------------------------- restore into a live database


# one piece on purpose: what a signal may interrupt, and when the commit is written down,
# is read here top to bottom (most of its length is the docstring saying so)
def restore_live(backup, live, *, busy_timeout: float = 10.0,
                 snapshot: dict | None = None, on_commit=None, on_busy=None) -> float:
    """Copy a backup into a live (WAL) database through SQLite's backup API; seconds taken.

    One step into the live connection: SQLite takes the write lock, writes the pages
    through the WAL in one transaction and bumps the change counter, so open
    connections see the new content and a stale -wal can never be replayed over it.
    Readers keep reading; writers wait (their busy timeout) until it commits. If the
    live database stays locked for ``busy_timeout`` seconds, nothing is changed.

    With ``snapshot`` (a dict), the same connection reads the live database again the
    moment the copy commits, before the app's next write can usually get in, and fills
    it with ``describe``'s rows, hash and format (in the backup's best format) and
    ``app_wrote``: whether any other connection committed between the copy and that
    read (the WAL's commit count, ``wal_commits``; where it cannot be read, ``PRAGMA
    data_version``, which also counts a write while the copy waited for its lock).
    ``prove_restore`` compares it with the backup. Its ``committed`` is
    set once the copy committed, before any signal can stop this run: absent, the copy
    did not change the live database (whatever the app wrote meanwhile). ``on_commit()``
    hears the commit there too (the machine's engine prints it before a signal can end it).
    ``on_busy()`` is told once that the live database is locked (the app is writing): the
    copy waits for it, and a signal then ends the wait at once (nothing was copied).
    """
    backup, live = Path(backup), Path(live)
    src = sqlite3.connect(sqlite_uri(backup, "mode=ro&immutable=1"), uri=True)
    dst = sqlite3.connect(live, timeout=busy_timeout, isolation_level=None)
    deadline = time.monotonic() + busy_timeout
    started = time.monotonic()
    before = dst.execute("PRAGMA data_version").fetchone()[0] if snapshot is not None else 0

    told = []
    locked = []  # the WAL's commit count while the copy holds the write lock (wal_commits)

    def progress(status, remaining, total):  # busy: nothing copied yet, so a signal
        if status == 0 and remaining and snapshot is not None and not locked:
            locked.append(wal_commits(live))  # between the copy's two steps: nobody commits
        if status in BUSY_CODES and on_busy is not None and not told:
            told.append(on_busy())
        if status in BUSY_CODES and (noted or time.monotonic() > deadline):  # ends the wait
            raise TimeoutError

    try:
        with signals_held() as noted:  # a signal waits until the copy's fate is written down
            # the wait for the app's write lock in short busy waits, each ending in
            # ``progress``: a SIGTERM there ends it now, not after busy_timeout (the held
            # signal outlived a CI job's grace; the copy, one step, never started)
            dst.execute(f"PRAGMA busy_timeout = {min(int(busy_timeout * 1000), 100)}")
            # two steps, all pages but one and then the last (one transaction: the write
            # lock is held from the first step to the commit), so that ``progress`` runs
            # once while the copy holds the lock: the commit count taken there leaves out
            # the app's commits while the copy waited for that lock, which it overwrites
            first = _pages_of(backup) - 1  # (one page, or an unreadable size: one step)
            src.backup(dst, pages=first if first > 0 else -1, progress=progress, sleep=0.05)
            # the copy's content held at once, in a read transaction, before anything else
            # runs here: the app's next commit could land in that gap and fail the proof
            # of a right restore (seen in the suite under load)
            pinned = snapshot is not None and _pin_snapshot(
                dst, snapshot, before, locked[0] if locked else None, live)
            dst.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if snapshot is not None:
                snapshot["committed"] = True
            if on_commit is not None:
                on_commit()
    except TimeoutError:
        dst.close()
        raise EngineError(f"the live database {live} stayed locked for {busy_timeout:g}s; "
                          "nothing was changed", "timeout") from None
    except sqlite3.Error as exc:
        dst.close()
        raise EngineError(f"restore into {live} failed (nothing was changed): {exc}") from exc
    except BaseException:  # a held signal raised at the block's end, a failed on_commit:
        dst.close()  # the pinned read must not hold the live database while the run unwinds
        raise
    finally:
        src.close()
    seconds = round(time.monotonic() - started, 3)
    try:
        if snapshot is not None:
            _snapshot_into(snapshot, dst, before, pinned)
    finally:
        dst.close()
    return seconds


def _pin_snapshot(conn, snapshot: dict, before: int, locked: int | None = None,
                  live=None) -> bool:
    """Start the proof's read transaction on ``conn`` now: a read pins WAL's snapshot.
    Whether the app committed since the copy: exactly, by the WAL's commit count against
    ``locked`` (taken while the copy held the write lock: the copy is one commit, any more
    are the app's), else by ``data_version``, which also counts the app's commits while the
    copy waited for its lock (``before`` was read ahead of that wait). False when it could
    not (the proof then reads as it can, in ``_snapshot_into``)."""
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        after = wal_commits(live) if locked is not None else None
        snapshot["app_wrote"] = ((after - locked) % (1 << 32) != 1 if after is not None else
                                 conn.execute("PRAGMA data_version").fetchone()[0] != before)
        return True
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        return False


def _pages_of(backup) -> int:
    """How many pages the backup file holds (its size over its page size)."""
    try:
        return os.path.getsize(backup) // read_page_size(Path(backup))
    except OSError:
        return 0


WAL_INDEX_VERSION = 3007000


def wal_commits(live) -> int | None:
    """How many transactions have committed to the WAL database ``live``: its wal-index
    header's iChange, which SQLite adds one to at every commit, whichever connection makes
    it (wal.c, walFrames); ops/engine.js's walCommits. Read through SQLite's own descriptor
    of the -shm (Linux: /proc/self/fd), never one of ours: closing any descriptor of a file
    drops every POSIX lock this process holds on it, the copy's write lock among them. None
    where that cannot be done (no /proc, not WAL, a header rewritten at every try)."""
    try:
        shm = os.path.realpath(f"{os.path.realpath(live)}-shm")  # as SQLite names it
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != shm:
                continue
            for _ in range(100):  # two copies of the header: equal unless being rewritten
                header = os.pread(int(fd), 96, 0)
                if len(header) == 96 and header[:48] == header[48:] and header[12] == 1:
                    version, _, change = struct.unpack("=III", header[:12])
                    return change if version == WAL_INDEX_VERSION else None
            return None
        except (OSError, ValueError):
            continue
    return None


@contextlib.contextmanager
def signals_held():
    """SIGTERM, SIGHUP and SIGINT held back for the block, then delivered: code after a
    one-step C call (a copy's commit) runs before any signal can interrupt it. Their
    handlers are swapped for one that only notes them (a mask would not do: another
    thread would take the signal and the main one still run its handler), and what was
    noted is raised again once the old handlers are back (``SIG_DFL``: the process ends
    then). Only the main thread runs handlers; elsewhere nothing is swapped."""
    noted, kept = [], {}
    try:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                if signal.getsignal(sig) is not None:  # None: set outside Python, left as is
                    kept[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
        yield noted  # what was noted so far: a wait inside may end early on it
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(noted):
            signal.raise_signal(signum)


def _snapshot_into(snapshot: dict, conn, before: int, pinned: bool = False) -> None:
    """``restore_live``'s read of the live database right after the copy (``pinned``: in
    the read transaction ``_pin_snapshot`` started)."""
    def version(conn):
        snapshot["app_wrote"] = conn.execute("PRAGMA data_version").fetchone()[0] != before

    try:
        snapshot["tables"], snapshot["content_sha256"], snapshot["content_format"] = \
            describe(conn, on_begin=None if pinned else version, begun=pinned)
    except (sqlite3.DatabaseError, EngineError) as exc:
        snapshot.update(tables={}, content_sha256=None, content_format=None,
                        error=f"cannot read the live database after the restore: {exc}")


def check_page_sizes(backup, live) -> None:
    """SQLite refuses a backup into a WAL database with another page size: say it first."""
    try:
        pages = live_pages(live)
    except sqlite3.DatabaseError as exc:
        raise EngineError(f"cannot read the live database {live}: {exc}", "corrupt") from exc
    refusal = page_size_refusal(read_page_size(Path(backup)), pages["page_size"],
                                pages["journal_mode"])
    if refusal:
        raise EngineError(refusal, "usage")


def live_pages(live) -> dict:
    """The live database's page size and journal mode (read-only; raises sqlite3 errors):
    what ``page_size_refusal`` judges a backup against."""
    conn = sqlite3.connect(sqlite_uri(live, "mode=ro"), uri=True, timeout=10.0)
    try:
        return {"page_size": conn.execute("PRAGMA page_size").fetchone()[0],
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0]}
    finally:
        conn.close()


def page_size_refusal(backup_size: int, live_size, mode) -> str | None:
    """Why a backup with pages of ``backup_size`` cannot be restored into a live database
    of ``live_size`` in journal mode ``mode`` (pure; every engine's words): SQLite's backup
    API cannot change a WAL database's page size."""
    if mode == "wal" and backup_size != live_size:
        return (f"the backup's page size ({backup_size}) differs from the live database's "
                f"({live_size}); SQLite cannot restore it into a WAL database. Nothing was "
                "changed")
    return None


# ---------------------------------------------------------------- a restore's proof


def judge_proof(*, check: str, check_problems: list, tables: dict, backup_tables: dict,
                content_sha256: str | None, backup_content_sha256: str | None,
                content_format: str | None, safety_sha256: str | None = None,
                app_wrote: bool | None = None, error: str | None = None) -> dict:
    """A restore's proof, from the live database read right after the copy and the
    backup read at the same time, in the same format (pure; every engine's restore is
    judged here). ``holds`` says which content the live database has: ``backup``,
    ``safety`` (its content from before: the safety backup's hash), or ``other``."""
    hashed = bool(content_sha256 and backup_content_sha256)
    same = hashed and content_sha256 == backup_content_sha256
    # equal hashes cover every row; counts (the sqlite3 CLI reads them a moment later,
    # after the app's next writes) then only inform
    found = [] if same else [
        f"table {t}: backup {_rows(backup_tables.get(t))}, live {_rows(tables.get(t))}"
        for t in sorted(set(tables) | set(backup_tables)) if tables.get(t) != backup_tables.get(t)]
    if error:
        found.append(error)
    if hashed and not same:
        found.append(f"content hash ({content_format}): backup "
                     f"{backup_content_sha256[:12]}…, live {content_sha256[:12]}…")
    if not found:
        holds = "backup"
    elif hashed and safety_sha256 and content_sha256 == safety_sha256:
        holds = "safety"
    else:
        holds = "other"
    return {"ok": not found and not check_problems, "holds": holds, "check": check,
            # the live database held the backup's content already (a retried restore):
            # this run's safety backup is no undo (review-op #1)
            "held_backup_before": bool(hashed and safety_sha256
                                       and safety_sha256 == backup_content_sha256),
            "check_problems": list(check_problems), "differences": found,
            "tables": tables, "backup_tables": backup_tables,
            "content_sha256": content_sha256, "backup_content_sha256": backup_content_sha256,
            "content_format": content_format if hashed else None, "app_wrote": app_wrote}


def _rows(count) -> str:
    return "absent" if count is None else f"{count} rows"


def proof_problems(proof: dict) -> list[str]:
    """What a failed proof says, first the worst: one line each."""
    lines = [f"the live database failed {proof['check']}_check after the restore: {line}"
             for line in proof["check_problems"][:1]]
    if proof["differences"] and raced(proof):
        # which content it holds is no verdict then: the app's writes may make it differ, and
        # an app that wrote back what it had (an upsert) would look like "nothing changed"
        differs = "; ".join(proof["differences"][:2])
        lines.append("not proven: the app committed while the restore ran, and the live "
                     f"database differs from the backup ({differs}): the app's writes can do "
                     "that, and so can a wrong copy; a copy cannot be proven while the app "
                     "writes")
    elif proof["differences"]:
        holds = {"safety": "it still holds its content from before the restore",
                 "other": "it holds neither the backup's content nor its own from before"}
        lines.append(f"the live database differs from the backup after the restore: "
                     f"{'; '.join(proof['differences'][:3])}; {holds.get(proof['holds'], '')}")
    return lines


def raced(proof: dict) -> bool:
    """A failed proof whose only fault may be the app's own writes: it committed around the
    copy (``app_wrote``), the live database passed its check, both it and the backup were
    read whole (both hashed: a backup that could not be opened explains nothing of the
    app's), and not at the copy itself (``live_holds`` after a signal: then its writes are
    not in the read)."""
    return bool(proof.get("app_wrote") and proof["differences"] and not proof["check_problems"]
                and proof.get("content_sha256") and proof.get("backup_content_sha256")
                and not proof.get("read_at_copy")
                and not any(line.startswith("cannot ") for line in proof["differences"]))


def tables_compared(tables: dict) -> str:
    """How many tables were compared, counted as the "Rows per table" table shows them:
    litestream's own (``_litestream_seq``/``_lock``, in any database it has touched) are
    compared too but not listed there, so they are named apart (review-op s19 #7: "9
    tables match" beside 7 rows)."""
    own = sum(1 for name in tables if name.startswith(LITESTREAM_PREFIX))
    shown = len(tables) - own
    return f"{shown} table{'s' if shown != 1 else ''}" + (
        f" (and litestream's own {own})" if own else "")


def tables_matched(tables: dict) -> str:
    """``tables_compared`` with its verb: "1 table matches", "3 tables match"."""
    one = len(tables) == 1 and not next(iter(tables)).startswith(LITESTREAM_PREFIX)
    return f"{tables_compared(tables)} {'matches' if one else 'match'}"


LITESTREAM_PREFIX = "_litestream_"


def proof_summary(proof: dict) -> str:
    """One line for the step: what was compared, and the verdict."""
    if proof["ok"]:
        content = (f", content hash {proof['content_sha256'][:12]} = backup's"
                   if proof["content_format"] else ", no content hash")
        return (f"{proof['check']}_check ok; {tables_matched(proof['tables'])} the backup's "
                f"row counts{content}")
    return "; ".join(proof_problems(proof))


def prove_restore(backup, live, snapshot: dict, *, check: str = "integrity",
                  safety_sha256: str | None = None) -> dict:
    """Compare the live database (``snapshot``: ``restore_live``'s read right after the
    copy) with the backup, hashed now in the same format, and run SQLite's check."""
    problems = check_live(live, check)
    fmt = snapshot.get("content_format")
    try:
        tables, digest, _ = describe_file(backup, fmt=fmt)
    except EngineError as exc:
        tables, digest = {}, None
        snapshot = {**snapshot, "error": snapshot.get("error") or str(exc)}
    return judge_proof(check=check, check_problems=problems, tables=snapshot.get("tables", {}),
                       backup_tables=tables, content_sha256=snapshot.get("content_sha256"),
                       backup_content_sha256=digest if fmt else None, content_format=fmt,
                       safety_sha256=safety_sha256, app_wrote=snapshot.get("app_wrote"),
                       error=snapshot.get("error"))


def live_holds(live, backup, safety=None, copied: dict | None = None) -> dict:
    """After an interrupted restore: which content the live database holds now (its
    hash against the backup's and the safety backup's, in one format).

    ``copied``: ``restore_live``'s own read right after its copy committed, when the
    interruption came later (during the proof). It is what is judged then: a fresh read
    would count the app's writes since as "neither". ``app_wrote`` then also says
    whether the live database has changed since that read (the app committed)."""
    now = snapshot_of(live)
    whole = bool(copied and copied.get("content_sha256") and "app_wrote" in copied
                 and not copied.get("error"))
    snapshot = copied if whole else now
    fmt = snapshot.get("content_format")
    safety_sha = None if safety is None else content_sha256_of(safety, fmt)
    proof = prove_restore(backup, live, snapshot, safety_sha256=safety_sha)
    if whole:  # judged on the copy's own read: the app's writes since are not in it, so
        proof["read_at_copy"] = True  # they explain no difference (review-break2 s24 #2)
        proof["app_wrote"] = bool(snapshot.get("app_wrote")) or (
            now.get("content_format") == fmt and now.get("content_sha256") != proof[
                "content_sha256"])
    return proof


def same_content(backup, safety) -> dict:
    """Whether safety backup ``safety`` holds backup ``backup``'s content: both files'
    content hashed in one format, nothing else read (no live database, no integrity
    check): what a retried restore asks of each earlier safety backup (issue 21)."""
    _, digest, fmt = describe_file(backup)
    other = content_sha256_of(safety, fmt)
    return {"backup_content_sha256": digest, "safety_content_sha256": other,
            "content_format": fmt, "held_backup_before": bool(digest) and digest == other}


# ------------------------------------------------- a corrupt or missing live database

LIVE_STATES = ("ok", "missing", "corrupt")
SIDE_FILES = ("-wal", "-shm", "-journal")


def live_state(live) -> tuple[str, str]:
    """("ok" | "missing" | "corrupt", why): what a restore finds at the live path.

    Missing: nothing has the name. Corrupt: not a SQLite file, unreadable by SQLite, or
    failing ``quick_check``. A directory, a FIFO or a dangling symlink at the name is
    none of these: a usage error, never replaced."""
    path = Path(live)
    if not os.path.lexists(path):  # the why says no path: the message names it once
        return "missing", MISSING_WHY
    if path.is_symlink() and not path.exists():
        raise EngineError(f"database {path} is a symlink to nothing; nothing was changed",
                          "usage")
    try:
        check_sqlite_file(path, "database")
    except EngineError as exc:
        if exc.kind != "corrupt":
            raise
        return "corrupt", NOT_SQLITE_WHY
    problems = check_live(path, "quick")
    return ("corrupt", f"quick_check: {problems[0]}") if problems else ("ok", "")


# why a live database is missing or corrupt, in "the live database PATH is STATE (WHY)":
# the path once (op #9 of the s18 review), whichever engine found it
MISSING_WHY = "no file has that name"
NOT_SQLITE_WHY = "not a SQLite database"


def aside_name(live, when: dt.datetime, label: str = "corrupt") -> Path:
    """Where a corrupt live database goes: ``NAME.corrupt-YYYY-MM-DDTHH-MM-SSZ``; the
    leftover -wal/-shm/-journal of a missing one: ``NAME.stale-…`` (``aside_label``)."""
    live = Path(live)
    return live.with_name(f"{live.name}.{label}-{when.strftime('%Y-%m-%dT%H-%M-%SZ')}")


def aside_label(state: str) -> str:
    """``corrupt`` for a corrupt live database; ``stale`` for what a missing one left."""
    return "corrupt" if state == "corrupt" else "stale"


def leftovers(live) -> list[str]:
    """The -wal/-shm/-journal beside a live name (a missing database's are stale: SQLite
    would replay such a -wal over a backup placed there)."""
    return [f"{live}{suffix}" for suffix in SIDE_FILES if os.path.lexists(f"{live}{suffix}")]


def move_aside(live, when: dt.datetime, label: str = "corrupt") -> list[str]:
    """Rename a corrupt live database and its -wal/-shm/-journal to ``aside_name`` (each
    keeps its suffix, so SQLite pairs them again if the moved file is opened). Never
    deletes or overwrites: each is hard-linked to its new name, then unlinked. The side
    files go first: a crash between never leaves an old -wal beside the live name with
    a new database under it. Raises if anything still has a live name afterwards."""
    live = Path(live)
    aside = aside_name(live, when, label)
    for n in range(2, 100):  # a name none of the four files has (two restores in a second)
        if not any(os.path.lexists(f"{aside}{suffix}") for suffix in (*SIDE_FILES, "")):
            break
        aside = aside_name(live, when, label).with_name(
            f"{aside_name(live, when, label).name}-{n}")
    moved = []
    for suffix in (*SIDE_FILES, ""):
        src, dst = Path(f"{live}{suffix}"), Path(f"{aside}{suffix}")
        if not os.path.lexists(src):
            continue
        try:
            os.link(src, dst, follow_symlinks=False)
            os.unlink(src)
        except OSError as exc:
            raise EngineError(f"cannot move {src} aside to {dst.name}: "
                              f"{exc.strerror or exc}", "error") from exc
        moved.append(str(dst))
    fsync_path(live.parent)
    left = [f"{live}{suffix}" for suffix in (*SIDE_FILES, "") if os.path.lexists(f"{live}{suffix}")]
    if left:
        raise EngineError(f"{', '.join(left)} appeared while moving the {label} files "
                          "aside: is the app still running? Nothing was restored", "error")
    return moved


def place_restored(backup, live) -> None:
    """Write the backup to a new file beside ``live`` through SQLite, in WAL mode, fsync
    it and link it to the live name (which must be free: a missing or moved-aside
    database). Nothing is ever replaced: if the name was taken meanwhile, it fails."""
    backup, live = Path(backup), Path(live)
    tmp = live.with_name(f"{TMP_PREFIX}restore-{live.name}.{os.getpid()}")
    made = [Path(f"{tmp}{suffix}") for suffix in ("", *SIDE_FILES)]
    _unlink_all(made)  # a dead run's of this pid (own_names): this run holds the restore lock
    try:
        os.close(os.open(tmp, NEW_FILE, 0o600))
        restore_into(backup, tmp)
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode = wal").fetchone()
        finally:
            conn.close()
        fsync_path(tmp)
        try:
            os.link(tmp, live)
        except FileExistsError:
            raise EngineError(f"{live} appeared while the backup was being placed there: "
                              "is the app still running? Nothing was replaced", "error") from None
        fsync_path(live.parent)
    except OSError as exc:
        raise EngineError(f"cannot place the backup at {live}: {exc.strerror or exc}") from exc
    finally:
        for path in made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def snapshot_of(live) -> dict:
    """``restore_live``'s kind of snapshot, read now through a fresh connection."""
    snapshot: dict = {}
    try:
        conn = sqlite3.connect(sqlite_uri(live, "mode=ro"), uri=True, timeout=10.0,
                               isolation_level=None)
        try:
            _snapshot_into(snapshot, conn, conn.execute("PRAGMA data_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        snapshot = {"tables": {}, "content_sha256": None, "content_format": None,
                    "error": f"cannot read the live database: {exc}"}
    return snapshot


def replace_broken_live(backup, live, state: str, *, check: str = "integrity",
                        clock=lambda: dt.datetime.now(UTC), on_moved=None) -> dict:
    """Restore into a missing live path, or over a corrupt live database moved aside
    first (the app must be stopped: the caller makes sure). Proven like every restore.
    A missing database's leftover -wal/-shm/-journal are moved aside too (never deleted):
    SQLite would replay a stale -wal over the placed backup. ``on_moved(paths)`` hears
    where they went before the placement starts (an interrupted run can say so)."""
    moved = move_aside(live, clock(), aside_label(state))
    if on_moved is not None:
        on_moved(moved)
    started = time.monotonic()
    place_restored(backup, live)
    seconds = round(time.monotonic() - started, 3)
    proof = prove_restore(backup, live, snapshot_of(live), check=check)
    return {"moved_aside": moved, "restore_seconds": seconds, "proof": proof}


def live_failed_check(live, check: str, exc: EngineError) -> str | None:
    """After a restore's safety backup failed its check (``quick_check``, which
    ``live_state`` runs, misses what only ``integrity_check`` finds, such as a broken
    index): the live database's own problem under that check (it is corrupt: the
    corrupt-database path applies), or None when the live database passes it."""
    if exc.kind != "verify_failed":
        return None
    problems = check_live(live, check)
    return f"{check}_check: {problems[0]}" if problems else None


REMOTE_HOW = "stop it (on Fly: invoke emergency.stop; on an SSH host: restore with --app-stopped)"


def broken_live_refusal(live, state: str, why: str, how: str) -> EngineError:
    """A corrupt or missing live database is restored only with the app stopped."""
    return EngineError(f"the live database {live} is {state} ({why}): restoring it needs "
                       f"the app stopped, so nothing writes while the file is replaced; "
                       f"{how}. Nothing was changed", "usage")


@dataclass
class Restoring:
    """A restore under way (``restoring``): what its phases found so far. Between two
    phases the caller may set ``safety_dir`` (after ``verified``: where the safety backup
    goes) and ``aside_at`` (after ``broken``: the time in the moved-aside file's name)."""

    live: Path
    directory: Path
    check: str = "integrity"
    checked: bool = False  # the chosen backup was checked a moment ago (--from-replica):
    # its verification compares only its SHA-256; the safety backup and proof still check
    busy_timeout: float = 10.0
    lock_wait: float = 0.0
    content_hash: bool = True
    app_stopped: bool = False
    how: str = REMOTE_HOW  # what a refusal of a broken live database says to do
    when: str | None = None  # the safety backup's restore mark (None: when it is made)
    timeout: float | None = None  # the safety backup's (``create_backup``)
    mmap_size: int = 0
    on_wait: object = None  # on_wait(lock path, holder): told once per lock it waits for
    on_commit: object = None  # on_commit(): the copy committed (``restore_live``)
    on_busy: object = None  # on_busy(): the copy waits for the app's write lock
    phase: str = ""
    state: str = "ok"  # the live database's (``live_state``); "corrupt" once its backup fails
    why: str = ""
    chosen: BackupFile | None = None
    verdict: dict | None = None
    safety_dir: Path | None = None
    safety: BackupResult | None = None
    safety_error: EngineError | None = None  # the safety backup's failure (phase broken)
    snapshot: dict = field(default_factory=dict)  # the copy's read right after it committed
    aside_at: dt.datetime | None = None
    moved_aside: list = field(default_factory=list)
    restore_seconds: float | None = None
    proof: dict | None = None
    lock_waits: list = field(default_factory=list)  # a dry run's: the held locks it would
    # wait for (``would_wait``)

    def at(self, phase: str) -> Restoring:
        self.phase = phase
        return self

    def waiting(self, folder: Path, name: str = LOCK_NAME):
        """What hears that the restore waits for ``folder``'s backup lock (or its restore
        lock, ``name``; None: nobody)."""
        if self.on_wait is None:
            return None
        lock = Path(folder) / name
        return lambda holder: self.on_wait(lock, holder)


_HELD_RESTORES: set = set()  # folders whose restore lock this process holds across steps


@contextlib.contextmanager
def held_restore_lock(directory, wait: float = 0.0, on_wait=None):
    """The folder's restore lock. Every restore takes it before the folder's backup lock
    (review-break s19 #7: two runs taking them in opposite orders each waited for the
    other until the lock wait ran out); restore --from-replica takes it before the backup
    lock it publishes under, and its restore (``restoring``) then holds it on."""
    key = os.path.realpath(directory)
    if key in _HELD_RESTORES:
        yield
        return
    with file_lock(Path(directory) / RESTORE_LOCK, wait, "another restore", on_wait=on_wait):
        _HELD_RESTORES.add(key)
        try:
            yield
        finally:
            _HELD_RESTORES.discard(key)


def restoring(live, directory, which: str = "latest", *, source: str | None = None,
              read_only: bool = False, **options):
    """The one restore (the machine's python3 through ``restore_database``, and the local
    task phase by phase): a generator yielding its ``Restoring`` at each phase boundary:
    ``locked`` (the restore lock and the folder's backup lock, held to the end: no backup
    or cleanup removes the chosen one, issue 16 #10), ``verified``, then ``safety``,
    ``copied``, ``proven``; or, for a corrupt or missing live database (``app_stopped``
    only), ``broken``, ``placed``, ``proven``. Closing it (or an exception inside it, a
    SIGTERM included) releases the locks. ``options``: ``Restoring``'s settings.

    The safety backup is an ordinary verified backup; no retention runs here, so it
    cannot be removed by the restore that made it. A corrupt live database is moved
    aside, never deleted; a missing one has nothing to keep.

    ``read_only`` (a dry run: the plan's ``reads_only`` step): only the chosen backup's
    verification, ``verified``, the same as the run's, with no lock taken and no file
    written (the folder may be read-only: the dry run says so and goes on)."""
    run = Restoring(Path(live), Path(directory), **options)
    run.state, run.why = live_state(run.live)
    if read_only:  # the locks the run takes first, looked at (``lock_verdict``)
        run.lock_waits = would_wait(run.directory, run.lock_wait)
        yield _verified(run, which, source)
        return
    if run.state != "ok" and not run.app_stopped:
        raise broken_live_refusal(run.live, run.state, run.why, run.how)
    prepare_dir(run.directory)
    with held_restore_lock(run.directory, run.lock_wait,  # said at once (review-op #2)
                           run.waiting(run.directory, RESTORE_LOCK)), \
            held_backup_lock(run.directory, run.lock_wait, run.waiting(run.directory)):
        yield run.at("locked")
        yield _verified(run, which, source)
        yield from _safe_phases(run) if run.state == "ok" else _broken_phases(run)


def would_wait(directory: Path, wait: float, restore: bool = True) -> list[str]:
    """A restore's dry run at its locks (the restore lock, then the folder's backup lock,
    as the run takes them; a backup's or a cleanup's: ``restore`` False, the backup lock
    alone): the run's own refusal when it would refuse at once, else what it would wait
    for (``lock_verdict``). Nothing is taken or created."""
    said = []
    locks = ((RESTORE_LOCK, "another restore"),) if restore else ()
    for name, what in (*locks, (LOCK_NAME, "another backup")):
        path = Path(directory) / name
        line = lock_verdict(path, lock_holder(path), wait, what)
        if line:
            said.append(line)
    return said


def _verified(run: Restoring, which: str, source: str | None) -> Restoring:
    """The restore's ``verified`` phase: the backup ``which`` names, its recorded SHA-256
    and SQLite's check (the SHA-256 only when ``checked``), its page size the live one's."""
    run.chosen = resolve_backup(run.directory, which, source)[0]
    verdict = verify_backup(run.chosen.path, None if run.checked else run.check)
    run.verdict = asdict(verdict)
    if not verdict.ok:
        failed = EngineError(f"backup {run.chosen.name} failed verification, nothing was "
                             f"changed: {verdict.problems[0]}", "verify_failed")
        failed.run = run  # what its caller advises depends on the problems (and the name)
        raise failed
    if run.state == "ok":
        check_page_sizes(run.chosen.path, run.live)
    return run.at("verified")


def _safe_phases(run: Restoring):
    """A sound live database: its safety backup, the copy, its proof. A safety backup
    into another folder (``safety_dir``) waits for that folder's lock as for this one's."""
    folder = run.safety_dir or run.directory
    try:
        with contextlib.ExitStack() as held:
            if not holds_backup_lock(folder):
                held.enter_context(held_backup_lock(folder, run.lock_wait, run.waiting(folder)))
            run.safety = create_backup(
                run.live, folder, check=run.check, timeout=run.timeout,
                lock_wait=run.lock_wait, mmap_size=run.mmap_size, content_hash=run.content_hash,
                restore={"when": run.when or iso(dt.datetime.now(UTC)), "backup": run.chosen.name})
    except EngineError as exc:  # the live database itself fails the full check
        why = live_failed_check(run.live, run.check, exc)
        if why is None:
            raise
        if not run.app_stopped:
            raise broken_live_refusal(run.live, "corrupt", why, run.how) from None
        run.state, run.why, run.safety_error = "corrupt", why, exc
        yield from _broken_phases(run)
        return
    yield run.at("safety")
    try:
        run.restore_seconds = restore_live(run.chosen.path, run.live,
                                           busy_timeout=run.busy_timeout, snapshot=run.snapshot,
                                           on_commit=run.on_commit, on_busy=run.on_busy)
    except EngineError as exc:  # say which safety backup this run left
        raise EngineError(f"{exc} (safety backup {run.safety.name} was made first)",
                          exc.kind) from None
    yield run.at("copied")
    run.proof = prove_restore(run.chosen.path, run.live, run.snapshot, check=run.check,
                              safety_sha256=content_sha256_of(
                                  run.safety.path, run.snapshot.get("content_format"),
                                  asdict(run.safety)))
    yield run.at("proven")


def _broken_phases(run: Restoring):
    """A corrupt live database moved aside (a missing one's leftovers too), the backup
    placed in its name and proven (``replace_broken_live``)."""
    yield run.at("broken")
    with backup_lock(run.directory, run.lock_wait):  # no retention removes it meanwhile
        done = replace_broken_live(run.chosen.path, run.live, run.state, check=run.check,
                                   clock=lambda: run.aside_at or dt.datetime.now(UTC),
                                   on_moved=run.moved_aside.extend)
    run.moved_aside = done["moved_aside"]
    run.restore_seconds, run.proof = done["restore_seconds"], done["proof"]
    yield run.at("placed")
    yield run.at("proven")


def restore_database(live, directory, which: str = "latest", *, check: str = "integrity",
                     busy_timeout: float = 10.0, lock_wait: float = 0.0,
                     content_hash: bool = True, app_stopped: bool = False,
                     on_safety=None, on_commit=None) -> dict:
    """The whole restore, as run on the machine's python3: ``restoring`` drained (the
    local task advances the same phases one step at a time), with row counts before and
    after. ``on_safety(name)`` hears the safety backup at once (an interrupted run still
    names it), ``on_commit()`` the copy's commit (before a signal can end the run)."""
    started = time.monotonic()
    for run in restoring(live, directory, which, check=check, busy_timeout=busy_timeout,
                         lock_wait=lock_wait, content_hash=content_hash,
                         app_stopped=app_stopped, on_commit=on_commit):
        if run.phase == "safety" and on_safety is not None:
            on_safety(run.safety.name)
    return restored(run, round(time.monotonic() - started, 3))


def restore_verified(live, directory, which: str = "latest", *,
                     check: str = "integrity", lock_wait: float = 0.0) -> dict:
    """A restore's dry run on the machine (``restore --dry-run``): the one restore taken
    to its ``verified`` phase only (``restoring(read_only=True)``), as a local dry run
    takes it: no lock, nothing written; a backup the run would refuse fails it the same
    way."""
    phases = restoring(live, directory, which, read_only=True, check=check,
                       lock_wait=lock_wait)  # its locks looked at, as the run's wait
    with contextlib.closing(phases):
        run = next(phases)
    return {"backup": run.chosen.name, "backup_sha256": run.verdict["sha256"],
            "created": run.chosen.created, "check": check, "live_state": run.state}


def restored(run: Restoring, seconds: float) -> dict:
    """What the machine's restore answers, from its finished run."""
    proof, chosen = run.proof, run.chosen
    head = {"backup": chosen.name, "backup_sha256": run.verdict["sha256"],
            "created": chosen.created}
    if run.state != "ok":
        head.update(live_state=run.state, live_problem=run.why, moved_aside=run.moved_aside,
                    safety_backup=None, tables_before=None)
    else:
        head.update(safety_backup=asdict(run.safety), tables_before=run.safety.tables)
    return {**head, "tables_after": proof["tables"], "check": run.check,
            "problems": proof_problems(proof), "ok": proof["ok"], "proof": proof,
            "restore_seconds": run.restore_seconds, "seconds": seconds}


def is_sqlite_header(path) -> bool:
    """Whether the file starts with SQLite's 16-byte header (a cheap look, no SQLite)."""
    try:
        with open(path, "rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return True  # unreadable: not this function's to call corrupt


def live_and_recorded_counts(live, directory, name: str) -> dict:
    """Rows per table of the live database and as recorded for backup ``name`` (or None)."""
    try:
        recorded = read_drill_record(Path(directory) / check_name(name)).get("tables")
    except EngineError:
        recorded = None
    refuse_other_names(live)  # refused before the question, as the restore would refuse it
    try:
        counted = {"live": count_rows(live, live=True), "backup": recorded}
    except EngineError:  # missing or not a database: say which, so the restore refuses
        if not os.path.lexists(live):  # before asking (as locally), not after the yes
            state, why = "missing", MISSING_WHY
        elif Path(live).is_file() and not is_sqlite_header(live):
            state, why = "corrupt", NOT_SQLITE_WHY
        else:  # anything else is the restore's to judge (live_state), as before
            raise
        return {"live": None, "backup": recorded, "live_state": state, "live_problem": why}
    with contextlib.suppress(sqlite3.Error):  # restore --from judges its file by them first
        pages = live_pages(live)
        counted.update(live_page_size=pages["page_size"], live_journal_mode=pages["journal_mode"])
    return counted


# The schema as the data guard compares it (``ops.data_guard``): "KIND NAME" entries and
# "column TABLE.NAME", sorted. One SQL text for every engine (engine.js and the sqlite3
# CLI run it as is), so the three strategies cannot disagree on what a schema is.
SCHEMA_SQL = (
    "SELECT type || ' ' || name AS entry FROM sqlite_master WHERE type IN ('table', 'index', "
    "'trigger', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' UNION ALL "
    "SELECT 'column ' || m.name || '.' || p.name FROM sqlite_master AS m JOIN "
    "pragma_table_info(m.name) AS p WHERE m.type = 'table' AND m.name NOT LIKE "
    "'sqlite\\_%' ESCAPE '\\' AND coalesce(m.sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY 1")


def schema_of(path, *, live: bool = False) -> list[str]:
    mode = "mode=ro" if live else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(sqlite_uri(path, mode), uri=True, timeout=10.0)
        try:
            return [row[0] for row in conn.execute(SCHEMA_SQL)]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise EngineError(f"cannot read {path}: {exc}", "corrupt") from exc


def data_shape(live, directory, name: str) -> dict:
    """The data guard's two sides: rows per table and the schema of the live database and
    of backup ``name``. The backup's counts are its recorded ones, else counted from the
    file once its SHA-256 matches its record (a file nobody vouches for proves nothing)."""
    path = Path(directory) / check_name(name)
    check_sqlite_file(path, "backup")
    try:
        recorded = read_drill_record(path).get("tables")
    except EngineError:
        recorded = None
    if recorded is None:
        records = recorded_sha256s(path)
        problems = checksum_problems(records, sha256_file(path)) if records else [
            "no recorded SHA-256 to check it against"]
        if problems:
            raise EngineError(f"backup {name}: {problems[0]}", "verify_failed")
    return {"live": count_rows(live, live=True), "live_schema": schema_of(live, live=True),
            "backup": recorded if recorded is not None else count_rows(path),
            "backup_schema": schema_of(path),
            "source": "recorded" if recorded is not None else "computed"}


# ---------------------------------------------------------------- drill


def drill_backup(path, *, check: str = "integrity", scratch_dir=None) -> dict:
    """Restore a backup into a scratch database and compare it with what was recorded,
    and with the backup file itself: the content hash (``backup_content_sha256`` and
    ``content_sha256``, one format) and row counts of both, computed now (issue 21).

    ``seconds`` is the copy into the scratch database alone (a real restore also verifies,
    makes a safety backup and proves itself: ``restore`` times that whole). ``ok`` is
    False when the file cannot be restored, fails the check or differs from its record.
    """
    import tempfile

    path = Path(path)
    check_sqlite_file(path, "backup")
    digest = sha256_file(path)
    # both records, judged as verify judges them: a file verify rejects fails the drill
    problems: list[str] = checksum_problems(recorded_sha256s(path), digest)
    try:
        recorded = read_drill_record(path)
    except EngineError as exc:
        recorded, problems = {}, [*problems, str(exc)]
    if not recorded_sha256s(path):  # as verify and restore judge it (issue 16 #14)
        problems.append(UNVERIFIABLE)
    result = {"name": path.name, "ok": False, "restorable": False, "seconds": 0.0,
              "check": check, "sha256": digest, "recorded": bool(recorded),
              "recorded_content": bool(recorded.get("content_sha256")),
              "tables": {}, "content_sha256": None, "content_format": None,
              "backup_content_sha256": None, "differences": [], "problems": problems}
    with tempfile.TemporaryDirectory(prefix=".drill-", dir=scratch_dir) as scratch:
        target = Path(scratch) / "restored.db"
        started = time.monotonic()
        try:
            restore_into(path, target)
        except EngineError as exc:
            problems.append(str(exc))
            return result
        result["seconds"] = round(time.monotonic() - started, 3)
        found = run_check(target, check)
        if found:
            problems.append(f"{check}_check of the restored copy: {found[0]}")
            return result
        result["restorable"] = True
        try:  # both sides now, in one format: the backup file (verified above) and its copy
            result["tables"], result["content_sha256"], fmt = result_content = \
                describe_file(target, fmt=recorded.get("content_format"))
            result["content_format"] = fmt
            now = describe_file(path, fmt=fmt)
        except EngineError as exc:
            problems.append(str(exc))
            return result
    result["backup_content_sha256"] = now[1]
    result["differences"] = differences(
        {"tables": now[0], "content_sha256": now[1]}, *result_content[:2], side="backup file")
    if recorded:  # an old record's content hash is compared too
        result["differences"] += differences(recorded, *result_content[:2])
    result["ok"] = not problems and not result["differences"]
    return result


# ---------------------------------------------------------------- script entry point

def odd_entries(directory: str | os.PathLike) -> list[str]:
    """Names in the backup pattern that are no backup (a symlink, FIFO or folder):
    ``list_backups`` skips them; ``backup.list`` says they are there."""
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return []
    found = []
    for entry in entries:
        with contextlib.suppress(OSError):
            if parse_created(entry.name) and not entry.is_file(follow_symlinks=False):
                found.append(printable(entry.name))
    return sorted(found)


def _verify_named(directory: str, name: str, check: str) -> VerifyResult:
    """One of several named backups: one gone (or no longer a file) is its own failed
    verdict, so ``verify all`` goes on to the others."""
    try:
        return verify_backup(resolve_backup(directory, name)[0].path, check)
    except EngineError as exc:
        if exc.kind != "not_found":
            raise
        return VerifyResult(name=name, ok=False, check=check, size=0, sha256="",
                            recorded_sha256=None, problems=[str(exc)])


# The sub-commands ``ops.remote`` sends (and ``ops/engine.js`` answers the same way): each
# names its flags from one table, so a flag means the same in every sub-command. A flag
# written ``--which!`` is required there (a holds or adopt without a named backup is a bug
# of the caller, never "latest").
_FLAGS = {
    "--db": {"required": True},
    "--dir": {"required": True},
    "--which": {"default": "latest"},
    "--check": {"default": "integrity", "choices": CHECKS},
    "--timeout": {"type": float, "default": None},
    "--busy-timeout": {"type": float, "default": 10.0},
    "--lock-wait": {"type": float, "default": 0.0},
    "--no-content-hash": {"action": "store_true"},
    "--app-stopped": {"action": "store_true"},
    "--safety": {"default": ""},
    "--by": {"required": True},
    "--dry-run": {"action": "store_true"},
    "names": {"nargs": "*", "help": "backup names (instead of --which)"},
}
_COMMANDS = {
    "backup": ("--db", "--dir", "--check", "--timeout", "--lock-wait", "--no-content-hash"),
    "verify": ("--dir", "--which", "--check", "names"),
    "restore": ("--db", "--dir", "--which", "--check", "--busy-timeout", "--lock-wait",
                "--no-content-hash", "--app-stopped", "--dry-run"),
    "holds": ("--db", "--dir", "--which!", "--safety"),
    "same": ("--dir", "--which!", "--safety"),
    "counts": ("--db", "--dir", "--which"),
    "shape": ("--db", "--dir", "--which!"),
    "adopt": ("--dir", "--which!", "--by", "--dry-run", "--lock-wait"),
    "drill": ("--dir", "--which", "--check"),
}


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="ops-engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for command, flags in _COMMANDS.items():
        each = sub.add_parser(command)
        for flag in flags:
            name = flag.rstrip("!")
            options = dict(_FLAGS[name], **({"required": True} if flag.endswith("!") else {}))
            if flag.endswith("!"):
                options.pop("default", None)
            each.add_argument(name, **options)
    return parser


def _verify(args) -> list[dict]:
    if len(args.names) > 1:  # all: go on past one
        return [asdict(_verify_named(args.dir, name, args.check)) for name in args.names]
    chosen = [item for name in args.names for item in resolve_backup(args.dir, name)] \
        or resolve_backup(args.dir, args.which)
    return [asdict(verify_backup(item.path, args.check)) for item in chosen]


def _say_copied() -> None:
    """The machine's restore tells that its copy committed (a closed pipe cannot stop it)."""
    with contextlib.suppress(OSError):
        print("__OPS_ENTRY__ copied", flush=True)


def _holds(args) -> dict:
    safety = Path(args.dir) / check_name(args.safety) if args.safety else None
    return live_holds(args.db, Path(args.dir) / check_name(args.which), safety)


_RUN = {
    "backup": lambda a: asdict(create_backup(
        a.db, a.dir, check=a.check, timeout=a.timeout, lock_wait=a.lock_wait,
        content_hash=not a.no_content_hash)),
    "verify": _verify,
    "restore": lambda a: restore_verified(a.db, a.dir, a.which, check=a.check,
                                          lock_wait=a.lock_wait)
    if a.dry_run else restore_database(
        a.db, a.dir, a.which, check=a.check, busy_timeout=a.busy_timeout,
        lock_wait=a.lock_wait, content_hash=not a.no_content_hash, app_stopped=a.app_stopped,
        on_safety=lambda name: print(f"__OPS_ENTRY__ safety {name}", flush=True),
        on_commit=_say_copied),
    "holds": _holds,
    "same": lambda a: same_content(Path(a.dir) / check_name(a.which),
                                   Path(a.dir) / check_name(a.safety)),
    "counts": lambda a: live_and_recorded_counts(a.db, a.dir, a.which),
    "shape": lambda a: data_shape(a.db, a.dir, a.which),
    "adopt": lambda a: adopt_backups(a.dir, a.which, by=a.by, dry_run=a.dry_run,
                                     lock_wait=a.lock_wait),
    "drill": lambda a: drill_backup(resolve_backup(a.dir, a.which)[0].path, check=a.check,
                                    scratch_dir=a.dir),
}


def main(argv: list[str] | None = None) -> int:
    """``python3 engine.py backup|verify|restore|holds|same|counts|shape|adopt|drill ...``: one JSON
    result line."""
    args = _parser().parse_args(argv)
    try:
        data = _RUN[args.command](args)
    except EngineError as exc:
        print(RESULT_MARK, json.dumps({"ok": False, "error": str(exc), "kind": exc.kind}))
        return 1
    print(RESULT_MARK, json.dumps({"ok": True, "data": data}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
