"""The app on Fly.io, beside its backups: releases, `fly deploy`, a restart, volume
snapshots and the deploy lock on the machine (issue 22: ``FlyTarget`` keeps backups,
app control lives here).

It works over the same machine session as the backups (``FlySession``, as its narrow
``MachineSession``: one flyctl, one resolved machine), so a deploy's backup and its
lock reach the same machine.
"""

from __future__ import annotations

from ops import fly
from ops.targets.fly import lock, snapshots
from ops.targets.fly.machine import MachineSession


class FlyApp:
    """What a deploy, a rollback, a restore and backup.snapshot ask of the app."""

    def __init__(self, session: MachineSession, settings, db: str):
        self.session = session
        self.settings = settings
        self.name = settings.app
        self.db = db  # the database's path on the machine: the lock sits beside it

    # -- flyctl itself
    def whoami(self) -> None:
        """flyctl is logged in (``fly auth whoami``), else a FlyError."""
        self.session.fly.run(fly.whoami())

    # -- releases
    def releases(self) -> list[fly.Release]:
        return self.session.fly.releases(self.name)

    def deploy(self, argv: list[str], stream) -> None:
        """Run ``fly deploy`` (``argv`` from ``ops.deploy.deploy_command``), its output
        line by line to ``stream``."""
        self.session.fly.run(argv, timeout=self.settings.fly_deploy_timeout,
                             key="fly.deploy_timeout", stream=stream)

    # -- the machine as the app runs on it
    def restart(self) -> str:
        """``fly machine restart``: the app reopens the database it now holds."""
        result = self.session.fly.run(fly.machine_restart(self.name, self.session.machine.id),
                                      timeout=self.settings.fly_deploy_timeout,
                                      key="fly.deploy_timeout")
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    # -- snapshots of its volume
    def snapshot(self, *, wait: bool = True, timeout: float = 600,
                 interval: float = 5.0, beside=None, on_snapshot=None) -> dict:
        return snapshots.take(self.session, wait=wait, timeout=timeout, interval=interval,
                              beside=beside, on_snapshot=on_snapshot)

    def snapshots(self) -> list[fly.Snapshot]:
        """The production volume's snapshots and those of the app's earlier volumes of its
        name (a restore.volume keeps the old one), oldest first; each names its volume."""
        current, _ = self.session.resolve()
        return self.session.fly.app_snapshots(
            self.name, fly.same_name(self.session.volumes, current))

    # -- the deploy lock on the machine
    @property
    def deploy_lock_path(self) -> str:
        return lock.lock_path(self.db)

    def lock_deploy(self, wait: float, holder: str, on_wait=None) -> bool:
        """``on_wait(holder)`` hears whose lock it is before a wait starts."""
        return lock.lock(self.session, self.deploy_lock_path, wait, holder, on_wait)

    def unlock_deploy(self, *, remove: bool = True, holder: str | None = None) -> str | None:
        return lock.unlock(self.session, self.deploy_lock_path, remove=remove, holder=holder)

    def deploy_lock_wait(self, wait: float) -> str | None:
        """A dry run's look at the deploy lock (``lock.would_wait``): nothing is taken."""
        return lock.would_wait(self.session, self.deploy_lock_path, wait)
