"""Bring a volume back from a snapshot: a new volume, and a clone of the machine using it.

A snapshot never restores in place, and a machine's volume cannot be swapped: the restore
is a new volume (``fly volumes create NAME --snapshot-id``, with the size and region given,
since flyctl defaults to 1 GB and never reads the region from fly.toml; the old volume's
snapshot retention and scheduled snapshots, since flyctl defaults them to 5 days and on; and
the old machine's VM size, so the volume's host has room for the clone) and a new machine
(``fly machine clone OLD --attach-volume NEW:/path``: the same image, config and region as
the old one).

Only one copy of the app may ever write, and Fly's proxy starts a *stopped* machine whose
services autostart when a request finds no running machine with capacity. So before the
old machine is stopped it is made unstartable by the proxy (``fly machine update OLD
--autostart=false --skip-start``, the "autostart guard"), then we wait until Fly says it is
``stopped`` (``fly machine stop`` returns before that, and its ``--wait-timeout`` is clamped
to 60 s by fly-go). The clone copies that config, so its autostart is put back after it
starts. The guard on the old machine is undone only by an explicit go-back (``go_back``):
first the clone's autostart off and the clone stopped (or destroyed), then
``fly machine update OLD --autostart=true``.

Everything that can fail for lack of room (the volume's placement, with the VM size) or
time (the restore) happens before the old machine stops, so such a failure leaves it
serving. The old machine is kept with its volume attached: nothing is destroyed, and while
it holds its volume, ``fly deploy`` cannot pick the wrong unattached volume of the same
name. The plan is data (``plan_reads``, ``plan``); ``Execution`` acts; ``runbook.Runner``
runs both, the reads for real also in a dry run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from ops import fly, health, poll
from ops.errors import ExitCode, OpsError
from ops.fly import AUTOSTART_BEFORE, Machine
from ops.runbook import Step

GIB = 1024**3
# The states Fly documents for a volume created from a snapshot, in order (Fly's volume
# docs; reference/flyctl.md §13): any other state is a failure, reported as seen.
PENDING_STATES = ("creating", "restoring")
READY_STATE = "created"
NEW_VOLUME = "<new_volume>"  # placeholders in the plan, filled in as the run learns them
NEW_MACHINE = "<new_machine>"
CREATED = re.compile(r"Machine (\S+) has been created")


def pick_snapshot(snapshots: list[fly.Snapshot], which: str, volume: str,
                  earlier: list[fly.Snapshot] = ()) -> fly.Snapshot:
    """``latest``: the production volume's newest finished snapshot (never an earlier
    volume's: that may hold the data a restore.volume moved away from); else the one with
    that id, finished, of the production volume or of an earlier volume of its name."""
    done = sorted((s for s in snapshots if s.id and s.status == "created"),
                  key=lambda s: s.created_at)
    if which == "latest":
        if not done:
            raise OpsError(f"volume {volume} has no finished snapshot"
                           + (" (earlier volumes' snapshots can be named by id: "
                              "invoke backup.snapshots)" if earlier else ""),
                           ExitCode.NOT_FOUND)
        return done[-1]
    found = next((s for s in [*snapshots, *earlier] if s.id == which), None)
    if found is None:
        known = ", ".join(s.id for s in reversed(done[-5:])) or "none"
        raise OpsError(f"no snapshot {which} of volume {volume} or an earlier volume of its "
                       f"name (newest: {known}; all: invoke backup.snapshots)",
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
    machine: Machine
    volume: fly.Volume
    snapshot: fly.Snapshot
    size_gb: int
    strays: tuple[str, ...] = ()  # unattached volumes with the same name

    @property
    def autostart(self) -> bool:
        """Whether the old machine's services autostarted before any guard (what go-back
        and the clone put back): while a guard from an earlier run is on (every service
        off), the value that guard recorded in the machine's metadata."""
        m = self.machine
        if m.autostart_before is not None and not any(m.autostarts):
            return m.autostart_before
        return any(m.autostarts)


def resolve(app: str, name: str, volume: fly.Volume, machine: Machine,
            snapshots: list[fly.Snapshot], which: str,
            volumes: list[fly.Volume], earlier: list[fly.Snapshot] = ()) -> Resolved:
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
    if len(set(machine.autostarts)) > 1:
        raise OpsError(f"the services of {machine.id} autostart differently; one --autostart "
                       "value cannot put them back after the restore: set them alike first",
                       ExitCode.USAGE)
    snapshot = pick_snapshot(snapshots, which, volume.id, list(earlier))
    strays = tuple(v.id for v in volumes
                   if v.name == name and not v.attached_machine_id and v.id != volume.id)
    return Resolved(app, name, machine.mounts[0][1], machine, volume, snapshot,
                    size_for(snapshot, volume), strays)


def plan_reads(app: str, which: str, volume: fly.Volume | None = None,
               earlier: list[fly.Volume] = ()) -> list[Step]:
    """What a run reads before anything changes, for real also in a dry run, one step at a
    time (each names what the one before found): flyctl's version, the app's volumes and
    machines; then the production volume's snapshots; then, only when ``which`` is none of
    them, the snapshots of the earlier volumes of its name."""
    if volume is None:
        return [Step("resolve", f"resolve the volume and machine of {app}", reads_only=True,
                     commands=(tuple(fly.version()), tuple(fly.volumes_list(app)),
                               tuple(fly.machines_list(app))))]
    if not earlier:
        return [Step("snapshot", f"find snapshot {which} of {volume.id}", reads_only=True,
                     commands=(tuple(fly.snapshots_list(app, volume.id)),))]
    return [Step("earlier", f"find snapshot {which} of an earlier {volume.name!r} volume",
                 reads_only=True,
                 commands=tuple(tuple(fly.snapshots_list(app, v.id)) for v in earlier))]


def plan(r: Resolved, health_url: str) -> list[Step]:
    """The steps with their flyctl commands; ``<new volume>`` is known after the first.

    Nothing stops the old machine before the new volume exists, is restored and sits on a
    host with room for the machine's VM size; the proxy cannot start it once it stops."""
    m, v = r.machine, r.volume
    size = f", VM {m.guest.cpu_kind} x{m.guest.cpus} {m.guest.memory_mb} MB" if m.guest else ""
    stop = shlex.join(["fly", *fly.machine_stop(r.app, m.id)])
    steps = [
        Step("create", f"create volume {r.name!r} from snapshot {r.snapshot.id} "
             f"({r.size_gb} GB in {v.region}, snapshots kept {retention_of(v)} days{size}) "
             f"-> {NEW_VOLUME}",
             commands=(tuple(fly.volumes_create_from_snapshot(
                 r.app, r.name, r.snapshot.id, r.size_gb, v.region,
                 retention=v.snapshot_retention, scheduled=v.auto_backup_enabled,
                 guest=m.guest)),)),
        Step("wait", f"wait until {NEW_VOLUME} is restored (state `{READY_STATE}`)",
             commands=(tuple(fly.volumes_list(r.app)),), reads_only=True),
        Step("guard", f"autostart guard: Fly's proxy must never start {m.id} again "
             "(autostart off; left stopped)",
             commands=(tuple(fly.machine_update(
                 r.app, m.id, autostart=False, skip_start=True,
                 metadata={AUTOSTART_BEFORE: "true" if r.autostart else "false"})),)),
        # the guard's --skip-start leaves it stopped: `fly machine stop` only if it is not
        Step("stop_old", f"wait until {m.id} is `stopped` (kept, with {v.id}; `{stop}` if "
             "it is not)", commands=(tuple(fly.machines_list(r.app)),), by_hand=(stop,)),
        Step("clone", f"clone {m.id} onto {NEW_VOLUME} at {r.path} -> {NEW_MACHINE}, waiting "
             "for its health checks",
             commands=(tuple(fly.machine_clone(r.app, m.id, NEW_VOLUME, r.path, v.region)),)),
    ]
    if r.autostart:
        steps.append(Step("autostart", f"{NEW_MACHINE} autostarts like {m.id} did (the clone "
                          "copied the guard)",
                          commands=(tuple(fly.machine_update(r.app, NEW_MACHINE,
                                                             autostart=True)),)))
    steps += [
        Step("verify", f"{NEW_MACHINE} is started with {NEW_VOLUME}; {m.id} is stopped with "
             f"{v.id} and autostart off", commands=(tuple(fly.machines_list(r.app)),),
             reads_only=True),
        Step("health", f"poll {health_url} until 200", reads_only=True,
             by_hand=(health.by_hand(health_url),)),
    ]
    return steps


def retention_of(volume: fly.Volume) -> str:
    return "5 (flyctl's default)" if volume.snapshot_retention is None \
        else str(volume.snapshot_retention)


def go_back(r: Resolved, clone: str | None, clone_tried: bool) -> list[list[str]]:
    """How to return to the old machine, in order: the clone first (so two copies of the
    app never run): made unstartable (autostart off, so Fly's proxy never starts it on the
    snapshot's data when the old machine is not running), then stopped; then the old
    machine with its autostart as it was (which starts it)."""
    steps: list[list[str]] = []
    if clone:
        steps.append(fly.machine_update(r.app, clone, autostart=False, skip_start=True))
        steps.append(fly.machine_stop(r.app, clone))
    elif clone_tried:
        steps.append(fly.machines_list(r.app))  # find a clone flyctl did not name
    if r.autostart:
        steps.append(fly.machine_update(r.app, r.machine.id, autostart=True))
    else:
        steps.append(fly.machine_start(r.app, r.machine.id))
    return steps


def go_back_text(r: Resolved, clone: str | None, clone_tried: bool, binary: str = "fly") -> str:
    argvs = go_back(r, clone, clone_tried)
    lines = []
    for number, argv in enumerate(argvs, 1):
        line = f"  {number}. {shlex.join([binary, *argv])}"
        if argv[:2] == ["machine", "update"] and argv[2] == clone:
            line += (f"   # first: the clone never autostarts (or destroy it: {binary} machine "
                     f"destroy {clone} -a {r.app} --force)")
        elif argv[:2] == ["machine", "stop"]:
            line += "   # then: stop the clone"
        elif argv[:2] == ["machine", "list"]:
            line += (f"   # first: a machine with {NEW_VOLUME} is the clone: turn its "
                     "autostart off (--autostart=false --skip-start) and stop it, or destroy "
                     "it")
        else:
            line += f"   # then: {r.machine.id} runs again (the autostart guard undone)"
        lines.append(line)
    return "\n".join(lines)


def cleanup_commands(r: Resolved) -> list[list[str]]:
    """What the operator runs once the restored app is right (never run by the tool)."""
    return [fly.machine_destroy(r.app, r.machine.id), fly.volumes_destroy(r.app, r.volume.id)]


@dataclass
class Execution:
    """Does the plan's steps; ``values`` holds what each step learnt (the new volume and
    machine: the runner's own ``values``, so they fill its later steps' placeholders)."""

    resolved: Resolved
    runner: fly.Fly
    wait_timeout: float
    interval: float
    stop_timeout: float = 300.0
    machines: object = None  # () -> list[Machine]
    values: dict = field(default_factory=dict)  # new_volume, new_machine
    guarded: bool = False  # the autostart guard was sent: the old machine was touched
    clone_tried: bool = False  # `fly machine clone` ran (a clone may exist)

    def argv(self, step: Step, number: int = 0) -> list[str]:
        """The step's command with what the run has learnt put in for its placeholders."""
        return list(step.filled(self.values).commands[number])

    def create(self, step: Step) -> str:
        done = self.runner.run(self.argv(step))
        try:
            volume = fly.Volume.parse(_first_json(done.stdout))
        except (KeyError, TypeError, ValueError):
            raise fly.FlyError("`fly volumes create` did not print the new volume as JSON") \
                from None
        self.values["new_volume"] = volume.id
        return f"{volume.id} ({volume.state}, {volume.size_gb} GB, {volume.region})"

    def wait(self, step: Step) -> str:
        """Poll until the documented ``created``; fail at once on a state Fly does not
        document for a restore, saying what it saw."""
        new = self.values["new_volume"]
        seen = self._poll(lambda: self._volume_state(new), (READY_STATE,), PENDING_STATES,
                          self.wait_timeout, f"volume {new}", "backup.snapshot_timeout")
        return f"{new} {seen}"

    def _volume_state(self, new: str) -> str:
        found = next((v for v in self.runner.volumes(self.resolved.app) if v.id == new), None)
        return found.state if found else "not listed"

    def _poll(self, read, done, pending, timeout: float, what: str, key: str,
              first: str | None = None) -> str:
        """Read the state until it is one of ``done`` (the states seen, in order); fail at
        once on a state neither done nor ``pending``, or when ``timeout`` would pass."""
        seen: list[str] = [first] if first else []

        def attempt() -> str | None:
            state = read()
            if not seen or seen[-1] != state:
                seen.append(state)
            if state in done:
                return " -> ".join(seen)
            if state not in pending:
                raise OpsError(f"{what} is {state or 'in no state'} (seen: {' -> '.join(seen)}); "
                               f"expected {' or '.join(pending + done)}")
            return None

        def expired(polls: int, waited: float) -> OpsError:
            return OpsError(f"{what} still {seen[-1]} after {timeout:g}s (seen: "
                            f"{' -> '.join(seen)}); if it needs longer, raise {key}",
                            ExitCode.TIMEOUT)

        return poll.until(attempt, timeout=timeout, interval=self.interval, expired=expired)

    def guard(self, step: Step) -> str:
        self.guarded = True  # sent: from here on, a failure says how to go back
        try:
            self.runner.run(self.argv(step))
        except fly.FlyError:
            self.guarded = self.touched()  # e.g. a lease held elsewhere: nothing changed
            raise
        return f"{self.resolved.machine.id}: autostart off"

    def touched(self) -> bool:
        """After a failed guard: did it change the old machine? (True when unsure)"""
        try:
            old = next((m for m in self.machines() if m.id == self.resolved.machine.id), None)
        except OpsError:
            return True
        return old is None or old.state != self.resolved.machine.state \
            or old.autostarts != self.resolved.machine.autostarts

    def stop_old(self, step: Step) -> str:
        """``fly machine stop`` when it is not stopped yet, then poll until ``stopped``."""
        old = self.resolved.machine.id
        state = self._machine_state(old)
        if state == "stopped":
            return f"{old} stopped"
        if state != "stopping":
            self.runner.run(fly.machine_stop(self.resolved.app, old))
        seen = self._poll(lambda: self._machine_state(old), ("stopped",),
                          ("started", "stopping", "starting", "replacing", "updating",
                           "suspending", "suspended"),
                          self.stop_timeout, f"machine {old}", "fly.timeout", first=state)
        return f"{old} {seen}"

    def _machine_state(self, machine_id: str) -> str:
        found = next((m for m in self.machines() if m.id == machine_id), None)
        return found.state if found else "not listed"

    def autostart(self, step: Step) -> str:
        self.runner.run(self.argv(step))
        return f"{self.values['new_machine']}: autostart on"

    def clone(self, step: Step) -> str:
        self.clone_tried = True
        result = self.runner.run(self.argv(step), check=False)
        created = CREATED.search(result.stdout)
        if created:
            self.values["new_machine"] = created.group(1)
        if result.returncode != 0:
            where = f" (machine {created.group(1)} was created)" if created else ""
            raise fly.FlyError(f"`fly machine clone` failed{where}: "
                               f"{fly.error_line(result.stderr, result.returncode)}")
        return f"{self.values.get('new_machine', '?')} cloned"

    def verify(self, step: Step, machines: list[Machine]) -> str:
        r, new_volume = self.resolved, self.values["new_volume"]
        on_new = [m for m in machines if any(vol == new_volume for vol, _ in m.mounts)]
        if len(on_new) != 1 or on_new[0].state != "started":
            states = ", ".join(f"{m.id} {m.state}" for m in on_new) or "no machine"
            raise OpsError(f"{new_volume} should be on one started machine: {states}")
        self.values["new_machine"] = on_new[0].id
        old = next((m for m in machines if m.id == r.machine.id), None)
        if old is None or old.state == "started":
            raise OpsError(f"the old machine {r.machine.id} should be kept stopped, found "
                           f"{old.state if old else 'nothing'}: two copies of the app may "
                           "be writing; stop one of them now")
        if any(old.autostarts):
            raise OpsError(f"the old machine {old.id} autostarts again: Fly's proxy may start "
                           f"it; run: fly machine update {old.id} -a {r.app} --autostart=false "
                           "--skip-start --yes")
        return (f"{on_new[0].id} started with {new_volume}; {old.id} {old.state} with "
                f"{r.volume.id}, autostart off")


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
