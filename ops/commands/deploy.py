"""Deploy to Fly.io behind a verified backup, a volume snapshot and a health gate."""

from __future__ import annotations

import contextlib
import os
import re
import sys

from ops import config
from ops.cli import confirm, guarded, on_signals, task
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated, stop_on_signals

JSON = "print the audit record (or the plan, with --dry-run) as JSON on stdout"
DRY_RUN = ("print the plan with the exact flyctl commands; run only the steps that read "
           "(the preflight's flyctl calls), change nothing")
LOCK_WAIT = ("seconds to wait for another deploy's lock (default: deploy.lock_wait, 0), and "
             "for the backup lock (default: backup.lock_wait)")
ROLLBACK_LOCK_WAIT = ("seconds to wait for another deploy's lock (default: deploy.lock_wait, "
                      "0); a rollback makes no backup, so it takes no backup lock")
HEALTH_TIMEOUT = "seconds the health gate waits for /health (default: health.timeout, 300)"


def passthrough() -> tuple[str, ...]:
    """Arguments after `--` go to `fly deploy` untouched (Invoke 2 does not expose them)."""
    return tuple(sys.argv[sys.argv.index("--") + 1:]) if "--" in sys.argv else ()


def run_plan(c, options_for, *, dry_run, json, lock_wait, health_timeout,
             allow_data_loss=()) -> None:
    from ops import deploy as deploys
    from ops.targets.fly import FlyTarget
    from ops.ui import UI

    settings = config.load(c.config, deploy_lock_wait=lock_wait, lock_wait=lock_wait,
                           health_timeout=health_timeout, allow_data_loss=allow_data_loss)
    ui = UI()
    options = options_for(settings)
    deploys.check_strategy_with_volume(options.strategy, options.extra, settings.fly_config,
                                       bool(settings.fly_toml().mount_source))
    deployment = deploys.Deployment(options, settings, lambda: FlyTarget(settings, ui), ui)
    if dry_run:
        steps = deployment.dry_run()
        ui.lines(deploys.render(steps, options.app, ui.width))
        for problem in deployment.problems:
            ui.warn(f"a real run would stop at {deployment.stop_step}: {problem}")
        if json:
            ui.emit({"dry_run": True, "outcome": "dry run", "steps": deploys.plan_as_data(steps),
                     "warnings": deployment.problems, "lock_waits": deployment.lock_waits})
        if deployment.problems:  # as a restore's dry run fails where its run would: a CI
            # gate on the dry run must not pass a deploy that stops (review-op s19)
            raise OpsError(f"dry run: a real run would stop at {deployment.stop_step} "
                           "(above); nothing was done",
                           deployment.stop_code or ExitCode.DEPLOY_ABORTED_PREFLIGHT)
        return
    try:
        with stop_on_signals():
            deployment.run()
    except Terminated as exc:
        started = deployment.deploy_started  # also when the stop came after the last step
        error = deployment.record.get("error", "")
        raise OpsError(f"terminated by {exc.name}"
                       + (f": {error}" if error.startswith("stopped while releasing")
                          else ": `fly deploy` had started, the release may be out; check "
                          f"`fly releases -a {options.app}`" if started
                          else "; nothing was deployed"), ExitCode.TERMINATED) from None
    finally:
        if deployment.record:
            ui.lines(deploys.summary(deployment.record, deployment.deploy_started, ui.width))
        if json and deployment.record:
            ui.emit(deploys.scrub(deployment.record, deployment.secrets))


@task(
    default=True,
    help={
        "skip_backup": "EMERGENCY: deploy without the backup and the snapshot (loud, recorded)",
        "dry_run": DRY_RUN,
        "image": "deploy this image instead of building (fly deploy --image)",
        "remote_only": "build on Fly's builders (default on in CI)",
        "local_only": "build with the local Docker instead (turns --remote-only off)",
        "strategy": "rolling (default) or immediate; bluegreen only without [mounts]",
        "wait_timeout": "how long fly deploy waits for health checks, e.g. 5m",
        "require_clean": "refuse to deploy from a git tree with uncommitted changes",
        "lock_wait": LOCK_WAIT,
        "health_timeout": HEALTH_TIMEOUT,
        "allow_data_loss": "TABLE may lose rows or be dropped by this deploy's migration "
                           "(repeatable; the data guard records it; also "
                           "deploy.allow_data_loss)",
        "json": JSON,
    },
    iterable=["allow_data_loss"],
)
@guarded
def deploy(c, skip_backup=False, dry_run=False, image=None, remote_only=False, local_only=False,
           strategy=None, wait_timeout=None, require_clean=False, lock_wait=None,
           health_timeout=None, allow_data_loss=None, json=False):
    """Backup (verified) → snapshot → fly deploy → health gate → data guard.

    Arguments after -- go to fly deploy."""
    from ops import deploy as deploys
    from ops import replica_hooks

    deploys.check_flags(strategy, wait_timeout, passthrough())
    if skip_backup and not dry_run:
        confirm("--skip-backup deploys WITHOUT a backup and a volume snapshot.",  # 'no',
                refused="--skip-backup was not confirmed; nothing was deployed",  # Ctrl-C/D,
                kind="deploy")  # SIGTERM, SIGHUP: one ending, recorded (review-break s21 #8)
    in_ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "t", "ok", "yes")

    def options_for(settings):
        return deploys.DeployOptions(
            app=settings.app, config=str(settings.fly_config), health_url=settings.health,
            workdir=deploys.working_dir(settings.fly_config),
            skip_backup=skip_backup, image=image,
            remote_only=(remote_only or in_ci) and not local_only, local_only=local_only,
            strategy=strategy,
            wait_timeout=wait_timeout, extra=passthrough(), require_clean=require_clean,
            replica=replica_hooks.configured(c.config, settings),
        )

    run_plan(c, options_for, dry_run=dry_run, json=json, lock_wait=lock_wait,
             health_timeout=health_timeout, allow_data_loss=allow_data_loss or ())


@task(
    help={
        "to": "release version to go back to (default: the newest complete release before "
              "the live one that no earlier rollback left)",
        "dry_run": DRY_RUN,
        "strategy": "fly deploy --strategy for the redeploy",
        "lock_wait": ROLLBACK_LOCK_WAIT,  # review-op s21 #11
        "health_timeout": HEALTH_TIMEOUT,
        "json": JSON,
    }
)
@guarded
def rollback(c, to=None, dry_run=False, strategy=None, lock_wait=None, health_timeout=None,
             json=False):
    """Redeploy an earlier release's image (never touches data), with the health gate."""
    from ops import deploy as deploys

    deploys.check_flags(strategy, None, ())
    version = _version(to)

    def options_for(settings):
        return deploys.DeployOptions(
            app=settings.app, config=str(settings.fly_config), health_url=settings.health,
            strategy=strategy, rollback_to=version or 0,  # 0: the previous release
        )

    run_plan(c, options_for, dry_run=dry_run, json=json, lock_wait=lock_wait,
             health_timeout=health_timeout)


def _version(text) -> int | None:
    """``12`` or ``v12``: a release number from 1 up (ASCII digits only)."""
    if text is None:
        return None
    match = re.fullmatch(r"v?([0-9]{1,9})", str(text).strip())
    if not match or int(match.group(1)) < 1:
        raise OpsError(f"--to must be a release version like 12 or v12 (from v1 up), "
                       f"got {text!r}", ExitCode.USAGE)
    return int(match.group(1))


@task(help={"yes": "remove the lock (without it: only say who holds it)"})
@guarded
def unlock(c, yes=False):
    """Remove a stale deploy lock from the machine, left by a deploy that was killed."""
    from ops.targets.fly import FlyTarget
    from ops.targets.fly.lock import NotALock
    from ops.ui import UI

    settings = config.load(c.config)
    ui = UI()
    app = FlyTarget(settings, ui).fly_app
    try:
        holder = app.unlock_deploy(remove=yes)
    except NotALock as exc:
        if not exc.removed:  # without --yes: what is there and what --yes would remove
            raise
        ui.info(f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        return
    if holder is None:
        ui.info(f"No deploy lock on the machine ({app.deploy_lock_path}).")
    elif yes:
        ui.info(f"Removed the deploy lock held by {holder}.")
    else:
        raise OpsError(f"the deploy lock is held by {holder}; if that deploy is not running, "
                       "run: invoke deploy.unlock --yes", ExitCode.LOCKED)


@task(
    help={
        "dry_run": "print the plan with every command and real names (the backup, the "
                   "image, the release); run only the reads",
        "yes": "go ahead without asking (required when not on a terminal)",
        "json": JSON,
        "deploy": "the deploy to undo: its release (v13) or its audit line's `when` "
                  "(default: the last deploy in the audit log)",
        "lock_wait": LOCK_WAIT,
    }
)
@guarded
@on_signals  # SIGTERM/SIGHUP anywhere: the audit line, the by-hand lines, exit 143
def undo(c, dry_run=False, yes=False, json=False, deploy=None, lock_wait=None):
    """Undo a deploy: stop writes, pre-deploy backup (with a safety backup) and old image back."""
    from ops import deploy as deploys
    from ops import emergency, fly, runbook
    from ops import undo as undos
    from ops.engine import file_lock
    from ops.targets.fly import FlyTarget
    from ops.ui import UI

    settings = config.load(c.config, deploy_lock_wait=lock_wait, lock_wait=lock_wait)
    emergency.refuse_unasked(yes, dry_run, undos.KIND)
    ui = UI()
    ui.redact = lambda text: runbook.scrub(text, fly.env_tokens())  # every line, dry run too
    runner = runbook.Runner(undos.KIND, ui, settings.audit_log)
    run = undos.Undo(settings, ui, FlyTarget(settings, ui), runner, deploy)
    with contextlib.ExitStack() as held:
        if not dry_run:
            runner.check_audit_log()
            wait = settings.deploy_lock_wait
            held.enter_context(file_lock(
                deploys.local_lock_path(settings, settings.app), wait,
                f"another deploy of {settings.app}"))
        waits = [deploys.local_lock_wait(settings, settings.app)] if dry_run else []
        runner.start(app=settings.app, deploy=f"v{run.chosen.release}",
                     backup=run.chosen.backup, image=run.chosen.image,
                     previous_release=run.chosen.previous)
        reads = run.reads()
        runner.run(reads, dry_run=True)
        if dry_run:  # then the machine's deploy lock, and the restore's locks there
            waits = undos.warned(ui, [*waits, *run.lock_waits()])
        steps, close = run.plan()
        title = (f"Undo deploy v{run.chosen.release} of {settings.app}: back to "
                 f"{run.chosen.backup} and v{run.chosen.previous}'s image {run.chosen.image}")
        shown = [s.filled(runner.values) for s in reads + steps + [close]]
        ui.lines(runbook.render(runbook.dry_run_title(title, dry_run), shown, width=ui.width))
        if dry_run:
            if json:
                ui.emit({"dry_run": True, "outcome": "dry run", "app": settings.app,
                         "deploy": f"v{run.chosen.release}", "backup": run.chosen.backup,
                         "image": run.chosen.image, "release": run.chosen.previous,
                         "written_since": runner.record.get("written_since", {}),
                         "lock_waits": waits,
                         "steps": runbook.plan_as_data(shown)})
            return
        emergency.confirm(ui, f"Undo deploy v{run.chosen.release} of {settings.app} (its "
                          "writes stop until the old release runs on the restored data)?",
                          yes=yes, kind=undos.KIND)
        runner.record["outcome"] = "running"
        try:
            runner.run(steps)
        finally:
            if json:
                ui.emit(runner.record)
    since = undos.since_words(undos.written_since(run.shape))
    safety = (runner.record.get("safety_backup") or {}).get("name")
    kept = (f"is kept in the restore's safety backup {safety} (never `latest`; retention "
            "keeps it)" if safety else "has no safety backup recorded (a live database "
            "failing its check is moved aside instead: see the restore step)")
    ui.info(f"{settings.app} runs v{run.chosen.previous}'s image on {run.chosen.backup}'s data; "
            f"what the live data held before ({since}) {kept}.")
