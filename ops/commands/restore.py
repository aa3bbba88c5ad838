"""Put a backup back into the live database (local, or on Fly with --production)."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ops import cli, config
from ops.cli import guarded, task
from ops.commands import replica as replicas
from ops.commands.backup import BACKUP_DIR, HOST, reject_flag_as_name
from ops.commands.positional import OptionalPositionalTask
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated, stop_on_signals

if TYPE_CHECKING:  # annotations only: the modules are imported by the tasks that run them
    from ops.ui import UI


def parse_which(which, task_name: str) -> str:
    """``latest`` (the default) or one backup's file name; never ``all`` or a path."""
    which = "latest" if which is None else str(which)
    reject_flag_as_name(which, task_name)
    if which == "all":
        raise OpsError("name one backup (or latest), not all", ExitCode.USAGE)
    return which


def seconds(value, what: str) -> float | None:
    return None if value is None else config.parse_duration(value, what)


@task(
    klass=OptionalPositionalTask,
    default=True,
    positional=["which"],
    help={
        "which": "latest (the default) or a backup's file name in backup.dir "
                 "(backup.remote_dir with --production)",
        "production": "restore on the production machine on Fly.io, then, once the copy "
                      "is proven, restart it and wait for /health",
        "host": HOST + " (no restart: the app sees the restored content through SQLite)",
        "from_": "with --production or --host: upload this local backup file and restore it",
        "yes": "do not ask for confirmation (required when there is no terminal)",
        "dry_run": "print the plan and change nothing: it runs only the steps that read "
                   "(which backup latest is, and its verify where the restore runs; it "
                   "takes no lock, it looks at them), so a backup that does not exist or "
                   "fails its check, or a lock another run holds, fails it as it fails the "
                   "restore (exit 4 for a held lock)",
        "busy_timeout": "seconds to wait for the app's write lock on the live database "
                        "(default 10)",
        "json": "print the audit record (or the plan, with --dry-run) as JSON on stdout",
        "lock_wait": "seconds to wait if another restore or backup holds its lock "
                     "(default: backup.lock_wait, 0)",
        "app_stopped": "the app is stopped (locally or on --host): needed to restore over a "
                       "corrupt live database (moved aside, never deleted) or into a missing "
                       "one; on Fly, emergency.stop says so",
        "other_source": "restore a backup recorded as another database's (backup --db OTHER, "
                        "a download from production or a host) over the live database; "
                        "without it that is refused",
        "from_replica": "restore from the Litestream replica: its newest point (or as of "
                        "--timestamp), checked and kept as a backup, then restored like one",
        "timestamp": "with --from-replica: the state as of this time (ISO, UTC when no "
                     "offset); it lands at or before it",
        "backup_dir": BACKUP_DIR,
    },
)
@guarded
def database(c, which="latest", production=False, host=None, from_=None, yes=False,
             dry_run=False, busy_timeout=None, json=False, lock_wait=None, app_stopped=False,
             other_source=False, from_replica=False, timestamp=None, backup_dir=None):
    """Restore a backup into the live database: verify, safety backup, backup API, check."""
    from ops import restore as restores
    from ops.targets.chosen import target_for

    which = parse_which(which, "restore")
    if production and host is not None:
        raise OpsError("--production (the Fly machine) and --host (an SSH host) name two "
                       "different targets: give one", ExitCode.USAGE)
    settings = config.load(c.config, host=host, lock_wait=lock_wait, dir=backup_dir)
    host = "" if production else settings.ssh_host
    seconds(busy_timeout, "--busy-timeout")  # refused before a replica is restored
    run = functools.partial(restore_now, settings=settings, production=production, host=host,
                            yes=yes, dry_run=dry_run, busy_timeout=busy_timeout, json=json,
                            app_stopped=app_stopped, other_source=other_source)
    if from_replica or timestamp is not None:  # docs/replica.md: the file becomes a backup
        if not from_replica:
            raise OpsError("--timestamp is for --from-replica", ExitCode.USAGE)
        replicas.from_replica(c, which, from_, timestamp, run, backup_dir=settings.backup_dir,
                              dry_run=dry_run, json=json,
                              unasked=None if dry_run else functools.partial(
                                  cli.refuse_unasked, yes, restores.WITHOUT_TERMINAL,
                                  "restore"),
                              remote=settings.db_remote_path if production or host else None,
                              target=functools.partial(target_for, settings,
                                                       production=production)
                              if production or host else None)
        return
    run(which=which, from_=from_)


def restore_now(*, which, from_, settings, production, host, yes, dry_run, busy_timeout,
                json, app_stopped, other_source, checked=False, replica=None,
                target=None) -> None:
    """The restore proper, of a backup name or (``from_``) an uploaded file. ``checked``:
    the file's check ran in this run a moment ago (--from-replica): its SHA-256 against
    its record is verified, not integrity_check again. ``replica``: --from-replica's plan,
    shown before the restore's in a dry run (its report in a real run: the record's
    ``from_replica``). ``target``: the server's, already opened
    (--from-replica read its names); closed here like one opened here."""
    from ops import restore as restores
    from ops.targets.chosen import target_for
    from ops.ui import UI

    if from_ is not None and not (production or host):
        raise OpsError("--from uploads a local file and restores it on a server: add "
                       "--production (the Fly machine) or --host HOST (an SSH host); locally, "
                       "copy the file into backup.dir and name it", ExitCode.USAGE)
    if from_ is not None and which != "latest":
        raise OpsError("give either a backup name or --from PATH, not both", ExitCode.USAGE)
    timeout = seconds(busy_timeout, "--busy-timeout")
    options = restores.RestoreOptions(which=which, production=production, host=host,
                                      from_path=from_, app_stopped=bool(app_stopped),
                                      other_source=bool(other_source), checked=checked,
                                      from_replica=replica,
                                      busy_timeout=10.0 if timeout is None else timeout)
    ui = UI()
    if target is None:  # the one place a restore's target is chosen (a folder here too)
        target = target_for(settings, ui, production=production)
    if dry_run:
        try:
            dry_run_plan(options, settings, ui, target, json, replica)
        finally:
            if host:
                target.close()
        return
    run = restores.Restore(options, settings, ui, target=target, yes=yes)
    try:
        with stop_on_signals():  # SIGTERM/SIGHUP unwind: audit line, "finish by hand" lines
            run.run()
    except Terminated as exc:
        done = run.record.get("outcome") == "ok"  # the live database holds the backup
        copied = "restore" in [step["step"] for step in run.record.get("steps", [])] \
            and run.record.get("holds") != "before" \
            and run.record.get("copied") is not False  # the copy never committed or ran
        proven = (run.record.get("proof") or {}).get("ok")  # its proof step ran
        raise OpsError(f"terminated by {exc.name}; " + (
            "the restore itself was done and proven (see above)" if done and copied and proven
            else "the live database holds the backup's content (see above)" if done and copied
            else "see above for what to finish by hand" if copied
            else "the live database was not changed by this run (see above)"),
            ExitCode.TERMINATED) from None
    finally:
        if host:
            target.close()
        if json and run.record:
            ui.emit(run.record)


def local_warnings(options, settings, ui: UI, replica) -> tuple[str, str | None]:
    """A local dry run's live database state, and what it says of it before its steps:
    the verify step refuses what the run refuses first (``Reads._verify``), so this
    says it only where the run goes on (--app-stopped), or where the verify cannot run
    (the replica's file is not written in a dry run)."""
    from ops import engine
    from ops import restore as restores
    from ops.engine import EngineError

    warning = None
    try:
        state, problem = engine.live_state(settings.db_path)
    except EngineError as exc:
        if exc.kind == "linked":  # refused by the run before anything: the dry run's Error
            raise
        state, problem = "ok", ""
        warning = cli.one_line(exc)
    refused = replica is None and state != "ok" and not options.app_stopped
    warning = warning or (None if refused else restores.live_warning(
        settings.db_path, state, problem, options))
    if warning:
        ui.warn(warning)
    folder = Path(settings.backup_dir)
    if replica is not None and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        ui.warn(f"{engine.NOT_WRITABLE.format(folder=folder)}: the real run will refuse "
                f"(exit 2) before changing anything; {engine.NOT_WRITABLE_FIX}")
    return state, warning


def dry_run_plan(options, settings, ui: UI, target, json: bool, replica=None) -> None:
    """The plan, after its read-only steps ran as the run runs them (``runbook``'s dry
    run): the backup ``latest`` really is (never a safety backup, one dated ahead or
    another database's; issue 16 #2), the machine; a backup that does not exist fails the
    dry run as it fails the run (issue 22)."""
    from ops import restore as restores
    from ops import runbook

    remote = restores.remote(options)
    if remote:  # refused before anything, as the run's first step refuses them (the
        # replica's file is not written in a dry run: it cannot be missing)
        restores.refuse_remote_options(options, written=replica is None)
    state, warning = ("ok", None) if remote else local_warnings(options, settings, ui, replica)

    def plan(which: str | None) -> list:
        return restores.plan_for(
            options if which is None else dataclasses.replace(options, which=which),
            settings, remote=remote, live_state=state)

    found: dict = {}
    runner = runbook.Runner("restore", ui, Path(settings.audit_log))  # checked, not written
    reads = restores.reads(options, settings, ui, target, found, runner.learn)
    steps = runbook.bind(plan(None), reads)
    if replica is not None:  # the file is the replica's, not written yet:
        if not remote:  # a dry run cannot verify it (review-op #7)
            found["backup"] = options.which
        steps = [dataclasses.replace(step, reads_only=False) if step.key == "verify" else step
                 for step in steps]
    runner.run(steps, dry_run=True)
    chosen = found.get("backup")
    if options.which == "latest" and chosen and not options.from_path:
        ui.info(f"latest is {chosen}")
    if remote and (warning := found.get("warning")):  # found by its choose step, as the
        ui.warn(warning)  # run's: the real run refuses before its question (review-op s19 #2)
    for line in found.get("lock_waits", ()):  # a held lock the run would wait for (one it
        ui.warn(line)  # would refuse at once failed the dry run with the run's exit 4)
    steps = plan(chosen)
    if found.get("machine"):  # the dry run resolved the machine: the plan names it
        steps = restores.filled(steps, found["machine"])
    if found.get("stopped"):  # emergency-stopped: the run skips these (Restore._settle)
        steps = [dataclasses.replace(step, skipped="emergency-stopped")
                 if step.key in ("restart", "health") else step for step in steps]
    if replica is not None:  # the replica phase is the plan's first step
        steps = [replicas.replica_step(replica, settings.check), *steps]
    ui.lines(restores.render(steps, ui.width))
    if json:
        ui.emit({"dry_run": True, "outcome": "dry run", "options": options.__dict__,
                 "backup": chosen,
                 **({"from_replica": replica, "backup": Path(replica["output"]).name}
                    if replica is not None else {}),
                 **({"warning": warning, "live_state": state} if not remote else {}),
                 "lock_waits": list(found.get("lock_waits", ())),
                 "steps": restores.plan_as_data(steps)})
