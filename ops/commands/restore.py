"""Put a backup back into the live database (local, or on Fly with --production)."""

from __future__ import annotations

from ops import config
from ops import restore as restores
from ops.cli import guarded, task
from ops.commands.backup import HOST, reject_flag_as_name
from ops.commands.positional import OptionalPositionalTask
from ops.errors import ExitCode, OpsError
from ops.targets.fly import FlyTarget
from ops.targets.ssh import SshTarget
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
        "production": "restore on the production machine on Fly.io, then restart it and wait "
                      "for /health",
        "host": HOST + " (no restart: the app sees the restored content through SQLite)",
        "from_": "with --production or --host: upload this local backup file and restore it",
        "yes": "do not ask for confirmation (required when there is no terminal)",
        "dry_run": "print the plan and change nothing (no flyctl call)",
        "busy_timeout": "seconds to wait for the app's write lock on the live database "
                        "(default 10)",
        "json": "print the audit record (or the plan, with --dry-run) as JSON on stdout",
        "app_stopped": "the app is stopped (locally or on --host): needed to restore over a "
                       "corrupt live database (moved aside, never deleted) or into a missing "
                       "one; on Fly, emergency.stop says so",
    },
)
@guarded
def database(c, which="latest", production=False, host=None, from_=None, yes=False,
             dry_run=False, busy_timeout=None, json=False, app_stopped=False):
    """Restore a backup into the live database: verify, safety backup, backup API, check."""
    which = parse_which(which, "restore")
    if production and host is not None:
        raise OpsError("--production (the Fly machine) and --host (an SSH host) name two "
                       "different targets: give one", ExitCode.USAGE)
    settings = config.load(c.config, host=host)
    host = "" if production else settings.ssh_host
    if from_ is not None and not (production or host):
        raise OpsError("--from restores a local file into production: add --production "
                       "(locally, copy the file into backup.dir and name it)", ExitCode.USAGE)
    if from_ is not None and which != "latest":
        raise OpsError("give either a backup name or --from PATH, not both", ExitCode.USAGE)
    timeout = seconds(busy_timeout, "--busy-timeout")
    options = restores.RestoreOptions(which=which, production=production, host=host,
                                      from_path=from_, app_stopped=bool(app_stopped),
                                      busy_timeout=10.0 if timeout is None else timeout)
    ui = UI(json_mode=json)
    remote = production or bool(host)
    if dry_run:
        steps = restores.plan(
            options,
            db=settings.db_remote_path if remote else str(settings.db_path),
            directory=settings.backup_remote_dir if remote else str(settings.backup_dir),
            app=settings.app if production else "",
            health_url=settings.health if production else "")
        ui.table("Restore plan (dry run: nothing runs)", ["step", "what", "commands"],
                 restores.render(steps))
        if json:
            ui.emit({"dry_run": True, "options": options.__dict__,
                     "steps": restores.plan_as_data(steps)})
        return
    target = None
    if production:
        target = FlyTarget(settings, ui)
    elif host:
        target = SshTarget(settings, ui, host)
    run = restores.Restore(options, settings, ui, target=target, yes=yes)
    try:
        run.run()
    finally:
        if host:
            target.close()
        if json and run.record:
            ui.emit(run.record)
