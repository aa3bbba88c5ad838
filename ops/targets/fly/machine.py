"""Which machine is production: the volume named like fly.toml's ``[mounts] source``
that is attached to a machine in a state the policy accepts (started, for everything but
emergency and restore.volume, which must find a stopped or sleeping machine too). The
choice is a pure function (``choose_production``); a ``Resolver`` asks flyctl once per run
and remembers it (the session has one: ``FlySession.resolver``)."""

from __future__ import annotations

from typing import Protocol

from ops import fly, remote
from ops.errors import ExitCode, OpsError
from ops.targets.protocol import Reporter

STARTED = "started"  # policies: only a started machine is production (backups, deploy, restore)
ANY_STATE = "any state"  # any machine not being destroyed (emergency, restore.volume: the
# machine may be stopped or sleeping; of several, the started one)


def choose_production(volumes: list[fly.Volume], machines: list[fly.Machine], source: str,
                      app: str, policy: str = STARTED) -> tuple[fly.Volume, fly.Machine]:
    """The one volume named ``source`` attached to a machine the ``policy`` accepts, and
    that machine."""
    if not source:
        raise OpsError("fly.toml has no [mounts] source: cannot tell which volume holds the "
                       "database", ExitCode.USAGE)
    named = [vol for vol in volumes if vol.name == source]
    if policy == ANY_STATE:
        return _any_state(named, machines, source, app)
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


def _any_state(named: list[fly.Volume], machines: list[fly.Machine], source: str,
               app: str) -> tuple[fly.Volume, fly.Machine]:
    by_id = {m.id: m for m in machines if m.state not in ("destroyed", "destroying")}
    pairs = [(vol, by_id[vol.attached_machine_id]) for vol in named
             if vol.attached_machine_id in by_id]
    if not pairs:
        raise OpsError(f"no machine of {app} has a {source!r} volume attached; check "
                       f"`fly status -a {app}`", ExitCode.NOT_FOUND)
    started = [pair for pair in pairs if pair[1].state == "started"]
    if len(pairs) > 1 and len(started) == 1:
        return started[0]  # a restore.volume leaves the old machine stopped beside it
    if len(pairs) > 1:
        listed = ", ".join(f"{vol.id} on {m.id} ({m.state})" for vol, m in pairs)
        raise OpsError(f"several machines have a {source!r} volume ({listed}): this toolkit "
                       "expects one production machine", ExitCode.USAGE)
    return pairs[0]


class Resolver:
    """flyctl (looked up on first use: a dry run never needs it) and the production
    volume and machine, resolved once per run. ``FlySession`` has one; nothing else
    builds flyctl, so every call gets ``fly.timeout`` unless it names a longer key."""

    def __init__(self, settings, report: Reporter, runner: fly.Fly | None = None,
                 policy: str = STARTED):
        self.settings = settings
        self.report = report
        self.app = settings.app
        self.policy = policy
        self._fly = runner
        self._resolved: tuple[fly.Volume, fly.Machine] | None = None
        self.volumes: list[fly.Volume] = []  # every volume of the app, as last resolved

    @property
    def fly(self) -> fly.Fly:
        if self._fly is None:
            self._fly = fly.Fly.from_settings(self.settings)
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
                volume, machine = self.look_up()
                step.label = f"found machine {machine.id} ({machine.region})"
                step.detail = f"volume {volume.id}"
        return self._resolved

    def look_up(self) -> tuple[fly.Volume, fly.Machine]:
        """Ask flyctl (its version first), choose by the policy, remember: ``resolve``
        without its own step line (a runbook step that resolves has one)."""
        self.check_flyctl()
        volumes = self.volumes = self.fly.volumes(self.app)
        self._resolved = choose_production(volumes, self.fly.machines(self.app),
                                           self.settings.fly_toml().mount_source, self.app,
                                           self.policy)
        return self._resolved


class MachineSession(Protocol):
    """What the fly modules (``app``, ``lock``, ``snapshots``, ``transfers``) may ask of
    the session they work over, and nothing more: flyctl, the app, the resolved machine
    and volume, a script on the machine and the copy deadline. ``FlySession`` is one."""

    app: str
    settings: object
    report: Reporter
    volumes: list[fly.Volume]
    machine_facts: dict | None

    @property
    def fly(self) -> fly.Fly: ...

    @property
    def volume(self) -> fly.Volume: ...

    @property
    def machine(self) -> fly.Machine: ...

    def resolve(self, *, again: bool = False) -> tuple[fly.Volume, fly.Machine]: ...

    def run(self, script: str, **kwargs) -> remote.RemoteOutput: ...

    def deadline(self, size: int | None = None) -> tuple[float, str]: ...
