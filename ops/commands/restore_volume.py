"""`invoke restore.volume`: a lost volume back from a snapshot, on a clone of the machine."""

from __future__ import annotations

import shlex
import time

from ops import config, fly
from ops import emergency as em
from ops import volume_restore as vr
from ops.cli import guarded, task
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated
from ops.ui import UI, created_when, seconds_since, volume_gb


@task(help={
    "snapshot": "the volume snapshot to restore (vs_...), or `latest` (required)",
    "yes": "go ahead without asking (required when not on a terminal)",
    "dry_run": "print the plan with every flyctl command; change nothing",
    "json": "print the audit record (or the plan, with --dry-run) as JSON on stdout",
})
@guarded
@em.on_signals
def volume(c, snapshot=None, yes=False, dry_run=False, json=False):
    """New volume from a snapshot; old machine guarded, stopped and kept; a clone on it."""
    if not snapshot or not str(snapshot).strip():
        raise OpsError("--snapshot is required: a snapshot id (vs_...) or latest", ExitCode.USAGE)
    settings = config.load(c.config)
    ui = UI(json_mode=json)
    app = settings.app
    runner = fly.Fly.checked(settings, ui.warn)
    with ui.step(f"resolve the volume, its machine and snapshot {snapshot}") as shown:
        name = settings.fly_toml().mount_source
        volumes = runner.volumes(app)
        volume, machine = em.production(volumes, em.machines(runner, app), name, app)
        which = str(snapshot).strip()
        current = runner.snapshots(app, volume.id)
        earlier = [] if which == "latest" or any(s.id == which for s in current) else \
            runner.app_snapshots(app, fly.same_name(volumes, volume)[1:])
        resolved = vr.resolve(app, name, volume, machine, current, which, volumes, earlier)
        snap = resolved.snapshot
        made = created_when(snap.created_at, time.time())
        shown.detail = (f"{snap.id} of {made}  {volume.id} on {machine.id} ({machine.state}); "
                        f"{volume_gb(snap.volume_size)} volume"
                        + (f", a snapshot of the earlier volume {snap.volume}"
                           if snap.volume and snap.volume != volume.id else ""))
    steps = vr.plan(resolved, settings.health)
    title = f"Restore volume {volume.id} of {app} from {snap.id} (made {made})"
    ui.lines(em.render(f"{title}{' (dry run: nothing changes)' if dry_run else ''}:", steps,
                       width=ui.width).split("\n"))
    ui.info(f"  Resolved while it runs: {vr.NEW_VOLUME} (the id `fly volumes create` prints), "
            f"{vr.NEW_MACHINE} (the clone's id). Kept, never destroyed: {machine.id} and "
            f"{volume.id}.")
    for stray in resolved.strays:
        ui.warn(f"volume {stray} is also named {name!r} and unattached: a later `fly deploy` "
                "that needs a volume may pick it; destroy it if it is not needed")
    age = seconds_since(snap.created_at, time.time())
    age = None if age is None else max(round(age), 0)
    summary = {"app": app, "volume": volume.id, "machine": machine.id, "snapshot": snap.id,
               "snapshot_created_at": snap.created_at, "snapshot_age_seconds": age,
               "size_gb": resolved.size_gb, "region": volume.region, "path": resolved.path,
               "autostart_before": resolved.autostart}
    if dry_run:
        if json:
            ui.emit({"dry_run": True, **summary, "steps": em.plan_as_data(steps)})
        return
    em.confirm(ui, f"Restore {app}'s volume from {snap.id}, made {made}, onto a new machine "
               f"(the old machine {machine.id} is stopped, kept, and Fly's proxy may not "
               "start it)?",
               yes=yes)

    run = vr.Execution(resolved, runner, settings.snapshot_timeout, settings.health_interval,
                       stop_timeout=settings.fly_timeout,
                       machines=lambda: em.machines(runner, app))

    def go_back():
        """After the autostart guard was sent, a failure says how to go back, in order."""
        if run.guarded:
            clone = run.values.get("new_machine")
            back = vr.go_back_text(resolved, clone, run.clone_tried)
            ui.info(f"To go back to the old machine instead, in this order:\n{back}")
            steps_runner.record["go_back"] = [
                shlex.join(["fly", *argv])
                for argv in vr.go_back(resolved, clone, run.clone_tried)]

    steps_runner = em.Runner("restore.volume", app, runner, ui, settings.audit_log,
                             fill=lambda step: vr.filled(step, run.values), on_failure=go_back)
    steps_runner.start(**summary)
    steps_runner.record["new"] = run.values  # filled in as the steps learn them
    by_key = {step.key: step for step in steps}

    def act(key):
        return lambda: getattr(run, key)(vr.filled(by_key[key], run.values))

    actions = {key: act(key) for key in ("create", "wait", "guard", "stop_old", "clone",
                                         "autostart")}
    actions["verify"] = lambda: run.verify(by_key["verify"], em.machines(runner, app))
    actions["health"] = lambda: em.wait_healthy(settings.health, settings.health_timeout,
                                                settings.health_interval)
    try:
        steps_runner.run(steps, actions)
    except Terminated as exc:
        raise OpsError(f"terminated by {exc.name} during restore.volume: the lines above say "
                       "how to finish or go back", ExitCode.TERMINATED) from None
    finally:
        if json and steps_runner.record:
            ui.emit(steps_runner.record)
    later = "\n".join(f"  {shlex.join(['fly', *argv])}" for argv in vr.cleanup_commands(resolved))
    back = vr.go_back_text(resolved, run.values["new_machine"], True)
    ui.info(f"Restored: {run.values['new_machine']} runs with {run.values['new_volume']}. "
            f"Kept: {machine.id} (stopped, autostart off) with {volume.id}. To go back to it "
            f"instead, in this order:\n{back}\nOnce the app is right, remove the old pair "
            f"with:\n{later}")
