"""This machine's database and backup folder as a target, through the engine directly."""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

from ops import engine
from ops.config import Settings
from ops.errors import ExitCode, OpsError
from ops.targets.protocol import Reporter, Settle
from ops.targets.status import status as folder_status
from ops.ui import lock_waiting

DOWNLOADS = re.compile(r"(fly|ssh)-.+")  # ScriptedTarget.downloads' folders
SOURCE_FOLDERS = re.compile(r"db-.+-[0-9a-f]{8}|(fly|ssh)-.+")  # and backup --db OTHER's
LOCAL_HOW = "stop it, then run `invoke restore --app-stopped`"  # a broken live database


class LocalTarget:
    """The database and backup folder on this machine, through the engine directly."""

    flag = ""  # no flag selects it: it is the default

    def __init__(self, settings: Settings, report: Reporter | None = None):
        self.settings = settings
        self.report = report
        self.db = settings.db_path
        self.dir = settings.backup_dir

    def describe(self) -> str:
        if self.downloads:
            return f"downloads in {self.dir}"
        return f"local {self.db}"

    @property
    def downloads(self) -> bool:
        """backup.dir is a folder of downloads (``fly-<app>``, ``ssh-<host>``,
        ``ScriptedTarget.downloads``): every backup in it is that one host's database's."""
        return bool(DOWNLOADS.fullmatch(self.dir.name))

    def source_folders(self) -> list[tuple[str, int]]:
        """The folders of other sources in backup.dir (``backup --db OTHER``, downloads)
        that hold backups, with how many: (folder name, count)."""
        found = []
        try:
            entries = sorted(self.dir.iterdir())
        except OSError:
            return []
        for entry in entries:
            if SOURCE_FOLDERS.fullmatch(entry.name) and entry.is_dir() and \
                    not entry.is_symlink():
                try:
                    count = sum(1 for name in os.listdir(entry) if engine.parse_created(name))
                except OSError:  # unreadable: not ours to report on
                    continue
                if count:
                    found.append((entry.name, count))
        return found

    def folder(self) -> str:
        """A missing folder is exit 3, not an empty list: it is most often a mistyped path."""
        if not self.dir.is_dir():
            raise OpsError(f"backup folder not found: {self.dir} (backup.dir, "
                           "INVOKE_BACKUP_DIR)", ExitCode.NOT_FOUND)
        return str(self.dir)

    def lock_wait(self) -> float:
        """Wait for another run's backup lock, saying whose it is, since when and for how
        long we wait (the holder line says who and since when); the seconds left."""
        wait = self.settings.lock_wait
        lock = self.dir / engine.LOCK_NAME
        if not wait or self.report is None or not lock.exists() or \
                engine.holds_backup_lock(self.dir):
            return wait
        started = time.monotonic()
        with engine.file_lock(lock, wait, "another backup",
                              on_wait=lambda holder: self._waiting(lock, holder)):
            pass  # free now; the engine takes it again at once, with what is left
        return max(wait - (time.monotonic() - started), 0.001)

    def lock_waits(self, restore: bool = True, live: bool = False) -> list[str]:
        """A dry run's look at the folder's locks (``engine.would_wait``): the run's refusal
        (exit 4) when it would not wait, else what it would wait for; nothing taken."""
        if live:  # the backup's own first refusal (engine.refuse_other_names)
            engine.refuse_other_names(self.db)
        if not self.dir.is_dir():
            return []
        return engine.would_wait(self.dir, self.settings.lock_wait, restore)

    def _waiting(self, lock: Path, holder: str) -> None:
        """Say, once, whose lock we wait for (the backup or the restore lock) and for how
        long."""
        which = "restore" if lock.name == engine.RESTORE_LOCK else "backup"
        self.report.waiting(lock_waiting(which, lock, self.settings.lock_wait, holder))

    def _busy(self, busy_timeout: float) -> None:
        """Say, once, that the copy waits for the app's write lock, and for how long."""
        self.report.waiting(f"  waiting up to {busy_timeout:g}s for the app's write lock on "
                            f"{self.db} (--busy-timeout)")

    def restore_actions(self, flow) -> dict:
        """What each step of a restore does here (``Target.restore_actions``): the engine's
        one restore in this process, advanced a phase per step (``flow.here``)."""
        return flow.here(self)

    def restore(self, which: str, *, busy_timeout: float = 10.0, app_stopped: bool = False,
                when: str | None = None, checked: bool = False, how: str = LOCAL_HOW,
                read_only: bool = False):
        """The engine's one restore (``engine.restoring``, what the machine's python3 runs
        drained), as its generator: the restore flow advances it one phase per step, so
        each step keeps its own line, time and interruption. ``when``: the safety
        backup's restore mark (the audit record's); ``checked``: the backup was checked by
        this run a moment ago (restore --from-replica), so only its SHA-256 is compared;
        ``read_only``: a dry run's, its ``verified`` phase alone (no lock, nothing written)."""
        s = self.settings
        return engine.restoring(
            self.db, self.dir, which, source=self.source, read_only=read_only,
            on_wait=self._waiting if self.report is not None else None,
            on_busy=functools.partial(self._busy, busy_timeout)
            if self.report is not None else None, check=s.check, checked=checked,
            busy_timeout=busy_timeout, lock_wait=s.lock_wait, content_hash=s.content_hash,
            app_stopped=app_stopped, how=how, when=when,
            timeout=s.backup_timeout or None, mmap_size=s.mmap_size)

    @property
    def source(self) -> str | None:
        """The database whose backups ``latest``, status and retention count here; in a
        folder of downloads, that host's (None: each backup there is its database's)."""
        return None if self.downloads else os.path.abspath(self.db)

    def backup(self, progress=None, *, on_phase=None, check: str | None = None,
               restore: dict | None = None) -> dict:
        """``progress`` (``Reporter.transfer``) follows the copy in bytes (the page size is
        read before any connection is open); it opens once the folder's lock is free.
        ``on_phase`` hears each phase (``engine.create_backup``); ``check`` overrides
        ``backup.check``; ``restore`` makes it that restore's safety backup."""
        wait = self.lock_wait()
        if progress is None:
            return self._backup(None, wait, on_phase, check, restore)
        with progress("copy", 0) as on_bytes:
            return self._backup(on_bytes, wait, on_phase, check, restore)

    def _backup(self, on_bytes, wait: float, on_phase, check, restore=None) -> dict:
        on_pages = None
        if on_bytes and self.db.is_file():
            size = engine.read_page_size(self.db)

            def on_pages(done, total):
                on_bytes(done * size, total * size)

        result = engine.create_backup(
            self.db,
            self.dir,
            check=check or self.settings.check,
            timeout=self.settings.backup_timeout or None,
            lock_wait=wait,
            on_pages=on_pages,
            on_phase=on_phase,
            mmap_size=self.settings.mmap_size,
            content_hash=self.settings.content_hash,
            restore=restore,
        )
        return asdict(result)

    def status(self) -> dict:
        return folder_status(self.list(), dt.datetime.now(dt.UTC), self.source)

    def names(self, which: str) -> list[str]:
        return [item.name for item in engine.resolve_backup(self.dir, which, self.source)]

    def latest(self, backups: list[engine.BackupFile]) -> engine.BackupFile:
        return engine.latest_of(backups, dt.datetime.now(dt.UTC), self.source,
                                where=str(self.dir))

    def download(self, name: str, directory: Path, *, check: bool = True) -> dict:
        raise OpsError("backups here are already on this computer: download from "
                       "--production (or --host)", ExitCode.USAGE)

    def drill(self, which: str) -> dict:
        chosen = engine.resolve_backup(self.dir, which, self.source)[0]
        return engine.drill_backup(chosen.path, check=self.settings.check,
                                   scratch_dir=self.dir) | {"where": "local"}

    def settle(self) -> Settle:
        """Nothing: the app here reads the restored content through SQLite."""
        return []

    def counts(self, name: str) -> dict:
        """Rows per table of the live database and as recorded for backup ``name`` (None
        if unrecorded), for a restore's confirmation: the machine's own counting."""
        return engine.live_and_recorded_counts(self.db, self.dir, name)

    def content_of(self, name: str) -> tuple[str, str]:
        """Backup ``name``'s content hash and its format, computed now (a safety backup
        recorded before issue 21's hashes; on a host, ``holds_backup`` asks instead)."""
        _, digest, fmt = engine.describe_file(self.dir / name)
        return digest, fmt

    def record_text(self, name: str) -> str:
        """What the folder's ``NAME.json`` says ("" when there is none, or a symlink)."""
        path = self.dir / f"{engine.check_name(name)}.json"
        return path.read_text() if path.is_file() and not path.is_symlink() else ""

    def shape(self, name: str) -> dict:
        """The data guard's two sides (``engine.data_shape``)."""
        return engine.data_shape(self.db, self.dir, name)

    def list(self) -> list[engine.BackupFile]:
        self.odd_entries = engine.odd_entries(self.dir)  # named like a backup, not a file
        return engine.list_backups(self.dir)

    def verify(self, which: str, on_result=None, *, check: str | None = None) -> list[dict]:
        """``on_result(verdict)`` is called for each backup as soon as it is checked."""
        results = []
        for item in engine.resolve_backup(self.dir, which, self.source):
            results.append(asdict(engine.verify_backup(item.path, check or self.settings.check,
                                                       mmap_size=self.settings.mmap_size)))
            if on_result:
                on_result(results[-1])
        return results

    def adopt(self, which: str, *, by: str, dry_run: bool = False) -> list[dict]:
        """Records for backups made without them (``engine.adopt_backups``)."""
        return engine.adopt_backups(self.dir, which, by=by, dry_run=dry_run,
                                    lock_wait=self.lock_wait())

    def delete(self, names: list[str]) -> list[str]:
        if not self.dir.is_dir():
            return []
        with engine.backup_lock(self.dir, self.lock_wait()):
            return engine.delete_backups(self.dir, names)

    def leftovers(self) -> list[engine.Leftover]:
        """Hidden temporaries an interrupted backup left (kill -9, OOM)."""
        return engine.list_leftovers(self.dir)

    def remove_leftovers(self) -> list[str]:
        """Remove them under the folder's lock, never while a backup runs."""
        if not self.dir.is_dir():
            return []
        with engine.backup_lock(self.dir, self.lock_wait()):
            return engine.remove_stale_temporaries(self.dir)
