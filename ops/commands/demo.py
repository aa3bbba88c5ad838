"""The toolkit on a sample database: what a fresh machine can run in a minute."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

from invoke.util import yaml

from ops import config, digits
from ops.cli import guarded, task
from ops.errors import ExitCode, OpsError


@task(
    help={
        "dir": "folder for the demo's database and backups (default: demo in the project)",
        "mb": "size of the sample database in MB (default 30)",
        "fresh": "delete the demo folder first and build a new sample database",
    }
)
@guarded
def demo(c, dir=None, mb=None, fresh=False):
    """Try the toolkit on a sample database.

    Builds a sample Step Challenge database, backs it up three times while a separate
    process writes to it, verifies, lists and prunes the backups, and restores the
    newest into a scratch copy."""
    from ops import backups, engine, sample
    from ops.targets.local import LocalTarget
    from ops.ui import UI, command_lines, human_bytes

    mb = _size_mb(mb)
    root = Path(dir) if dir is not None else config.from_root(config.project_root(c.config),
                                                               "demo")
    if fresh and root.exists():
        shutil.rmtree(root)
    db, backup_dir = root / "data" / "steps.db", root / "data" / "backups"
    settings = config.load(c.config, db=str(db), dir=str(backup_dir), keep=2)
    ui = UI()
    target = LocalTarget(settings)

    if not db.exists():
        with ui.step(f"build a sample database of about {mb:g} MB") as step:
            stats = sample.build_sample_database(db, target_mb=float(mb))
            step.detail = (f"{stats['users']} users, {stats['teams']} teams, "
                           f"{stats['steps']} step entries, {human_bytes(stats['bytes'])}")
    else:
        ui.skipped("build a sample database", f"{db} exists (use --fresh to rebuild)")

    with _app_writing(db, root) as writer:
        made = [backups.make_backup(target, ui) for _ in range(3)]
    ui.info(f"  the stand-in app committed {writer.report.get('commits', '?')} transactions "
            "during the backups")

    with ui.step("verify every backup (SHA-256 + integrity_check)") as step:
        results = target.verify("all")
        backups.require_ok(results)
        step.detail = f"{len(results)} of {len(results)} ok"

    decisions = backups.cleanup(target, ui, settings.keep, dry_run=True)
    ui.table("Retention plan (keep 2)", ["backup", "action", "reason"],
             [[d.name, d.action, d.reason] for d in decisions])
    backups.cleanup(target, ui, settings.keep)

    scratch = root / "restored.db"
    with ui.step(f"restore the newest backup into a scratch copy {scratch}") as step:
        for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
            leftover.unlink(missing_ok=True)
        engine.restore_into(made[-1]["path"], scratch)
        problems = engine.run_check(scratch)
        if problems:
            raise OpsError(f"the restored copy failed integrity_check: {problems[0]}")
        step.detail = f"{_rows(scratch, 'steps')} step entries, integrity_check ok"

    ui.table(f"Backups in {backup_dir}", ["name", "size", "sha256"],
             [[b.name, human_bytes(b.size), (b.sha256 or "-")[:12]]  # as backup.list
              for b in reversed(target.list())])  # newest first, as backup.list
    ui.steps_table("Demo")
    settings_file = write_settings(root, db, backup_dir, config.project_root(c.config))
    ui.info("Try:")  # its own lines, broken with ` \`: pasted whole at 80 columns too
    ui.lines(command_lines(try_command(settings_file), ui.width, "  "))


SETTINGS_NAME = "config.yaml"  # in the demo's folder: `invoke -f demo/config.yaml TASK`


def write_settings(root: Path, db: Path, backup_dir: Path, project: Path) -> Path:
    """A configuration file naming the demo's database and backup folder (the paths as
    config reads them: from the project root, else absolute). Given with `-f`, it reaches
    every command a task suggests (``cli.chosen_by_options``); variables set for one
    command do not (s28 review-op #1). Replaced, never written through a symlink."""
    def shown(path: Path) -> str:
        path = path.absolute()
        with contextlib.suppress(ValueError):
            path = path.relative_to(project.absolute())
        return str(path)

    text = ("# written by `invoke demo`: its sample database and backups\n"
            + yaml.safe_dump({"db": {"path": shown(db)}, "backup": {"dir": shown(backup_dir)},
                              # on this computer, whatever ssh.host says elsewhere (a file
                              # given with -f outranks invoke.yaml and INVOKE_SSH_HOST)
                              "ssh": {"host": ""}}, sort_keys=False))
    target = root / SETTINGS_NAME
    staged = root / f".{SETTINGS_NAME}.{os.getpid()}.tmp"
    try:
        staged.unlink(missing_ok=True)
        with open(staged, "x", encoding="utf-8") as out:
            out.write(text)
        os.replace(staged, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            staged.unlink()
        raise OpsError(f"cannot write the demo's settings {target}: "
                       f"{exc.strerror or exc}") from None
    return target


def try_command(settings_file: Path) -> list[str]:
    """The words of a command that lists the demo's backups when pasted into the same
    shell: `invoke` as this shell can run it (``ui.command_lines``) with the demo's
    settings file, from this folder if it is under it, else absolute. The database too:
    without it the listing called the backups another database's (s27 review-op #1)."""
    path = settings_file.absolute()
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return ["invoke", "-f", str(path), "backup.list"]


def _size_mb(text) -> float:
    """``--mb`` as a number of MB from 1 to 4096 (a string: Invoke would crash on 'abc')."""
    size = 30.0 if text is None else digits.decimal(str(text))  # ASCII digits only
    if size is None:
        raise OpsError(f"--mb must be a number of MB, got {text!r}", ExitCode.USAGE)
    if not 1 <= size <= 4096:
        raise OpsError(f"--mb must be between 1 and 4096, got {text}", ExitCode.USAGE)
    return size


def _rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def _app_writing(db: Path, root: Path):
    """A separate process committing to the database, as the live app would."""
    from ops import sample

    writer = sample.WriterProcess(db, root / ".writer")
    try:
        writer.start()
    except sample.WriterFailed as exc:
        raise OpsError(f"the stand-in app could not write: {exc}") from None
    try:
        yield writer
    finally:
        with contextlib.suppress(sample.WriterFailed):
            writer.stop()
