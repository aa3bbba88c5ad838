"""Where backups live: this machine's folder, or the production machine's (over flyctl).

Both targets offer the same small interface, so the backup tasks and the deploy
orchestration never care which one they talk to.
"""

from __future__ import annotations

from dataclasses import asdict

from ops import engine
from ops.config import Settings


class LocalTarget:
    """The database and backup folder on this machine, through the engine directly."""

    production = False

    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = settings.db_path
        self.dir = settings.backup_dir

    def describe(self) -> str:
        return f"local {self.db}"

    def backup(self, on_bytes=None, on_phase=None) -> dict:
        """``on_bytes(done, total)`` follows the copy (read before any connection is open),
        ``on_phase`` each phase (see ``engine.create_backup``)."""
        on_pages = None
        if on_bytes and self.db.is_file():
            size = engine.read_page_size(self.db)

            def on_pages(done, total):
                on_bytes(done * size, total * size)

        result = engine.create_backup(
            self.db,
            self.dir,
            check=self.settings.check,
            timeout=self.settings.backup_timeout or None,
            lock_wait=self.settings.lock_wait,
            on_pages=on_pages,
            on_phase=on_phase,
            mmap_size=self.settings.mmap_size,
        )
        return asdict(result)

    def list(self) -> list[engine.BackupFile]:
        return engine.list_backups(self.dir)

    def verify(self, which: str) -> list[dict]:
        return [
            asdict(engine.verify_backup(item.path, self.settings.check,
                                        mmap_size=self.settings.mmap_size))
            for item in engine.resolve_backup(self.dir, which)
        ]

    def delete(self, names: list[str]) -> list[str]:
        if not self.dir.is_dir():
            return []
        with engine.backup_lock(self.dir, self.settings.lock_wait):
            return engine.delete_backups(self.dir, names)

    def leftovers(self) -> list[engine.Leftover]:
        """Hidden temporaries an interrupted backup left (kill -9, OOM)."""
        return engine.list_leftovers(self.dir)

    def remove_leftovers(self) -> list[str]:
        """Remove them under the folder's lock, never while a backup runs."""
        if not self.dir.is_dir():
            return []
        with engine.backup_lock(self.dir, self.settings.lock_wait):
            return engine.remove_stale_temporaries(self.dir)
