"""Which machine is production: the volume named like fly.toml's ``[mounts] source``
that is attached to a started machine. The choice is a pure function
(``choose_production``); ``Machines`` asks flyctl once per run and remembers it."""

from __future__ import annotations

from ops import fly
from ops.errors import ExitCode, OpsError
from ops.targets.protocol import Reporter


def choose_production(volumes: list[fly.Volume], machines: list[fly.Machine], source: str,
                      app: str) -> tuple[fly.Volume, fly.Machine]:
    """The one volume named ``source`` attached to a started machine, and that machine."""
    if not source:
        raise OpsError("fly.toml has no [mounts] source: cannot tell which volume holds the "
                       "database", ExitCode.USAGE)
    named = [vol for vol in volumes if vol.name == source]
    if not named:
        raise OpsError(f"app {app} has no volume named {source!r}", ExitCode.NOT_FOUND)
    started = {machine.id: machine for machine in machines if machine.state == "started"}
    candidates = [(vol, started[vol.attached_machine_id]) for vol in named
                  if vol.attached_machine_id in started]
    if not candidates:
        attached = ", ".join(f"{vol.id}→{vol.attached_machine_id or 'unattached'}" for vol in named)
        raise OpsError(f"no started machine has a {source!r} volume attached ({attached}); "
                       f"check `fly status -a {app}`", ExitCode.NOT_FOUND)
    if len(candidates) > 1:
        listed = ", ".join(f"{vol.id} on {machine.id}" for vol, machine in candidates)
        raise OpsError(f"several started machines have a {source!r} volume ({listed}): "
                       "this toolkit expects one production machine", ExitCode.USAGE)
    return candidates[0]


class Machines:
    """flyctl (looked up on first use: a dry run never needs it) and the production
    volume and machine, resolved once per run."""

    def __init__(self, settings, report: Reporter, runner: fly.Fly | None = None):
        self.settings = settings
        self.report = report
        self.app = settings.app
        self._fly = runner
        self._resolved: tuple[fly.Volume, fly.Machine] | None = None
        self.volumes: list[fly.Volume] = []  # every volume of the app, as last resolved

    @property
    def fly(self) -> fly.Fly:
        if self._fly is None:
            self._fly = fly.Fly(self.settings.flyctl(), timeout=self.settings.fly_timeout)
        return self._fly

    def check_flyctl(self) -> str:
        """flyctl's version, refused when too old to be trusted (asked once per run)."""
        return self.fly.check_version(self.report.warn)

    def resolve(self, *, again: bool = False) -> tuple[fly.Volume, fly.Machine]:
        """The production volume and machine; ``again`` asks Fly anew (after a deploy,
        which may have replaced the machine)."""
        if again:
            self._resolved = None
        if self._resolved is None:
            with self.report.step(f"resolve production machine of {self.app}") as step:
                self.check_flyctl()
                volumes = self.volumes = self.fly.volumes(self.app)
                machines = self.fly.machines(self.app)
                self._resolved = choose_production(
                    volumes, machines, self.settings.fly_toml().mount_source, self.app)
                volume, machine = self._resolved
                step.label = f"found machine {machine.id} ({machine.region})"
                step.detail = f"volume {volume.id}"
        return self._resolved

    @property
    def volume(self) -> fly.Volume:
        return self.resolve()[0]

    @property
    def machine(self) -> fly.Machine:
        return self.resolve()[1]
