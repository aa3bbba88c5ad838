"""The production machine on Fly.io as a target, and what a deploy needs of it.

Backups are the shared scripted ones (``ops.targets.scripted``) over the machine
session; this class adds what only Fly has: ``/health`` as the status, volume
snapshots, the deploy lock, releases, ``fly deploy`` and a machine restart.
"""

from __future__ import annotations

import datetime as dt

from ops import fly, health
from ops.targets.fly import lock, snapshots
from ops.targets.fly.session import FlySession
from ops.targets.protocol import Reporter
from ops.targets.scripted import ScriptedTarget
from ops.targets.status import status as folder_status
from ops.targets.status import valid_status


class FlyTarget(ScriptedTarget):
    """Backups in ``backup.remote_dir`` on the production machine, through flyctl."""

    def __init__(self, settings, report: Reporter, runner: fly.Fly | None = None):
        super().__init__(settings, report, FlySession(settings, report, runner),
                         flag=" --production")
        self.app = settings.app

    def describe(self) -> str:
        return f"production {self.app}:{self.db}"

    # -- the machine
    @property
    def volume(self) -> fly.Volume:
        return self.session.volume

    @property
    def machine(self) -> fly.Machine:
        return self.session.machine

    def resolve(self, *, again: bool = False) -> tuple[fly.Volume, fly.Machine]:
        return self.session.resolve(again=again)

    def check_flyctl(self) -> str:
        return self.session.check_flyctl()

    def machine_config(self) -> dict:
        """The production machine as `fly machine list --json` shows it (its config is the
        truth about what it runs, e.g. emergency.stop's maintenance command); {} if gone."""
        found = self.session.fly.json(fly.machines_list(self.app))
        machine_id = self.machine.id
        mine = [raw for raw in found if isinstance(raw, dict) and raw.get("id") == machine_id] \
            if isinstance(found, list) else []
        return mine[0] if mine else {}

    def restart(self) -> str:
        """``fly machine restart``: the app reopens the database it now holds."""
        result = self.session.fly.run(fly.machine_restart(self.app, self.machine.id),
                                      timeout=self.settings.fly_deploy_timeout,
                                      key="fly.deploy_timeout")
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    def status(self) -> dict:
        """The app's own /health view of backups; the remote folder if it cannot be read."""
        url = self.settings.health
        code, body, problem = health.fetch(url)
        block = (body or {}).get("backup")
        if code == 200 and valid_status(block):
            return block | {"source": url}
        if problem or code != 200:
            reason = problem or f"HTTP {code}"
        else:
            reason = "it has no backup block" if block is None else "its backup block is malformed"
        self.report.warn(f"{url} unreachable or unusable ({reason}); listing {self.dir} on the "
                         "machine instead")
        return folder_status(self.list(), dt.datetime.now(dt.UTC)) | {"source": "remote folder"}

    # -- snapshots
    def snapshot(self, *, wait: bool = True, timeout: float = 600,
                 interval: float = 5.0, beside=None) -> dict:
        return snapshots.take(self.session, wait=wait, timeout=timeout, interval=interval,
                              beside=beside)

    def snapshots(self) -> list[fly.Snapshot]:
        """The production volume's snapshots and those of the app's earlier volumes of its
        name (a restore.volume keeps the old one), oldest first; each names its volume."""
        current, _ = self.resolve()
        return self.session.fly.app_snapshots(
            self.app, fly.same_name(self.session.volumes, current))

    # -- deploys
    @property
    def deploy_lock_path(self) -> str:
        return lock.lock_path(self.db)

    def lock_deploy(self, wait: float, holder: str, on_wait=None) -> bool:
        """``on_wait(holder)`` hears whose lock it is before a wait starts."""
        return lock.lock(self.session, self.deploy_lock_path, wait, holder, on_wait)

    def unlock_deploy(self, *, remove: bool = True, holder: str | None = None) -> str | None:
        return lock.unlock(self.session, self.deploy_lock_path, remove=remove, holder=holder)

    def whoami(self) -> None:
        """flyctl is logged in (``fly auth whoami``), else a FlyError."""
        self.session.fly.run(fly.whoami())

    def releases(self) -> list[fly.Release]:
        return self.session.fly.releases(self.app)

    def deploy(self, argv: list[str], stream) -> None:
        """Run ``fly deploy`` (``argv`` from ``ops.deploy.deploy_command``), its output
        line by line to ``stream``."""
        self.session.fly.run(argv, timeout=self.settings.fly_deploy_timeout,
                             key="fly.deploy_timeout", stream=stream)
