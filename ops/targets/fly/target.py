"""The production machine on Fly.io as a backup target.

Backups are the shared scripted ones (``ops.targets.scripted``) over the machine
session; this class adds what only Fly has for them: ``/health`` as the status. The
app itself (releases, ``fly deploy``, a restart, snapshots, the deploy lock) is
``fly_app``, a ``FlyApp`` over the same session.
"""

from __future__ import annotations

import datetime as dt

from ops import engine, fly, health
from ops.errors import OpsError
from ops.targets.fly.app import FlyApp
from ops.targets.fly.session import FlySession
from ops.targets.protocol import Reporter, Settle
from ops.targets.scripted import ScriptedTarget
from ops.targets.status import status as folder_status
from ops.targets.status import valid_status


class FlyTarget(ScriptedTarget):
    """Backups in ``backup.remote_dir`` on the production machine, through flyctl."""

    def __init__(self, settings, report: Reporter, runner: fly.Fly | None = None):
        super().__init__(settings, report, FlySession(settings, report, runner),
                         flag=" --production")
        self.app = settings.app
        self.fly_app = FlyApp(self.session, settings, self.db)

    def describe(self) -> str:
        return f"production {self.app}:{self.db}"

    @property
    def downloads_name(self) -> str:
        return f"fly-{self.app}"

    # -- the machine
    @property
    def volume(self) -> fly.Volume:
        return self.session.volume

    @property
    def machine(self) -> fly.Machine:
        return self.session.machine

    def resolve(self, *, again: bool = False) -> tuple[fly.Volume, fly.Machine]:
        return self.session.resolve(again=again)

    def look_up(self) -> tuple[fly.Volume, fly.Machine]:
        """``resolve`` without its own step line, for a plan's ``resolve`` step."""
        return self.session.look_up()

    def check_flyctl(self) -> str:
        return self.session.check_flyctl()

    def emergency_stopped(self) -> bool:
        """The machine runs emergency.stop's maintenance command: a restore then skips
        ``settle`` (a restart would bring back the maintenance command, not the app). Read
        from the machine list the resolve made: asking flyctl again cost every production
        restore a second `fly machine list` (s27 review-op2 #10)."""
        return self.machine.in_maintenance

    def settle(self) -> Settle:
        """After a restore: restart the machine so the app reopens the database it now
        holds, then wait for /health to answer 200 with a backup block."""
        return [("restart", self.fly_app.restart), ("health", self._healthy)]

    def _healthy(self) -> str:
        s = self.settings
        return health.wait_for_backup_block(s.health, valid=valid_status,
                                            timeout=s.health_timeout,
                                            interval=s.health_interval,
                                            on_reason=lambda reason: self.report.waiting(
                                                f"  health: not yet: {reason}"))

    def status(self) -> dict:
        """The app's own /health view of backups; the remote folder if it cannot be read."""
        url = self.settings.health
        code, body, problem = health.fetch(url)
        block = (body or {}).get("backup")
        if code == 200 and valid_status(block):
            trusted = self._app_latest_trusted(block)
            if trusted is None:
                return block | {"source": url}
            return trusted
        if problem or code != 200:
            reason = problem or f"HTTP {code}"
        else:
            reason = "it has no backup block" if block is None else "its backup block is malformed"
        self.report.warn(f"{url} unreachable or unusable ({reason}); listing {self.dir} on the "
                         "machine instead")
        return folder_status(self.list(), dt.datetime.now(dt.UTC), self.source) | {
            "source": "remote folder"}

    def _app_latest_trusted(self, block: dict) -> dict | None:
        """None when the app's ``latest`` is one ``latest`` may name; else the folder's own
        status, with a warning. The app counts every file named like a backup, so after a
        restore it reports that restore's safety backup as the newest (issue 16 #2)."""
        named = (block.get("latest") or {}).get("name")
        if not named:
            return None
        try:
            found = self.list()
        except OpsError as exc:  # the app's word stands when the folder cannot be read
            self.report.warn(f"could not list {self.dir} on the machine to check the app's "
                             f"newest backup ({exc})")
            return None
        now = dt.datetime.now(dt.UTC)
        item = next((b for b in found if b.name == named), None)
        reason = engine.latest_reason(item, now, self.source) if item else None
        if reason is None:
            return None
        self.report.warn(f"{self.settings.health} names {named} as the newest backup, but it "
                         f"is {reason}: reporting {self.dir} on the machine instead")
        return folder_status(found, now, self.source) | {"source": "remote folder"}
