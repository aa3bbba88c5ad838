"""The SQLite backup engine: make, check, list, delete and restore backups.

Standard library only, and self-contained, because the same file is shipped to
``python3`` on the production machine (``python3 - <command> ...`` over
``fly ssh console``) as well as imported locally. Run as a script, it prints one
result line ``__OPS_RESULT__ {json}`` that the caller parses (see ``main``).

Safety rules this module keeps (see DESIGN.md, "Mechanisms that must be right"):
- the live database is only ever read through SQLite, read-only, and never
  checkpointed; it is never opened with plain file I/O once connections exist;
- a backup is written under a hidden temporary name, fsynced, verified, and only
  then linked to its final name, so a crash never leaves a file that looks like a
  backup, and an existing backup is never overwritten;
- size and SHA-256 are recorded beside each backup (``NAME.sha256`` in the form
  ``sha256sum -c`` accepts, ``NAME.json`` with the rest).
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
import shutil
import socket
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

UTC = dt.timezone.utc  # noqa: UP017 - the engine also runs on the machine's python3 >= 3.8
NAME_PATTERN = re.compile(r"^steps-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})\.db$")
NAME_FORMAT = "steps-%Y-%m-%dT%H-%M-%S.db"
TMP_PREFIX = ".tmp-"
LOCK_NAME = ".backup.lock"
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_FULL = 13  # sqlite3.SQLITE_FULL exists only on Python >= 3.11
RESULT_MARK = "__OPS_RESULT__"
CHECKS = ("integrity", "quick")
STEP_PAGES = 4096  # pages per backup step; the read transaction we hold keeps steps consistent
HASH_CHUNK = 1 << 20


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
    verified: bool = False  # written and checked by this tool (a manifest exists)


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
    host: str = field(default_factory=socket.gethostname)


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
    match = NAME_PATTERN.match(name)
    if not match:
        return None
    try:
        parsed = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H-%M-%S")
        return parsed.replace(tzinfo=UTC)
    except ValueError:
        return None


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
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(stamp: str) -> dt.datetime:
    """An RFC 3339 time as written by ``iso`` or flyctl (``Z``, fractions allowed)."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# ---------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike, on_bytes=None) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
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
    """Write a small file with mode 0600 and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".sha256"), path.with_name(path.name + ".json")


def read_recorded_sha256(path: Path) -> str | None:
    checksum_file = sidecars(path)[0]
    try:
        first = checksum_file.read_text().split()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if first and re.fullmatch(r"[0-9a-f]{64}", first[0]):
        return first[0]
    return None


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
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except PermissionError as exc:
        raise EngineError(f"cannot read {what} {path}: permission denied", "error") from exc
    if header != SQLITE_HEADER:
        raise EngineError(f"{what} is not a SQLite database: {path}", "corrupt")


def prepare_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise EngineError(f"backup folder is not a folder: {directory}", "usage") from exc
    except OSError as exc:
        raise EngineError(
            f"cannot create backup folder {directory}: {exc.strerror}", "usage"
        ) from exc
    if not directory.is_dir():
        raise EngineError(f"backup folder is not a folder: {directory}", "usage")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise EngineError(f"backup folder is not writable: {directory}", "usage")


# ---------------------------------------------------------------- lock


@contextlib.contextmanager
def file_lock(lock_path: Path, wait: float = 0.0, what: str = "another backup",
              on_wait=None):
    """An exclusive lock on ``lock_path`` naming its holder (who, where, since when).

    ``on_wait(holder)`` is called once if we have to wait for it.

    ``flock`` is released by the kernel when the holder dies, even by ``kill -9``,
    so a crashed run never leaves a stale lock behind.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
                if on_wait and time.monotonic() < deadline:
                    on_wait(holder or "unknown")  # say once why we are not moving
                    on_wait = None
                if time.monotonic() >= deadline:
                    hint = " (use --lock-wait SECONDS to wait for it)" if wait <= 0 else ""
                    raise EngineError(
                        f"{what} holds the lock {lock_path}: {holder or 'unknown'}{hint}",
                        "locked",
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_text().encode(), 0)
        yield
    finally:
        os.close(fd)


def holder_text() -> str:
    user = os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown"
    stamp = iso(dt.datetime.now(UTC))
    return f"{user} (pid {os.getpid()} on {socket.gethostname()}) since {stamp}"


def backup_lock(directory: Path, wait: float = 0.0):
    """One backup (or cleanup) per backup folder at a time."""
    return file_lock(directory / LOCK_NAME, wait, "another backup")


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Delete what an interrupted run left; only call while holding the lock."""
    removed = []
    for entry in directory.iterdir():
        if entry.name.startswith(TMP_PREFIX) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


# ---------------------------------------------------------------- backup


def _free_space_check(source: Path, directory: Path) -> None:
    wal = source.with_name(source.name + "-wal")
    needed = source.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise EngineError(
            f"not enough free space in {directory}: {free} bytes free, "
            f"the backup needs about {needed}",
            "no_space",
        )


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
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=5.0)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(target, timeout=0)
        try:
            deadline = None if not timeout else time.monotonic() + timeout
            src.backup(dst, pages=STEP_PAGES, progress=_deadline_progress(deadline, on_pages))
        except TimeoutError:
            raise EngineError(f"backup did not finish within {timeout:g}s", "timeout") from None
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc):
            raise EngineError(f"backup folder is full: {target.parent}", "no_space") from exc
        raise EngineError(f"cannot read database {source}: {exc}", "corrupt") from exc
    finally:
        src.close()


def run_check(path: Path, check: str = "integrity") -> list[str]:
    """Problems reported by SQLite's own check (empty list means the file is sound)."""
    if check not in CHECKS:
        raise EngineError(f"unknown check {check!r}: use one of {', '.join(CHECKS)}", "usage")
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    try:
        # immutable: a finished backup is never written, and this leaves no -wal/-shm beside it
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        conn.execute("PRAGMA mmap_size=4294967296")  # measured: 3x faster cold check
        rows = [row[0] for row in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    if rows == ["ok"]:
        return []
    # one problem per line; SQLite prefixes the first with a "*** in database main ***" line
    lines = [line.strip() for row in rows for line in str(row).splitlines()]
    return [line for line in lines if line and not line.startswith("*** in database")]


def _unique_name(directory: Path, clock) -> tuple[str, dt.datetime]:
    """A name for a backup started now that does not exist yet (waits for the next second)."""
    for _ in range(5):
        now = clock()
        name = backup_name(now)
        if not (directory / name).exists():
            return name, now
        time.sleep(1.0 - (now.timestamp() % 1.0) + 0.01)
    raise EngineError(f"backup {name} already exists in {directory}", "exists")


def create_backup(
    source: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    check: str = "integrity",
    timeout: float | None = None,
    lock_wait: float = 0.0,
    on_pages=None,
    clock=lambda: dt.datetime.now(UTC),
) -> BackupResult:
    """Make one verified backup of ``source`` in ``directory``."""
    source, directory = Path(source), Path(directory)
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
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            copy_database(source, tmp, timeout=timeout, on_pages=on_pages)
            fsync_path(tmp)
            problems = run_check(tmp, check)
            if problems:
                raise EngineError(
                    f"the new backup failed {check}_check: {problems[0]}", "verify_failed"
                )
            digest = sha256_file(tmp)
            result = BackupResult(
                name=name,
                path=str(final),
                created=iso(when),
                size=tmp.stat().st_size,
                sha256=digest,
                check=check,
                seconds=round(time.monotonic() - started, 3),
                source=str(source),
            )
            publish(tmp, final, result)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise EngineError(f"backup folder is full: {directory}", "no_space") from exc
            raise EngineError(f"backup failed: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            if "full" in str(exc):
                raise EngineError(f"backup folder is full: {directory}", "no_space") from exc
            raise EngineError(f"backup failed: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return result


def publish(tmp: Path, final: Path, result: BackupResult) -> None:
    """Link the sidecars, then the backup, into place: each link fails rather than overwrite.

    Nothing this run did not create is ever replaced, and on failure only what it
    created is removed; the backup itself appears last.
    """
    contents = {
        sidecars(final)[0]: f"{result.sha256}  {final.name}\n",
        sidecars(final)[1]: json.dumps(asdict(result), indent=2) + "\n",
    }
    placed = []
    try:
        for path, text in contents.items():
            staged = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
            write_private(staged, text)
            try:
                os.link(staged, path)
            finally:
                staged.unlink(missing_ok=True)
            placed.append(path)
        os.link(tmp, final)
        placed.append(final)
    except FileExistsError as exc:
        for path in placed:
            path.unlink(missing_ok=True)
        name = Path(exc.filename2 or exc.filename or final).name
        raise EngineError(f"{name} already exists; not overwritten", "exists") from None
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    fsync_path(final.parent)


# ---------------------------------------------------------------- list / verify / delete


def list_backups(directory: str | os.PathLike) -> list[BackupFile]:
    """Every file named like a backup, oldest first; anything else is ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        created = parse_created(entry.name)
        if created is None or not entry.is_file():
            continue
        found.append(
            BackupFile(
                name=entry.name,
                path=str(entry),
                created=iso(created),
                size=entry.stat().st_size,
                sha256=read_recorded_sha256(entry),
                verified=sidecars(entry)[1].exists(),
            )
        )
    return sorted(found, key=lambda item: item.name)


def resolve_backup(directory: str | os.PathLike, which: str) -> list[BackupFile]:
    """``latest``, ``all`` or one backup's name, as the files it means."""
    backups = list_backups(directory)
    if which in ("latest", "all"):
        if not backups:
            raise EngineError(f"no backups in {directory}", "not_found")
        return backups[-1:] if which == "latest" else backups
    check_name(which)
    match = [item for item in backups if item.name == which]
    if not match:
        raise EngineError(f"no backup named {which} in {directory}", "not_found")
    return match


def verify_backup(path: str | os.PathLike, check: str = "integrity") -> VerifyResult:
    """Check a backup's recorded checksum and SQLite's own consistency check."""
    path = Path(path)
    problems: list[str] = []
    try:
        check_sqlite_file(path, "backup")
    except EngineError as exc:
        problems.append(str(exc))
        return VerifyResult(path.name, False, check, _size(path), "", None, problems)
    recorded = read_recorded_sha256(path)
    digest = sha256_file(path)
    if recorded and recorded != digest:
        problems.append(f"SHA-256 mismatch: recorded {recorded[:12]}…, file has {digest[:12]}…")
    problems.extend(run_check(path, check))
    return VerifyResult(path.name, not problems, check, _size(path), digest, recorded, problems)


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
        if path.exists():
            path.unlink()  # the backup first: a half-done delete never leaves it unprotected
            deleted.append(path.name)
        for extra in sidecars(path):
            extra.unlink(missing_ok=True)
    if deleted:
        fsync_path(directory)
    return deleted


# ---------------------------------------------------------------- restore


def restore_into(backup: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a backup into a database through SQLite's backup API.

    One transaction on the target, so a stale ``-wal`` beside the target can never
    be replayed over the restored content (the failure of ``cp backup live``).
    """
    backup, target = Path(backup), Path(target)
    check_sqlite_file(backup, "backup")
    src = sqlite3.connect(f"file:{backup}?mode=ro&immutable=1", uri=True)
    dst = sqlite3.connect(target, timeout=10.0)
    try:
        src.backup(dst, pages=-1)
    except sqlite3.Error as exc:
        raise EngineError(f"restore into {target} failed: {exc}") from exc
    finally:
        dst.close()
        src.close()


# ---------------------------------------------------------------- script entry point

def main(argv: list[str] | None = None) -> int:
    """``python3 engine.py backup|list|verify|delete ...``: one JSON result line out."""
    import argparse

    parser = argparse.ArgumentParser(prog="ops-engine")
    sub = parser.add_subparsers(dest="command", required=True)
    p_backup = sub.add_parser("backup")
    p_backup.add_argument("--db", required=True)
    p_backup.add_argument("--dir", required=True)
    p_backup.add_argument("--check", default="integrity", choices=CHECKS)
    p_backup.add_argument("--timeout", type=float, default=None)
    p_backup.add_argument("--lock-wait", type=float, default=0.0)
    p_list = sub.add_parser("list")
    p_list.add_argument("--dir", required=True)
    p_verify = sub.add_parser("verify")
    p_verify.add_argument("--dir", required=True)
    p_verify.add_argument("--which", default="latest")
    p_verify.add_argument("--check", default="integrity", choices=CHECKS)
    p_verify.add_argument("names", nargs="*", help="backup names (instead of --which)")
    p_delete = sub.add_parser("delete")
    p_delete.add_argument("--dir", required=True)
    p_delete.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.command == "backup":
            data = asdict(
                create_backup(
                    args.db, args.dir, check=args.check, timeout=args.timeout,
                    lock_wait=args.lock_wait,
                )
            )
        elif args.command == "list":
            data = [asdict(item) for item in list_backups(args.dir)]
        elif args.command == "verify":
            chosen = [
                item for name in args.names for item in resolve_backup(args.dir, name)
            ] or resolve_backup(args.dir, args.which)
            data = [asdict(verify_backup(item.path, args.check)) for item in chosen]
        else:
            data = delete_backups(args.dir, args.names)
        print(RESULT_MARK, json.dumps({"ok": True, "data": data}), flush=True)
        return 0
    except EngineError as exc:
        print(RESULT_MARK, json.dumps({"ok": False, "error": str(exc), "kind": exc.kind}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
