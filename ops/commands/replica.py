"""Litestream replication of the database on this computer: its config, how far the replica
is, and verified restores from it (docs/replica.md). The decisions are in ops.replica;
this module reads settings, runs litestream and reports. A target (the Fly machine, an SSH
host) can be added beside ``local_database`` without changing the decisions."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.util import yaml

from ops import config
from ops import config as config_module  # status's --config shadows the module name
from ops.cli import guarded, task
from ops.commands.backup import closes_targets, open_target
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated, stop_on_signals

if TYPE_CHECKING:  # annotations only: the modules are imported by the tasks that run them
    from ops import replica as rp
    from ops import runbook
    from ops.ui import UI

JSON = "print one JSON document on stdout (human output stays on stderr)"
LITESTREAM_TIMEOUT = 600.0  # seconds one litestream call may take (a restore of ~40 GB)
BUCKET_TIMEOUT = 60.0  # seconds to list the bucket: litestream retries an unreachable one
# for minutes, and a status check must answer (exit 15) well before its next run


def local_database(c) -> Path:
    """The database on this computer (db.path), absolute: litestream's config names it."""
    return config.load(c.config).db_path.absolute()


@contextlib.contextmanager
def rendered_config(settings: rp.ReplicaSettings, db: Path):
    """litestream.yml for ``db`` in a private temporary folder, removed afterwards."""
    from ops import replica as rp

    sweep_stale_scratch(Path(tempfile.gettempdir()), None, rp.CONFIG_PREFIX)  # kill -9 left
    folder = tempfile.mkdtemp(prefix=rp.CONFIG_PREFIX)
    try:
        path = Path(folder) / "litestream.yml"
        path.write_text(rp.render(settings, str(db)))
        yield str(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def require_bucket(settings: rp.ReplicaSettings) -> None:
    """A bucket named by $VAR must be set in this environment for local work."""
    from ops import replica as rp
    from ops import replica_checks

    bucket = os.path.expandvars(settings.bucket)
    if not bucket or rp.ENV_REFERENCE.search(bucket):
        raise OpsError(f"no bucket: replica.bucket is {settings.bucket!r} and that is not set "
                       "here (set BUCKET_NAME or replica.bucket)", ExitCode.USAGE)
    if rp.ENV_REFERENCE.match(settings.endpoint):  # $AWS_ENDPOINT_URL_S3: judged as set
        problem = replica_checks.endpoint_problem(os.path.expandvars(settings.endpoint),
                                                  f"{settings.endpoint} (replica.endpoint)")
        if problem:
            raise OpsError(problem, ExitCode.USAGE)
    if rp.ENV_REFERENCE.search(settings.path):  # litestream expands it: judged as it will be
        path = os.path.expandvars(settings.path)
        problem = (f"config replica.path {settings.path} names a variable not set here: "
                   f"set {rp.ENV_REFERENCE.search(path)[0].strip('${}')} or change replica.path"
                   if rp.ENV_REFERENCE.search(path) else
                   replica_checks.path_problem(path, f"config replica.path {settings.path} as set"))
        if problem:
            raise OpsError(problem, ExitCode.USAGE)


# ---------------------------------------------------------------- replica.config

def write_new(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path``: a new file (O_EXCL, so never through a symlink), or with
    ``force`` a temporary file renamed over it (a symlink there is replaced, not followed)."""
    refuse_output_path(path)
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            raise OpsError(f"{path} exists: not overwritten (--force replaces it)",
                           ExitCode.USAGE) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refuse_output_path(path: Path) -> None:
    """The path the user gave, named: no folder is exit 3 (as restore's), a directory 2."""
    from ops import replica_checks

    problem = replica_checks.output_problem(path)
    if problem:
        raise OpsError(*problem)


def refuse_database(path: Path, settings) -> None:
    """--force never replaces the database, its journals, a backup or any SQLite file."""
    from ops import replica as rp

    try:
        with open(path, "rb") as handle:  # a symlink is read through: its target counts
            head = handle.read(len(rp.SQLITE_HEADER))
    except OSError:
        head = b""  # missing, a directory or unreadable: not a database we could lose
    problem = rp.overwrite_refusal(path, settings.db_path.absolute(), settings.backup_dir,
                                   head)
    if problem:
        raise OpsError(f"{problem}: --force replaces only a litestream.yml, never a "
                       "database (nothing written)", ExitCode.USAGE)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise OpsError(f"{what} not found: {path}", ExitCode.NOT_FOUND) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}", ExitCode.USAGE) from None


def check_files(yml: Path, root: Path, fly_toml: Path) -> tuple[list[str], list[str]]:
    """(files checked, problems): litestream.yml, then the Dockerfile and fly.toml where
    they exist (the app's repository holds them, not always this one)."""
    from ops import replica as rp

    try:
        data = yaml.safe_load(read_text(yml, "litestream.yml"))
    except yaml.YAMLError as exc:
        raise OpsError(f"{yml} is not valid YAML: {str(exc).splitlines()[0]}",
                       ExitCode.USAGE) from None
    checked, problems = [str(yml)], [f"{yml}: {p}" for p in rp.check_config(data)]
    dockerfile = root / "Dockerfile"
    if dockerfile.is_file():
        checked.append(str(dockerfile))
        problems += rp.check_dockerfile(read_text(dockerfile, "Dockerfile"))
    if fly_toml.is_file():
        checked.append(str(fly_toml))
        problems += rp.check_fly_toml(read_text(fly_toml, "fly.toml"))
    return checked, problems


@task(
    name="config",
    help={
        "output": "write the file here (default: print it on stdout); an existing file or "
                  "symlink is refused unless --force. With --check: the file to check "
                  "(default litestream.yml in the project root)",
        "force": "with --output: replace an existing file (a symlink is replaced, never "
                 "followed)",
        "check": "check an existing litestream.yml (unknown keys, literal credentials), and "
                 "the Dockerfile and fly.toml where they exist; exit 2 on any problem",
        "remote": "render for the machine's database (db.remote_path) instead of db.path",
        "dry_run": "with --output: say what would be written and write nothing",
        "json": JSON,
    },
)
@guarded
def config_(c, output=None, force=False, check=False, remote=False, dry_run=False,
            json=False):
    """Render litestream.yml from the replica.* settings (no credentials in it).

    --check checks an existing one, with the Dockerfile and fly.toml."""
    from ops import replica as rp
    from ops.ui import UI

    ui = UI()
    settings = config.load(c.config)
    replica = config.load_replica(c.config)
    if check and (force or remote or dry_run):
        raise OpsError("--check only reads: --force, --remote and --dry-run are for rendering",
                       ExitCode.USAGE)
    if check:
        yml = Path(output) if output else settings.root / "litestream.yml"
        checked, problems = check_files(yml, settings.root or Path("."), settings.fly_config)
        if json:
            ui.emit({"checked": checked, "problems": problems, "ok": not problems})
        for problem in problems:
            ui.info(f"✗ {problem}")
        if problems:
            raise OpsError(f"replica.config --check: {len(problems)} problem(s), first: "
                           f"{problems[0]}", ExitCode.USAGE)
        ui.info(f"✓ {', '.join(checked)}: no problems")
        return
    db = settings.db_remote_path if remote else str(settings.db_path.absolute())
    text = rp.render(replica, db)
    if output is None:
        if json:
            ui.emit({"database": db, "config": rp.config_data(replica, db), "text": text,
                     **({"dry_run": True, "outcome": "dry run"} if dry_run else {})})
        else:
            ui.out.write(text)
        return
    path = Path(output)
    if force:  # a dry run says so too
        refuse_database(path, settings)
    if dry_run:
        ui.info(f"Would write litestream.yml for {db} to {path} (dry run: nothing written)")
    else:
        write_new(path, text, force)
        ui.info(f"Wrote {path} (litestream.yml for {db}; no credentials in it)")
    if json:
        ui.emit({"database": db, "output": str(path), "written": not dry_run,
                 **({"dry_run": True, "outcome": "dry run"} if dry_run else {})})


# ---------------------------------------------------------------- replica.status

def list_replica(exe: str, yml: str, db: Path, env: dict):
    """The replica's files (``ltx -level all -json``), exit 15 when the bucket cannot be
    read within ``BUCKET_TIMEOUT``."""
    from ops import replica as rp

    return rp.run([exe, "ltx", "-level", "all", "-json", "-config", yml, str(db)], env,
                  timeout=BUCKET_TIMEOUT, what="cannot read the replica's bucket",
                  timeout_code=ExitCode.REPLICA)


def read_status(exe: str, yml: str, db: Path, socket: str, env: dict) -> dict:
    """The three litestream answers status needs, in the order that keeps lag honest: the
    replica first, then the live TXID (a commit in between reads as behind, never ahead)."""
    from ops import replica as rp

    # measured: a litestream stuck retrying an unreachable bucket stops answering here too
    listing = rp.run([exe, "list", "-json", "-timeout", "10", "-socket", socket], env,
                     timeout=30, what="litestream is not running for this database, or is "
                                      f"stuck (its control socket {socket} does not answer)")
    replicating = rp.listed(listing, lambda path: os.path.realpath(path)
                            == os.path.realpath(db))
    if not replicating:
        raise OpsError(f"litestream runs but does not replicate {db}", ExitCode.REPLICA)
    files = list_replica(exe, yml, db, env)
    status = rp.run([exe, "status", "-json", "-config", yml], env, timeout=30,
                    what="litestream status failed")
    return {"database": replicating[0], "files": files, "status": status}


def local_position(c, replica: rp.ReplicaSettings, ui: UI, litestream_yml=None) -> dict:
    """The local database's position: its litestream's socket, the bucket, its TXID
    (``litestream_yml``: read where litestream really ships to from its own file)."""
    from ops import replica as rp
    from ops import replica_checks

    if litestream_yml is None:
        require_bucket(replica)
    db = local_database(c)
    if not db.exists():
        raise OpsError(f"database not found: {db}", ExitCode.NOT_FOUND)
    exe = rp.find_litestream(replica.litestream)
    env = rp.environment(ui.warn)
    rp.check_version(exe, env)
    if litestream_yml is not None:  # litestream's own file: where it really ships to
        socket = replica_checks.running_socket(Path(litestream_yml), db)
        found = read_status(exe, litestream_yml, db, socket, env)
    else:
        with rendered_config(replica, db) as yml:
            found = read_status(exe, yml, db, rp.socket_path(replica, str(db)), env)
    return {"database": str(db), "local": rp.local_txid(found["status"]),
            "replica": rp.newest(found["files"]),
            "last_sync_at": found["database"].get("last_sync_at"),
            "now": dt.datetime.now(dt.UTC)}


def remote_position(target, replica: rp.ReplicaSettings) -> dict:
    """The position on the Fly machine or an SSH host, from its running litestream."""
    from ops import replica as rp

    where = "the production machine" if target.flag == " --production" else target.host
    socket = rp.socket_path(replica, target.db)
    script = rp.status_script(replica.remote_litestream, target.db, socket)
    output = target.session.run(script, what="litestream's replica status")
    found = rp.remote_position(rp.remote_answers(output.stdout), target.db, where, socket)
    return {"database": target.db, "where": target.describe(), **found}


@task(
    help={
        "max_lag": "exit 7 when the replica is further behind than this (e.g. 60s, 5m; "
                   "default: replica.max_lag, 60s)",
        "production": "the replica of the production machine's database (asks its "
                      "litestream over fly ssh)",
        "host": "the replica of this SSH host's database (db.remote_path), "
                "[user@]host[:port] (default: ssh.host)",
        "config": "the litestream.yml the running litestream uses: its bucket, path and "
                  "socket are read, not the replica.* settings (this computer's database)",
        "json": JSON,
    }
)
@guarded
@closes_targets
def status(c, max_lag=None, production=False, host=None, config=None, json=False):
    """How far the replica is behind its database.

    Exit 7 over --max-lag, 15 when litestream is not running or the bucket cannot be
    read."""
    from ops import replica as rp
    from ops.ui import UI, human_age

    replica = config_module.load_replica(c.config, max_lag=max_lag)
    remote = production or host is not None or config_module.load(c.config).ssh_host
    if remote and config is not None:
        raise OpsError("--config names this computer's litestream.yml: not with "
                       "--production or --host", ExitCode.USAGE)
    if remote:
        _, target, ui = open_target(c, production=production, host=host, json=json)
        found = remote_position(target, replica)
    else:
        ui = UI()
        found = local_position(c, replica, ui, litestream_yml=config)
    newest, local = found["replica"], found["local"]
    behind = rp.lag(local, newest, found["now"])
    report = {
        "database": found["database"],
        **({"where": found["where"]} if "where" in found else {}),
        "running": True,
        "last_sync_at": found["last_sync_at"],
        "local_txid": None if local is None else f"{local:016x}",
        "replica": newest.as_dict() if newest else None,
        "lag_seconds": behind,
        "max_lag_seconds": replica.max_lag,
    }
    unknown = rp.lag_unknown(local, newest, found["now"])
    problem = rp.staleness(behind, replica.max_lag, unknown)
    report["ok"] = problem is None
    if json:
        ui.emit(report)
    elif newest is not None:
        ui.info(f"Replica of {found['database']}: TXID {newest.txid:016x} at "
                f"{report['replica']['time']}; lag "
                f"{'unknown' if behind is None else human_age(behind)} "
                f"(max {human_age(replica.max_lag)})")
    if problem:
        raise OpsError(f"replica status: {problem}", ExitCode.STALE)


# ---------------------------------------------------------------- replica.restore

def refuse_existing(path: Path) -> None:
    if os.path.lexists(path):
        raise OpsError(f"{path} exists (or is a symlink): a restore only writes a new file",
                       ExitCode.USAGE)
    if not path.parent.is_dir():
        raise OpsError(f"no folder {path.parent} for {path.name}", ExitCode.NOT_FOUND)


def describe_without_litestream(restored: Path, scratch: Path) -> tuple[dict, str, str]:
    """Row counts and content hash of the app's data: litestream's own tables
    (``_litestream_seq``/``_litestream_lock``) dropped from a scratch copy first, so the
    numbers compare with a database litestream never touched."""
    from ops import engine
    from ops import replica as rp

    source = sqlite3.connect(f"file:{restored}?mode=ro&immutable=1", uri=True)
    copy = sqlite3.connect(scratch, isolation_level=None)
    try:
        source.backup(copy)
        for table in rp.LITESTREAM_TABLES:
            copy.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        source.close()
        copy.close()
    return engine.describe_file(scratch)


CHECK_CACHE = 256 * 1024 * 1024  # bytes at most of SQLite's page cache for a restore's check


def check_cache(path: Path) -> int:
    """SQLite's page cache for the check of a restored file: the whole file up to
    ``CHECK_CACHE`` (docs/replica.md: measured in benchmarks/replica_checks.py)."""
    return min(path.stat().st_size, CHECK_CACHE)


def check_restored(restored: Path, scratch: Path, *, check: str, content_hash: bool,
                   mmap_size: int) -> tuple[list[str], dict, str | None, str | None]:
    """(problems, rows per table, content hash, its format) of a restored file: the check,
    the hash and the fsync of the file litestream wrote at once (SQLite leaves the GIL
    while it reads: measured 250 MB, sample database, integrity_check 13.7 s, hash 7.2 s;
    the check is the longest, so the restore takes litestream's time plus the check's).
    Without ``content_hash`` only row counts (milliseconds), litestream's tables left out."""
    from ops import engine
    from ops import replica as rp

    with ThreadPoolExecutor(max_workers=3) as pool:
        checking = pool.submit(engine.run_check, restored, check, mmap_size=mmap_size,
                               cache_bytes=check_cache(restored))
        synced = pool.submit(engine.fsync_path, restored)  # then linked: durable first
        if content_hash:
            described = pool.submit(describe_without_litestream, restored, scratch)
        problems = checking.result()
        synced.result()
        if problems:
            return problems, {}, None, None
        if content_hash:
            counts, digest, fmt = described.result()
            return [], counts, digest, fmt
    counts = {table: rows for table, rows in engine.count_rows(restored).items()
              if table not in rp.LITESTREAM_TABLES}
    return [], counts, None, None


def newest_mtime(folder: str) -> float:
    """The newest modification time in ``folder``'s tree (a long restore writes deep in
    it, a drill's restore one folder further down: the top folder's time stays old)."""
    newest = os.lstat(folder).st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                continue  # removed meanwhile
    return newest


def sweep_stale_scratch(folder: Path, ui: UI | None, prefix: str) -> None:
    """Remove the temporary folders killed restores (or drills, or rendered configs) left
    in ``folder``: ours (this user's), by name; said on ``ui`` when given."""
    from ops import replica as rp

    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False) \
                        and entry.stat(follow_symlinks=False).st_uid == os.getuid():
                    found.append((entry.name, newest_mtime(entry.path)))
            except OSError:
                continue  # removed meanwhile (another run's sweep, its own cleanup)
    for name in rp.stale_scratch(found, time.time(), prefix):
        shutil.rmtree(folder / name, ignore_errors=True)
        if ui is not None:
            ui.info(f"Removed {folder / name} (left by a restore that was killed)")


def restore_checked(argv: list[str], db: Path, out: Path, env: dict, settings, ui: UI,
                    report: dict, by: str | None = None, backup: dict | None = None) -> None:
    """litestream restore (``argv`` ends in ``-o``) into a private folder beside ``out``,
    the check and the hash, mode 0600, then a hard link to ``out`` (never a replace); the
    folder goes whatever happens. Fills ``report``. ``by``: ``out`` is a backup (restore
    --from-replica) checked like a new one and published with its records, ``by`` in them,
    under the first free name from ``out``'s (``publish_checked``; ``backup``: its
    ``taken`` and ``out``, and ``report["output"]``, say which)."""
    from ops import replica as rp

    sweep_stale_scratch(out.parent, ui, rp.SCRATCH_PREFIX)
    try:
        scratch = Path(tempfile.mkdtemp(prefix=rp.SCRATCH_PREFIX, dir=out.parent))
    except OSError as exc:  # /proc, read-only: name the file asked for, not our temp name
        raise OpsError(f"cannot write {out}: {exc.strerror} (its folder takes no new "
                       "files)", ExitCode.USAGE) from None
    try:
        tmp = scratch / out.name
        started = time.monotonic()
        with ui.step(f"restore {report['files']} file(s) from the replica"):
            try:
                rp.run([*argv, str(tmp), str(db)], env, timeout=LITESTREAM_TIMEOUT,
                       what="litestream restore failed", code=ExitCode.REPLICA)
            except OpsError as exc:  # the replica's files, unless it names our own folder
                raise OpsError(str(exc), rp.restore_failure_code(str(exc), exc.code,
                                                                 scratch)) from None
        report["restore_seconds"] = round(time.monotonic() - started, 3)
        os.chmod(tmp, 0o600)  # the app's data, private like every backup (litestream: 0644)
        if by is not None:
            counts, digest, fmt = publish_checked(tmp, out, settings, by, started, ui,
                                                  backup if backup is not None else {}), None, None
            report["output"] = str(backup["out"] if backup is not None else out)
        else:
            counts, digest, fmt = check_and_link(tmp, out, scratch / "hash.db", settings, ui)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.update(seconds=round(time.monotonic() - started, 3), check=settings.check,
                  tables=counts, content_hash=digest, content_format=fmt)


def check_and_link(tmp: Path, out: Path, hash_db: Path, settings, ui: UI):
    """replica.restore's check of ``tmp`` (rows and hash without litestream's tables),
    then a hard link to ``out`` (never a replace); (rows, content hash, its format)."""
    from ops import engine

    pragma = "integrity_check" if settings.check == "integrity" else "quick_check"
    with ui.step(f"{pragma}, row counts" + (" and content hash"
                                             if settings.content_hash else "")):
        problems, counts, digest, fmt = check_restored(
            tmp, hash_db, check=settings.check, content_hash=settings.content_hash,
            mmap_size=settings.mmap_size)
        if problems:
            raise OpsError(f"the restored database failed {pragma}: {problems[0]} "
                           f"(nothing written to {out})", ExitCode.VERIFY_FAILED)
    try:  # ``tmp`` fsynced beside its check (``check_restored``)
        os.link(tmp, out)  # never replaces: a file that appeared meanwhile stays
    except FileExistsError:
        raise OpsError(f"{out} appeared during the restore: left alone",
                       ExitCode.USAGE) from None
    engine.fsync_path(out.parent)
    return counts, digest, fmt


def publish_checked(tmp: Path, out: Path, settings, by: str, started: float, ui: UI,
                    backup: dict) -> dict:
    """``tmp`` checked as a new backup is (``engine.verify_new_copy``: fsync, the check,
    SHA-256 and row counts in one read) and published with its records at once
    (``engine.publish``: both sidecars, then the file; under the folder's backup lock), so
    a kill at any moment leaves no backup-named file without its records. Its name: the
    first free one from ``out``'s (``free_out``), ``backup["out"]``. Its rows per table
    without litestream's own."""
    from ops import engine
    from ops import replica as rp

    pragma = "integrity_check" if settings.check == "integrity" else "quick_check"
    with ui.step(f"{pragma}, SHA-256 and row counts, then record it as backup"):
        problems, digest, described = engine.verify_new_copy(
            tmp, settings.check, mmap_size=settings.mmap_size, cache_bytes=check_cache(tmp))
        if problems:
            raise OpsError(f"the restored database failed {pragma}: {problems[0]} "
                           f"(nothing written to {out})", ExitCode.VERIFY_FAILED)
        try:
            with publish_lock(out.parent, settings.lock_wait, backup.get("held"), ui):
                sweep_orphan_records(out.parent, ui)
                out = backup["out"] = backup["placed"] = free_out(out, backup.get("taken"))
                engine.publish(tmp, out, engine.BackupResult(
                    **described, name=out.name, path=str(out), created=engine.iso(
                        engine.parse_created(out.name)), size=tmp.stat().st_size,
                    sha256=digest, check=settings.check, source="", strategy="adopted",
                    seconds=round(time.monotonic() - started, 3), kind="adopted",
                    adopted={"when": engine.iso(dt.datetime.now(dt.UTC)), "by": by[:200]}))
        except engine.EngineError as exc:  # its code: another backup's lock is 4, …
            raise OpsError(f"cannot record {out}: {exc} (nothing written; the live database "
                           "untouched)", OpsError.from_engine(exc).code) from None
        ui.info(f"Recorded as backup {out.name}")
    return {table: rows for table, rows in (described["tables"] or {}).items()
            if table not in rp.LITESTREAM_TABLES}


def publish_lock(folder: Path, wait: float, held: contextlib.ExitStack | None, ui: UI):
    """The folder's backup lock for publishing; with ``held`` (restore --from-replica) taken
    into it and kept after the publish, until the restore of that backup has taken it too
    (``engine.held_backup_lock`` is re-entrant): a ``backup.cleanup`` or a backup's
    retention in between would remove the new backup, dated by its data and so not the
    newest, and the restore would find it gone (exit 3). The restore lock is taken first
    and kept too, as every restore takes the two (``engine.held_restore_lock``): taken
    after the backup lock, a plain restore holding it waited for ours and we for its."""
    from ops import engine
    from ops.ui import lock_waiting

    def waiting(which: str, name: str):  # said at once: a silent wait looked hung (issue 22)
        return lambda holder: ui.waiting(lock_waiting(which, folder / name, wait, holder))

    if held is None:
        return engine.backup_lock(folder, wait, waiting("backup", engine.LOCK_NAME))
    held.enter_context(engine.held_restore_lock(folder, wait,
                                                waiting("restore", engine.RESTORE_LOCK)))
    held.enter_context(engine.held_backup_lock(folder, wait, waiting("backup", engine.LOCK_NAME)))
    return contextlib.nullcontext()


def sweep_orphan_records(folder: Path, ui: UI) -> None:
    """Records a killed restore --from-replica left without their file (``rp.replica_orphan``
    says which are surely its own), removed; under the folder's backup lock, so no backup
    being published (its records placed, its file not yet) is taken for one."""
    from ops import engine
    from ops import replica as rp

    entries = set(os.listdir(folder))
    for entry in sorted(entries):
        if not entry.endswith(".json") or engine.parse_created(entry[:-5]) is None:
            continue
        name = entry[:-5]
        checksum = engine.read_small(folder / f"{name}.sha256")
        if f"{name}.sha256" in entries and checksum is None:
            continue  # there, but not a small regular file: not ours to judge
        if rp.replica_orphan(name, entries, engine.read_small(folder / entry), checksum):
            for path in (folder / f"{name}.sha256", folder / entry):  # .json last: a
                # kill between leaves it, still judged ours, never a lone .sha256
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            ui.info(f"Removed {name}'s records in {folder}: a killed --from-replica left "
                    "them without their file")


def dated_out(out: Path, point_time, *, dry_run: bool) -> Path:
    """The replica's backup named by when its data is from (``rp.data_time``: the point's
    time, never after now), so it is never taken for a fresher backup than it is (``latest``,
    backup.status's age, retention's newest). A dry run names the first such name free in
    the folder now (``free_out``, without the server's names); the run picks it again under
    the lock as it publishes."""
    from ops import engine
    from ops import replica as rp

    dated = out.with_name(engine.backup_name(rp.data_time(point_time, dt.datetime.now(dt.UTC))))
    return free_out(dated) if dry_run else dated


def free_out(out: Path, taken=None) -> Path:
    """The first name from ``out``'s on that nothing in its folder occupies (a file or a
    sidecar: a killed run's too) nor, for a server, any backup ``taken()`` lists there:
    the replica's backup is a new file, so a name already used is never it (the upload
    would be refused as "a different backup"). Called under the folder's backup lock, so
    no backup made here can take it before it is published."""
    from ops import engine
    from ops import replica as rp

    here = set(os.listdir(out.parent))
    there = taken() if taken is not None else set()
    name = rp.free_backup_name(engine.parse_created(out.name), here | there, engine.backup_name)
    if name is None:
        raise OpsError(f"every backup name from {out.name} on for {rp.NAME_TRIES}s is taken "
                       f"in {out.parent}" + (" or on the server" if taken else "") +
                       "; nothing was changed", ExitCode.USAGE)
    return out.with_name(name)


def plan_restore(argv: list[str], env: dict, *, timestamp: str | None = None,
                 txid: str | None = None, starts=None) -> dict:
    """litestream's plan (``restore -dry-run -json``): no such point is exit 3, a bucket
    that cannot be read exit 15 (within ``BUCKET_TIMEOUT``: it is a listing). ``starts``:
    the replica's oldest point (called only to explain a --timestamp before it)."""
    from ops import replica as rp
    from ops import replica_checks

    try:
        plan = rp.run(argv, env, timeout=BUCKET_TIMEOUT, what="cannot plan a restore",
                      timeout_code=ExitCode.REPLICA)
    except OpsError as exc:
        if "no matching backup files" in str(exc):
            start = None
            if timestamp is not None and starts:  # a listing that fails too only says less
                with contextlib.suppress(OpsError):
                    start = starts()
            raise OpsError(no_point(replica_checks.destination_parts(argv, env), timestamp,
                                    txid, start), ExitCode.NOT_FOUND) from None
        raise
    if not isinstance(plan, dict):
        raise OpsError("litestream printed a restore plan of an unexpected shape",
                       ExitCode.REPLICA)
    return plan


def no_point(found: dict, timestamp: str | None, txid: str | None,
             start: rp.Position | None) -> str:
    """Why the replica has no point to restore to, naming where it looked and only the
    flags given (review-op #6: ``restore`` has no --txid, so it is never suggested)."""
    where = (f"bucket {found.get('bucket', '(unnamed)')}, path "
             f"{found.get('path') or '(the database name)'}"
             + (f", at {found['endpoint']}" if found.get("endpoint") else ""))
    if timestamp is not None and start is not None:
        return (f"the replica has no point to restore to at or before --timestamp "
                f"{timestamp}: it starts at {start.as_dict()['time']} (TXID "
                f"{start.as_dict()['txid']}) in {where}; give a later --timestamp")
    if timestamp is not None:
        return (f"the replica has no point to restore to at or before --timestamp "
                f"{timestamp} in {where} (or nothing is replicated there yet)")
    if txid is not None:
        return (f"the replica has no point to restore to up to --txid {txid} in {where} "
                "(or nothing is replicated there yet)")
    return (f"the replica has no point to restore to: nothing is replicated in {where} "
            "(is litestream replicating this database there? `invoke replica.status`)")


@task(
    help={
        "output": "the new database file to write (required; an existing file or a symlink "
                  "there is refused)",
        "timestamp": "restore the state as of this time (ISO, e.g. 2026-12-06T22:15:00Z; "
                     "UTC when no offset is given); it lands at or before it",
        "txid": "restore up to this litestream TXID (hex, as replica.status prints it)",
        "dry_run": "show the point litestream would reach and the files it would read; "
                   "write nothing",
        "quick": "check the restore with PRAGMA quick_check instead of integrity_check "
                 "(default: backup.check)",
        "json": JSON,
    }
)
@guarded
def restore(c, output=None, timestamp=None, txid=None, quick=False, dry_run=False,
            json=False):
    """Restore the local database's replica into a NEW file, then check it.

    integrity_check, row counts and content hash; reports the point reached."""
    try:
        with stop_on_signals():  # SIGTERM/SIGHUP unwind: litestream killed, folder removed
            restore_replica(c, output, timestamp, txid, quick, dry_run, json)
    except Terminated as exc:
        raise OpsError(f"terminated by {exc.name}: litestream stopped and the temporary "
                       "folder removed (a restored file is only ever put at --output once "
                       "checked)", ExitCode.TERMINATED) from None


def restore_replica(c, output, timestamp, txid, quick, dry_run, json) -> None:
    from ops.ui import UI, human_age

    if not output:
        raise OpsError("--output PATH is required (a new file)", ExitCode.USAGE)
    ui = UI()
    out = Path(output).absolute()
    report, check = restored(c, out, timestamp, txid, quick, dry_run, ui)
    point = report["reached"]
    if dry_run:
        if json:
            ui.emit(report)
        ui.info(f"Would restore TXID {point['txid']} ({point['time']}) into {out} (dry run: "
                "nothing written)")
        return
    counts = report["tables"]
    if json:
        ui.emit(report)
    landed = (f", {human_age(report['landed_before_seconds'])} before --timestamp"
              if "landed_before_seconds" in report else "")
    ui.info(f"Restored {out}: TXID {point['txid']} ({point['time']}{landed}); {check} check "
            f"ok; {sum(counts.values())} rows in {len(counts)} tables")


def restored(c, out: Path, timestamp, txid, quick, dry_run, ui: UI, *,
             db: Path | None = None, backup: dict | None = None) -> tuple[dict, str]:
    """Plan, restore (pinned to the planned TXID) into the new file ``out`` and check it;
    the report and the check that ran. With ``dry_run`` only the plan. ``db``: the
    database whose replica it is (default db.path; the machine's is db.remote_path).
    ``backup``: ``out`` is a backup, published with its records under the first free name
    from ``out``'s (``restore_checked``)."""
    from ops import replica as rp

    target_flags = rp.restore_target(timestamp, txid)
    replica = config.load_replica(c.config)
    settings = config.load(c.config, quick=quick)
    require_bucket(replica)
    if backup is None:  # a backup's name is chosen free when it is published
        refuse_existing(out)
    db = db or local_database(c)
    exe = rp.find_litestream(replica.litestream)
    env = rp.environment(ui.warn)
    rp.check_version(exe, env)
    with rendered_config(replica, db) as yml:
        base = [exe, "restore", "-config", yml, *target_flags]
        with ui.step("plan the restore from the replica"):
            plan = plan_restore(
                [*base, "-dry-run", "-json", "-o", str(out), str(db)], env,
                timestamp=timestamp and target_flags[1], txid=txid and target_flags[1],
                starts=lambda: rp.oldest(list_replica(exe, yml, db, env)))
        point = rp.reached(plan, target_flags[1] if timestamp is not None else None,
                           target_flags[1] if txid is not None else None)
        if backup is not None:  # dated by its data (the point), not by this run
            out = backup["out"] = dated_out(out, point["reached"].get("time"),
                                            dry_run=dry_run)
        report = {"database": str(db), "output": str(out), **point,
                  "files": len(plan.get("files") or []),
                  "bytes": rp.plan_bytes(plan.get("files"))}
        if timestamp is not None:
            report["timestamp"] = target_flags[1]
            note_replica_end(report, rp.newest(list_replica(exe, yml, db, env)), ui)
        if dry_run:
            report.update(dry_run=True, outcome="dry run")
            return report, settings.check
        # pinned to the planned TXID: litestream keeps shipping meanwhile, and the report,
        # the row counts and the hash must all describe the point the plan named
        pinned = [exe, "restore", "-config", yml, "-txid", point["reached"]["txid"], "-o"]
        by = f"{rp.REPLICA_BY}{point['reached']['txid']} ({point['reached']['time']})"
        restore_checked(pinned, db, out, env, settings, ui, report,
                        by=by if backup is not None else None, backup=backup)
    return report, settings.check


def note_replica_end(report: dict, end: rp.Position | None, ui: UI) -> None:
    """``replica_ends_at``, and a warning when the replica ends before --timestamp."""
    from ops import replica as rp
    from ops.ui import human_age

    if end and f"{end.txid:016x}" == report["reached"]["txid"]:
        # one TXID can sit in files of two levels, written a second apart: the
        # point the plan reached is the one to name, so both times agree
        end = rp.Position(end.txid, rp.parse_time(report["reached"]["time"]))
    report["replica_ends_at"] = end.as_dict()["time"] if end else None
    gap = rp.ends_before(end, report["timestamp"])
    if gap is not None:
        report["warning"] = (f"the replica ends at {report['replica_ends_at']}, "
                             f"{human_age(gap)} before the --timestamp asked "
                             f"({report['timestamp']}): restoring its newest point; "
                             "commits after it, if any, are not in the bucket")
        ui.warn(report["warning"])


# ---------------------------------------------------------------- replica.drill

@task(
    help={
        "quick": "check the restore with PRAGMA quick_check instead of integrity_check "
                 "(default: backup.check)",
        "json": JSON,
    }
)
@guarded
def drill(c, quick=False, json=False):
    """Restore the newest replica into scratch, check it, report its lag and RTO.

    Its freshness (lag) and the restore time (RTO); nothing is kept."""
    from ops import replica as rp
    from ops.ui import UI, human_age, human_seconds

    ui = UI()
    sweep_stale_scratch(Path(tempfile.gettempdir()), ui, rp.DRILL_PREFIX)  # kill -9 left
    try:
        with stop_on_signals(), tempfile.TemporaryDirectory(prefix=rp.DRILL_PREFIX) as folder:
            out = Path(folder) / local_database(c).name
            started = time.monotonic()
            report, check = restored(c, out, None, None, quick, False, ui)
            report["rto_seconds"] = round(time.monotonic() - started, 3)
    except Terminated as exc:
        raise OpsError(f"terminated by {exc.name}: the drill's scratch folder removed",
                       ExitCode.TERMINATED) from None
    now = dt.datetime.now(dt.UTC)
    report = rp.drill_report(report, now)
    if "warning" in report:
        ui.warn(report["warning"])
    if json:
        ui.emit(report)
    point, counts = report["reached"], report["tables"]
    age = report["age_seconds"]
    age = "age unknown" if age is None else f"{human_age(age)} old"
    ui.info(f"Replica drill: TXID {point['txid']} ({point['time']}, "
            f"{age}) restored by litestream in "
            f"{human_seconds(report['restore_seconds'])}, "
            f"{human_seconds(report['rto_seconds'])} with the checks "
            f"(RTO); {check} check ok; {sum(counts.values())} rows in {len(counts)} tables")


# ---------------------------------------------------------------- restore --from-replica

REPLICA_FOLDER = "replica"  # under backup.dir: replica restores sent to a server


def from_replica(c, which: str, from_: str | None, timestamp: str | None, restore, *,
                 backup_dir: Path, remote: str | None, dry_run: bool, json: bool, target=None,
                 unasked=None) -> None:
    """``invoke restore --from-replica``: the replica (its newest point, or as of
    ``--timestamp``) restored and checked into a new backup file published with its records
    at once (``kind: adopted``, ``by`` naming the TXID), then ``restore`` (the command's
    restore proper) takes it like any backup: locally by name in backup.dir, for a server
    (``remote``: the machine's database path) uploaded from backup.dir/replica (``--from``).
    Guarded from the start: a SIGTERM anywhere is one ``Error:`` line and exit 143.
    ``target(ui)``: opens the server's target (read when the file is named: its backups'
    names are not free; then handed to ``restore``, which closes it). ``unasked()``:
    refuses a run that cannot be asked (no terminal, no --yes), after the arguments are
    judged and before the replica is read (review-op s19 #1). ``backup_dir``: the restore's
    own (``--backup-dir`` or backup.dir), where it looks for the file by name."""
    from ops import replica as rp
    from ops.ui import UI

    if which != "latest" or from_ is not None:
        raise OpsError("--from-replica restores from the replica: give no backup name and "
                       "no --from", ExitCode.USAGE)
    rp.restore_target(timestamp, None)  # a bad --timestamp is refused before any folder,
    require_bucket(config.load_replica(c.config))  # and so are bad replica.* settings
    if unasked is not None:
        unasked()
    opened: list = []
    held = contextlib.ExitStack()  # the backup lock from the publish to the restore's end
    made: dict = {} if remote else {"held": held}  # (a server's restore takes its own)
    if target is not None:
        made["taken"] = lambda: names_on(opened, target)
    try:
        with stop_on_signals(), held:  # SIGTERM/SIGHUP: litestream killed, folder removed
            out, report = restore_source(c, timestamp, backup_dir=backup_dir, remote=remote,
                                         dry_run=dry_run, ui=UI(), made=made)
            named = {"which": "latest", "from_": str(out)} if remote else \
                {"which": out.name, "from_": None}
            handed = {"target": opened.pop()} if opened else {}
            restore(**named, checked=True, replica=report, **handed)
    except Terminated as exc:
        raise OpsError(f"terminated by {exc.name} before the restore began: "
                       f"{what_was_kept(made.get('placed'))}the live database untouched",
                       ExitCode.TERMINATED) from None
    finally:
        for unused in opened:  # not handed to the restore (it failed before): closed here
            getattr(unused, "close", lambda: None)()


def what_was_kept(out: Path | None) -> str:
    """What a signal before the restore left of the replica's backup ``out``, told by
    what is in the folder: the file and both records (its publish was complete), the
    file alone (never left by ``engine.publish``; said so rather than hidden), or none."""
    from ops import engine

    if out is None or not out.exists():
        return "nothing restored, "
    if all(path.exists() for path in engine.sidecars(out)):
        return f"the replica's checked backup {out} is kept with its records; "
    return f"the replica's checked backup {out} is kept WITHOUT its records; "


def names_on(opened: list, target) -> set[str]:
    """The names the server's backup folder holds (its backups, and entries named like one
    that are not files), the target opened once and kept in ``opened``."""
    from ops.ui import UI

    if not opened:
        opened.append(target(UI()))
    listed = opened[0].list()
    return {item.name for item in listed} | set(getattr(opened[0], "odd_entries", ()))


def restore_source(c, timestamp: str | None, *, backup_dir: Path, remote: str | None,
                   dry_run: bool, ui: UI, made: dict) -> tuple[Path, dict]:
    """The replica restored and checked into a new backup in ``backup_dir`` (its replica
    folder for a server), its records written with it; its path and replica.restore's
    report (a dry run: the plan only). ``made["out"]``: where the file goes (once checked)."""
    from ops import engine

    folder = Path(backup_dir) / REPLICA_FOLDER if remote else Path(backup_dir)
    try:
        if remote:
            engine.prepare_dir(Path(backup_dir))
        engine.prepare_dir(folder)  # private (0700), as every backup folder
    except engine.EngineError as exc:
        raise OpsError(str(exc), ExitCode.USAGE) from None
    # renamed by the point reached once planned (``dated_out``), then the first free name
    out = made["out"] = folder.absolute() / engine.backup_name(dt.datetime.now(dt.UTC))
    report, _ = restored(c, out, timestamp, None, False, dry_run, ui,
                         db=Path(remote) if remote else None, backup=made)
    out = made["out"]
    point = report["reached"]
    if dry_run:
        ui.info(f"Would restore the replica's TXID {point['txid']} ({point['time']}) into "
                f"{shown_path(out)}, then restore that file as the plan below says (dry run: "
                "nothing written)")
        return out, report
    ui.info(f"Replica TXID {point['txid']} ({point['time']}) is the backup {out.name} in "
            f"{folder}: restoring it")
    return out, report


def shown_path(path: Path) -> str:
    """``path`` as the plan's steps print backup.dir: relative to here when under it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def replica_step(report: dict, check: str) -> runbook.Step:
    """The dry-run plan's first step for ``restore --from-replica`` (review-op #7): what
    the replica phase will do, from its plan ``report`` (``restored(dry_run=True)``)."""
    from ops import runbook
    from ops.ui import human_bytes

    point, files = report["reached"], report["files"]
    return runbook.Step(
        "replica", f"restore the replica's TXID {point['txid']} ({point['time']}) into "
        f"{shown_path(Path(report['output']))} ({files} file{'' if files == 1 else 's'}, "
        f"{human_bytes(report['bytes'] or 0)}), check it with {check}_check and record it as a "
        "backup")
