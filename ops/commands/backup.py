"""Make, check, list and prune verified SQLite backups (local, or on Fly with --production)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import shlex
import subprocess
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from invoke.exceptions import Exit

from ops import config
from ops.cli import guarded, invoke_command, on_signals, task
from ops.commands.positional import OptionalPositionalTask
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated

if TYPE_CHECKING:  # annotations only: the modules are imported by the tasks that run them
    from ops import runbook
    from ops.ui import UI

PRODUCTION = "run against the production machine on Fly.io (over fly ssh) instead of locally"
JSON = "print one JSON document on stdout (human output stays on stderr)"
KEEP = "how many backups retention keeps (default: backup.keep, 10)"
LOCK_WAIT = "seconds to wait if another run holds the backup lock (default: backup.lock_wait, 0)"
HOST = ("run against this SSH host, [user@]host[:port] (default: ssh.host); its database "
        "and backups are at db.remote_path and backup.remote_dir")
BACKUP_DIR = ("this computer's backup folder for this run (default: backup.dir); a flag "
              "outranks a -f file's backup.dir, INVOKE_BACKUP_DIR does not")

_opened: list = []  # targets this task run opened, closed when it ends


def open_target(c, *, production: bool = False, host: str | None = None, json: bool = False,
                **flags):
    """Settings, the chosen target and the UI for one task run.

    ``--production`` is the Fly machine, ``--host`` (else ``ssh.host``) an SSH host,
    neither this computer. Both flags is a usage error; ``--production`` beats a
    configured ``ssh.host`` (flags beat config).
    """
    from ops import backups
    from ops.targets.chosen import target_for
    from ops.targets.local import LocalTarget
    from ops.ui import UI

    if production and host is not None:
        raise OpsError("--production (the Fly machine) and --host (an SSH host) name two "
                       "different targets: give one", ExitCode.USAGE)
    settings = config.load(c.config, host=host, **flags)
    ui = UI()
    if production or settings.ssh_host:
        target = target_for(settings, ui, production=production)
        if not production:
            _opened.append(target)
        return settings, target, ui
    if flags.get("db") is not None and not backups.same_database(
            settings.db_path, config.load(c.config).db_path):  # --db OTHER: its own folder
        settings = dataclasses.replace(settings, backup_dir=backups.other_database_folder(
            settings.backup_dir, settings.db_path))
    return settings, LocalTarget(settings, ui), ui


def closes_targets(body):
    """One connection per task run: whatever the body opened is closed when it ends."""

    @functools.wraps(body)
    def run(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        finally:
            while _opened:
                _opened.pop().close()

    return run


@task(
    default=True,
    help={
        "production": PRODUCTION,
        "host": HOST,
        "keep": KEEP,
        "quick": "verify with PRAGMA quick_check instead of the full integrity_check",
        "dry_run": "print what would be done and do nothing",
        "lock_wait": "seconds to wait if another backup holds the lock (default 0: fail at once)",
        "timeout": "seconds the copy may take before it is abandoned (default: no limit)",
        "json": JSON,
        "db": "the local database to back up (default: db.path, data/steps.db)",
        "backup_dir": BACKUP_DIR,
    },
)
@guarded
@closes_targets
def create(c, production=False, host=None, keep=None, quick=False, dry_run=False,
           lock_wait=None, timeout=None, json=False, db=None, backup_dir=None):
    """Make a verified backup, then apply retention (invoke backup)."""
    from ops import backups
    from ops.targets.local import SOURCE_FOLDERS, LocalTarget

    settings, target, ui = open_target(
        c, production=production, host=host, json=json, keep=keep, quick=quick,
        lock_wait=lock_wait, timeout=timeout, db=db, dir=backup_dir,
    )
    if not (production or settings.ssh_host):
        require_database(settings.db_path)
    if dry_run:  # the backup lock first, as the run meets it (review-op #3)
        waits = backup_lock_waits(target, ui, live=True)
        plan = [
            f"back up {target.describe()} into {target.dir} "
            f"({settings.check}_check, SHA-256 recorded)",
            f"then keep the newest {settings.keep} backups there",
        ]
        for line in plan:
            ui.info(f"would {line}")
        if json:
            ui.emit({"dry_run": True, "outcome": "dry run", "plan": plan, "lock_waits": waits})
        return
    result = backups.make_backup(target, ui, settings.keep)
    decisions = backups.cleanup(target, ui, settings.keep, made=result["name"])
    if db is not None and isinstance(target, LocalTarget) and \
            SOURCE_FOLDERS.fullmatch(target.dir.name):  # --db OTHER: say where it went
        ui.info(f"Backups of {settings.db_path} go to their own folder {target.dir}; list "
                f"them with `invoke backup.list --backup-dir {shlex.quote(str(target.dir))}`")
    if json:
        ui.emit({"backup": result, "retention": [asdict(d) for d in decisions]})


def restorable_there(decided: dict, ui, result: dict) -> None:
    """A drill of the machine's backup also asks the machine whether a restore can run
    there (``machine.check``, the plan's ``machine`` step: ``decided``): a backup nobody
    can restore in place is a failed drill."""
    result["machine"] = decided
    if "restore" in decided["cannot"]:
        result["restore_cannot_run"] = decided["cannot"]["restore"]
        for line in decided["fixes"]:
            ui.info(f"fix: {line}")


def require_database(path) -> None:
    """A fresh clone has no database: say where the path comes from and what to run."""
    if not path.exists():
        raise OpsError(
            f"database not found: {path} (set db.path or INVOKE_DB_PATH, or pass --db PATH; "
            f"to try the tool on a sample database run: {invoke_command()} demo)",
            ExitCode.NOT_FOUND)


@task(
    help={
        "keep": KEEP,
        "dry_run": "show what would be removed and remove nothing",
        "production": PRODUCTION,
        "host": HOST,
        "json": JSON,
        "lock_wait": LOCK_WAIT,
        "backup_dir": BACKUP_DIR,
    }
)
@guarded
@closes_targets
def cleanup(c, keep=None, dry_run=False, production=False, host=None, json=False,
            lock_wait=None, backup_dir=None):
    """Delete all but the newest N backups, and what interrupted backups left behind.

    Never the newest backup that passes verification, never the one a run just made."""
    from ops import backups

    settings, target, ui = open_target(c, production=production, host=host, json=json,
                                       keep=keep, lock_wait=lock_wait, dir=backup_dir)
    target.folder()  # a missing (mistyped) folder is exit 3, as in list and status
    leftovers = sweep_leftovers(target, ui, dry_run)
    decisions = backups.cleanup(target, ui, settings.keep, dry_run=dry_run)
    report_odd(target, ui)  # from retention's listing
    waits = cleanup_lock_waits(target, ui, leftovers, decisions) if dry_run else []
    if json:
        ui.emit({"dry_run": dry_run, "keep": settings.keep,
                 "decisions": [asdict(d) | {"action": d.action} for d in decisions],
                 "leftovers": [asdict(item) for item in leftovers],
                 **({"lock_waits": waits, "outcome": "dry run"} if dry_run else {})})
    else:
        ui.table(
            f"Retention: keep {settings.keep}" + (" (dry run)" if dry_run else ""),
            ["backup", "action", "reason"],
            [[d.name, d.action if not dry_run or d.keep else "would remove", d.reason]
             for d in decisions],
        )


def cleanup_lock_waits(target, ui: UI, leftovers: list, decisions: list) -> list[str]:
    """A cleanup's dry run at the backup lock its run takes to remove something (none
    when nothing would go): the run's refusal (exit 4) when it would not wait, else a
    warning of how long it would wait; nothing taken (``Target.lock_waits``)."""
    from ops import retention

    if not leftovers and not retention.to_remove(decisions):
        return []
    return backup_lock_waits(target, ui)


def backup_lock_waits(target, ui: UI, live: bool = False) -> list[str]:
    """A dry run at the backup lock its run takes (a backup's, a cleanup's): the run's
    refusal (exit 4) when it would not wait, else a warning of how long it would wait
    (returned, for --json's ``lock_waits``); nothing taken (``Target.lock_waits``).
    ``live`` (a backup's): a live database with another name first, the run's refusal."""
    from ops.engine import EngineError

    try:
        waits = target.lock_waits(restore=False, live=live)
    except EngineError as exc:
        raise OpsError.from_engine(exc) from None
    for line in waits:
        ui.warn(line)
    return waits


def sweep_leftovers(target, ui: UI, dry_run: bool) -> list:
    """What interrupted backups left (each as large as the copy was), removed under the
    folder's lock unless ``dry_run``; returned as they were found."""
    from ops.ui import human_bytes

    found = target.leftovers()
    if found:
        total = human_bytes(sum(item.size for item in found))
        with ui.step(f"leftovers of {leftovers_of(found)}{' (dry run)' if dry_run else ''}") \
                as step:
            if not dry_run:
                target.remove_leftovers()
            step.detail = (f"{'would remove' if dry_run else 'removed'} {len(found)} ({total}): "
                           + ", ".join(item.name for item in found[:3])
                           + (" …" if len(found) > 3 else ""))
    return found


def report_leftovers(target, ui: UI) -> None:
    from ops.ui import human_bytes

    leftovers = target.leftovers()
    if leftovers:
        total = human_bytes(sum(item.size for item in leftovers))
        what = leftovers_of(leftovers).replace("interrupted backups", "an interrupted (or "
                                                "running) backup")
        ui.warn(f"{len(leftovers)} temporary file(s) of {what} take {total}: "
                + ", ".join(f"{item.name} ({human_bytes(item.size)})" for item in leftovers[:3])
                + (" …" if len(leftovers) > 3 else "")
                + f"; `invoke backup.cleanup{target.flag}` removes them")  # review-op #5


def report_odd(target, ui: UI) -> None:
    """What the target's last listing skipped as no backup: retention never removes it,
    so a symlink there can outlive the backup it named (s28 review-break #1)."""
    odd = getattr(target, "odd_entries", [])
    if odd:
        ui.warn(f"{len(odd)} entry(ies) named like a backup but not a regular file (a symlink, "
                f"FIFO or folder), never used as one: {', '.join(odd[:3])}"
                + (" …" if len(odd) > 3 else "") + "; look at it and remove it by hand")


def leftovers_of(found: list) -> str:
    """What left these temporary files: a backup's copy (``.tmp-…``) or a ``restore
    --from``'s staged upload (``.upload-…``, ``engine.STAGED_NAME``), in words that are
    true for the ones found (review-op #5: an upload was called a backup's)."""
    from ops.engine import STAGED_NAME

    staged = sum(1 for item in found if STAGED_NAME.fullmatch(item.name))
    if not staged:
        return "interrupted backups"
    return "interrupted restore --from uploads" + (
        " and backups" if staged < len(found) else "")


@task(name="list", help={"production": PRODUCTION, "host": HOST, "json": JSON,
                         "backup_dir": BACKUP_DIR})
@guarded
@closes_targets
def list_(c, production=False, host=None, json=False, backup_dir=None):
    """List backups, newest first, with size, age and recorded checksum.

    Flags names dated in the future and leftovers of interrupted backups."""
    from ops.engine import in_future, latest_reason, parse_iso
    from ops.ui import human_age, human_bytes

    settings, target, ui = open_target(c, production=production, host=host, json=json,
                                       dir=backup_dir)
    folder = target.folder()
    found = list(reversed(target.list()))
    now = dt.datetime.now(dt.UTC)
    future = {item.name for item in found if in_future(item.created, now)}
    report_leftovers(target, ui)
    report_odd(target, ui)
    if future:
        ui.warn(f"{len(future)} backup(s) dated in the future (a clock that ran ahead, or not "
                "backups at all): never counted as the newest, never removed by retention")
    source = getattr(target, "source", None)
    if json:
        ui.emit([asdict(item) | {"future": item.name in future,
                                 "latest_may_name": latest_reason(item, now, source) is None}
                 for item in found])
        return
    if not found:
        ui.info(f"No backups in {folder}.")
        other_folders(target, ui)
        return
    kinds = [what_it_is(item, source) for item in found]
    ui.table(  # 80 columns: the name already says when (UTC), so no `created` column
        f"Backups in {folder} ({len(found)})" + (  # which engine listed them, as every task says
            f", listed by {target.listed_by}" if getattr(target, "listed_by", None) else ""),
        ["name", "age", "size", "recorded sha256", "sidecars"] + (["what"] if any(kinds) else []),
        [
            [
                item.name,
                "future" if item.name in future
                else human_age((now - parse_iso(item.created)).total_seconds()),
                human_bytes(item.size),
                (item.sha256 or "no record")[:12],
                sidecars(item),
            ] + ([kind] if any(kinds) else [])
            for item, kind in zip(found, kinds, strict=True)
        ],
    )
    for line in legend(found, kinds, source, target.flag):
        ui.info(line)
    other_folders(target, ui)


def legend(found, kinds: list[str], source: str | None, flag: str) -> list[str]:
    """What the listing's marks mean, for the rows that have them (pure): each safety
    backup's restore and its undo, ``other db`` and ``no record``."""
    from ops import engine

    lines = []
    for item in found:
        if item.kind == "safety":
            made = item.restore or {}
            # a record's words shown only when they look right: a newline or a backtick
            # there broke the line's `command` across lines (s27 review-break4 #3)
            backup, when = str(made.get("backup") or ""), str(made.get("when") or "")
            backup = backup if engine.parse_created(backup) else "?"
            when = when if re.fullmatch(engine.UPLOADED_TIME, when) else "?"
            lines.append(f"safety: {item.name} is the copy a restore made of the live database "
                         f"before it put back {backup} (at {when}); never latest. To undo "
                         f"that restore: `invoke restore {item.name}{flag} --yes`")
    if "upload" in kinds:  # review-break s20 #1: the mark had no line
        lines.append("upload: a file `invoke restore --from FILE" + flag + "` sent here for its "
                     "restore; never latest. Kept 1h from its upload for that restore; after "
                     "that, unless a restore of it began (a safety backup names it), "
                     f"`invoke backup.cleanup{flag}` removes it")
    if "other db" in kinds:  # what `latest` skips, and why (review-op s19: no legend)
        lines.append(f"other db: made from another database than {source or 'db.path'} "
                     "(its record's source); never latest here, restore it by its name")
    if any(not item.sha256 and not item.verified for item in found):
        lines.append("no record: made without .sha256/.json sidecars (the old npm scripts); "
                     "verify, drill and restore refuse them as unverifiable until adopted: "
                     f"`invoke backup.adopt NAME{flag}` (or `all`) checks them and "
                     "records them")
    return lines


def other_folders(target, ui: UI) -> list[tuple[str, int]]:
    """Say which sub-folders of this computer's backup.dir hold other sources' backups
    (``backup --db OTHER``, downloads): they are never listed, counted or latest here."""
    from ops.targets.local import LocalTarget

    found = target.source_folders() if isinstance(target, LocalTarget) else []
    if found:
        ui.info(f"Other sources' backups are in sub-folders of {target.dir}: "
                + ", ".join(f"{name} ({count})" for name, count in found)
                + f"; see them with `invoke backup.list --backup-dir "
                  f"{shlex.quote(str(target.dir))}/NAME`")
    return found


def what_it_is(item, source: str | None) -> str:
    """The listing's `what` column: empty for an ordinary backup of this database."""
    from ops.engine import same_source

    if item.kind in ("safety", "adopted", "upload"):
        return item.kind
    if item.kind == "unrecorded":  # the sidecars column says "no record" already
        return ""
    if item.kind != "backup":
        return f"kind {item.kind}"
    if not same_source(item.source, source):
        return "other db"
    return ""


def sidecars(item) -> str:
    """What the listing knows of a backup's records without reading the whole file:
    its .json and .sha256 agree with each other and with the file's size and header."""
    if item.verified:
        return "agree"
    return "none" if not item.sha256 else "disagree"


def verdict_line(item: dict) -> str:
    """One verified backup: its checksum and SQLite's check, each under its own name."""
    problems = item.get("problems") or []
    sha = [p for p in problems if p.startswith("SHA-256 mismatch")]
    unrecorded = [p for p in problems if p.startswith("unverifiable")]
    other = [p for p in problems if p not in sha and p not in unrecorded]
    checksum = ("checksum FAILED" if sha else "checksum: no record" if unrecorded
                else "checksum ok")
    check = f"{item['check']}_check " + ("FAILED" if other else "ok")
    why = "; ".join((sha + other)[:2])
    return f"  {item['name']}  {checksum}  {check}" + (f": {why}" if why else "")


def reject_flag_as_name(which: str, task_name: str) -> None:
    """Invoke 2 hands `--help` after a required positional to the task (pyinvoke/invoke#982):
    show the help it meant, by asking Invoke the way that works, and refuse other flags."""
    if which in ("-h", "--help"):
        args = [arg for arg in sys.argv[1:] if arg not in ("-h", "--help")]
        at = args.index(task_name) if task_name in args else len(args)
        shown = subprocess.run([sys.executable, "-m", "invoke", *args[:at], "--help",
                                *args[at:at + 1]], check=False)
        raise Exit(code=shown.returncode)
    if which.startswith("-"):
        raise OpsError(f"{which!r} is not a backup name; for help run: invoke --help {task_name}",
                       ExitCode.USAGE)


@task(
    positional=["which"],
    help={
        "which": "latest, all, or a backup's file name (required)",
        "quick": "use PRAGMA quick_check instead of integrity_check",
        "production": PRODUCTION,
        "host": HOST,
        "json": JSON,
        "backup_dir": BACKUP_DIR,
    },
)
@guarded
@closes_targets
def verify(c, which, quick=False, production=False, host=None, json=False, backup_dir=None):
    """Check backups: recorded SHA-256 and SQLite's integrity check."""
    from ops import backups

    reject_flag_as_name(which, "backup.verify")
    settings, target, ui = open_target(c, production=production, host=host, json=json,
                                       quick=quick, dir=backup_dir)
    folder = target.folder()  # the subject is the folder, not the database (review-ox 13)
    shown = which if which.isprintable() else repr(which)
    with ui.step(f"verify {shown} in {folder}") as step:
        results = target.verify(which, on_result=lambda item: ui.info(verdict_line(item)))
        engines = sorted({item.get("strategy") or item.get("where") or "engine"
                          for item in results})
        step.detail = (f"{sum(1 for item in results if item['ok'])} of {len(results)} ok  "
                       f"[{', '.join(engines)}]")
        if json:
            ui.emit(results)
        backups.require_ok(results, target.flag)


@task(
    positional=["which"],
    help={
        "which": "all (every backup without records) or one backup's file name (required)",
        "production": PRODUCTION,
        "host": HOST,
        "dry_run": "check and say what would be adopted; write nothing",
        "json": JSON,
        "backup_dir": BACKUP_DIR,
    },
)
@guarded
@closes_targets
def adopt(c, which, production=False, host=None, dry_run=False, json=False, backup_dir=None):
    """Adopt old backups made without records (the npm scripts').

    Each is integrity-checked first, then given records marked as adopted, with when
    and by whom."""
    from ops import audit

    reject_flag_as_name(which, "backup.adopt")
    settings, target, ui = open_target(c, production=production, host=host, json=json,
                                       dir=backup_dir)
    folder = target.folder()  # the subject is the folder, not the database (issue 20 #8)
    shown = which if which.isprintable() else repr(which)
    dry = " (dry run)" if dry_run else ""
    with ui.step(f"adopt {shown} in {folder}{dry}") as step:
        results = target.adopt(which, by=audit.who(), dry_run=dry_run)
        good = sum(1 for item in results if item.get("ok"))
        step.detail = (f"{'would adopt' if dry_run else 'adopted'} {good} of {len(results)}"
                       if results else "nothing to adopt: every backup has its records")
        if good < len(results):
            step.outcome, step.reason = "failed", f"{len(results) - good} not adopted"
    for item in results:
        verdict = ("would adopt" if dry_run else "adopted") if item.get("ok") else "NOT adopted"
        ui.info(f"  {item['name']}  {verdict}" + (
            f"  sha256 {str(item.get('sha256'))[:12]}  integrity_check ok" if item.get("ok")
            else f": {item.get('problem')}"))
    if json:
        ui.emit({"dry_run": dry_run, "adopted": results,
                 **({"outcome": "dry run"} if dry_run else {})})
    bad = [item for item in results if not item.get("ok")]
    if bad:
        raise OpsError(f"{len(bad)} of {len(results)} backups not adopted; {bad[0]['name']}: "
                       f"{bad[0].get('problem')}", ExitCode.VERIFY_FAILED)


@task(
    help={
        "max_age": "exit 7 when the newest backup is older than this (e.g. 26h, 2d, 90m; "
                   "a bare number is seconds)",
        "production": PRODUCTION,
        "host": HOST,
        "json": JSON,
        "backup_dir": BACKUP_DIR,
    }
)
@guarded
@closes_targets
def status(c, max_age=None, production=False, host=None, json=False, backup_dir=None):
    """Backup status in the shape /health reports; alerts with --max-age."""
    from ops import backups
    from ops.ui import human_age

    limit = config.parse_duration(max_age, "--max-age") if max_age is not None else None
    settings, target, ui = open_target(c, production=production, host=host, json=json,
                                       dir=backup_dir)
    try:
        folder = target.folder()
    except OpsError as exc:
        # an alert pages on 7, "no backup": a folder that vanished or was never mounted
        # holds none (without --max-age it is most often a mistyped path: 3)
        if exc.code != ExitCode.NOT_FOUND or limit is None:
            raise
        raise OpsError(f"backup status: there are no backups ({exc})", ExitCode.STALE) from None
    report = target.status()
    if report.get("futureDated"):
        ui.warn(f"{len(report['futureDated'])} backup(s) dated in the future are not trusted "
                f"as the newest: {', '.join(report['futureDated'][:3])}")
    folders = other_folders(target, ui)
    if json:
        ui.emit(report | ({"sourceFolders": dict(folders)} if folders else {}))
    else:
        latest = report.get("latest")
        if latest:
            ui.info(
                f"{report['count']} backup{'s' if report['count'] != 1 else ''}; latest "
                f"{latest['name']} "
                f"({human_age(latest['age'] / 1000)} old) in {folder}"
            )
        else:
            ui.info(f"No backups in {folder}.")
    problem = backups.staleness(report, limit, max_age)
    if problem:
        raise OpsError(f"backup status: {problem}", ExitCode.STALE)


def production_target(c, json: bool = False, **flags):
    """Snapshots and downloads only make sense against production."""
    return open_target(c, production=True, json=json, **flags)


# Ctrl-C stops only our wait: Fly makes the snapshot anyway (review-ox 15)
SNAPSHOT_GOES_ON = ("interrupted by Ctrl-C: only the wait stopped; the snapshot goes on at "
                    "Fly (its id is on the last `snapshot vs_…` line above once Fly lists it): "
                    "see it with `invoke backup.snapshots`")


@task(
    help={
        "no_wait": "only schedule the snapshot; do not wait until it is created",
        "timeout": "seconds to wait for the snapshot (default: backup.snapshot_timeout, 600)",
        "json": JSON,
    }
)
@guarded
def volume(c, no_wait=False, timeout=None, json=False):
    """Snapshot the production volume and wait until the snapshot exists."""
    from ops.ui import human_bytes

    settings, target, ui = production_target(c, json=json, snapshot_timeout=timeout)
    try:
        snap = target.fly_app.snapshot(wait=not no_wait, timeout=settings.snapshot_timeout,
                                       interval=settings.health_interval)
    except (KeyboardInterrupt, Terminated) as exc:
        if any(step.outcome == "ok" and step.label.endswith(" requested") for step in ui.steps):
            if isinstance(exc, Terminated):
                raise OpsError(SNAPSHOT_GOES_ON.replace("interrupted by Ctrl-C",
                                                        f"terminated by {exc.name}"),
                               ExitCode.TERMINATED) from None
            raise OpsError(SNAPSHOT_GOES_ON, ExitCode.INTERRUPTED) from None
        raise
    if snap.get("id"):
        ui.info(f"Snapshot {snap['id']} of {snap['volume']}: {human_bytes(snap['size'])}, "
                f"kept {snap.get('retention_days') or '?'} days")
    else:
        ui.info(f"Snapshot of {snap['volume']} scheduled (not waited for).")
    if json:
        ui.emit(snap)


@task(help={"json": JSON})
@guarded
def snapshots(c, json=False):
    """List the production volume's snapshots (and its earlier volumes'), newest first."""
    _, target, ui = production_target(c, json=json)
    found = list(reversed(target.fly_app.snapshots()))
    if json:
        ui.emit([asdict(snap) for snap in found])
        return
    ui.table(*snapshot_table(target.volume.id, found), whole=(0, 1, 2, 3))


def snapshot_table(volume: str, found: list) -> tuple[str, list[str], list[list]]:
    """Title, columns and rows that fit 80 columns: the created time whole (UTC, to the
    second; a running snapshot has none yet); the volume's size in the title when all
    snapshots share it; a volume column only when earlier volumes of its name have some."""
    from ops import fly
    from ops.ui import human_bytes, utc_stamp, volume_gb

    sizes = {snap.volume_size for snap in found}
    earlier = any(snap.volume and snap.volume != volume for snap in found)
    title = (f"Snapshots of {volume}" + (" and earlier volumes of its name" if earlier else "")
             + f" ({len(found)})")
    columns = ["id", "status", "created (UTC)", "stored", "volume", "size", "kept"]
    rows = [[snap.id or "(pending)", snap.status,
             "not yet (running)" if fly.is_zero_time(snap.created_at)
             else utc_stamp(snap.created_at), human_bytes(snap.size),
             snap.volume or "-", volume_gb(snap.volume_size),
             f"{snap.retention_days}d" if snap.retention_days else "-"] for snap in found]
    drop = []
    if len(sizes) == 1:
        title = f"{title[:-1]}, of a {volume_gb(sizes.pop())} volume)"
        drop.append(5)
    if not earlier:
        drop.append(4)
    for index in drop:  # highest first, so the lower index still names its column
        columns.pop(index)
        for row in rows:
            row.pop(index)
    return title, columns, rows


@task(
    positional=["which"],
    help={
        "which": "latest, or the file name of a backup on the production machine or the SSH "
                 "host (required)",
        "quick": "check the download with PRAGMA quick_check instead of integrity_check",
        "host": "download from this SSH host, [user@]host[:port], instead of the production "
                "machine (default: ssh.host)",
        "json": JSON,
        "lock_wait": LOCK_WAIT + " (in backup.dir here)",
        "backup_dir": BACKUP_DIR,
    },
)
@guarded
@closes_targets
def download(c, which, quick=False, host=None, json=False, lock_wait=None, backup_dir=None):
    """Download a production (or SSH host's) backup into backup.dir, SHA-256 checked."""
    reject_flag_as_name(which, "backup.download")
    settings = config.load(c.config, host=host)
    settings, target, ui = open_target(c, production=not settings.ssh_host, host=host,
                                       json=json, quick=quick, lock_wait=lock_wait,
                                       dir=backup_dir)
    if which == "all":
        raise OpsError("download one backup at a time: latest or a name", ExitCode.USAGE)
    name = target.names(which)[0]
    folder = target.downloads(settings.backup_dir)
    here = already_here(target, name, folder / name)
    if here is not None:  # a daily `download latest` with no new backup is not a failure
        ui.info(f"{here['path']} is already here, with the SHA-256 recorded where it was made "
                f"({here['sha256'][:12]}…): nothing downloaded")
        if json:
            ui.emit(here)
        return
    result = target.download(name, folder)
    ui.info(f"Saved {result['path']}")
    if json:
        ui.emit(result)


def already_here(target, name: str, local) -> dict | None:
    """A backup downloaded before (review-ox 22): its result when the local copy is a
    regular file with the SHA-256 recorded on the source, else None (nothing there). A
    different file of that name is refused (exit 5, not the usage error it was)."""
    from ops import engine

    if not (local.exists() or local.is_symlink()):
        return None
    if local.is_symlink() or not local.is_file():
        raise OpsError(f"{local} is already there and is not a regular file: not "
                       "overwritten", ExitCode.ERROR)
    recorded = next((item.sha256 for item in target.list() if item.name == name), None)
    digest = engine.sha256_file(local)
    if recorded is None or digest != recorded:
        there = f"{recorded[:12]}…" if recorded else "no SHA-256 recorded"
        raise OpsError(f"{local} is already here but is not that backup as recorded (SHA-256 "
                       f"{digest[:12]}… here, {there} at the source): not overwritten; move "
                       "it away to download again", ExitCode.VERIFY_FAILED)
    return {"name": name, "path": str(local), "sha256": digest, "size": local.stat().st_size,
            "already_here": True}


@task(
    klass=OptionalPositionalTask,
    positional=["which"],
    help={
        "which": "latest (the default) or a backup's file name",
        "production": "drill a production backup: on the machine (python3, or node with "
                      "the app's SQLite binding), else after downloading it",
        "host": HOST,
        "quick": "use PRAGMA quick_check instead of integrity_check",
        "dry_run": "find the backup (and the machine), print the plan with its exact "
                   "commands; drill nothing",
        "json": JSON,
        "backup_dir": BACKUP_DIR,
    },
)
@guarded
@on_signals
@closes_targets
def drill(c, which="latest", production=False, host=None, quick=False, dry_run=False,
          json=False, backup_dir=None):
    """Restore a backup into a scratch database and compare it with what was recorded."""
    from ops import drill as drill_flow
    from ops import runbook

    which = "latest" if which is None else str(which)
    reject_flag_as_name(which, "backup.drill")
    if which == "all":
        raise OpsError("drill one backup at a time: latest or a name", ExitCode.USAGE)
    settings, target, ui = open_target(c, production=production, host=host, json=json,
                                       quick=quick, dir=backup_dir)
    folder = target.folder()  # a missing folder is exit 3, named as such
    where = drill_flow.where_of(production, settings.ssh_host)
    steps = drill_flow.plan(which, where=where, folder=folder, directory=str(target.dir),
                            check=settings.check,
                            app=settings.app if where == drill_flow.FLY else "",
                            host=settings.ssh_host or "")
    found: dict = {}
    runner = runbook.Runner("backup.drill", ui, None)  # it changes nothing: no audit line
    actions = drill_actions(target, settings, which, folder, runner, found)
    runner.run(runbook.bind(steps, actions), dry_run=dry_run)
    if dry_run:
        shown = [step.filled(runner.values) for step in steps]
        ui.lines(drill_flow.render(shown, width=ui.width))
        if json:
            ui.emit({"dry_run": True, "outcome": "dry run", "backup": found["backup"],
                     "machine": runner.values.get("machine"),
                     "steps": runbook.plan_as_data(shown)})
        return
    found["result"]["steps"] = runner.record["steps"]  # what ran: the plan's steps
    drilled(target, ui, found, json)


def drill_actions(target, settings, which: str, folder: str, runner: runbook.Runner,
                  found: dict) -> dict:
    """What each step of the drill's plan does (``ops.drill.plan``); ``found`` gets the
    backup's name, the drill's result and what the machine can run."""
    from ops import drill as drill_flow
    from ops import restore, runbook

    def resolve():
        volume, machine = target.look_up()
        runner.learn(machine=machine.id)
        return f"machine {machine.id} ({machine.region}), volume {volume.id}"

    def find():
        found["backup"] = name = chosen_backup(target, which)
        runner.learn(backup=name)
        return name

    def drill():
        found["result"] = result = target.drill(found["backup"])
        detail = (f"{result['name']}  scratch copy {result['seconds']:.3f}s  "
                  f"[{result.get('strategy') or result.get('where') or 'engine'}]")
        if result["ok"]:
            return detail
        why = "not restorable" if not result.get("restorable") else "unverifiable" \
            if restore.unverifiable(result) else "differs from its record"
        # the line says what the result says (issue 16 #15): never a tick
        return runbook.Done(f"drill {which} in {folder}", f"{why}  {detail}", failed=True)

    def restorable():
        from ops import machine

        found["machine"] = decided = machine.plan(
            target.machine_facts(), remote_command=bool(settings.remote_command))
        if "restore" in decided["cannot"]:  # the drill fails for it (exit 5): not a tick
            return runbook.Done(drill_flow.MACHINE_CHECK, "a restore cannot run there: "
                                f"{decided['cannot']['restore']}", warning=True)
        return f"restore there: {decided['engines'].get('restore') or 'none'}"

    return {"resolve": resolve, "connect": lambda: f"connected to {target.session.connect()}",
            "find": find, "drill": drill, "machine": restorable}


def chosen_backup(target, which: str) -> str:
    """The backup ``which`` names: the target's own rule for ``latest``; a name must be
    listed there (a dry run says so before the drill would)."""
    from ops import engine

    name = target.names(which)[0]
    if which != "latest" and target.flag:  # a remote target takes a name as given
        engine.pick_backups(target.list(), name, target.latest, target.folder())
    return name


def drilled(target, ui, found: dict, json: bool) -> None:
    """Report the drill's result; exit 5 when it failed or no restore could run there."""
    from ops import restore

    result = found["result"]
    ui.info(restore.drill_summary(result, target.flag))
    if "machine" in found:
        restorable_there(found["machine"], ui, result)
    if json:
        ui.emit(result)
    if result.get("restore_cannot_run"):
        raise OpsError(f"drill of {result['name']}: the backup is sound, but a restore cannot "
                       f"run on {target.describe()}: {result['restore_cannot_run']}",
                       ExitCode.VERIFY_FAILED)
    if not result["ok"]:
        raise OpsError(f"drill of {result['name']} failed: "
                       + "; ".join((result["problems"] + result["differences"])[:2])
                       + restore.adopt_hint(result["problems"], result["name"], target.flag),
                       ExitCode.VERIFY_FAILED)
