"""The production machine on Fly.io as a backup target, plus snapshots and downloads.

Production is the volume named like fly.toml's ``[mounts] source`` that is
attached to a started machine; every ``fly ssh`` call names that machine with
``--machine``. The choice is a pure function (``choose_production``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import posixpath
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from ops import engine, fly, health, remote
from ops.config import Settings
from ops.errors import ExitCode, OpsError
from ops.fly import DEFAULT as RUNNER_DEFAULT
from ops.ui import UI, human_bytes


def choose_production(volumes: list[fly.Volume], machines: list[fly.Machine], source: str,
                      app: str) -> tuple[fly.Volume, fly.Machine]:
    """The one volume named ``source`` attached to a started machine, and that machine."""
    if not source:
        raise OpsError("fly.toml has no [mounts] source: cannot tell which volume holds the "
                       "database", ExitCode.USAGE)
    named = [vol for vol in volumes if vol.name == source]
    if not named:
        raise OpsError(f"app {app} has no volume named {source!r}", ExitCode.NOT_FOUND)
    started = {machine.id: machine for machine in machines if machine.state == "started"}
    candidates = [(vol, started[vol.attached_machine_id]) for vol in named
                  if vol.attached_machine_id in started]
    if not candidates:
        attached = ", ".join(f"{vol.id}→{vol.attached_machine_id or 'unattached'}" for vol in named)
        raise OpsError(f"no started machine has a {source!r} volume attached ({attached}); "
                       f"check `fly status -a {app}`", ExitCode.NOT_FOUND)
    if len(candidates) > 1:
        listed = ", ".join(f"{vol.id} on {machine.id}" for vol, machine in candidates)
        raise OpsError(f"several started machines have a {source!r} volume ({listed}): "
                       "this toolkit expects one production machine", ExitCode.USAGE)
    return candidates[0]


FAILED_SNAPSHOT = ("failed", "error", "destroyed")


def new_snapshot(before: list[fly.Snapshot], after: list[fly.Snapshot]) -> fly.Snapshot | None:
    """The snapshot our request made: one whose id was not listed before it, by id alone.

    A snapshot that is still running has its id but a zero ``created_at`` (fly-go's
    ``VolumeSnapshot.CreatedAt``; flyctl's snapshots/list.go checks ``IsZero``), so the
    time says nothing, and a scheduled snapshot that was running before our request
    and finishes while we wait is never ours. If several are new, a created one wins,
    then one still running; a failed one only when nothing else is left.
    """
    seen = {snap.id for snap in before if snap.id}
    fresh = [snap for snap in after if snap.id and snap.id not in seen]
    if not fresh:
        return None
    return min(fresh, key=lambda snap: (_rank(snap.status), snap.created_at))


def _rank(status: str) -> int:
    return 0 if status == "created" else 2 if status in FAILED_SNAPSHOT else 1


class FlyTarget:
    """Backups in ``backup.remote_dir`` on the production machine, through flyctl."""

    production = True

    def __init__(self, settings: Settings, ui: UI, runner: fly.Fly | None = None):
        self.settings = settings
        self.ui = ui
        self.db = remote.remote_path(settings.db_remote_path, "db.remote_path")
        self.dir = remote.remote_path(settings.backup_remote_dir, "backup.remote_dir")
        self.app = settings.app
        self._fly = runner
        self._resolved: tuple[fly.Volume, fly.Machine] | None = None

    @property
    def fly(self) -> fly.Fly:
        """flyctl, looked up on first use (a dry run never needs it)."""
        if self._fly is None:
            self._fly = fly.Fly(self.settings.flyctl(), timeout=self.settings.fly_timeout)
        return self._fly

    def check_flyctl(self) -> str:
        """flyctl's version, refused when too old to be trusted (asked once per run)."""
        return self.fly.check_version(self.ui.warn)

    def copy_deadline(self, size: int | None = None) -> tuple[float, str]:
        """Seconds a copy, verify or download of ``size`` bytes may take (default: the
        volume's size, which bounds the database), and the keys that give it more."""
        s = self.settings
        if size is None:
            size = self.volume.size_gb * 1024 ** 3
        seconds = s.fly_timeout + size / s.fly_min_rate + s.backup_timeout + s.lock_wait
        return seconds, "fly.timeout (or lower fly.min_rate)"

    def describe(self) -> str:
        return f"production {self.app}:{self.db}"

    # -- production machine
    @property
    def volume(self) -> fly.Volume:
        return self.resolve()[0]

    @property
    def machine(self) -> fly.Machine:
        return self.resolve()[1]

    def resolve(self, *, again: bool = False) -> tuple[fly.Volume, fly.Machine]:
        """The production volume and machine; ``again`` asks Fly anew (after a deploy,
        which may have replaced the machine)."""
        if again:
            self._resolved = None
        if self._resolved is None:
            with self.ui.step(f"resolve production machine of {self.app}") as step:
                self.check_flyctl()
                volumes = self.fly.volumes(self.app)
                machines = self.fly.machines(self.app)
                self._resolved = choose_production(
                    volumes, machines, self.settings.fly_toml().mount_source, self.app)
                volume, machine = self._resolved
                step.detail = f"machine {machine.id} ({machine.region}), volume {volume.id}"
        return self._resolved

    def exec(self, script: str, *, engine_source: bool = False, timeout=RUNNER_DEFAULT,
             what: str = "a command", key: str = "fly.timeout") -> remote.RemoteOutput:
        """Run a script on the machine; its real status comes back through the sentinel.

        ``timeout`` (default ``fly.timeout``) may be ``(seconds, key)`` from
        ``copy_deadline``; ``what`` names the script in errors.
        """
        if isinstance(timeout, tuple):
            timeout, key = timeout
        stdin = Path(engine.__file__).read_bytes() if engine_source else b""
        machine = self.machine.id
        result = self.fly.run(
            fly.ssh_console(self.app, machine, remote.wrap(script)),
            input=stdin, check=False, timeout=timeout, key=key,
            what=f"`fly ssh console` ({what} on machine {machine})",
        )
        output = remote.parse_output(result.stdout)
        if output.status is None:
            reason = (fly.error_line(result.stderr, result.returncode) if result.returncode
                      else "flyctl exited 0 but the script's status line never arrived")
            raise fly.FlyError(f"`fly ssh console` ({what} on machine {machine}) failed: "
                               f"{reason}", stderr=result.stderr)
        return output

    # -- the target interface
    def backup(self, on_bytes=None, *, check: str | None = None) -> dict:  # no progress
        """``check`` overrides ``backup.check`` (a deploy publishes with ``quick``)."""
        s = self.settings
        script = remote.backup_script(
            self.db, self.dir, check=check or s.check, remote_command=s.remote_command,
            timeout=s.backup_timeout, lock_wait=s.lock_wait)
        output = self.exec(script, engine_source=True, timeout=self.copy_deadline(), what="backup")
        if output.strategy == "none":
            raise OpsError(remote.NEEDS, ExitCode.ERROR)
        if output.strategy == "remote_command":
            return self._adopt_app_backup(output)
        data = output.data("backup")
        data["strategy"] = output.strategy
        return data

    def _adopt_app_backup(self, output: remote.RemoteOutput) -> dict:
        """The app's own script made a file: it counts once downloaded and verified here."""
        if output.status != 0:
            output.data("backup.remote_command")
            raise OpsError(f"backup.remote_command failed on the machine (exit {output.status})")
        for entry in output.entries:
            if (len(entry) != 2 or entry[0] not in ("before", "after")
                    or not remote.ENTRY_NAME.fullmatch(entry[1])):
                raise OpsError(f"the machine's listing of {self.dir} has an entry this tool "
                               f"did not print: {ascii(' '.join(entry))[:100]}")
        before = {e[1] for e in output.entries if e[0] == "before"}
        new = sorted(e[1] for e in output.entries if e[0] == "after" and e[1] not in before)
        if not new:
            raise OpsError(f"backup.remote_command finished but no new backup appeared in "
                           f"{self.dir}", ExitCode.ERROR)
        local = self.download(new[-1], self.settings.backup_dir, check=True)
        manifest = json.dumps({k: local[k] for k in ("name", "size", "sha256", "check")}
                              | {"strategy": "remote_command"})
        if self.exec(remote.sidecar_script(self.dir, new[-1], local["sha256"], manifest,
                                           self.settings.lock_wait)).status != 0:
            self.ui.warn(f"could not record the checksum beside {new[-1]} on the machine; "
                         "it is verified here but listed there as unverified")
        return {**local, "path": f"{self.dir}/{new[-1]}", "strategy": "remote_command",
                "local_copy": local["path"]}

    def list(self) -> list[engine.BackupFile]:
        """The machine's listing; an entry of any shape but the one the script prints is
        refused (see ``remote.list_script``), never skipped or guessed at."""
        output = self.exec(remote.list_script(self.dir))
        if output.status != 0:
            raise OpsError(f"cannot list {self.dir} on {self.machine.id}")
        found = []
        for entry in output.entries:
            if not _listing_entry(entry):
                raise OpsError(f"the machine's listing of {self.dir} has an entry this tool "
                               f"did not print: {ascii(' '.join(entry))[:100]}")
            name, size, digest, manifest = entry
            created = engine.parse_created(name)
            if created is None:  # the right shape but no real date: not one of ours
                continue
            found.append(engine.BackupFile(
                name=name, path=f"{self.dir}/{name}", created=engine.iso(created),
                size=int(size), sha256=None if digest == "-" else digest,
                verified=manifest == "1"))
        return sorted(found, key=lambda item: item.name)

    def names(self, which: str) -> list[str]:
        """``latest``/``all`` from a listing; a name as given (the machine says if it is gone)."""
        if which not in ("latest", "all"):
            return [engine.check_name(which)]
        backups = self.list()
        if not backups:
            raise OpsError(f"no backups in {self.dir} on {self.machine.id}", ExitCode.NOT_FOUND)
        return [b.name for b in (backups[-1:] if which == "latest" else backups)]

    def verify(self, which: str, *, check: str | None = None) -> list[dict]:
        names = self.names(which)
        check = check or self.settings.check
        output = self.exec(remote.verify_script(self.dir, names, check), engine_source=True,
                           timeout=self.copy_deadline(), what="verify")
        if output.strategy == "python3":
            return output.data("verify")
        if output.strategy == "sqlite3":
            if output.result is not None:
                output.data("verify")
            return [_sqlite_verdict(entry, check) for entry in output.entries]
        return self._verify_by_download(names)

    def _verify_by_download(self, names: list[str]) -> list[dict]:
        """No SQLite on the machine: fetch each backup and check it here, against the
        SHA-256 recorded beside it on the machine (not the one the file has now)."""
        results = []
        with tempfile.TemporaryDirectory(prefix="ops-verify-") as scratch:
            for name in names:
                record = self._record(name)
                try:
                    local = self.download(name, Path(scratch), check=False, record=record)
                except OpsError as exc:
                    if exc.code != ExitCode.VERIFY_FAILED:
                        raise
                    results.append({
                        "name": name, "ok": False, "check": self.settings.check,
                        "size": record["size"], "sha256": record["sha256"],
                        "recorded_sha256": record["recorded"], "problems": [str(exc)],
                        "where": "machine"})
                    continue
                verdict = asdict(engine.verify_backup(local["path"], self.settings.check))
                verdict["recorded_sha256"] = record["recorded"]
                results.append(verdict | {"where": "downloaded"})
        return results

    def delete(self, names: list[str]) -> list[str]:
        if names:
            output = self.exec(remote.delete_script(self.dir, names, self.settings.lock_wait))
            if output.status != 0:
                if output.result is not None:
                    output.data("retention")
                raise OpsError(f"could not delete old backups in {self.dir}")
        return names

    def status(self) -> dict:
        """The app's own /health view of backups; the remote folder if it cannot be read."""
        from ops.backups import status, valid_status

        url = self.settings.health
        code, body, problem = health.fetch(url)
        block = (body or {}).get("backup")
        if code == 200 and valid_status(block):
            return block | {"source": url}
        if problem or code != 200:
            reason = problem or f"HTTP {code}"
        else:
            reason = "it has no backup block" if block is None else "its backup block is malformed"
        self.ui.warn(f"{url} unreachable or unusable ({reason}); listing {self.dir} on the "
                     "machine instead")
        return status(self.list(), dt.datetime.now(dt.UTC)) | {"source": "remote folder"}

    # -- the deploy lock on the volume
    @property
    def deploy_lock_path(self) -> str:
        return f"{posixpath.dirname(self.db)}/{remote.DEPLOY_LOCK}"

    def lock_deploy(self, wait: float, holder: str) -> bool:
        """Take the machine's deploy lock; True if we had to wait for someone else's.

        When the answer is lost (no status line, a deadline, a dropped tunnel) the lock
        may or may not be ours: it is removed if it is, and the step fails.
        """
        try:
            output = self.exec(remote.deploy_lock_script(self.deploy_lock_path, holder, wait),
                               timeout=self.settings.fly_timeout + wait, what="deploy lock",
                               key="fly.timeout")
        except fly.FlyError as exc:
            after = ("any lock this run took was removed" if self._forget_lock(holder)
                     else "if the lock is this run's: invoke deploy.unlock --yes")
            raise OpsError(f"could not take the deploy lock {self.deploy_lock_path}: {exc}; "
                           f"{after}", exc.code) from None
        entries = {entry[0]: " ".join(entry[1:]) for entry in output.entries if entry}
        if output.status == 4:
            hint = "" if wait else " (use --lock-wait SECONDS to wait for it)"
            raise OpsError(f"another deploy of {self.app} holds the lock on the machine "
                           f"({self.deploy_lock_path}): {entries.get('held') or 'unknown'}"
                           f"{hint}; if none is running: invoke deploy.unlock --yes",
                           ExitCode.LOCKED)
        if output.status != 0 or "acquired" not in entries:
            self._forget_lock(holder)  # best effort: the step fails either way
            raise OpsError(f"could not take the deploy lock {self.deploy_lock_path} "
                           f"(exit {output.status})")
        return "waiting" in entries

    def _forget_lock(self, holder: str) -> bool:
        """Remove the deploy lock if ``holder`` holds it; False if that could not be told."""
        try:
            self.unlock_deploy(holder=holder)
        except OpsError as exc:
            return exc.code == ExitCode.LOCKED  # someone else's: not ours to remove
        return True

    def unlock_deploy(self, *, remove: bool = True, holder: str | None = None) -> str | None:
        """Who holds the machine's deploy lock (None: nobody), removing it unless told not to.

        With ``holder`` it is removed only if that holder holds it (a deploy releasing
        its own lock); without, it is removed whoever holds it (``deploy.unlock --yes``).
        """
        output = self.exec(remote.deploy_unlock_script(self.deploy_lock_path, remove=remove,
                                                       holder=holder), what="deploy unlock")
        if output.status == 3:
            return None
        shown = " ".join(output.entries[0][1:]) if output.entries else "unknown"
        if output.status == 5:
            raise OpsError(f"the deploy lock {self.deploy_lock_path} is no longer this run's: "
                           f"it is held by {shown}; left in place", ExitCode.LOCKED)
        if output.status != 0:
            raise OpsError(f"could not read or remove the deploy lock {self.deploy_lock_path}")
        return shown

    # -- snapshots
    def snapshot(self, *, wait: bool = True, timeout: float = 600,
                 interval: float = 5.0) -> dict:
        volume = self.volume
        before = self.fly.snapshots(self.app, volume.id)
        with self.ui.step(f"schedule snapshot of {volume.id}") as step:
            result = self.fly.run(fly.snapshots_create(self.app, volume.id))
            step.detail = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if not wait:
            return {"volume": volume.id, "status": "scheduled", "id": None}
        with self.ui.step(f"wait for snapshot of {volume.id}") as step:
            deadline = time.monotonic() + timeout
            while True:
                snap = new_snapshot(before, self.fly.snapshots(self.app, volume.id))
                if snap and snap.status == "created":
                    step.detail = f"{snap.id}  {human_bytes(snap.size)}"
                    return asdict(snap) | {"volume": volume.id}
                if snap and snap.status in FAILED_SNAPSHOT:
                    raise OpsError(f"snapshot {snap.id} of {volume.id} ended as {snap.status}; "
                                   f"see `fly volumes snapshots list {volume.id}`")
                if time.monotonic() >= deadline:
                    state = snap.status if snap else "not listed yet"
                    raise OpsError(
                        f"snapshot of {volume.id} not created within {timeout:g}s "
                        f"(status: {state}); check `fly volumes snapshots list {volume.id}`",
                        ExitCode.TIMEOUT)
                time.sleep(interval)

    # -- downloads
    def _record(self, name: str) -> dict:
        """The backup's SHA-256 and size on the machine now, and what was recorded."""
        info = self.exec(remote.record_script(self.dir, name))
        if info.status == 3:
            raise OpsError(f"no backup named {name} on the production machine",
                           ExitCode.NOT_FOUND)
        if info.status != 0 or len(info.entries) != 1 or not _record_entry(info.entries[0]):
            if info.result is not None:
                info.data(f"reading {name}")
            raise OpsError(f"cannot compute the SHA-256 of {self.dir}/{name} on the machine "
                           "(it needs sha256sum)")
        digest, size, recorded, manifest = info.entries[0]
        return {"sha256": digest, "size": int(size),
                "recorded": None if recorded == "-" else recorded,
                "manifest": None if manifest == "-" else manifest}

    def download(self, name: str, directory: Path, *, check: bool = True,
                 record: dict | None = None) -> dict:
        """Fetch one backup: only if the machine's file still matches its record, into a
        private (0700) folder held under the local folder's backup lock, then rename."""
        engine.check_name(name)
        directory = Path(directory)
        final = directory / name
        if final.exists() or final.is_symlink():
            raise OpsError(f"{final} already exists; not overwritten", ExitCode.USAGE)
        _private_dir(directory)
        engine.prepare_dir(directory)
        record = record or self._record(name)
        expected = trusted_sha256(name, record)
        if expected is None:
            self.ui.warn(f"{name} has no SHA-256 recorded on the machine (no usable "
                         f"{name}.sha256 or {name}.json): it is checked against the file "
                         "as it is now, so a change since it was made cannot be seen")
        remote_file = f"{self.dir}/{name}"
        with engine.backup_lock(directory, self.settings.lock_wait):
            _sweep_downloads(directory)
            private = Path(tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX, dir=directory))
            tmp = private / name
            try:
                with self.ui.step(f"download {name}") as step:
                    with self.ui.transfer(name, record["size"]) as update, _Watch(tmp, update):
                        seconds, key = self.copy_deadline(record["size"])
                        self.fly.run(fly.sftp_get(self.app, self.machine.id, remote_file,
                                                  str(tmp)), timeout=seconds, key=key,
                                     what=f"`fly ssh sftp get` of {name}")
                    os.chmod(tmp, 0o600)
                    digest = engine.sha256_file(tmp)
                    if digest != record["sha256"]:
                        raise OpsError(f"download of {name} is corrupt: SHA-256 {digest[:12]}… "
                                       f"but the machine has {record['sha256'][:12]}…",
                                       ExitCode.VERIFY_FAILED)
                    if check:
                        problems = engine.run_check(tmp, self.settings.check)
                        if problems:
                            raise OpsError(f"{name} failed {self.settings.check}_check: "
                                           f"{problems[0]}", ExitCode.VERIFY_FAILED)
                    created = engine.iso(engine.parse_created(name))
                    result = engine.BackupResult(
                        name=name, path=str(final), created=created, size=tmp.stat().st_size,
                        sha256=digest, check=self.settings.check if check else "none",
                        seconds=0.0, source=f"{self.app}:{remote_file}", strategy="download")
                    engine.publish(tmp, final, result)
                    step.detail = (f"{human_bytes(result.size)}  sha256 {digest[:12]} "
                                   + ("matches its record" if expected else "UNRECORDED"))
            finally:
                shutil.rmtree(private, ignore_errors=True)
        return asdict(result) | {"recorded_sha256": expected}

    def restore(self, name: str, *, busy_timeout: float = 10.0) -> dict:
        """Restore backup ``name`` into the live database on the machine (its best engine)."""
        script = remote.restore_script(self.db, self.dir, name, check=self.settings.check,
                                       busy_timeout=busy_timeout,
                                       lock_wait=self.settings.lock_wait)
        output = self.exec(script, engine_source=True, timeout=self.copy_deadline(),
                           what="restore")
        if output.strategy == "none":
            raise OpsError(manual_restore_steps(self.app, self.machine.id, name),
                           ExitCode.ERROR)
        try:
            data = output.data("restore")
        except OpsError as exc:
            safety = next((e[1] for e in output.entries if e[0] == "safety" and len(e) > 1), "")
            if safety and safety not in str(exc):
                raise OpsError(f"{exc} (safety backup {safety} was made first)",
                               exc.code) from None
            raise
        if output.strategy == "sqlite3":
            entries = output.entries
            data = data | {
                "safety_backup": {"name": next((e[1] for e in entries if e[0] == "safety"),
                                               None)},
                "tables_before": _counts(entries, "before"),
                "tables_after": _counts(entries, "after"),
                "problems": [" ".join(e[1:]) for e in entries
                             if e[0] == "check" and e[1:] != ["ok"]],
            }
            data["ok"] = not data["problems"]
        return data | {"strategy": output.strategy}

    def counts(self, name: str) -> dict:
        """Rows per table of the live database, and as recorded for ``name`` (for the
        confirmation); empty when the machine has no SQLite to count with."""
        output = self.exec(remote.counts_script(self.db, self.dir, name), engine_source=True)
        if output.strategy == "python3":
            return output.data("count rows")
        if output.strategy != "sqlite3":
            return {}
        try:
            recorded = engine.checked_manifest(json.loads(remote.manifest_text(output.stdout)),
                                               f"{name}.json").get("tables")
        except (ValueError, engine.EngineError):
            recorded = None
        return {"live": {e[1]: int(e[2]) for e in output.entries
                         if len(e) == 3 and e[0] == "live" and e[2].isdigit()},
                "backup": recorded}

    def restart(self) -> str:
        """``fly machine restart``: the app reopens the database it now holds."""
        result = self.fly.run(fly.machine_restart(self.app, self.machine.id),
                              timeout=self.settings.fly_deploy_timeout,
                              key="fly.deploy_timeout")
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    def upload(self, path: Path, name: str, manifest: dict) -> dict:
        """Send a local backup to the machine (``fly ssh sftp put``) and adopt it under
        ``name`` only once its SHA-256 there is the one computed here."""
        digest = engine.sha256_file(path)
        upload = f"{self.dir}/.upload-{name}.{os.getpid()}"
        self.exec(f"mkdir -p {shlex.quote(self.dir)}")
        try:
            seconds, key = self.copy_deadline(path.stat().st_size)
            self.fly.run(fly.sftp_put(self.app, self.machine.id, str(path), upload),
                         timeout=seconds, key=key, what=f"`fly ssh sftp put` of {path.name}")
        except fly.FlyError:
            self.exec(f"rm -f {shlex.quote(upload)}")  # flyctl leaves a partial file
            raise
        text = json.dumps(manifest | {"name": name, "sha256": digest})
        output = self.exec(remote.adopt_upload_script(self.dir, upload, name, digest, text))
        if output.status == 5:
            arrived = output.entries[0][1] if output.entries else "?"
            raise OpsError(f"the upload of {path.name} arrived corrupt (SHA-256 {arrived[:12]}… "
                           f"on the machine, {digest[:12]}… here); nothing was changed",
                           ExitCode.VERIFY_FAILED)
        if output.status == 6:
            raise OpsError(f"a different backup named {name} already exists on the machine; "
                           "nothing was changed", ExitCode.USAGE)
        if output.status != 0:
            raise OpsError(f"could not place the upload as {self.dir}/{name} "
                           f"(exit {output.status})")
        return {"name": name, "sha256": digest, "size": path.stat().st_size,
                "path": f"{self.dir}/{name}"}

    def drill(self, name: str) -> dict:
        """Drill on the machine's python3, else download the backup and drill it here."""
        output = self.exec(remote.drill_script(self.dir, name, self.settings.check),
                           engine_source=True, timeout=self.copy_deadline(), what="drill")
        if output.strategy == "python3":
            return output.data("drill") | {"where": "machine"}
        recorded = self.exec(remote.manifest_script(self.dir, name))
        with tempfile.TemporaryDirectory(prefix="ops-drill-") as scratch:
            local = Path(self.download(name, Path(scratch), check=False)["path"])
            sums = {item.name: item.sha256 for item in self.list()}
            Path(f"{local}.sha256").write_text(f"{sums.get(name) or ''}  {name}\n")
            manifest = Path(f"{local}.json")
            if recorded.status == 0:
                manifest.write_text(remote.manifest_text(recorded.stdout))
            else:
                manifest.unlink(missing_ok=True)
            return engine.drill_backup(local, check=self.settings.check) | {
                "where": "downloaded"}


DOWNLOAD_PREFIX = ".tmp-download-"


def trusted_sha256(name: str, record: dict) -> str | None:
    """The SHA-256 recorded when the backup was made, if any; refuse a file that no
    longer matches it (or whose two records disagree): a download never launders it."""
    records = {value for value in (record["recorded"], record["manifest"]) if value}
    if len(records) > 1:
        raise OpsError(f"SHA-256 records disagree: {name}.sha256 has "
                       f"{record['recorded'][:12]}…, {name}.json has "
                       f"{record['manifest'][:12]}…; not downloaded", ExitCode.VERIFY_FAILED)
    if records and record["sha256"] not in records:
        recorded = next(iter(records))
        raise OpsError(f"SHA-256 mismatch: recorded {recorded[:12]}…, the machine's file has "
                       f"{record['sha256'][:12]}… ({name} changed after it was made); "
                       "not downloaded", ExitCode.VERIFY_FAILED)
    return next(iter(records), None)


def _private_dir(directory: Path) -> None:
    """Create the backup folder private (0700); an existing one keeps its mode."""
    with contextlib.suppress(OSError):
        directory.mkdir(mode=0o700, parents=True)


def _sweep_downloads(directory: Path) -> None:
    """Remove what an interrupted download left (our own folders only); hold the lock."""
    for entry in directory.iterdir():
        if entry.name.startswith(DOWNLOAD_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _listing_entry(entry: list[str]) -> bool:
    """``name size sha256|- 0|1``, exactly as ``remote.list_script`` prints it."""
    return (len(entry) == 4 and bool(remote.ENTRY_NAME.fullmatch(entry[0]))
            and entry[1].isascii() and entry[1].isdigit()
            and (entry[2] == "-" or bool(remote.HEX64.fullmatch(entry[2])))
            and entry[3] in ("0", "1"))


def _record_entry(entry: list[str]) -> bool:
    """``sha256 size recorded|- manifest|-``, as ``remote.record_script`` prints it."""
    return (len(entry) == 4 and bool(remote.HEX64.fullmatch(entry[0]))
            and entry[1].isascii() and entry[1].isdigit()
            and all(value == "-" or bool(remote.HEX64.fullmatch(value)) for value in entry[2:]))


def manual_restore_steps(app: str, machine: str, name: str) -> str:
    """What to do by hand when the machine has neither python3 nor sqlite3."""
    return (f"the production machine has neither python3 nor the sqlite3 CLI; nothing was "
            f"changed. By hand: 1) fly ssh console -a {app} --machine {machine} -C "
            f"\"sh -c 'apt-get update && apt-get install -y sqlite3'\" (or add sqlite3 to the "
            f"image and deploy); 2) invoke restore {name} --production")


def _counts(entries: list[list[str]], which: str) -> dict:
    return {e[1]: int(e[2]) for e in entries if len(e) == 3 and e[0] == which
            and e[2].isdigit()}


def _sqlite_verdict(entry: list[str], check: str) -> dict:
    """One line of the sqlite3 branch of ``remote.verify_script``, read like the engine."""
    if (len(entry) < 5 or not remote.ENTRY_NAME.fullmatch(entry[0])
            or not (entry[1].isascii() and entry[1].isdigit())
            or not all(value == "-" or remote.HEX64.fullmatch(value) for value in entry[2:4])):
        raise OpsError(f"the machine's verification has an entry this tool did not print: "
                       f"{ascii(' '.join(entry))[:100]}")
    name, size, digest, recorded, *verdict = entry
    problems = [] if verdict == ["ok"] else [" ".join(verdict)]
    digest = "" if digest == "-" else digest
    recorded = None if recorded == "-" else recorded
    if recorded and digest and recorded != digest:
        problems.insert(0, f"SHA-256 mismatch: recorded {recorded[:12]}…, file has {digest[:12]}…")
    return {"name": name, "ok": not problems, "check": check, "size": int(size), "sha256": digest,
            "recorded_sha256": recorded, "problems": problems}


class _Watch:
    """Report a growing file's size while flyctl writes it (flyctl shows no progress)."""

    def __init__(self, path: Path, update):
        self.path, self.update = path, update
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.update(self.path.stat().st_size)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
