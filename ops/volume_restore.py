"""Bring a volume back from a snapshot: a new volume, and a clone of the machine using it.

A snapshot never restores in place, and a machine's volume cannot be swapped: the restore
is a new volume (``fly volumes create NAME --snapshot-id``, with the size and region given,
since flyctl defaults to 1 GB and never reads the region from fly.toml) and a new machine
(``fly machine clone OLD --attach-volume NEW:/path``: the same image, config and region as
the old one). The old machine is stopped first, so only one copy of the app ever writes,
and it is kept with its volume attached: nothing is destroyed, and while it holds its
volume, ``fly deploy`` cannot pick the wrong unattached volume of the same name. The plan
is data (``plan``); ``run`` executes it with ``ops.emergency.Runner``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ops import fly
from ops.emergency import MachineView, Step
from ops.errors import ExitCode, OpsError

GIB = 1024**3
NEW_VOLUME = "<new_volume>"  # placeholders in the plan, filled in as the run learns them
NEW_MACHINE = "<new_machine>"
CREATED = re.compile(r"Machine (\S+) has been created")


def pick_snapshot(snapshots: list[fly.Snapshot], which: str, volume: str) -> fly.Snapshot:
    """``latest``: the newest finished snapshot; else the one with that id, finished."""
    done = sorted((s for s in snapshots if s.id and s.status == "created"),
                  key=lambda s: s.created_at)
    if which == "latest":
        if not done:
            raise OpsError(f"volume {volume} has no finished snapshot", ExitCode.NOT_FOUND)
        return done[-1]
    found = next((s for s in snapshots if s.id == which), None)
    if found is None:
        known = ", ".join(s.id for s in reversed(done[-5:])) or "none"
        raise OpsError(f"no snapshot {which} of volume {volume} (newest: {known})",
                       ExitCode.NOT_FOUND)
    if found.status != "created":
        raise OpsError(f"snapshot {which} is {found.status or 'not finished'}, not created",
                       ExitCode.USAGE)
    return found


def size_for(snapshot: fly.Snapshot, volume: fly.Volume) -> int:
    """GB for the new volume: at least the snapshot's volume and the old volume."""
    return max(1, volume.size_gb, -(-snapshot.volume_size // GIB))


@dataclass(frozen=True)
class Resolved:
    """Everything the plan needs, read before anything changes."""

    app: str
    name: str  # the volume name fly.toml mounts ([mounts] source)
    path: str  # where the old machine mounts it
    machine: MachineView
    volume: fly.Volume
    snapshot: fly.Snapshot
    size_gb: int
    strays: tuple[str, ...] = ()  # unattached volumes with the same name


def resolve(app: str, name: str, volume: fly.Volume, machine: MachineView,
            snapshots: list[fly.Snapshot], which: str,
            volumes: list[fly.Volume]) -> Resolved:
    """Check that a clone can work at all; refuse before anything changes."""
    if machine.in_maintenance:
        raise OpsError(f"machine {machine.id} is emergency-stopped and a clone would inherit "
                       "its sleep command: run `invoke emergency.resume` first",
                       ExitCode.USAGE)
    if machine.host_status != "ok":
        raise OpsError(f"machine {machine.id} is on an unreachable host, so flyctl cannot "
                       f"clone it: create the volume (fly volumes create {name} --snapshot-id "
                       f"SNAPSHOT -s GB -r {volume.region} -a {app} --yes), destroy the old "
                       f"machine (fly machine destroy {machine.id} --force) and deploy",
                       ExitCode.USAGE)
    if len(machine.mounts) != 1:
        raise OpsError(f"machine {machine.id} has {len(machine.mounts)} volumes; "
                       "`fly machine clone --attach-volume` needs exactly one", ExitCode.USAGE)
    snapshot = pick_snapshot(snapshots, which, volume.id)
    strays = tuple(v.id for v in volumes
                   if v.name == name and not v.attached_machine_id and v.id != volume.id)
    return Resolved(app, name, machine.mounts[0][1], machine, volume, snapshot,
                    size_for(snapshot, volume), strays)


def plan(r: Resolved, health_url: str) -> list[Step]:
    """The steps with their flyctl commands; ``<new volume>`` is known after the first."""
    m, v = r.machine, r.volume
    steps = [
        Step("create", f"create volume {r.name!r} from snapshot {r.snapshot.id} "
             f"({r.size_gb} GB in {v.region}) -> {NEW_VOLUME}",
             tuple(fly.volumes_create_from_snapshot(r.app, r.name, r.snapshot.id, r.size_gb,
                                                    v.region)), True),
        Step("wait", f"wait until {NEW_VOLUME} is restored (state `created`)",
             tuple(fly.volumes_list(r.app))),
    ]
    if m.state == "started":
        steps.append(Step("stop_old", f"stop the old machine {m.id} (kept, with {v.id})",
                          tuple(fly.machine_stop(r.app, m.id)), True))
    steps += [
        Step("clone", f"clone {m.id} onto {NEW_VOLUME} at {r.path} -> {NEW_MACHINE}, waiting "
             "for its health checks",
             tuple(fly.machine_clone(r.app, m.id, NEW_VOLUME, r.path, v.region)), True),
        Step("verify", f"{NEW_MACHINE} is started with {NEW_VOLUME}; {m.id} is stopped with "
             f"{v.id}", tuple(fly.machines_list(r.app))),
        Step("health", f"poll {health_url} until 200"),
    ]
    return steps


def filled(step: Step, values: dict) -> Step:
    """The step with the values learnt so far put in for their placeholders."""
    argv = tuple(_fill(word, values) for word in step.argv)
    return Step(step.key, _fill(step.title, values), argv, step.changes)


def _fill(text: str, values: dict) -> str:
    for key, value in values.items():
        if value:
            text = text.replace(f"<{key}>", value)
    return text


def cleanup_commands(r: Resolved) -> list[list[str]]:
    """What the operator runs once the restored app is right (never run by the tool)."""
    return [fly.machine_destroy(r.app, r.machine.id), fly.volumes_destroy(r.app, r.volume.id)]


@dataclass
class Execution:
    """Runs a plan; ``values`` holds what each step learnt (the new volume and machine)."""

    resolved: Resolved
    runner: fly.Fly
    wait_timeout: float
    interval: float
    values: dict = field(default_factory=dict)  # new_volume, new_machine

    def create(self, step: Step) -> str:
        done = self.runner.run(list(step.argv))
        try:
            volume = fly.Volume.parse(_first_json(done.stdout))
        except (KeyError, TypeError, ValueError):
            raise fly.FlyError("`fly volumes create` did not print the new volume as JSON") \
                from None
        self.values["new_volume"] = volume.id
        return f"{volume.id} ({volume.state}, {volume.size_gb} GB, {volume.region})"

    def wait(self, step: Step) -> str:
        new = self.values["new_volume"]
        deadline = time.monotonic() + self.wait_timeout
        while True:
            found = next((v for v in self.runner.volumes(self.resolved.app) if v.id == new), None)
            state = found.state if found else "not listed"
            if state == "created":
                return f"{new} created"
            if found is None or state in ("failed", "error", "destroyed", "destroying"):
                raise OpsError(f"volume {new} is {state}")
            if time.monotonic() + self.interval > deadline:
                raise OpsError(f"volume {new} still {state} after {self.wait_timeout:g}s",
                               ExitCode.TIMEOUT)
            time.sleep(self.interval)

    def stop_old(self, step: Step) -> str:
        self.runner.run(list(step.argv))
        return f"{self.resolved.machine.id} stopped"

    def clone(self, step: Step) -> str:
        result = self.runner.run(list(step.argv), check=False, timeout=None)
        created = CREATED.search(result.stdout)
        if created:
            self.values["new_machine"] = created.group(1)
        if result.returncode != 0:
            where = f" (machine {created.group(1)} was created)" if created else ""
            raise fly.FlyError(f"`fly machine clone` failed{where}: "
                               f"{fly.error_line(result.stderr, result.returncode)}")
        return f"{self.values.get('new_machine', '?')} cloned"

    def verify(self, step: Step, machines: list[MachineView]) -> str:
        r, new_volume = self.resolved, self.values["new_volume"]
        on_new = [m for m in machines if any(vol == new_volume for vol, _ in m.mounts)]
        if len(on_new) != 1 or on_new[0].state != "started":
            states = ", ".join(f"{m.id} {m.state}" for m in on_new) or "no machine"
            raise OpsError(f"{new_volume} should be on one started machine: {states}")
        self.values["new_machine"] = on_new[0].id
        old = next((m for m in machines if m.id == r.machine.id), None)
        if old is None or old.state == "started":
            raise OpsError(f"the old machine {r.machine.id} should be kept stopped, found "
                           f"{old.state if old else 'nothing'}")
        return f"{on_new[0].id} started with {new_volume}; {old.id} {old.state} with {r.volume.id}"


def _first_json(text: str) -> dict:
    """flyctl prints one JSON object per created volume, concatenated: take the first."""
    import json

    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object")
    data, _ = json.JSONDecoder().raw_decode(text[start:])
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data
