"""What every target offers (local folder, Fly machine, SSH host), and what it is given.

A target is where a database and its backups live. The orchestration in
``ops.backups``, ``ops.restore`` and ``ops.deploy`` talks to this interface only and
never asks which kind of target it holds. A target never draws: it reports steps,
warnings and byte progress to a ``Reporter`` (``ops.ui.UI`` is one) and returns data.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from ops import engine

Progress = Callable[..., None]  # update(done_bytes, total=None)
# what a target does after a restore so the app sees the restored database, one phase at
# a time: (the restore plan's step key, its action returning the step's detail)
Settle = list[tuple[str, Callable[[], str]]]


class Step(Protocol):
    detail: str


class Reporter(Protocol):
    """Where a target reports what it is doing; the UI layer decides how it looks."""

    def step(self, label: str) -> AbstractContextManager[Step]:
        """A phase with a name, an outcome and a duration."""

    def warn(self, message: str) -> None:
        """Something the operator should know; the run goes on."""

    def waiting(self, message: str) -> None:
        """Why the running step has not finished yet (a lock, a snapshot, a poll)."""

    def info(self, message: str) -> None:
        """A line of what happened (each ``backup.verify all`` result as it comes)."""

    def transfer(self, label: str, total: int) -> AbstractContextManager[Progress]:
        """Bytes moving (a copy, a download, an upload): yields ``update(done, total=None)``."""


class Target(Protocol):
    """Backups of one SQLite database, wherever they live."""

    dir: Path | str  # the backup folder on the target
    flag: str  # the CLI flags that select this target (" --production", "" locally)

    def describe(self) -> str:
        """One short phrase naming the database, for step lines."""

    def folder(self) -> str:
        """The backup folder as a listing names it; a missing local one is exit 3."""

    def backup(self, progress=None, *, on_phase=None, check: str | None = None) -> dict:
        """One verified backup (``engine.BackupResult`` as a dict, plus ``strategy``).

        ``progress`` is ``Reporter.transfer``: a target that can follow the copy opens it;
        ``on_phase(name, done, total)`` hears the phases it can see; ``check`` overrides
        ``backup.check`` (a deploy publishes with ``quick``, then checks fully).
        """

    def list(self) -> list[engine.BackupFile]:
        """Backups in the folder, oldest first."""

    def names(self, which: str) -> list[str]:
        """``latest``, ``all`` or one name, as backup names (exit 3 if there are none)."""

    def verify(self, which: str, on_result=None, *, check: str | None = None) -> list[dict]:
        """Recorded SHA-256 and SQLite's check of ``latest``, ``all`` or one backup;
        ``on_result(verdict)`` for each as it is known."""

    def delete(self, names: list[str]) -> list[str]:
        """Remove these backups and their sidecars, under the folder's lock; the names
        removed (a backup a restore there holds is kept)."""

    def lock_waits(self, restore: bool = True, live: bool = False) -> list[str]:
        """A dry run's look at the folder's locks, as a restore (``restore`` False: a
        backup or cleanup) meets them, taking nothing: the run's refusal (exit 4) when it
        would not wait, else a line for each held lock it would wait for. ``live``: a
        backup's, which first refuses a live database with another name, as its run does."""

    def leftovers(self) -> list[engine.Leftover]:
        """Temporaries an interrupted backup left that this tool can see and sweep."""

    def remove_leftovers(self) -> list[str]:
        """Remove them under the folder's lock."""

    def status(self) -> dict:
        """The shape the app's ``/health`` reports under ``backup``."""

    def download(self, name: str, directory: Path, *, check: bool = True) -> dict:
        """A checked copy of backup ``name`` in a local folder (never overwrites)."""

    def drill(self, which: str) -> dict:
        """Restore ``which`` into a scratch database and compare it with its record."""

    def restore_actions(self, flow) -> dict:
        """What each step of a restore's plan does on this target, by step key: the
        restore flow (or its dry run's reads) asks, and never which kind of target it
        holds. A target answers with the flow's actions for its kind of restore:
        ``flow.here(self)``, the engine's one restore in this process a phase per step
        (``HereTarget.restore``), or ``flow.there(self)``, the same restore run there in
        one call (``RemoteTarget.restore``). The flow adds the target's ``settle``."""

    def counts(self, name: str) -> dict:
        """Rows per table of the live database and as recorded for ``name`` ({} if
        unknown), for a restore's confirmation: every target counts as the engine does."""

    def settle(self) -> Settle:
        """After a restore: what makes the app see the restored database, in order (Fly:
        restart the machine, wait for /health); none here or on an SSH host (the app reads
        the restored content through SQLite). The restore flow runs each as its step."""


class HereTarget(Target, Protocol):
    """The folder on this machine (``LocalTarget``): the restore runs in this process."""

    def restore(self, which: str, *, busy_timeout: float = 10.0, app_stopped: bool = False,
                when: str | None = None, checked: bool = False,
                read_only: bool = False) -> Generator[engine.Restoring, None, None]:
        """The engine's one restore (``engine.restoring``, what the machine's python3
        drains in one call), one phase per ``next()``: the restore flow's steps advance it,
        and closing it releases the restore lock and the backup lock. ``read_only``: a
        dry run's, only its ``verified`` phase, with no lock and nothing written."""


class RemoteTarget(Target, Protocol):
    """A target on another host (the Fly machine, an SSH host): the restore runs there."""

    def restore(self, name: str, *, busy_timeout: float = 10.0, app_stopped: bool = False,
                read_only: bool = False) -> dict:
        """Restore backup ``name`` into the live database there: verify, safety backup,
        SQLite's backup API, check (its best engine: python3, else node, else sqlite3).
        ``read_only``: a dry run's, only the verify (no lock, nothing written)."""

    def upload(self, path: Path, name: str, manifest: dict, sha256: str | None = None) -> dict:
        """Send a local backup there and adopt it as ``name`` once its SHA-256 matches."""
