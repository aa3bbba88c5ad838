"""`invoke restore.volume`: a lost volume back from a snapshot, on a clone of the machine."""

from __future__ import annotations

import functools
import shlex
import time
from typing import TYPE_CHECKING

from ops import config
from ops.cli import guarded, on_signals, task
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated

if TYPE_CHECKING:  # annotations only: the modules are imported by the tasks that run them
    from ops import fly, runbook
    from ops import volume_restore as vr
    from ops.ui import UI


class Reads:
    """What restore.volume reads before anything changes, each read a step of the run's
    runner (for real also in a dry run): the production volume and machine, its snapshots,
    earlier volumes' snapshots when ``which`` is none of them; then ``resolved``."""

    def __init__(self, settings, ui: UI, runner: runbook.Runner, which: str):
        from ops import volume_restore as vr
        from ops.targets.fly.machine import ANY_STATE
        from ops.targets.fly.session import FlySession

        self.settings, self.ui, self.runner, self.which = settings, ui, runner, which
        self.app = settings.app
        self.session = FlySession(settings, ui, policy=ANY_STATE)  # fly.timeout, as everywhere
        self.fly = self.session.fly
        self.steps: list[runbook.Step] = []
        self.earlier: list[fly.Snapshot] = []
        self.read(vr.plan_reads(self.app, which), self.production)
        self.read(vr.plan_reads(self.app, which, self.volume), self.snapshots)
        if self.resolved is None:
            self.read(vr.plan_reads(self.app, which, self.volume, self.older), self.older_ones)

    def read(self, steps: list[runbook.Step], action) -> None:
        """Run read-only steps now (no audit line: nothing has changed yet)."""
        from ops import runbook

        steps = runbook.bind(steps, {steps[0].key: action})
        self.runner.run(steps, dry_run=True)
        self.steps += steps

    def production(self) -> str:
        self.name = self.settings.fly_toml().mount_source
        self.volume, self.machine = self.session.look_up()
        self.volumes = self.session.volumes
        return f"{self.volume.id} on {self.machine.id} ({self.machine.state})"

    def snapshots(self) -> str:
        from ops import fly

        self.current = self.fly.snapshots(self.app, self.volume.id)
        self.older = fly.same_name(self.volumes, self.volume)[1:]
        self.resolved = None
        if self.which == "latest" or any(s.id == self.which for s in self.current):
            return self.resolve()
        if not self.older:  # nowhere else to look: the refusal names what there is
            return self.resolve()
        return f"not among the {len(self.current)} snapshot(s) of {self.volume.id}"

    def older_ones(self) -> str:
        self.earlier = self.fly.app_snapshots(self.app, self.older)
        return self.resolve()

    def resolve(self) -> str:
        from ops import volume_restore as vr
        from ops.ui import created_when, volume_gb

        self.resolved = vr.resolve(self.app, self.name, self.volume, self.machine, self.current,
                                   self.which, self.volumes, self.earlier)
        snap = self.resolved.snapshot
        self.made = created_when(snap.created_at, time.time())
        return (f"{snap.id} of {self.made}  {self.volume.id} on {self.machine.id} "
                f"({self.machine.state}); {volume_gb(snap.volume_size)} volume"
                + (f", a snapshot of the earlier volume {snap.volume}"
                   if snap.volume and snap.volume != self.volume.id else ""))


@task(help={
    "snapshot": "the volume snapshot to restore (vs_...), or `latest` (required)",
    "yes": "go ahead without asking (required when not on a terminal)",
    "dry_run": "print the plan with every flyctl command; change nothing",
    "json": "print the audit record (or the plan, with --dry-run) as JSON on stdout",
})
@guarded
@on_signals
def volume(c, snapshot=None, yes=False, dry_run=False, json=False):
    """New volume from a snapshot; old machine guarded, stopped and kept; a clone on it."""
    from ops import emergency as em
    from ops import replica_hooks, runbook
    from ops import volume_restore as vr
    from ops.ui import UI

    if not snapshot or not str(snapshot).strip():
        raise OpsError("--snapshot is required: a snapshot id (vs_...) or latest", ExitCode.USAGE)
    settings = config.load(c.config)
    em.refuse_unasked(yes, dry_run, "restore.volume")
    ui = UI()
    steps_runner = runbook.Runner("restore.volume", ui, settings.audit_log)
    if not dry_run:  # refused before anything changes, as deploy and restore do
        steps_runner.check_audit_log()
    reads = Reads(settings, ui, steps_runner, str(snapshot).strip())
    resolved, made = reads.resolved, reads.made
    steps = vr.plan(resolved, settings.health)
    replica = replica_hooks.volume_read(c.config, settings, reads)  # newer than it?
    summary = _show(ui, reads, steps, dry_run)
    if replica:
        summary["replica"] = replica
        if replica.get("offer"):
            ui.warn(replica["offer"])
    if dry_run:
        if json:
            ui.emit({"dry_run": True, "outcome": "dry run", **summary, "steps": em.plan_data(steps),
                     "read": em.plan_data(reads.steps)})
        return
    em.confirm(ui, f"Restore {settings.app}'s volume from {resolved.snapshot.id}, made {made}, "
               f"onto a new machine (the old machine {resolved.machine.id} is stopped, kept, "
               "and Fly's proxy may not start it)?",
               yes=yes, kind="restore.volume")
    try:
        run = _restore(settings, ui, steps_runner, reads.fly, resolved, steps, summary)
    except Terminated as exc:
        raise OpsError(f"terminated by {exc.name} during restore.volume: the lines above say "
                       "how to finish or go back", ExitCode.TERMINATED) from None
    finally:
        if json and steps_runner.record:
            ui.emit(steps_runner.record)
    later = "\n".join(f"  {shlex.join(['fly', *argv])}" for argv in vr.cleanup_commands(resolved))
    back = vr.go_back_text(resolved, run.values["new_machine"], True)
    ui.info(f"Restored: {run.values['new_machine']} runs with {run.values['new_volume']}. "
            f"Kept: {resolved.machine.id} (stopped, autostart off) with {resolved.volume.id}. "
            f"To go back to it instead, in this order:\n{back}\nOnce the app is right, remove "
            f"the old pair with:\n{later}")


def _show(ui: UI, reads: Reads, steps: list[runbook.Step], dry_run: bool) -> dict:
    """Print the plan and what to know before it runs; the run's summary (its record)."""
    from ops import runbook
    from ops import volume_restore as vr
    from ops.ui import seconds_since

    r, snap = reads.resolved, reads.resolved.snapshot
    title = f"Restore volume {r.volume.id} of {r.app} from {snap.id} (made {reads.made})"
    ui.lines(runbook.render(runbook.dry_run_title(title, dry_run), steps, width=ui.width))
    ui.info(f"  Resolved while it runs: {vr.NEW_VOLUME} (the id `fly volumes create` prints), "
            f"{vr.NEW_MACHINE} (the clone's id). Kept, never destroyed: {r.machine.id} and "
            f"{r.volume.id}.")
    for stray in r.strays:
        ui.warn(f"volume {stray} is also named {r.name!r} and unattached: a later `fly deploy` "
                "that needs a volume may pick it; destroy it if it is not needed")
    age = seconds_since(snap.created_at, time.time())
    return {"app": r.app, "volume": r.volume.id, "machine": r.machine.id, "snapshot": snap.id,
            "snapshot_created_at": snap.created_at,
            "snapshot_age_seconds": None if age is None else max(round(age), 0),
            "size_gb": r.size_gb, "region": r.volume.region, "path": r.path,
            "autostart_before": r.autostart}


def _restore(settings, ui: UI, steps_runner: runbook.Runner, runner: fly.Fly,
             resolved: vr.Resolved, steps: list[runbook.Step], summary: dict) -> vr.Execution:
    """Run the plan; after the autostart guard was sent, a failure says how to go back."""
    from ops import emergency as em
    from ops import runbook
    from ops import volume_restore as vr

    app = settings.app
    run = vr.Execution(resolved, runner, settings.snapshot_timeout, settings.health_interval,
                       stop_timeout=settings.fly_timeout,
                       machines=lambda: runner.machines(app), values=steps_runner.values)

    def go_back():
        if run.guarded:
            clone = run.values.get("new_machine")
            back = runbook.fill(vr.go_back_text(resolved, clone, run.clone_tried),
                                run.values)  # <new_volume>, once `volumes create` said it
            ui.info(f"To go back to the old machine instead, in this order:\n{back}")
            steps_runner.record["go_back"] = [
                shlex.join(["fly", *argv])
                for argv in vr.go_back(resolved, clone, run.clone_tried)]

    steps_runner.on_failure = go_back
    steps_runner.start(**summary)
    steps_runner.record["new"] = run.values  # filled in as the steps learn them
    by_key = {step.key: step for step in steps}
    actions = {"create": run.create, "wait": run.wait, "guard": run.guard,
               "stop_old": run.stop_old, "clone": run.clone, "autostart": run.autostart}
    actions = {key: functools.partial(act, by_key[key]) for key, act in actions.items()
               if key in by_key}
    actions["verify"] = lambda: run.verify(by_key["verify"], runner.machines(app))
    actions["health"] = lambda: em.wait_healthy(settings.health, settings.health_timeout,
                                                settings.health_interval)
    steps_runner.run(runbook.bind(steps, actions))
    return run
