"""Backups on a host that the tool reaches by running scripts: the Fly machine, an SSH host.

Everything here works over a ``Session`` (below): run a script from ``ops.remote``
and read its ``RemoteOutput``, and move a file each way. The Fly machine's session
runs them through flyctl (``ops.targets.fly.session``), an SSH host's through one
Paramiko connection (``ops.targets.ssh``); backup, list, verify, delete, download,
restore, drill and upload are written once, here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from ops import digits, engine, machine, node, remote
from ops.errors import ExitCode, OpsError
from ops.targets.protocol import Progress, Reporter, Settle
from ops.targets.status import status as folder_status
from ops.ui import human_bytes, lock_waiting

DOWNLOAD_PREFIX = ".tmp-download-"


class Session(Protocol):
    """Running a script on one host, and moving files to and from it."""

    place: str  # "the production machine", "ssh deploy@box:22": where, in errors

    @property
    def where(self) -> str:
        """The host as named in messages (the machine's id, the SSH address)."""

    def run(self, script: str, *, engine_source: bool = False, timeout=None,
            what: str = "a command") -> remote.RemoteOutput:
        """Run a script; ``engine_source`` sends ``ops/engine.py`` on stdin."""

    def deadline(self, size: int | None = None):
        """The timeout a copy, verify or download of ``size`` bytes may take."""

    def get_file(self, remote_file: str, local: Path, size: int, on_bytes: Progress) -> None:
        """Write the host's ``remote_file`` to the new local path ``local``."""

    def put_file(self, local: Path, remote_file: str, progress=None) -> None:
        """Write ``local`` to the new path ``remote_file`` on the host; ``progress`` is
        ``Reporter.transfer``, opened by a session that can follow the bytes."""

    def source(self, remote_file: str) -> str:
        """How a downloaded backup's record names where it came from."""

    def manual_restore(self, name: str) -> str:
        """What to do by hand when the host has neither python3 nor sqlite3."""


class ScriptedTarget:
    """The target interface over a ``Session``; subclasses give it one."""

    session: Session
    downloads_name: str  # the folder name its downloads get in backup.dir (``downloads``)

    def __init__(self, settings, report: Reporter, session: Session, flag: str):
        self.settings = settings
        self.report = report
        self.session = session
        self.flag = flag
        self.db = remote.remote_path(settings.db_remote_path, "db.remote_path")
        self.dir = remote.remote_path(settings.backup_remote_dir, "backup.remote_dir")
        self.app_dir = remote.remote_path(settings.machine_app_dir, "machine.app_dir")
        self.odd_entries: list[str] = []  # the last listing's (``list``)
        self.staged: list[engine.Leftover] | None = None  # the last listing's stale uploads
        self._listed: list[engine.BackupFile] | None = None  # ``leftovers``' for ``list``

    @property
    def host(self) -> str:
        """How messages name the host in a sentence: ``the machine`` (Fly's one machine);
        an SSH host gives its address."""
        return "the machine"

    def folder(self) -> str:
        return f"{self.dir} on {self.host}"

    def leftovers(self) -> list[engine.Leftover]:
        """restore --from's staged uploads a stopped run left there (``remote.STALE_STAGED``:
        older than ``engine.STAGED_AGE``, ours, nothing else), from the last listing (one
        is made if none was); the host's own engine sweeps its other temporaries under
        its lock as each backup runs."""
        if self.staged is None:  # backup.cleanup: its retention's listing, made first
            self._listed = self.list()
        return list(self.staged or [])

    def remove_leftovers(self) -> list[str]:
        """The stale staged uploads removed under the folder's backup lock (each judged
        again there: one written to meanwhile stays)."""
        names = [item.name for item in self.leftovers()]
        if not names:
            return []
        output = self._run(remote.remove_staged_script(self.dir, names, self.settings.lock_wait))
        if output.status != 0:
            if output.result is not None:
                output.data("cleanup")
            raise OpsError(f"could not remove the staged uploads in {self.dir}")
        self.staged = None
        return [e[1] for e in output.entries if len(e) == 2 and e[0] == "removed"
                and e[1] in names]

    def restore_actions(self, flow) -> dict:
        """What each step of a restore does on this host (``Target.restore_actions``): the
        engine's one restore run there in one call (``restore``), its steps around it
        (``flow.there``)."""
        return flow.there(self)

    def settle(self) -> Settle:
        """Nothing on an SSH host (its app reads the restored content through SQLite:
        restart it yourself if it caches); the Fly machine restarts (``FlyTarget``)."""
        return []

    def status(self) -> dict:
        return folder_status(self.list(), dt.datetime.now(dt.UTC), self.source)

    def _run(self, script: str, **kwargs) -> remote.RemoteOutput:
        """Every script knows where the app's ``node_modules`` is (``machine.app_dir``)."""
        return self.session.run(node.with_app_dir(self.app_dir, script), **kwargs)

    def machine_facts(self) -> dict:
        """What the host has (``ops.machine``): the engines, tools, space and memory."""
        output = self._run(machine.probe_script(self.db, self.dir, self.app_dir))
        return machine.parse(output.entries)

    # -- backups
    def backup(self, progress=None, *, on_phase=None, check: str | None = None) -> dict:
        """The host reports no progress; ``check`` overrides ``backup.check`` (a deploy
        publishes with ``quick`` and runs the full check beside the snapshot)."""
        s = self.settings
        script = remote.backup_script(
            self.db, self.dir, check=check or s.check, remote_command=s.remote_command,
            timeout=s.backup_timeout, lock_wait=s.lock_wait, content_hash=s.content_hash)
        output = self._run(script, engine_source=True, timeout=self.session.deadline(),
                           what="backup")
        if output.strategy == "none":
            raise OpsError(remote.needs(self.session.place), ExitCode.ERROR)
        if output.strategy == "remote_command":
            return self._adopt_app_backup(output)
        data = output.data("backup")
        data["strategy"] = output.strategy
        return data

    def _adopt_app_backup(self, output: remote.RemoteOutput) -> dict:
        """The app's own script made a file: it counts once downloaded and verified here."""
        if output.status != 0:
            output.data("backup.remote_command")
            raise OpsError(f"backup.remote_command failed on {self.host} (exit {output.status})")
        for entry in output.entries:
            if (len(entry) != 2 or entry[0] not in ("before", "after")
                    or not remote.ENTRY_NAME.fullmatch(entry[1])):
                raise OpsError(f"{self.host}'s listing of {self.dir} has an entry this tool "
                               f"did not print: {_quoted_entry(entry)}")
        before = {e[1] for e in output.entries if e[0] == "before"}
        new = sorted(e[1] for e in output.entries if e[0] == "after" and e[1] not in before)
        if not new:
            raise OpsError(f"backup.remote_command finished but no new backup appeared in "
                           f"{self.dir}", ExitCode.ERROR)
        local = self.download(new[-1], self.downloads(self.settings.backup_dir), check=True,
                              just_made=True)
        # its records, as the engines write them: verified here, so drills compare against
        # the row counts the app's own script captured (no content hash: issue 21)
        manifest = json.dumps({k: local[k] for k in ("name", "size", "sha256", "check")}
                              | {"strategy": "remote_command",
                                 "tables": engine.count_rows(local["path"]),
                                 "content_sha256": None, "content_format": None,
                                 "sqlite_version": engine.sqlite3.sqlite_version})
        if self._run(remote.sidecar_script(self.dir, new[-1], local["sha256"], manifest,
                                           self.settings.lock_wait)).status != 0:
            self.report.warn(f"could not record the checksum beside {new[-1]} on {self.host}; "
                             "it is verified here but listed there as unverified")
        return {**local, "path": f"{self.dir}/{new[-1]}", "strategy": "remote_command",
                "local_copy": local["path"]}

    listed_by = "sh"  # remote.list_script: plain sh on every image, whatever engine it has

    def list(self) -> list[engine.BackupFile]:
        """The host's listing; an entry of any shape but the one the script prints is
        refused (see ``remote.list_script``), never skipped or guessed at."""
        if self._listed is not None:  # made a moment ago by ``leftovers`` (one call, not two)
            found, self._listed = self._listed, None
            return found
        output = self._run(remote.list_script(self.dir))
        if output.status != 0:
            raise OpsError(f"cannot list {self.dir} on {self.session.where}")
        found = []
        odd = [entry for entry in output.entries if _odd_entry(entry)]
        self.odd_entries = [entry[1] for entry in odd]  # named like a backup, not a file
        staged = [entry for entry in output.entries if _staged_entry(entry)]
        self.staged = [engine.Leftover(e[1], int(e[2])) for e in staged]  # backup.cleanup's
        for entry in output.entries:
            if entry in odd or entry in staged:
                continue
            if (problem := listing_problem(entry)) is not None:
                raise OpsError(f"{self.host}'s listing of {self.dir} has an entry this tool "
                               f"did not print ({problem}): {_quoted_entry(entry)}")
            name, size, digest, manifest, kind, source, made, uploaded = entry
            created = engine.parse_created(name)
            if created is None:  # the right shape but no real date: not one of ours
                continue
            found.append(engine.BackupFile(
                name=name, path=f"{self.dir}/{name}", created=engine.iso(created),
                size=int(size), sha256=None if digest == "-" else digest,
                verified=manifest == "1", kind="backup" if kind == "-" else kind,
                source=listed_source(source), restore=_restore_mark(made),
                uploaded=None if uploaded == "-" else uploaded))
        return sorted(found, key=lambda item: item.name)

    def downloads(self, base: Path) -> Path:
        """Where this host's backups land on this computer: a folder of their own in
        ``backup.dir`` (``fly-<app>``, ``ssh-<host>``), never beside this computer's own
        backups, whose ``latest``, status and retention they must not change (issue 16 #3)."""
        return engine.source_folder(
            Path(base) / re.sub(r"[^A-Za-z0-9._@-]+", "_", self.downloads_name)[:80])

    @property
    def source(self) -> str:
        """The database whose backups ``latest`` names here (issue 16 #3)."""
        return self.db

    def names(self, which: str) -> list[str]:
        """``latest``/``all`` from a listing; a name as given (the host says if it is gone).
        ``latest`` by the engine's one rule (``engine.latest_of``): never a safety backup,
        one dated in the future or another database's (issue 16 #2-4)."""
        if which not in ("latest", "all"):
            return [engine.check_name(which)]
        try:  # the one rule every target uses (engine.pick_backups)
            return [b.name for b in engine.pick_backups(
                self.list(), which, self.latest, f"{self.dir} on {self.session.where}")]
        except engine.EngineError as exc:
            raise OpsError.from_engine(exc) from None

    def latest(self, backups: list[engine.BackupFile]) -> engine.BackupFile:
        try:
            return engine.latest_of(backups, dt.datetime.now(dt.UTC), self.source,
                                    where=f"{self.dir} on {self.session.where}")
        except engine.EngineError as exc:
            raise OpsError.from_engine(exc) from None

    def verify(self, which: str, on_result=None, *, check: str | None = None) -> list[dict]:
        """``on_result(verdict)`` per backup: as each is checked when they are downloaded
        and checked here, after the one remote run otherwise."""
        names = self.names(which)
        check = check or self.settings.check
        output = self._run(remote.verify_script(self.dir, names, check), engine_source=True,
                           timeout=self.session.deadline(), what="verify")
        if output.strategy in node.ENGINES:
            results = output.data("verify")
        elif output.strategy == "sqlite3":
            if output.result is not None:
                output.data("verify")
            results = [_sqlite_verdict(entry, check, self.host) for entry in output.entries]
        else:
            return self._verify_by_download(names, on_result)
        results = [verdict | {"strategy": output.strategy} for verdict in results]
        for verdict in results if on_result else ():
            on_result(verdict)
        return results

    def _verify_by_download(self, names: list[str], on_result=None) -> list[dict]:
        """No SQLite on the host: fetch each backup and check it here, against the
        SHA-256 recorded beside it on the host (not the one the file has now)."""
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
                else:
                    verdict = asdict(engine.verify_backup(local["path"], self.settings.check))
                    verdict["recorded_sha256"] = record["recorded"]
                    results.append(verdict | {"where": "downloaded"})
                if on_result:
                    on_result(results[-1])
        return results

    def adopt(self, which: str, *, by: str, dry_run: bool = False) -> list[dict]:
        """Records for backups made without them, on the host (its python3)."""
        output = self._run(remote.adopt_script(self.dir, which, by, dry_run=dry_run,
                                               lock_wait=self.settings.lock_wait),
                           engine_source=True, timeout=self.session.deadline(), what="adopt")
        data = output.data("adopt")
        if not isinstance(data, list) or not all(isinstance(v, dict) and isinstance(
                v.get("name"), str) for v in data):
            raise OpsError(f"{self.host}'s adopt answered something this tool did not print")
        return data

    def delete(self, names: list[str]) -> list[str]:
        """Remove ``names`` there; what a restore holds is kept and said (``delete_script``)."""
        if not names:
            return names
        output = self._run(remote.delete_script(self.dir, names, self.settings.lock_wait))
        if output.status != 0:
            if output.result is not None:
                output.data("retention")
            raise OpsError(f"could not delete old backups in {self.dir}")
        held = [e[1] for e in output.entries if len(e) == 2 and e[0] == "held"]
        for name in held:
            self.report.warn(f"kept {name}: a restore on {self.host} holds it (it waits "
                             "for its locks, or runs); a later cleanup removes it if due")
        return [name for name in names if name not in held]

    def record_text(self, name: str) -> str:
        """What the host's ``NAME.json`` says ("" when there is none)."""
        return self._record(name)["manifest_text"]

    # -- downloads
    def _record(self, name: str) -> dict:
        """The backup's SHA-256 and size on the host now, and what was recorded."""
        info = self._run(remote.record_script(self.dir, name))
        if info.status == 3:
            raise OpsError(f"no backup named {name} on {self.session.place}",
                           ExitCode.NOT_FOUND)
        if info.status != 0 or len(info.entries) != 1 or not _record_entry(info.entries[0]):
            if info.result is not None:
                info.data(f"reading {name}")
            raise OpsError(f"cannot compute the SHA-256 of {self.dir}/{name} on {self.host} "
                           "(it needs sha256sum)")
        digest, size, recorded, manifest = info.entries[0]
        return {"sha256": digest, "size": int(size),
                "recorded": None if recorded == "-" else recorded,
                "manifest": None if manifest == "-" else manifest,
                "manifest_text": remote.manifest_text(info.stdout)}

    def download(self, name: str, directory: Path, *, check: bool = True,
                 record: dict | None = None, just_made: bool = False) -> dict:
        """Fetch one backup: only if the host's file still matches its record, into a
        private (0700) folder held under the local folder's backup lock, then rename.
        ``just_made``: the app's own script made it a moment ago, so it has no record yet
        (it gets one once checked here), and nothing needs saying about that."""
        engine.check_name(name)
        directory = Path(directory)
        final = directory / name
        if final.exists() or final.is_symlink():
            raise OpsError(f"{final} already exists; not overwritten", ExitCode.USAGE)
        _private_dir(directory)
        engine.prepare_dir(directory)
        record = record or self._record(name)
        expected = trusted_sha256(name, record)
        if expected is None and not just_made:
            self.report.warn(f"{name} has no SHA-256 recorded on {self.host} (no usable "
                             f"{name}.sha256 or {name}.json): it is checked against the file "
                             "as it is now, so a change since it was made cannot be seen")
        remote_file = f"{self.dir}/{name}"
        wait = self.settings.lock_wait
        with engine.backup_lock(directory, wait, lambda holder: self.report.waiting(
                lock_waiting("backup", directory / engine.LOCK_NAME, wait, holder))):
            _sweep_downloads(directory)
            private = Path(tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX, dir=directory))
            tmp = private / name
            try:
                with self.report.step(f"download {name}") as step:
                    with self.report.transfer(name, record["size"]) as update:
                        self.session.get_file(remote_file, tmp, record["size"], update)
                    os.chmod(tmp, 0o600)
                    digest = engine.sha256_file(tmp)
                    if digest != record["sha256"]:
                        raise OpsError(f"download of {name} is corrupt: SHA-256 {digest[:12]}… "
                                       f"but {self.host} has {record['sha256'][:12]}…",
                                       ExitCode.VERIFY_FAILED)
                    if check:
                        problems = engine.run_check(tmp, self.settings.check)
                        if problems:
                            raise OpsError(f"{name} failed {self.settings.check}_check: "
                                           f"{problems[0]}", ExitCode.VERIFY_FAILED)
                    created = engine.iso(engine.parse_created(name))
                    try:  # the row counts and content hash recorded when it was made
                        content = remote.recorded_content(record.get("manifest_text", ""),
                                                          name, digest)
                    except engine.EngineError as exc:
                        self.report.warn(f"{exc}: the copy records no row counts to drill against")
                        content = {}
                    result = engine.BackupResult(
                        name=name, path=str(final), created=created, size=tmp.stat().st_size,
                        sha256=digest, check=self.settings.check if check else "none",
                        seconds=0.0, source=self.session.source(remote_file),
                        strategy="download", **content)
                    engine.publish(tmp, final, result)
                    step.detail = (f"{human_bytes(result.size)}  sha256 {digest[:12]} "
                                   + ("matches its record" if expected else "UNRECORDED"))
            finally:
                shutil.rmtree(private, ignore_errors=True)
        return asdict(result) | {"recorded_sha256": expected}

    # -- restores and drills
    def restore(self, name: str, *, busy_timeout: float = 10.0,
                app_stopped: bool = False, read_only: bool = False) -> dict:
        """Restore backup ``name`` into the live database on the host (its best engine);
        ``app_stopped`` lets it replace a corrupt or missing live database. ``read_only``:
        a dry run's, the restore's ``verified`` phase alone (``remote.restore_verify_script``:
        no lock, nothing written), as ``LocalTarget.restore`` does here."""
        if read_only:
            return self._verified(name)
        script = remote.restore_script(self.db, self.dir, name, check=self.settings.check,
                                       busy_timeout=busy_timeout,
                                       lock_wait=self.settings.lock_wait,
                                       content_hash=self.settings.content_hash,
                                       app_stopped=app_stopped)
        output = self._run(script, engine_source=True, timeout=self.session.deadline(),
                           what="restore")
        if output.strategy == "none":
            raise OpsError(self.session.manual_restore(name), ExitCode.ERROR)
        try:
            data = output.data("restore")
        except OpsError as exc:
            safety = next((e[1] for e in output.entries if e[0] == "safety" and len(e) > 1), "")
            holds = _holds_after_failure(_hashes(output.entries))
            code = exc.code
            if output.result is None and safety:  # its engine died mid-way: look now
                code = ExitCode.VERIFY_FAILED
                holds = self._holds(name, safety)
                if stopped_before_commit(output) and "from before" not in holds:
                    holds = ("; it stopped before the copy committed: not restored, the "
                             "live database is as it was (the app may have written since)")
            elif output.result is None and output.strategy in node.ENGINES and not app_stopped:
                # the engines name the safety backup before the copy starts: none named,
                # the live database was not touched
                holds = "; it stopped before its safety backup was made: nothing was changed"
            if safety and safety not in str(exc):
                raise remote.answered(
                    f"{exc}{holds} (safety backup {safety} was made first)", code) from None
            raise remote.answered(f"{exc}{holds}", code) from None
        if output.strategy == "sqlite3":
            data = data | _sqlite_proof(output.entries, self.settings.check)
            data["moved_aside"] = [e[1] for e in output.entries if e[0] == "aside" and len(e) == 2]
            data["live_state"] = next((e[1] for e in output.entries
                                       if e[0] == "state" and len(e) == 2), "ok")
        if output.strategy == "node":
            data = data | node_proof(data)
        return data | {"strategy": output.strategy}

    def _verified(self, name: str) -> dict:
        output = self._run(remote.restore_verify_script(self.db, self.dir, name,
                                                        check=self.settings.check,
                                                        lock_wait=self.settings.lock_wait),
                           engine_source=True, timeout=self.session.deadline(),
                           what="restore (dry run)")
        if output.strategy == "none":
            raise OpsError(self.session.manual_restore(name), ExitCode.ERROR)
        return output.data("restore") | {"strategy": output.strategy,
                                         "lock_waits": waits(output)}

    def lock_waits(self, restore: bool = True, live: bool = False) -> list[str]:
        """A dry run's look at the folder's locks there, as a restore (or, ``restore``
        False, a backup) meets them: the run's refusal when it would not wait (exit 4),
        else what it would wait for (``remote.look_locks_script``)."""
        output = self._run(remote.look_locks_script(self.dir, self.settings.lock_wait,
                                                    restore, db=self.db if live else ""),
                           timeout=self.session.deadline(), what="a look at the locks")
        output.data("backup" if live else "a look at the locks")  # as the run says it
        return waits(output)

    def holds(self, name: str, safety: str = "") -> str:
        """Whether the live database holds backup ``name``'s content now: ``backup``,
        ``safety`` (safety backup ``safety``'s, when named: its content from before) or
        ``other`` (after an interrupted restore; ``remote.holds_script``)."""
        output = self._run(remote.holds_script(self.db, self.dir, name, safety),
                           engine_source=True, timeout=self.session.deadline(),
                           what="a look at the live database")
        if output.strategy in ("python3", *node.ENGINES):
            held = output.data("a look at the live database")["holds"]
            return held if held in ("backup", "safety") else "other"
        hashes = _hashes(output.entries)
        now = hashes.get("now")
        return "backup" if now and now == hashes.get("backup") else \
            "safety" if safety and now and now == hashes.get("safety") else "other"

    def holds_backup(self, safety: str, name: str, size: int | None = None) -> bool | None:
        """Whether safety backup ``safety`` holds backup ``name``'s content, both hashed on
        the machine now (``remote.same_script``: the two files only, never the live
        database nor an integrity check; records made since issue 21 hold no content
        hash), within a deadline for ``size`` bytes (both files). None when the machine
        cannot tell."""
        output = self._run(remote.same_script(self.dir, name, safety),
                           engine_source=True, timeout=self.session.deadline(size),
                           what="a look at an earlier safety backup")
        if output.strategy in node.ENGINES:
            same = output.data("a look at an earlier safety backup")
            if not (same.get("backup_content_sha256") and same.get("safety_content_sha256")):
                return None
            return bool(same.get("held_backup_before"))
        hashes = _hashes(output.entries)
        if not (hashes.get("safety") and hashes.get("backup")):
            return None
        return hashes["safety"] == hashes["backup"]

    def _holds(self, name: str, safety: str) -> str:
        """Which content the live database holds (``remote.holds_script``), as a clause."""
        try:
            output = self._run(remote.holds_script(self.db, self.dir, name, safety),
                               engine_source=True, timeout=self.session.deadline(),
                               what="a look at the live database")
            if output.strategy in node.ENGINES:
                proof = output.data("a look at the live database")
                hashes = {"now": proof["content_sha256"],
                          "backup": proof["backup_content_sha256"]}
                if proof["holds"] == "safety":
                    hashes["safety"] = proof["content_sha256"]
                return _holds_after_failure(hashes)
            return _holds_after_failure(_hashes(output.entries))
        except OpsError as exc:
            return f"; could not see what the live database holds now: {exc}"

    def counts(self, name: str) -> dict:
        """Rows per table of the live database, and as recorded for ``name`` (for the
        confirmation); empty when the host has no SQLite to count with."""
        output = self._run(remote.counts_script(self.db, self.dir, name), engine_source=True)
        if output.strategy in node.ENGINES:
            return output.data("count rows") | {"strategy": output.strategy}
        if output.strategy == "none":  # no restore can run there: say so before asking
            error = OpsError(self.session.manual_restore(name), ExitCode.ERROR)
            error.no_engine = True
            raise error
        if output.strategy != "sqlite3":
            return {}
        if output.result is not None:  # a refusal (refuse_other_names) before any count
            output.data("count rows")
        try:
            text = remote.manifest_text(output.stdout)
            recorded = engine.checked_manifest(engine.parse_record(text),
                                               f"{name}.json").get("tables")
        except (ValueError, engine.EngineError):
            recorded = None
        state = next((e[1] for e in output.entries if len(e) == 2 and e[0] == "state"
                      and e[1] in ("missing", "corrupt")), None)
        if state:  # engine.live_state's words, as the other engines send them
            return {"live": None, "backup": recorded, "live_state": state, "live_problem":
                    engine.MISSING_WHY if state == "missing" else engine.NOT_SQLITE_WHY}
        pages = next((e[1:] for e in output.entries if len(e) == 3 and e[0] == "pages"
                      and digits.is_whole(e[1]) and e[2].isascii() and e[2].isalpha()), None)
        return {"live": {e[1]: int(e[2]) for e in output.entries
                         if len(e) == 3 and e[0] == "live" and digits.is_whole(e[2])},
                "backup": recorded} | ({"live_page_size": int(pages[0]),
                                       "live_journal_mode": pages[1]} if pages else {})

    def shape(self, name: str) -> dict:
        """The data guard's two sides: rows per table and the schema of the live database
        and of backup ``name`` (its recorded counts, else the file's once its SHA-256
        matches its record): ``engine.data_shape``'s result, from any of the strategies."""
        output = self._run(remote.shape_script(self.db, self.dir, name), engine_source=True)
        if output.strategy in node.ENGINES:
            return checked_shape(output.data("the data guard's counts"), self.host)
        if output.strategy != "sqlite3":
            error = OpsError(f"{self.host} has no SQLite to count rows with (python3, node "
                             "with the app's binding, or sqlite3)", ExitCode.ERROR)
            error.no_engine = True
            raise error
        if output.result is not None:  # only the shell's `fail` prints one: raise it
            output.data("the data guard's counts")
        return checked_shape(sqlite_shape(output, name), self.host)

    def upload(self, path: Path, name: str, manifest: dict, sha256: str | None = None) -> dict:
        """Send a local backup to the host and adopt it under ``name`` only once its
        SHA-256 there is ``sha256`` (the one computed while the file was read for its
        check; else computed here now)."""
        digest = sha256 or engine.sha256_file(path)
        upload = f"{self.dir}/{remote.upload_staging(name)}"
        self.session.put_file(path, upload, self.report.transfer)
        sent = {k: v for k, v in manifest.items() if k != "uploaded"}  # the machine stamps it
        text = json.dumps(sent | {"name": name, "sha256": digest})
        # an upload's grace starts as it is published, by the machine's clock
        output = self._run(remote.adopt_upload_script(
            self.dir, upload, name, digest, text, stamped=manifest.get("kind") == "upload"))
        if output.status == 5:
            arrived = output.entries[0][1] if output.entries else "?"
            raise OpsError(f"the upload of {path.name} arrived corrupt (SHA-256 {arrived[:12]}… "
                           f"on {self.host}, {digest[:12]}… here); nothing was changed",
                           ExitCode.VERIFY_FAILED)
        if output.status == 6:
            left = any(list(e[:2]) == ["kind", "upload"] for e in output.entries)
            raise OpsError(f"a different backup named {name} already exists on {self.host}"
                           + (" (an upload an earlier restore --from left there: never latest, "
                              "a cleanup removes it 1h after its upload)" if left else "")
                           + "; nothing was changed", ExitCode.USAGE)
        if output.status != 0:
            raise OpsError(f"could not place the upload as {self.dir}/{name} "
                           f"(exit {output.status})")
        said = next((e for e in output.entries if e and e[0] in ("adopted", "present")), ())
        stamp = {"uploaded": said[1]} if manifest.get("kind") == "upload" \
            and len(said) == 2 and re.fullmatch(engine.UPLOADED_TIME, said[1]) else {}
        return {"name": name, "sha256": digest, "size": path.stat().st_size,
                "path": f"{self.dir}/{name}", "adopted": bool(said) and said[0] == "adopted",
                **stamp}

    def discard_upload(self, name: str, sha256: str, adopted: bool = False) -> str:
        """Remove ``upload``'s file ``name`` whose restore never began (``removed``; ``gone``
        when it is not there; ``begun`` when a safety backup names it, ``other`` when it
        is no upload (the file was there already, as a backup): then it stays).
        Raises OpsError when it could not (another file has the name, the lock, the call)."""
        output = self._run(remote.discard_upload_script(
            self.dir, name, sha256, self.settings.lock_wait, staged=remote.upload_staging(name),
            adopted=adopted))
        said = next((e[0] for e in output.entries if len(e) == 1
                     and e[0] in ("removed", "gone", "begun", "other")), None)
        if output.status != 0 or said is None:
            if output.result is not None:
                output.data(f"remove {name}")  # the lock's own error (``fail``)
            raise OpsError(f"{self.dir}/{name} on {self.host} changed since this run "
                           "uploaded it" if output.status == 7 else
                           f"could not remove {self.dir}/{name} on {self.host} (exit "
                           f"{output.status})")
        return said

    def drill(self, which: str) -> dict:
        """Drill on the host's python3, else download the backup and drill it here."""
        name = self.names(which)[0]
        output = self._run(remote.drill_script(self.dir, name, self.settings.check),
                           engine_source=True, timeout=self.session.deadline(), what="drill")
        if output.strategy in node.ENGINES:
            return output.data("drill") | {"where": "machine", "strategy": output.strategy}
        recorded = self._run(remote.manifest_script(self.dir, name))
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
        raise OpsError(f"SHA-256 mismatch: recorded {recorded[:12]}…, the file there has "
                       f"{record['sha256'][:12]}… ({name} changed after it was made); "
                       "not downloaded", ExitCode.VERIFY_FAILED)
    return next(iter(records), None)


def _private_dir(directory: Path) -> None:
    """Create the backup folder private (0700), and any missing above it; an existing one
    keeps its mode."""
    with contextlib.suppress(OSError):
        engine.mkdir_private(directory)


def _sweep_downloads(directory: Path) -> None:
    """Remove what an interrupted download left (our own folders only); hold the lock."""
    for entry in directory.iterdir():
        if entry.name.startswith(DOWNLOAD_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _odd_entry(entry: list[str]) -> bool:
    """``odd NAME``: a symlink, FIFO or folder with a backup's name (``remote.list_script``)."""
    return len(entry) == 2 and entry[0] == "odd" and bool(remote.ENTRY_NAME.fullmatch(entry[1]))


def _staged_entry(entry: list[str]) -> bool:
    """``staged NAME SIZE``: a stale staged upload (``remote.STALE_STAGED``)."""
    return (len(entry) == 3 and entry[0] == "staged"
            and bool(remote.STAGED_NAME.fullmatch(entry[1])) and digits.is_whole(entry[2]))


# A source as the listing's sh prints it (``remote.IDENTITY_READERS``): any token of
# these characters, so every form this tool writes into a record is read: a path here
# (``/data/steps.db``), a download's ``APP:/path`` or ``host:path``, a replica's URL
# (s21 review-op #1: only ``/…`` was read, and a `restore --from` of a download broke
# every later listing). ``-`` is none, ``?`` one sh would not print.
SOURCE_TOKEN = re.compile(r"[A-Za-z0-9._/+@:-]{1,4096}")


def listed_source(token: str) -> str | None:
    """The source a listing's token names: None for ``-``; ``?`` (not known, so never the
    configured database's) for one no reader takes, for that backup alone, never a
    refusal of the whole listing."""
    if token == "-":
        return None
    return token if SOURCE_TOKEN.fullmatch(token) else "?"


# ``name size sha256|- 0|1 kind|- source|-|? when,backup|- uploaded|-``, exactly as
# ``remote.list_script`` prints it: each field's check, by its name in a refusal
_LISTING_FIELDS = (
    ("name", lambda v: bool(remote.ENTRY_NAME.fullmatch(v))),
    ("size", digits.is_whole),
    ("sha256", lambda v: v == "-" or bool(remote.HEX64.fullmatch(v))),
    ("record", lambda v: v in ("0", "1")),
    ("kind", lambda v: bool(re.fullmatch(r"-|[a-z]{1,20}", v))),
    ("source", lambda v: True),  # read by ``listed_source``, never a refusal
    ("restore", lambda v: v == "-" or _restore_mark(v) is not None),
    ("uploaded", lambda v: v == "-" or bool(re.fullmatch(engine.UPLOADED_TIME, v))),
)


def listing_problem(entry: list[str]) -> str | None:
    """Why a listing's entry is not one ``remote.list_script`` prints (the field), or None."""
    if len(entry) != len(_LISTING_FIELDS):
        return f"{len(entry)} fields, not {len(_LISTING_FIELDS)}"
    for (field, good), value in zip(_LISTING_FIELDS, entry, strict=True):
        if not good(value):
            return f"its {field} field"
    return None


def _quoted_entry(entry: list[str]) -> str:
    """An entry in an error: escaped, and cut with the quote closed and ``…`` marking it."""
    text = ascii(" ".join(entry))
    return text if len(text) <= 100 else f"{text[:96]}…{text[-1]}"


def _restore_mark(token: str) -> dict | None:
    """A safety backup's ``restore`` record (when, which backup it put back) from the
    listing's ``when,backup`` token; None for ``-`` or anything else."""
    when, _, backup = token.partition(",")
    if re.fullmatch(r"[0-9TZ:.+-]{1,40}", when) and remote.ENTRY_NAME.fullmatch(backup):
        return {"when": when, "backup": backup}
    return None


def _record_entry(entry: list[str]) -> bool:
    """``sha256 size recorded|- manifest|-``, as ``remote.record_script`` prints it."""
    return (len(entry) == 4 and bool(remote.HEX64.fullmatch(entry[0]))
            and digits.is_whole(entry[1])
            and all(value == "-" or bool(remote.HEX64.fullmatch(value)) for value in entry[2:]))


def _counts(entries: list[list[str]], which: str) -> dict:
    return {e[1]: int(e[2]) for e in entries if len(e) == 3 and e[0] == which
            and digits.is_whole(e[2])}


def _hashes(entries: list[list[str]]) -> dict:
    """The ``hash WHICH SHA256|-`` entries of ``remote._sqlite_restore``: 64 hex or None."""
    return {e[1]: e[2] for e in entries if len(e) == 3 and e[0] == "hash"
            and remote.HEX64.fullmatch(e[2])}


def stopped_before_commit(output: remote.RemoteOutput) -> bool:
    """Whether the machine's python3 restore ended (a signal, a kill) after naming its
    safety backup but before its copy committed: its engine prints ``copied`` the moment
    the copy commits, before any signal can end it (``engine.restore_live``), so without
    that line the live database was not changed by the copy, whatever the app wrote."""
    return (output.result is None and output.strategy == "python3"
            and any(e[:1] == ["safety"] for e in output.entries)
            and not any(e == ["copied"] for e in output.entries))


def _holds_after_failure(hashes: dict) -> str:
    """After a failed ``.restore``: which content the live database holds, as its hash
    now says (against the backup's and the safety backup's)."""
    now = hashes.get("now")
    if not now:
        return ""
    if now == hashes.get("backup"):
        return "; the live database nevertheless holds the backup's content"
    if now == hashes.get("safety"):
        return "; the live database still holds its content from before (nothing was changed)"
    return "; the live database holds neither the backup's content nor its own from before"


def _sqlite_proof(entries: list[list[str]], check: str) -> dict:
    """The sqlite3 branch's proof, judged by the engine's rule (``engine.judge_proof``)."""
    hashes = _hashes(entries)
    fmt = engine.CONTENT_FORMAT if hashes.get("backup") and hashes.get("live") else None
    proof = engine.judge_proof(
        check=check, check_problems=[" ".join(e[1:]) for e in entries
                                     if e[0] == "check" and e[1:] != ["ok"]],
        tables=_counts(entries, "after"), backup_tables=_counts(entries, "backup"),
        content_sha256=hashes.get("live"), backup_content_sha256=hashes.get("backup"),
        content_format=fmt, safety_sha256=hashes.get("safety"))
    return {"safety_backup": {"name": next((e[1] for e in entries if e[0] == "safety"), None)},
            "tables_before": _counts(entries, "before"), "tables_after": proof["tables"],
            "problems": engine.proof_problems(proof), "ok": proof["ok"], "proof": proof}


def node_proof(data: dict) -> dict:
    """The Node engine's restore reports the proof's inputs (``proof_inputs``); they are
    judged here by the engine's own rule (``engine.judge_proof``), each read as the type it
    must be, so a malformed answer is a failed proof, never a crash or a pass."""
    raw = data.get("proof_inputs") if isinstance(data.get("proof_inputs"), dict) else {}

    def counts(value) -> dict:
        ok = isinstance(value, dict) and all(type(v) is int for v in value.values())
        return value if ok else {}

    def digest(value) -> str | None:
        return value if isinstance(value, str) and remote.HEX64.fullmatch(value) else None

    problems = raw.get("check_problems")
    fmt = raw.get("content_format")
    proof = engine.judge_proof(
        check=str(raw.get("check") or data.get("check") or "integrity"),
        check_problems=[str(p) for p in problems] if isinstance(problems, list)
        else ["the Node engine reported no integrity check"],
        tables=counts(raw.get("tables")), backup_tables=counts(raw.get("backup_tables")),
        content_sha256=digest(raw.get("content_sha256")),
        backup_content_sha256=digest(raw.get("backup_content_sha256")),
        content_format=fmt if fmt in engine.CONTENT_FORMATS else None,
        safety_sha256=digest(raw.get("safety_sha256")),
        app_wrote=raw["app_wrote"] if isinstance(raw.get("app_wrote"), bool) else None,
        error=str(raw["error"]) if raw.get("error") else (
            None if raw else "the Node engine sent no proof of the restore"))
    return {"proof": proof, "ok": proof["ok"], "problems": engine.proof_problems(proof),
            "tables_after": proof["tables"]}


def _sqlite_verdict(entry: list[str], check: str, host: str) -> dict:
    """One line of the sqlite3 branch of ``remote.verify_script``, judged by the engine's
    own rule (``engine.checksum_problems``): both records, a disagreement or a mismatch is
    a checksum failure, no usable record is "unverifiable", never ok."""
    if (len(entry) < 6 or not remote.ENTRY_NAME.fullmatch(entry[0])
            or not digits.is_whole(entry[1])
            or not all(value == "-" or remote.HEX64.fullmatch(value) for value in entry[2:5])):
        raise OpsError(f"{host}'s verification has an entry this tool did not print: "
                       f"{ascii(' '.join(entry))[:100]}")
    name, size, digest, sidecar, manifest, *verdict = entry
    if digest == "-":  # not a SQLite file: the engine stops there, records unread
        return {"name": name, "ok": False, "check": check, "size": int(size), "sha256": "",
                "recorded_sha256": None, "problems": [" ".join(verdict)]}
    records = {f"{name}{ext}": value for ext, value in ((".sha256", sidecar), (".json", manifest))
               if value != "-"}
    problems = engine.checksum_problems(records, digest)
    if verdict != ["ok"]:
        problems.append(" ".join(verdict))
    if not records:
        problems.append(engine.UNVERIFIABLE)
    return {"name": name, "ok": not problems, "check": check, "size": int(size), "sha256": digest,
            "recorded_sha256": next(iter(records.values()), None), "problems": problems}


def sqlite_shape(output, name: str) -> dict:
    """``remote.shape_script``'s sqlite3 lines as the engine's result, judged by the
    engine's own rules (its record, else its checksums)."""
    found = {}
    for entry in output.entries:
        if len(entry) == 2 and entry[0].endswith(("_rows", "_schema")):
            try:
                found[entry[0]] = json.loads(bytes.fromhex(entry[1]).decode())
            except ValueError:
                raise OpsError(f"the data guard's counts: unreadable {entry[0]} line") from None
    try:
        record = engine.checked_manifest(engine.parse_record(
            remote.manifest_text(output.stdout)), f"{name}.json")
        recorded = record.get("tables")
    except (ValueError, engine.EngineError):
        record, recorded = {}, None
    if recorded is None:
        sums = [e for e in output.entries if len(e) == 3 and e[0] == "sha256"]
        records = {k: v for k, v in (("sidecar", sums[0][1] if sums else "-"),
                                     ("record", record.get("sha256") or "-"))
                   if remote.HEX64.fullmatch(v)}
        digest = sums[0][2] if sums else ""
        problems = engine.checksum_problems(records, digest) if records else [
            "no recorded SHA-256 to check it against"]
        if problems:
            raise OpsError(f"backup {name}: {problems[0]}", ExitCode.VERIFY_FAILED)
    return {"live": found.get("live_rows"), "live_schema": found.get("live_schema"),
            "backup": recorded if recorded is not None else found.get("backup_rows"),
            "backup_schema": found.get("backup_schema"),
            "source": "recorded" if recorded is not None else "computed"}


def checked_shape(raw, host: str) -> dict:
    """A shape result from the machine, checked before anything judges it."""
    def rows(value) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items())

    def schema(value) -> bool:
        return isinstance(value, list) and all(isinstance(e, str) for e in value)

    if not (isinstance(raw, dict) and rows(raw.get("live")) and rows(raw.get("backup"))
            and schema(raw.get("live_schema")) and schema(raw.get("backup_schema"))
            and raw.get("source") in ("recorded", "computed")):
        raise OpsError(f"the data guard's counts from {host} are not what the engine "
                       "prints: refusing to judge the deploy by them")
    return raw


def waits(output: remote.RemoteOutput) -> list[str]:
    """The ``waits`` entries a look at the locks printed (``remote.LOOK_LOCK``)."""
    return [" ".join(entry[1:]) for entry in output.entries if entry and entry[0] == "waits"]
