"""Restore and drill: the plan as data (pure), then a runner that acts step by step.

A restore never copies files over the live database: the chosen backup is verified,
a safety backup of the live database is made (an ordinary verified backup, which no
retention touches during this run), and the backup's content goes into the live
database through SQLite's backup API. Production adds the machine's restart, the
health wait and, for ``--from``, the upload; every run is recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import shlex
import shutil
import sqlite3
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ops import audit, cli, engine, fly, runbook, signals
from ops.engine import EngineError
from ops.errors import ENGINE_KINDS, ExitCode, OpsError
from ops.replica import LITESTREAM_TABLES
from ops.targets.local import SOURCE_FOLDERS, LocalTarget
from ops.ui import UI, command_lines, human_age, human_bytes, human_seconds

MACHINE = "<machine>"
BACKUP = "<backup>"  # the backup a run chose: its step lines name it (``Restore.values``)


@dataclass(frozen=True)
class RestoreOptions:
    which: str = "latest"
    production: bool = False
    host: str = ""  # an SSH host ([user@]host[:port]) instead of the Fly machine
    from_path: str | None = None
    busy_timeout: float = 10.0
    app_stopped: bool = False  # --app-stopped: a corrupt or missing live database may be replaced
    other_source: bool = False  # --other-source: the backup may be of another database
    # restore --from-replica: the file was checked by this run a moment ago (its record
    # written from that check): verify names its SHA-256 against the record, no 2nd check
    checked: bool = False
    # restore --from-replica: its replica phase's report (the TXID and time reached, the
    # backup it became), recorded as the audit record's ``from_replica`` (review-op s19)
    from_replica: dict | None = None


Step = runbook.Step  # a restore's plan is a runbook plan: ``reads_only`` steps run in a dry run
# a dry run of a restore on a host runs its restore step's verify (``reads_first``) alone
READ_ONLY = " (dry run: takes no lock, writes nothing)"  # it looks at them (op s21 #11)
QUIET = {"shown": False, "recorded": False}  # a run's step between the plan's (``Restore``)


def plan(o: RestoreOptions, *, db: str, directory: str, app: str = "",
         health_url: str = "", live_state: str = "ok") -> list[Step]:
    """The ordered steps of a restore, with the flyctl argv each runs (production).
    ``live_state``: what a local live database is (``engine.live_state``): a corrupt one
    is moved aside instead of copied, a missing one has nothing to keep."""
    what = o.from_path or o.which
    if o.host:
        return _host_plan(o, what, db=db, directory=directory)
    if not o.production:
        return _local_plan(o, what, db=db, directory=directory, live_state=live_state)
    # every flyctl call the run makes, in its order (tests/test_flow_plans_restore.py); a
    # script by its purpose, as its first line (`# ops: list`) names it on the machine
    def ssh(purpose: str) -> tuple[str, ...]:
        return tuple(fly.ssh_console(app, MACHINE, f"<{purpose} script>"))

    steps = [Step("resolve", "find the production machine and volume; is it emergency-stopped?",
                  commands=(tuple(fly.version()), tuple(fly.volumes_list(app)),
                            tuple(fly.machines_list(app))),
                  reads_only=True, running="resolve the production machine")]
    if o.from_path:
        upload = f"{directory}/.upload-<name>"
        steps += [
            Step("verify", f"verify {o.from_path} here: recorded SHA-256{_and_check(o)}; "
                 "count the live database's rows there for the confirmation",
                 commands=(ssh("counts"),), reads_only=True,
                 running=f"verify {Path(o.from_path)}"),
            Step("upload", f"upload it to {directory} and check its SHA-256 on arrival",
                 commands=(ssh("mkdir"), tuple(fly.sftp_put(app, MACHINE, o.from_path, upload)),
                           ssh("adopt-upload")),
                 running=f"upload {Path(o.from_path).name} as {BACKUP}"),
        ]
    else:
        steps.append(Step("choose", f"find backup {what} in {directory} on the machine; count "
                          "its rows and the live database's for the confirmation",
                          commands=(ssh("list"), ssh("counts")), reads_only=True,
                          running=f"find backup {what}"))
    steps += [
        Step("restore", f"on the machine (python3, else node, else sqlite3): verify the "
             f"backup, safety backup, restore into {db} through the backup API, prove it "
             "against the backup (integrity_check, row counts, content hash)",
             commands=(ssh("restore"),), running=f"restore {BACKUP} on the machine",
             reads_first=f"verify {BACKUP} on the machine, as the restore does{READ_ONLY}"),
        Step("restart", "restart the app's machine (skipped while emergency-stopped: "
             "then run invoke emergency.resume)",
             commands=(tuple(fly.machine_restart(app, MACHINE)),),
             running=f"restart machine {MACHINE}"),
        Step("health", f"poll {health_url} until 200 with a backup block (skipped while "
             "emergency-stopped)", running=f"wait for {health_url} (200 with a backup block)"),
        Step("record", "append the restore to the audit log"),
    ]
    return steps


def _and_check(o: RestoreOptions) -> str:
    """The verify step's check: none again for a file this run just checked (``checked``)."""
    return " (no integrity_check again: the replica's restore runs it)" if o.checked else \
        " and integrity_check"


def _local_plan(o: RestoreOptions, what: str, *, db: str, directory: str,
                live_state: str) -> list[Step]:
    """Here: verify, keep what the live database holds, copy, prove."""
    keep = {
        "ok": Step("safety", f"safety backup of {db} into {directory} (verified; no "
                   "retention)", running=f"safety backup of {db}"),
        "corrupt": Step("aside", f"move the corrupt {db} (with its -wal/-shm) aside to "
                        f"{Path(db).name}.corrupt-<time>, never deleted (needs "
                        "--app-stopped)"),
        "missing": Step("aside", f"nothing to keep: {db} is missing (needs --app-stopped)"),
    }[live_state]
    return [
        Step("verify", f"verify backup {what} in {directory}: recorded SHA-256"
             f"{_and_check(o)}", reads_only=True, running=f"verify backup {o.which}"),
        keep,
        Step("restore", f"copy the backup into {db} through SQLite's backup API "
             f"(busy timeout {o.busy_timeout:g}s)", running=f"restore {BACKUP} into {db}"),
        Step("check", f"prove it: integrity_check of {db}, its row counts and content "
             "hash against the backup's (read right after the copy)",
             running=f"prove the restore: {db} against {BACKUP}"),
        Step("record", "append the restore to the audit log"),
    ]


def remote(o: RestoreOptions) -> bool:
    """Whether the restore runs on another host (the Fly machine, an SSH host): its plan
    then names the paths there (pure)."""
    return bool(o.production or o.host)


def plan_for(o: RestoreOptions, settings, *, remote: bool, live_state: str = "ok") -> list[Step]:
    """The plan of a restore with these settings: what ``--dry-run`` shows and the steps
    (and step lines) the run runs (``Restore.run``)."""
    return plan(o, db=settings.db_remote_path if remote else str(settings.db_path),
                directory=settings.backup_remote_dir if remote else str(settings.backup_dir),
                app=settings.app if o.production else "",
                health_url=settings.health if o.production else "", live_state=live_state)


def _host_plan(o: RestoreOptions, what: str, *, db: str, directory: str) -> list[Step]:
    """On an SSH host: the machine's steps over one SSH connection, no restart (the app
    sees the restored content through SQLite; restart it yourself if it caches)."""
    steps = [Step("connect", f"connect to {o.host} (its host key must be known)",
                  reads_only=True, running=f"connect to {o.host}")]
    if o.from_path:
        steps += [
            Step("verify", f"verify {o.from_path} here: recorded SHA-256{_and_check(o)}",
                 reads_only=True, running=f"verify {Path(o.from_path)}"),
            Step("upload", f"upload it over SFTP to {directory} and check its SHA-256 there",
                 running=f"upload {Path(o.from_path).name} as {BACKUP}"),
        ]
    else:
        steps.append(Step("choose", f"find backup {what} in {directory} on {o.host}",
                          reads_only=True, running=f"find backup {what}"))
    return steps + [
        Step("restore", f"on {o.host} (python3, else node, else sqlite3): verify the "
             f"backup, safety backup, restore into {db} through the backup API, prove it "
             "against the backup (integrity_check, row counts, content hash)",
             running=f"restore {BACKUP} on {o.host}",
             reads_first=f"verify {BACKUP} on {o.host}, as the restore does{READ_ONLY}"),
        Step("record", "append the restore to the audit log"),
    ]


def filled(steps: list[Step], machine: str) -> list[Step]:
    """The plan with the machine a dry run resolved in place of ``<machine>`` (pure)."""
    return [step.filled({MACHINE.strip("<>"): machine}) for step in steps]


def render(steps: list[Step], width: int | None = None, binary: str = "fly") -> list[str]:
    """The plan as deploy and emergency show theirs (``runbook.render``): every command
    whole, broken between arguments with `` \\`` within a terminal's ``width``."""
    return runbook.render(runbook.dry_run_title("Restore plan"), steps, binary, width)


def app_stopped_command(o: RestoreOptions) -> str:
    """The operator's own local restore again with ``--app-stopped`` (pure): pasted, it
    restores the backup they named, not ``latest`` (review-op s18 #1)."""
    words = ["invoke", "restore"] + ([shlex.quote(o.which)] if o.which != "latest" else [])
    if o.other_source:
        words.append("--other-source")
    return " ".join([*words, "--app-stopped", "--yes"])


def local_how(o: RestoreOptions) -> str:
    """What a local restore's refusal of a broken live database says to do (pure)."""
    return f"stop it, then run `{app_stopped_command(o)}`"


def live_warning(db, state: str, why: str, o: RestoreOptions) -> str | None:
    """What a dry run says about a corrupt or missing local live database (pure)."""
    if state == "ok":
        return None
    then = ("the real run moves it aside and restores into its place" if state == "corrupt"
            else "the real run restores into its place") if o.app_stopped else (
        f"the real run will refuse (exit 2): stop the app, then run `{app_stopped_command(o)}`")
    return f"the live database {db} is {state} ({why}): {then}"


def remote_live_warning(o: RestoreOptions, settings, target, found: dict) -> str | None:
    """What a production (or --host) dry run says about a missing or corrupt live
    database there, asked as the run asks before its question (``Target.counts``). Where
    the run refuses it (the app not stopped) the dry run fails with the run's refusal
    (``broken_live_there``); a failure to ask is only said, the dry run goes on, as the
    run's ``_counts`` goes on (review-op s19 #2), but for no engine at all (the run stops)."""
    if not remote(o) or not found.get("backup"):
        return None
    try:
        counts = target.counts(found["backup"]) or {}
    except (OpsError, EngineError) as exc:
        if getattr(exc, "no_engine", False):  # the run stops here too (``Restore._counts``)
            raise
        return f"could not look at the live database: {cli.one_line(exc)}"
    refusal = broken_live_there(o, settings, counts, stopped_there(o, found)) or \
        upload_refusal(o, Path(o.from_path or "."), counts, target.host)
    if refusal is not None:
        raise refusal
    state = counts.get("live_state")
    if not state:
        return None
    then = ("the real run moves it aside and restores into its place" if state == "corrupt"
            else "the real run restores into its place")
    return (f"the live database {settings.db_remote_path} is {state} "
            f"({counts.get('live_problem')}): {then}")


def upload_refusal(o: RestoreOptions, local: Path, counts: dict, host: str) -> OpsError | None:
    """restore --from's file judged against the live database there before anything is
    uploaded (review-break s20 #3), the run's and its dry run's: a page size the restore
    there refuses, with its words and exit code (``engine.page_size_refusal``), from the
    page size and journal mode the counts read there."""
    if not o.from_path or not counts.get("live_journal_mode"):
        return None
    refusal = engine.page_size_refusal(engine.read_page_size(local),
                                       counts.get("live_page_size"), counts["live_journal_mode"])
    return OpsError(f"restore on {host}: {refusal}", ExitCode.USAGE) if refusal else None


def stopped_there(o: RestoreOptions, found: dict) -> bool:
    """Whether the app there is stopped: on Fly, emergency-stopped (the ``resolve`` step
    found it), on a host, --app-stopped (pure)."""
    return bool(found.get("stopped")) if o.production else o.app_stopped


def broken_live_there(o: RestoreOptions, settings, counts: dict,
                      stopped: bool) -> OpsError | None:
    """The run's refusal (exit 2, before its question) of a missing or corrupt live
    database there while the app is not stopped, and its dry run's, word for word (pure)."""
    state = counts.get("live_state")
    if not state or stopped:
        return None
    return OpsError(f"restore on {o.host or 'the machine'}: " + str(engine.broken_live_refusal(
        settings.db_remote_path, state, counts.get("live_problem"), engine.REMOTE_HOW)),
        ExitCode.USAGE)


def plan_as_data(steps: list[Step]) -> list[dict]:
    return runbook.plan_as_data(steps)


def undo_command(safety: str, flag: str, directory: str | None = None) -> str:
    """``flag``: the target's own (``Target.flag``), empty locally; ``directory``: the
    local folder the safety backup is in when it is not backup.dir (``safety_folder``):
    a flag, as INVOKE_BACKUP_DIR would lose to a `-f` file's backup.dir (s28 break2 #1)."""
    where = f" --backup-dir {shlex.quote(directory)}" if directory else ""
    return f"invoke restore {safety}{flag}{where} --yes"


def safety_folder(backup_dir: Path, chosen_is_other: bool) -> Path:
    """Where a local restore's safety backup goes (pure): backup.dir, unless the backup
    restored is another database's and backup.dir is that source's own folder
    (``db-<name>-<hash>``, ``fly-<app>``, ``ssh-<host>``, review-op #3): then the live
    database's own folder, its parent, where its own backups and undo belong."""
    if chosen_is_other and SOURCE_FOLDERS.fullmatch(backup_dir.name):
        return backup_dir.parent
    return backup_dir


def other_source_refusal(name: str, recorded: str | None, live: str, flag: str) -> str | None:
    """The one-line refusal of a backup recorded as another database's (None when it is
    the live database's, or its source is unknown: `?` is the machine's listing for a path
    it could not print as one token)."""
    if recorded == "?" or engine.same_source(recorded, live):
        return None
    return (f"backup {name} is of {recorded}, not of the live database {live}: restoring "
            f"it would replace one database's data with another's. Nothing was changed; "
            f"if that is what you want, add --other-source "
            f"(`invoke restore {name}{flag} --other-source`)")


def describe_backup(name: str, created: str, size: int, tables: dict | None,
                    now: dt.datetime) -> str:
    age = human_age((now - engine.parse_iso(created)).total_seconds())
    rows = format_counts(tables) if tables else "row counts not recorded"
    return f"{name} ({age} old, {human_bytes(size)}; {rows})"


def live_counts(counts: dict) -> str:
    """The live database's rows for the confirmation, and which engine counted them."""
    by = counts.get("strategy")
    return format_counts(counts.get("live")) + (f"; counted by {by}" if by else "")


def format_counts(tables: dict | None) -> str:
    """Rows per table on one line: at most ``SHOWN_TABLES`` named (a database with
    thousands of tables must not print a 100 KB prompt), the rest summed."""
    if not tables:
        return "row counts unknown"
    listed = sorted(app_tables(tables).items())
    if not listed:
        return "no tables"
    shown = ", ".join(f"{name} {count}" for name, count in listed[:SHOWN_TABLES])
    rest = listed[SHOWN_TABLES:]
    return shown + (f", and {len(rest)} more tables ({sum(c for _, c in rest)} rows)"
                    if rest else "")


SHOWN_TABLES = 12


def app_tables(tables: dict) -> dict:
    """The tables an operator reads: litestream's own (``_litestream_seq``/``_lock``, in
    any database it has touched) left out, as the content hash leaves them (review-op #8)."""
    return {name: rows for name, rows in tables.items() if name not in LITESTREAM_TABLES}


def confirm(ui: UI, lines: list[str], *, yes: bool) -> None:
    """Ask on a terminal; without one, only ``--yes`` goes on (exit 2 otherwise)."""
    for line in lines:
        ui.info(line)
    cli.confirm("Replace the live database with this backup?", yes=yes,
                without_terminal=WITHOUT_TERMINAL, kind="restore")  # a signal there: not
    # confirmed, one line, as every task's prompt ends (review-op s21 #7)


WITHOUT_TERMINAL = cli.WITHOUT_TERMINAL  # one wording for every task that asks


@dataclass
class Restore:
    """Runs one restore, local or on production, through the one runner every mutating
    task runs through (``runbook.Runner``): the plan's steps with their actions, a pause
    for the operator's answer, and one record and one audit line whatever happens.

    Between the plan's steps run unshown, unrecorded steps (``ready``: what is refused
    before anything starts; ``chosen``: the other-source check and the confirmation's
    counts; ``proven``: the machine's own check) and the confirmation, a pause."""

    options: RestoreOptions
    settings: object
    ui: UI
    # where it restores (``targets.chosen.target_for``): this computer's folder, the Fly
    # machine or an SSH host; the flow asks it what each step does (``_actions``)
    target: object = None
    yes: bool = False
    record: dict = field(default_factory=dict)  # the runner's record
    # (backup, live database, safety backup) from the copy's start to its proof: an
    # interruption then finds out which content the live database holds (``_settled``)
    restoring: tuple | None = None
    copied: dict | None = None  # ``restore_live``'s read right after its copy committed
    scratch: Path | None = None  # restore --from: the private copy's folder, removed at the end
    runner: runbook.Runner | None = None
    found: dict = field(default_factory=dict)  # what the run's steps learnt, for the next ones
    held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # local locks

    def run(self) -> dict:
        runner = self.runner = runbook.Runner(
            "restore", self.ui, Path(self.settings.audit_log), outcome_words=self._words,
            error_key="error", end_to_end=True, step_by_hand=False,
            on_stop=lambda exc, step: self._settled(getattr(exc, "name", "SIGINT")),
            closing=Step("unlock", "release the restore lock and the backup lock",
                         self.held.close, shown=False, recorded=False))
        self.record = runner.start(target=self._where(), backup=None,
                                   **{"from": self.options.from_path}, safety_backup=None,
                                   tables_before=None, tables_after=None,
                                   **({"from_replica": self.options.from_replica}
                                      if self.options.from_replica is not None else {}))
        runner.check_audit_log()  # a restore must not happen unrecorded; nothing to record
        try:
            return runner.run(self._steps())
        finally:
            self.held.close()
            self._ended()

    def _words(self, what: str, step: Step | None) -> str:
        """The outcomes a restore's record has always had: a failure is worded by
        ``failed_outcome``; a signal is named without its step (the record's steps say
        where)."""
        return failed_outcome(self.record) if what == "failed" else what

    def _ended(self) -> None:
        """What the operator is told once the run ended: its time, what is left to do by
        hand (``by_hand``, from the record), or how to undo it."""
        r = self.record
        if r["outcome"] == "ok" and "seconds" in r:
            self._timed_line()
        settled = settled_failed(r)  # done and proven: an undo alone read as "undo it"
        if settled:
            self.ui.info(f"The restore itself was done and proven: the live database holds "
                         f"backup {r['backup']['name']}; what is left is the app's side.")
        if r["outcome"] in ("running", "crashed", "interrupted", "not restored") or \
                r["outcome"].startswith("terminated") or (
                    (r.get("interrupted") or r.get("machine_unsettled"))
                    and r["outcome"] == "failed"):
            for line in by_hand(r, self._flag(), self._machine()):
                self.ui.info(line)
        elif r["safety_backup"] and (kept := nothing_to_undo(r)):
            self.ui.info(f"Safety backup: {r['safety_backup']['name']} ({kept}). "
                         + ("Nothing to undo." if r["outcome"] == "ok" or settled else
                            "To restore, run again: "
                            f"`{_again(r, r['backup']['name'], self._flag())}`"
                            + (" (with a larger --busy-timeout, or when the app writes less)"
                               if r.get("exit_code") == ExitCode.TIMEOUT else "")))
            for line in interrupted_lines(r, self._flag()):
                self.ui.info(line)
        elif r["safety_backup"]:
            safety, undo = r["safety_backup"]["name"], undo_backup(r)
            for line in not_proven_lines(r, self._flag(), self._machine()):
                self.ui.info(line)
            if undo and undo != safety:  # a retry: this run's holds the backup's content
                self.ui.info(f"Safety backup: {safety} (the backup's content, as the live "
                             f"database already held it); the data from before is in {undo}, "
                             "an earlier restore's safety backup. To undo this restore:")
            elif undo:
                self.ui.info(f"Safety backup: {safety}. To undo this restore"
                             + (" (the app's writes since then go into that run's safety "
                                "backup):" if r.get("proof") and engine.raced(r["proof"])
                                else ":"))
            if undo:
                self.ui.lines(command_lines(  # pasteable whole: ` \` between words
                    shlex.split(undo_command(undo, self._flag(), r.get("undo_dir"))),
                    self.ui.width, "  "))
            else:
                self.ui.info(f"Safety backup: {safety}. " + undo_lines(r, self._flag())[0])
            for line in interrupted_lines(r, self._flag()):
                self.ui.info(line)
        if settled:
            for line in app_side_lines(r, self._machine()):
                self.ui.info(line)
        machine = self._machine()  # a lost answer over a copy that landed: keep it so
        if r.get("answer_lost") and r.get("holds") == "backup" and machine and \
                r["outcome"] == "failed":
            self.ui.info("Not proven (its answer was lost) and not restarted: to keep it, "
                         f"fly machine restart {machine[1]} -a {machine[0]}, and check "
                         "/health")
        if r.get("answer_lost") and self.found.get("stopped"):
            self.ui.info("The app is still emergency-stopped: `invoke emergency.resume` starts "
                         "it on what the live database holds then")
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _settled(self, signal_name: str) -> None:
        """Interrupted during the copy or its proof: compare the live database with the
        backup and the safety backup now, and say and record what it holds."""
        if self.restoring is None:
            return self._discard_upload()  # restore --from: stopped before its restore
        if self.restoring[0] == "remote":
            return self._settled_remote(signal_name, self.restoring[1])
        backup, db, safety = self.restoring
        if safety is None and not db.exists():  # a corrupt or missing one, moved aside
            return self._settled_missing(signal_name, db)
        committed = safety is None or (self.copied or {}).get("committed")
        try:
            proof = engine.live_holds(db, backup, safety, self.copied)
        except (EngineError, OSError, sqlite3.Error) as exc:
            if not committed:
                return self._not_copied(signal_name)
            self.ui.warn(f"{signal_name} during the restore; could not read the live database "
                         f"to see what it holds: {exc}")
            return
        if not committed and proof["holds"] != "safety":  # the engine writes the commit
            return self._not_copied(signal_name)  # down before a signal can stop it: none
        self.record.update(proof=proof, holds=proof["holds"], interrupted=signal_name,
                           tables_after=proof["tables"])
        name = self.record["backup"]["name"]
        if proof["ok"]:
            self.record["outcome"] = "ok"
            since = ("; the app has committed since, so the live database started from the "
                     "backup and holds the app's newer writes too" if proof["app_wrote"] else "")
            self.ui.info(f"{signal_name} came after the copy: the live database holds backup "
                         f"{name} (proven: {engine.proof_summary(proof)}){since}")
        elif proof["holds"] == "safety":
            self.record["outcome"] = "not restored"
            self.ui.info(f"{signal_name} came before the copy committed: the live database "
                         "still holds its content from before (nothing was changed)")
        else:
            self.record["outcome"] = "failed"
            self.ui.warn(f"{signal_name} during the restore: the live database holds neither "
                         f"backup {name} nor its content from before: "
                         + "; ".join(engine.proof_problems(proof)))

    def _not_copied(self, signal_name: str) -> None:
        """Stopped before the copy committed, and the app wrote since: not restored."""
        self.record.update(holds="before", interrupted=signal_name, outcome="not restored")
        self.ui.info(f"{signal_name} came before the copy committed: not restored, the live "
                     "database is as it was (the app may have written since)")

    def _settled_missing(self, signal_name: str, db: Path) -> None:
        """Interrupted while a corrupt live database was replaced: nothing has the live
        name now (an app started now would create an empty database there)."""
        aside = self.record.get("moved_aside") or self.found.get("moving") or [
            str(p) for p in sorted(db.parent.glob(f"{db.name}.corrupt-*"))]
        name = self.record["backup"]["name"]
        self.record.update(outcome="failed", holds="missing", live_missing=True,
                           interrupted=signal_name, moved_aside=aside or None)
        self.ui.warn(f"{signal_name} during the restore: the live database {db} is MISSING "
                     "now (do not start the app: it would create an empty one); "
                     + (f"the moved-aside files are {', '.join(aside)}; " if aside else "")
                     + f"finish with: `invoke restore {name} --app-stopped --yes`")

    def _settled_lost(self, name: str) -> None:
        """The restore's answer was lost (the link dropped, flyctl failed, the call ran out
        of time) while the machine restored: ask it what the live database holds now, as
        after a signal, so the record and the lines name the safety backup and the undo.
        The run still failed: an unproven copy is never "ok"."""
        self.record.update(answer_lost=True, machine_unsettled=True)  # until it answers
        self.restoring = None  # a signal while asking: not asked again (nor called "ok")
        reconnect = getattr(getattr(self.target, "session", None), "reconnect", None)
        if reconnect is not None:  # an SSH host: the lost link is not reused
            reconnect()
        try:
            self._settled_remote("No answer came", name, signal=False)
        except (KeyboardInterrupt, signals.Terminated):
            # stopped while asking: the restore there may still begin
            if self.found.get("uploading"):
                self._upload_left(name, "its restore there may still begin")
            raise
        if self.record.get("holds") == "backup" or self.record.get("copied") is False:
            self.record.pop("machine_unsettled", None)  # it answered: settled
        if self.record["outcome"] == "ok":
            self.record["outcome"] = "running"  # worded "failed" by the runner

    def _settled_remote(self, signal_name: str, name: str, *, signal: bool = True) -> None:
        """Interrupted while the machine restored: ask it what the live database holds now
        (its restore may have stopped, or may still be running). ``signal``: False when the
        restore's answer was lost instead (``_settled_lost``)."""
        if signal:
            self.record["interrupted"] = signal_name
        unlisted: list[str] = []
        made = self._new_safeties(name, unlisted)  # made before the copy: the data from before
        try:
            holds = self.target.holds(name, made[-1] if made else "")
        except (OpsError, EngineError) as exc:
            # the same refusal (a changed host key, a dead link) is said once
            if unlisted and unlisted[0] != str(exc):
                self._unlisted(unlisted[0])
            self.ui.warn(f"{signal_name} during the restore on {self._there()}; could not ask it "
                         f"what the live database holds: {exc}")
            return
        if unlisted:
            self._unlisted(unlisted[0])
        self.record["holds"] = holds
        if holds == "backup":
            return self._settled_remote_backup(signal_name, name, made)
        # not (yet) copied when read; the machine's restore may still be waiting for the
        # app's write lock and copy after this run ended (review-break s19 #3)
        self.record["machine_unsettled"] = True
        if self.found.get("uploading"):  # its restore may still begin: never removed now
            self._upload_left(name, "its restore there may still begin")
        if made:
            self.record["safety_backup"] = {"name": made[-1], "sha256": None}
        self.ui.warn(f"{signal_name} during the restore on {self._there()}: its live database "
                     f"does not hold backup {name}'s content (when read)" + (
                         " (it held its content from before)" if holds == "safety" else "")
                     + (f"; safety backup {made[-1]}, made by this run, holds the data from "
                        "before" if made else "")
                     + "; its restore there stopped before the copy, or may still be waiting "
                     "for the app's write lock and copy later")

    def _settled_remote_backup(self, signal_name: str, name: str,
                               made: list[str] | None = None) -> None:
        """The live database there holds backup ``name``'s content now: copied by this run
        (its safety backup, made before the copy, is new in the listing: the undo), or
        held already (no new safety backup and nothing moved aside: nothing was copied,
        op #2b of the s18 review), or it cannot be told (the record says "ok" as before,
        never "proven")."""
        if made is None:
            made = self._new_safeties(name)
        if made:
            self.record.update(outcome="ok", safety_backup={"name": made[-1], "sha256": None})
            self._interrupted_before(self.found.get("listing") or [])
        elif made is not None:
            self.record.update(outcome="not restored", copied=False)
            self.ui.info(f"{signal_name} during the restore on {self._there()}: nothing was "
                         f"copied: its live database already held backup {name}'s content, "
                         "and no safety backup was made (its restore stopped before them)")
            return
        else:
            self.record["outcome"] = "ok"
        self.ui.info(f"{signal_name} during the restore on {self._there()}: its live database "
                     f"now holds backup {name}'s content" + (
                         f" (safety backup {made[-1]} was made before the copy)" if made
                         else " (whether this run copied it could not be told; a safety "
                         "backup this run made is the newest safety one "
                         f"`invoke backup.list{self._flag()}` lists)"))

    def _new_safeties(self, name: str, failed: list[str] | None = None) -> list[str] | None:
        """The safety backups of restores of ``name`` there now that the listing the run
        chose from did not have (oldest first): the ones this run's restore made. None
        when it cannot be told: no earlier listing (--from), the app stopped (a missing
        or corrupt live database is replaced without one), or the listing fails (its
        reason goes to ``failed`` when given, else is said)."""
        before = self.found.get("listing")
        if before is None or self.found.get("stopped") or self.options.app_stopped:
            return None
        try:
            now = self.target.list()
        except (OpsError, EngineError) as exc:
            if failed is None:
                self._unlisted(str(exc))
            else:
                failed.append(str(exc))
            return None
        known = {item.name for item in before}
        return [item.name for item in sorted(
            (item for item in now if item.kind == "safety" and item.name not in known
             and (item.restore or {}).get("backup") == name),
            key=lambda item: item.created or "")]

    def _unlisted(self, reason: str) -> None:
        self.ui.warn(f"could not list the backups on {self._there()}: {reason}")

    def _where(self) -> str:
        s = self.settings
        if self.options.host:
            return f"{self.options.host}:{s.db_remote_path}"
        return f"{s.app}:{s.db_remote_path}" if self.options.production else str(s.db_path)

    def _there(self) -> str:
        """Where a remote restore runs, as its messages name it (an SSH host by its
        address, never "the machine")."""
        return self.options.host or "the machine"

    def _flag(self) -> str:
        return self.target.flag

    def _machine(self) -> tuple[str, str] | None:
        """(app, machine id) when a Fly machine was resolved: what to restart by hand.
        None for an emergency-stopped app: a restart would start it (`emergency.resume`
        does, once the operator chooses to)."""
        machine = self.record.get("machine")
        return (self.settings.app, machine) if self.options.production and machine and \
            not self.found.get("stopped") else None

    def _confirm(self, lines: list[str]) -> None:
        """The run's pause: the operator's answer (its time is not the restore's)."""
        try:
            confirm(self.ui, lines, yes=self.yes)
        except OpsError as exc:
            exc.audit_kind = None  # this runner records its own run, once
            self.record["outcome"] = "not confirmed"
            raise

    def _unasked(self) -> None:
        """Without a terminal and --yes the confirmation cannot be asked: refused first,
        before the backup's verify (op #9), and recorded as before ("not confirmed")."""
        try:
            cli.refuse_unasked(self.yes, WITHOUT_TERMINAL)
        except OpsError:
            self.record["outcome"] = "not confirmed"
            raise

    def _pause(self) -> Step:
        return Step("confirm", "ask the operator", lambda: self._confirm(self.found["asked"]),
                    pause=True)

    def _timed_line(self) -> None:
        """The real restore's time, end to end (issue 20 #7): from the start of the run to
        its proof (and, on Fly, the health wait), less the wait for the operator's answer
        (the runner's ``end_to_end``), shown beside the copy's own ``restore_seconds``."""
        seconds = self.record["seconds"]
        copy = self.record.get("restore_seconds")
        name = (self.record.get("backup") or {}).get("name")
        self.ui.info(f"Restored {name} in {human_seconds(seconds)} end to end (the "
                     "confirmation not counted)"
                     + (f"; the copy itself took {copy:.3f}s" if copy is not None else ""))

    def _steps(self, stopped: bool = False) -> list[Step]:
        """The plan's steps with this target's actions (``_actions``), in one order for
        every target: what is refused first and the locks (``ready``), the steps up to
        the backup's choice, whose backup it is and what the confirmation shows
        (``chosen``), the operator's answer, the rest of the plan, the target's own last
        check (``proven``). Emergency-stopped, the restart and the /health wait are
        skipped (the app is not running: a restart brings back `sleep`)."""
        act = self._actions()
        plan = plan_for(self.options, self.settings, remote=remote(self.options))
        self.found["plan"] = {step.key: step for step in plan}
        ran = runbook.bind(plan[:-1], act)  # the last, the audit line, is the runner's
        unbound = [step.key for step in ran if step.action is None]
        if unbound:  # a plan step nothing does would pass as done: never say it was
            raise OpsError(f"internal error: restore steps without an action: {unbound}")
        ran = [dataclasses.replace(step, shown=False) if step.key == "resolve" else
               dataclasses.replace(step, skipped="emergency-stopped")
               if stopped and step.key in ("restart", "health") else step for step in ran]
        keys = [step.key for step in ran]
        at = keys.index("choose" if "choose" in keys else "verify") + 1
        return [Step("ready", "refuse what cannot run; take the locks here", act["ready"],
                     **QUIET), *ran[:at],
                Step("chosen", "whose backup; the rows for the confirmation", act["chosen"],
                     **QUIET), self._pause(), *ran[at:],
                Step("proven", "the target's own check of the live database", act["proven"],
                     **QUIET)]

    def _actions(self) -> dict:
        """What each step does, as the target says (``Target.restore_actions``: ``here``
        or ``there``), then what settles the app after the restore, also the target's
        (``Target.settle``: Fly restarts and waits for /health; the others do nothing).
        The flow never asks which kind of target it holds."""
        return {**self.target.restore_actions(self), **dict(self.target.settle())}

    def here(self, target) -> dict:
        """The steps' actions where the engine's one restore runs in this process
        (``LocalTarget.restore``): one phase of it per step."""
        return {"ready": self._local_ready, "verify": self._local_verify,
                "chosen": self._local_chosen, "safety": self._local_safety,
                "restore": self._local_copy, "check": self._local_check,
                "proven": lambda: None}  # the check step proved it

    def there(self, target) -> dict:
        """The steps' actions where the same restore runs on another host in one call
        (``ScriptedTarget.restore``, ``engine.restore_database`` drained there)."""
        return {"ready": self._remote_ready,
                "connect": lambda: f"connected to {target.session.connect()}",
                "resolve": self._resolve, "verify": self._verify_file, "upload": self._upload,
                "choose": self._choose, "chosen": self._remote_chosen,
                "restore": self._restore_there, "proven": self._remote_proven}

    # -- local
    def _local_ready(self) -> None:
        """Refused before anything starts: a bad or unknown name (before any lock), then,
        in the engine's one restore (``LocalTarget.restore``), a corrupt or missing live
        database without --app-stopped; then, as on the machine, the restore lock and the
        folder's backup lock, held from the chosen backup's check to the end (its safety
        backup is made under it): no backup or cleanup removes it meanwhile (issue 16 #10)."""
        self._unasked()
        s, o = self.settings, self.options
        local = self.target
        local.folder()
        local.names(o.which)  # a bad or unknown name fails before any lock is taken
        phases = local.restore(o.which, busy_timeout=o.busy_timeout, checked=o.checked,
                               app_stopped=o.app_stopped, when=self.record["when"],
                               how=local_how(o))
        self.held.callback(phases.close)  # the runner's closing step releases the locks
        self.found.update(db=Path(s.db_path), directory=Path(s.backup_dir),
                          phases=phases)
        try:
            self._next("locked")
        except EngineError as exc:  # a live database with another name: refused, as there
            if exc.kind == "linked":
                self.record["outcome"] = "refused"
            raise

    def _next(self, *phases: str) -> engine.Restoring:
        """The engine's restore on to its next phase, which must be one of ``phases``."""
        run = self.found["run"] = next(self.found["phases"])
        if run.phase not in phases:  # a step bound to the wrong phase: never go on
            raise OpsError(f"internal error: restore at {run.phase}, expected {phases}")
        return run

    def _local_verify(self) -> str:
        run = self.found["run"] = verified_phase(self.found["phases"])
        chosen = run.chosen
        self.runner.learn(backup=chosen.name)
        self.record["backup"] = {"name": chosen.name, "sha256": run.verdict["sha256"],
                                 "created": chosen.created}
        return verified_detail(run, self.options, self.settings.check, self.target.list())

    def _local_chosen(self) -> runbook.Done | None:
        """Another database's backup (refused without --other-source), where the safety
        backup goes, and what the confirmation shows; a broken live database changes the
        rest of the plan (``_broken_steps``)."""
        f, run = self.found, self.found["run"]
        db, directory, chosen = f["db"], f["directory"], run.chosen
        other = self._other_source(chosen.name, chosen.source, str(db))
        own = safety_folder(directory, other)
        if own != directory:
            self.record["undo_dir"] = str(own)
            run.safety_dir = own
        if run.state != "ok":
            self._next("broken")
            return runbook.Done("", then=self._broken_steps(run.state, run.why))
        rows = self.target.counts(chosen.name)  # counted as on the machine (the engine's one way)
        f["asked"] = [
            f"Replace the live database {db} ({human_bytes(db.stat().st_size)}; "
            f"{format_counts(rows['live'])})",
            "with backup " + describe_backup(chosen.name, chosen.created, chosen.size,
                                             rows["backup"], dt.datetime.now(dt.UTC)),
        ]
        return None

    def _local_safety(self) -> str | runbook.Done:
        run = self._next("safety", "broken")
        if run.phase == "broken":  # quick_check passed; the full check found more
            self.ui.info(f"The safety backup failed because the live database {run.live} "
                         f"itself fails {run.why}: it is restored as a corrupt database")
            exc = run.safety_error
            return runbook.Done(self.found["plan"]["safety"].line, cli.one_line(exc),
                                record=str(exc), failed=True,
                                then=self._broken_steps("corrupt", run.why))
        self.record["safety_backup"] = {"name": run.safety.name, "sha256": run.safety.sha256}
        self.record["tables_before"] = run.safety.tables
        self._interrupted_before(self._undo_folder().list())
        return _made(asdict(run.safety))[1]

    def _local_copy(self) -> str:
        run = self.found["run"]
        self.copied = run.snapshot  # filled once the copy commits: _settled judges it
        self.restoring = (run.chosen.path, run.live,
                          Path(run.safety_dir or run.directory) / run.safety.name)
        seconds, detail = _timed(self._next("copied").restore_seconds)
        self.record["restore_seconds"] = seconds
        return detail

    def _local_check(self) -> str:
        proof = self._next("proven").proof
        self._proven(proof)
        self.restoring = None
        self._show_counts()
        return engine.proof_summary(proof)

    def _other_source(self, name: str, recorded: str | None, live: str) -> bool:
        """Whether the chosen backup is another database's; refused (exit 2) without
        --other-source (review-op #3)."""
        refusal = other_source_refusal(name, recorded, live, self._flag())
        if refusal and not self.options.other_source:
            self.record["outcome"] = "refused"
            raise OpsError(refusal, ExitCode.USAGE)
        if refusal:
            self.record["other_source"] = recorded
            self.ui.warn(f"backup {name} is of {recorded}, not of {live} (--other-source)")
        return bool(refusal)

    def _broken_steps(self, state: str, why: str) -> tuple[Step, ...]:
        """A corrupt live database is moved aside (never deleted) with its -wal/-shm, a
        missing one is simply absent; the backup is then placed there and proven (the
        engine's restore at its ``broken`` phase, its locks still held)."""
        f = self.found
        db, chosen = f["db"], f["run"].chosen
        self.record.update(live_state=state, live_problem=why)
        return (
            Step("confirm", "ask the operator", lambda: self._confirm_broken(state, why),
                 pause=True),
            dataclasses.replace(f["plan"]["restore"], action=self._place,
                                running=f"restore {chosen.name} into the {state} {db}"),
            dataclasses.replace(f["plan"]["check"], action=self._local_check),
        )

    def _confirm_broken(self, state: str, why: str) -> None:
        run = self.found["run"]
        db, chosen = run.live, run.chosen
        when = run.aside_at = dt.datetime.now(dt.UTC)  # the name shown is the name used
        aside = engine.aside_name(db, when, engine.aside_label(state))
        left = engine.leftovers(db)
        first = (f"The live database {db} is corrupt ({why}): it is moved aside to "
                 f"{aside.name} (with its -wal/-shm), never deleted" if state == "corrupt"
                 else f"The live database {db} is missing" + (
                     f"; its leftover {', '.join(Path(p).name for p in left)} are moved aside "
                     f"to {aside.name}-* (never deleted: SQLite would replay a stale -wal "
                     "over the backup)" if left else ""))
        backup = describe_backup(chosen.name, chosen.created, chosen.size,
                                 _recorded_tables(Path(chosen.path)), dt.datetime.now(dt.UTC))
        self._confirm([first, f"and backup {backup} is restored into its place (the app is "
                       "stopped: --app-stopped)"])

    def _place(self) -> str:
        run = self.found["run"]
        self.restoring = (run.chosen.path, run.live, None)
        self.found["moving"] = run.moved_aside  # filled before the placement starts
        run = self._next("placed")
        done = {"moved_aside": run.moved_aside, "restore_seconds": run.restore_seconds}
        self.record.update(done)
        if run.moved_aside:
            self.ui.info(_kept(run.moved_aside, "here"))
        return _placed(done)[1]

    def _proven(self, proof: dict | None) -> None:
        """Record a proof; a failed one raises (exit 5) naming the safety backup."""
        if proof is None:
            return
        self.record["proof"] = proof
        self.record["tables_after"] = proof["tables"]
        if proof.get("held_backup_before") and self.record.get("safety_backup"):
            self._retried(proof)
        if not proof["ok"]:
            safety = (self.record.get("safety_backup") or {}).get("name")
            raise OpsError(("restore " if engine.raced(proof) else "restore failed: ")
                           + "; ".join(engine.proof_problems(proof))
                           + (f" (safety backup {safety})" if safety else ""),
                           ExitCode.VERIFY_FAILED)

    def _retried(self, proof: dict) -> None:
        """The live database held the chosen backup's content before this run (a retried
        restore): this run's safety backup is no undo. The undo is the newest earlier
        safety backup of a restore of the same backup that holds other content: the data
        from before the restores (review-op #1)."""
        backup = self.record["backup"]["name"]
        safety = self.record["safety_backup"]["name"]
        if self.options.checked:  # --from-replica: a new file, so no retry; nothing was lost
            self.record["undo"] = safety
            self.ui.info(f"The replica holds what the live database held ({backup} is its "
                         f"content): nothing to restore; safety backup {safety} holds the "
                         "same")
            return
        unknown = None
        try:
            candidates = self._safety_records(backup, proof, safety)
            earlier = pre_restore_safety(safety, backup, proof, candidates)
            unknown = unknown_safety(safety, proof, candidates)
        except (OpsError, EngineError, OSError) as exc:
            earlier, unknown = None, f"could not list them: {cli.one_line(exc)}"
            self.ui.warn(f"could not look for an earlier restore's safety backup: {exc}")
        if unknown and not unknown.startswith("could not"):  # a name: say why it is unknown
            unknown = next((c.get("unknown") for c in candidates if c["name"] == unknown),
                           None) or f"no content hash for {unknown}"
        self.record["undo"] = None if unknown else earlier or safety
        if unknown:
            self.record["undo_unknown"] = unknown
        self.ui.info(f"The live database already held {backup}'s content (a retried "
                     f"restore?): safety backup {safety} holds the same. " + (
                         f"The data from before the restores is in {earlier}, the safety "
                         f"backup of an earlier restore of {backup}." if earlier else
                         f"Which earlier safety backup holds the data from before could "
                         f"not be told ({unknown}): look in `invoke backup.list"
                         + self._flag() + "`." if unknown else
                         f"No earlier safety backup of a restore of {backup} holds other "
                         "content: look in `invoke backup.list" + self._flag() + "`."))

    def _safety_records(self, backup: str, proof: dict | None = None,
                        mine: str | None = None) -> list[dict]:
        """The safety backups of restores of ``backup`` in the folder, each with what its
        record says (name, created, content hash and format). A record without a content
        hash (issue 21) is hashed now: here, or on the machine, which says whether the
        safety backup holds ``backup``'s content (then its hash is the ``proof``'s)."""
        folder = self._undo_folder()
        found, listing = [], folder.list()
        size = next((i.size for i in listing if i.name == backup), 0)  # its own deadline
        for item in listing:
            if item.kind != "safety" or (item.restore or {}).get("backup") != backup:
                continue
            text = folder.record_text(item.name)
            try:
                raw = engine.parse_record(text or "null")
            except ValueError:
                raw = None
            raw = raw if isinstance(raw, dict) else {}
            if not raw.get("content_sha256") and getattr(folder, "content_of", None):
                with contextlib.suppress(engine.EngineError, OSError):  # issue 21: hash it now
                    raw["content_sha256"], raw["content_format"] = folder.content_of(item.name)
            elif proof and item.name != mine and not raw.get("content_sha256") and getattr(
                    folder, "holds_backup", None):
                self._ask_holds(folder, item, backup, proof, raw, size)
            found.append({"name": item.name, "created": item.created,
                          "content_sha256": raw.get("content_sha256"),
                          "content_format": raw.get("content_format"),
                          "unknown": raw.get("unknown")})
        return found

    def _undo_folder(self):
        """Where this run's safety backup and its undo are: the target, or the local folder
        a restore of another database's backup keeps them in (``safety_folder``)."""
        undo_dir = self.record.get("undo_dir")
        return LocalTarget(dataclasses.replace(self.settings, backup_dir=Path(undo_dir)),
                           self.ui) if undo_dir else self.target

    def _interrupted_before(self, listing) -> None:
        """Earlier restores of the same backup that never finished (no audit line names
        their safety backup, finding 2 of the s18 review): their safety backups hold the
        data from before them, whatever the app wrote since, so this run names them
        (``interrupted_lines``) instead of relying on content equality."""
        backup = (self.record.get("backup") or {}).get("name")
        mine = (self.record.get("safety_backup") or {}).get("name")
        try:
            found = interrupted_safeties(backup, listing, audit.read(
                Path(self.settings.audit_log)), mine)
        except (OSError, AttributeError, TypeError) as exc:  # a listing or log unreadable
            self.ui.warn(f"could not look for interrupted restores of {backup}: {exc}")
            return
        if found:
            self.record["interrupted_safety"] = found

    def _ask_holds(self, folder, item, backup: str, proof: dict, raw: dict,
                   size: int) -> None:
        """Ask the machine whether ``item`` holds ``backup``'s content: yes gives it the
        proof's hash, no a hash of its own kind ("other"); a timeout or "cannot tell"
        leaves it unknown, with why (never "other": finding 1 of the s18 review)."""
        try:
            held = folder.holds_backup(item.name, backup, item.size + size)
        except OpsError as exc:
            raw["unknown"] = f"the machine could not tell for {item.name}: {cli.one_line(exc)}"
            return
        if held is None:
            raw["unknown"] = f"the machine could not tell for {item.name}"
        elif held:
            raw["content_sha256"] = proof.get("backup_content_sha256")
            raw["content_format"] = proof.get("content_format")
        else:
            raw["content_sha256"], raw["content_format"] = "other", "other"

    def _show_counts(self) -> None:
        before = app_tables(self.record.get("tables_before") or {})
        after = app_tables(self.record.get("tables_after") or {})
        rows = [[t, str(before.get(t, "-")), str(after.get(t, "-"))]
                for t in sorted(set(before) | set(after))]
        self.ui.table("Rows per table", ["table", "before", "after"], rows)

    # -- on the Fly machine or an SSH host
    def _remote_ready(self) -> None:
        self._unasked()
        refuse_remote_options(self.options)

    def _resolve(self) -> runbook.Done | None:
        """The session draws its own line (``shown=False``); emergency-stopped, the rest of
        the plan skips the restart and the /health wait."""
        target = self.target
        stopped = self.found["stopped"] = resolved(target)
        self.record["machine"] = target.machine.id
        self.runner.learn(machine=target.machine.id)
        self.record["emergency_stopped"] = stopped
        if not stopped:
            return None
        self.ui.info(f"{self.settings.app} is emergency-stopped (machine {target.machine.id} "
                     "runs the maintenance command): the machine will not be restarted and "
                     "/health not awaited")
        rest = self._steps(stopped=True)
        return runbook.Done("", then=tuple(rest[[s.key for s in rest].index("resolve") + 1:]))

    def _verify_file(self) -> str:
        local = Path(self.options.from_path)
        name = _name_for(local)
        # one read of the file: what is verified is what is uploaded (its SHA-256,
        # computed while reading, is checked again on the machine)
        scratch = self.scratch = Path(tempfile.mkdtemp(prefix="ops-upload-"))
        self.runner.learn(backup=name)
        copy, digest, verdict, detail = verified_upload(local, self.settings.check,
                                                        self.options.checked, scratch)
        self.record["backup"] = {"name": name, "sha256": verdict["sha256"], "from": str(local)}
        self.found.update(name=name, copy=copy, digest=digest, file=local)
        return detail

    def _upload(self) -> str:
        f = self.found
        f["uploading"] = True  # from here a stop before the restore leaves it there
        manifest = _manifest(f["file"])
        f["sent_kind"] = manifest["kind"]
        f["uploaded"], detail = _uploaded(self.target.upload(
            f["copy"], f["name"], manifest, sha256=f["digest"]))
        shutil.rmtree(self.scratch, ignore_errors=True)
        return detail

    def _discard_upload(self, *, restore_ended: bool = False) -> None:
        """restore --from, stopped after its upload and before its restore began there
        (review-break s20 #1): remove the upload, best effort, under the folder's backup
        lock there, and say so; what could not be removed is named with the command that
        removes it. ``restore_ended``: the restore's call came back failed (the script
        there keeps a file some safety backup names: that restore began). A live database
        there that is missing or corrupt is replaced without a safety backup: its upload
        is left, named (whether that restore began cannot be told)."""
        f = self.found
        if not f.get("uploading") or (f.get("restore_called") and not restore_ended):
            return
        name = f["name"]
        if f.get("live_state"):
            return self._upload_left(name, "the live database there was "
                                     f"{f['live_state']}: no safety backup tells whether its "
                                     "restore began")
        adopted = bool((f.get("uploaded") or {}).get("adopted"))  # published by this run
        try:
            said = self.target.discard_upload(name, f["digest"], adopted=adopted)
        except (OpsError, EngineError) as exc:
            return self._upload_left(name, cli.one_line(exc))
        except (KeyboardInterrupt, signals.Terminated):  # a second signal: still named
            self._upload_left(name, "its removal was interrupted")  # (review-break2 #4)
            raise
        if said == "removed":
            self.record["upload_removed"] = name
            what = ("the safety backup this run sent back," if f.get("sent_kind") == "safety"
                    else "the upload")
            self.ui.info(f"Removed {what} {name} from {self.target.dir} on "
                         f"{self._there()}: its restore never began")

    def _upload_left(self, name: str, why: str) -> None:
        """Name an upload this run leaves there, and how it goes (pure wording:
        ``upload_left_line``)."""
        self.record["upload_left"] = name
        self.ui.warn(upload_left_line(name, self.target.dir, self._there(), why, self._flag(),
                                      (self.found.get("uploaded") or {}).get("uploaded"),
                                      safety=self.found.get("sent_kind") == "safety"))

    def _choose(self) -> str:
        chosen, detail = _listed(self.target, self.options.which, self.found)
        self.found.update(name=chosen.name, chosen=chosen)
        self.runner.learn(backup=chosen.name)
        self.record["backup"] = {"name": chosen.name, "sha256": chosen.sha256,
                                 "created": chosen.created}
        return detail

    def _remote_chosen(self) -> None:
        """Another database's backup is refused without --other-source; the rows there and
        the backup's for the confirmation."""
        f, target, now = self.found, self.target, dt.datetime.now(dt.UTC)
        name = f["name"]
        if not self.options.from_path:
            self._other_source(name, f["chosen"].source, self.settings.db_remote_path)
        counts = self._counts(name)
        state = f["live_state"] = counts.get("live_state")
        refusal = broken_live_there(self.options, self.settings, counts,
                                    stopped_there(self.options, self.found)) or \
            upload_refusal(self.options, f.get("copy") or Path("."), counts, target.host)
        if refusal is not None:  # refused now, before the question (and any upload)
            self.record["outcome"] = "refused"
            raise refusal
        first = f"Replace the live database {target.describe()} (" + (
            f"{state}: {counts.get('live_problem')}" if state else live_counts(counts)) + ")"
        if self.options.from_path:
            local = f["file"]
            f["asked"] = [first, "with the local file " + describe_backup(
                name, engine.iso(engine.parse_created(name)), local.stat().st_size,
                _recorded_tables(local), now) + f" from {local}"]
        else:
            chosen = f["chosen"]
            f["asked"] = [first, "with backup " + describe_backup(
                name, chosen.created, chosen.size, counts.get("backup"), now)]

    def _restore_there(self) -> str:
        o, name = self.options, self.found["name"]
        self.restoring = ("remote", name)
        self.found["restore_called"] = True
        try:
            data, detail = self._remote(name, app_stopped=self.found.get("stopped", False)
                                        if o.production else o.app_stopped)
        except OpsError as exc:
            # no answer of the machine's: its copy there may have committed, or still may
            if exc.code in ANSWER_LOST and not getattr(exc, "answered", False):
                self._settled_lost(name)
            else:
                self._discard_upload(restore_ended=True)
            raise hinted(exc, name, self._flag()) from None
        self.restoring = None
        self.found["data"] = data
        return detail

    def _remote_proven(self) -> None:
        """After the restart (or its skip): the machine's own check of the live database."""
        if self.found.get("stopped"):
            self.ui.info("The app is still emergency-stopped: run `invoke emergency.resume` "
                         "to start it on the restored database")
        data = self.found["data"]
        if not data["ok"]:
            raise OpsError(f"the live database failed {self.settings.check}_check after the "
                           f"restore: {data['problems'][0]}", ExitCode.VERIFY_FAILED)

    def _counts(self, name: str) -> dict:
        """Row counts for the confirmation; a failure here only leaves them out, but for a
        refusal the restore would meet too (no engine there, a live database with another
        name: ``engine.refuse_other_names``), said now, before the question."""
        try:
            return self.target.counts(name) or {}
        except (OpsError, EngineError) as exc:
            if getattr(exc, "no_engine", False):  # nothing there could restore: stop now
                raise
            if ExitCode.USAGE in (getattr(exc, "code", None),
                                  ENGINE_KINDS.get(getattr(exc, "kind", None))):
                self.record["outcome"] = "refused"
                raise
            text = str(exc)  # the machine's error names its step already: said once
            self.ui.warn(f"could not {text}" if text.startswith("count rows on ")
                         else f"could not count rows on {self._there()}: {text}")
            return {}

    def _remote(self, name: str, app_stopped: bool = False):
        data = self.target.restore(name, busy_timeout=self.options.busy_timeout,
                                   app_stopped=app_stopped)
        for key in ("live_state", "moved_aside"):
            if data.get(key):
                self.record[key] = data[key]
        if data.get("moved_aside"):
            self.ui.info(_kept(data["moved_aside"], f"on {self._there()}"))
        safety = data.get("safety_backup") or {}
        if safety.get("name"):
            self.record["safety_backup"] = {"name": safety["name"],
                                            "sha256": safety.get("sha256")}
            self._interrupted_before(self.found.get("listing") or [])
        self.record.update(tables_before=data.get("tables_before"),
                           tables_after=data.get("tables_after"),
                           strategy=data.get("strategy"))
        if data.get("restore_seconds") is not None:  # the machine's copy, as locally
            self.record["restore_seconds"] = data["restore_seconds"]
        self._show_counts()
        if data.get("proof"):  # a failed proof fails this step (✗), before any restart
            self._proven(data["proof"])
            return data, f"[{data['strategy']}] {engine.proof_summary(data['proof'])}"
        check = "ok" if data["ok"] else "FAILED"
        return data, f"[{data['strategy']}] {self.settings.check}_check {check}"


def not_proven_lines(record: dict, flag: str, machine: tuple[str, str] | None) -> list[str]:
    """What a restore the app wrote into before its proof could read it leaves to do
    (review-op s24 #10): keep it, or prove a restore with the app stopped, or undo it.
    Nothing when the proof failed for another reason. It claims no more than it knows:
    where the WAL's commit count cannot be read (no /proc: macOS), python3's ``app_wrote``
    counts the app's commits while the copy waited for its lock too (review-break s24 #1),
    and the app may write after a wrong copy: a wrong copy can be "not proven" as well."""
    proof = record.get("proof")
    if not proof or proof["ok"] or not engine.raced(proof):
        return []
    again = _again(record, record["backup"]["name"], flag)
    stop = "`invoke emergency.stop`, then " if "--production" in flag else "stop the app, then "
    resume = ", then `invoke emergency.resume`" if "--production" in flag else ""
    lines = [f"The live database passed {proof['check']}_check. The app committed while the "
             "restore ran; its writes can make the live database differ like this, and so "
             "would a wrong copy. Only a restore while the app does not write can tell."]
    if machine:
        app, machine_id = machine
        lines.append("The machine was not restarted and /health was not checked. To keep "
                     f"this result: `fly machine restart {machine_id} -a {app}`, then check "
                     "/health.")
    lines.append(f"For a proven restore, run it while the app is stopped: {stop}`{again}`"
                 f"{resume} (the app's writes since then go into that run's safety backup).")
    return lines


# the restore's call failed without the machine's answer (flyctl or the link failed, the
# call ran out of time; not a timeout the machine reported: ``answered``): its copy may
# have gone on there
ANSWER_LOST = (ExitCode.FLY, ExitCode.TIMEOUT)


def hinted(exc: OpsError, name: str, flag: str) -> OpsError:
    """A restore's failure there with what to do next (the run's and its dry run's):
    "restore another backup" only when this backup failed its check; a failed proof or a
    copy that died says what the live database holds instead."""
    problems = ["unverifiable"] if "unverifiable:" in str(exc) else []
    hint = verify_failed_hint(problems, name, flag) \
        if exc.code == ExitCode.VERIFY_FAILED and \
        f"backup {name} failed verification" in str(exc) \
        else adopt_hint(problems, name, flag)
    return OpsError(f"{exc}{hint}", exc.code) if hint else exc


def resolved(target) -> bool:
    """The production plan's ``resolve`` step: the machine and volume, and whether the app
    is emergency-stopped (the run's and the dry run's one way)."""
    target.resolve()
    return target.emergency_stopped()


def reads(o: RestoreOptions, settings, ui: UI, target, found: dict, learn=None) -> dict:
    """The actions of the plan's ``reads_only`` steps, the ones its run uses, asked of the
    target as the run asks (``Target.restore_actions``): a dry run runs them
    (``runbook.Runner(dry_run=True)``), so a backup name that does not exist fails it as
    it fails the run. What they find goes into ``found`` (``backup``, ``machine``,
    ``stopped``); ``learn`` is the runner's (the backup's name fills the later lines)."""
    return target.restore_actions(Reads(o, settings, target, found, learn))


@dataclass
class Reads:
    """A dry run's read-only actions, here and there (``Restore.here``/``there``)."""

    options: RestoreOptions
    settings: object
    target: object
    found: dict
    learn: object = None  # ``Runner.learn``, as the run's steps learn what they found

    def here(self, local) -> dict:
        return {"verify": self._verify}

    def there(self, target) -> dict:
        return {"resolve": self._resolve, "choose": self._choose, "restore": self._verified,
                "verify": self._verify_file,
                "connect": lambda: f"connected to {target.session.connect()}"}

    def _verify(self) -> str:
        """Here: the run's own verify, the engine's restore to its ``verified`` phase
        (``read_only``: no lock, nothing written); a missing folder is exit 3, as in the
        run."""
        o, local = self.options, self.target
        local.folder()
        local.names(o.which)  # as the run's ready: a bad name first, then what it refuses
        state, why = engine.live_state(local.db)  # before any lock: the app not stopped,
        if state != "ok" and not o.app_stopped:  # a broken live database (exit 2)
            raise engine.broken_live_refusal(local.db, state, why, local_how(o))
        engine.refuse_unwritable(local.dir)  # and a folder it cannot write (exit 2)
        phases = local.restore(o.which, checked=o.checked, read_only=True)
        with contextlib.closing(phases):
            run = verified_phase(phases)
        self.found["backup"] = run.chosen.name
        self.found["lock_waits"] = run.lock_waits  # held locks the run would wait for
        self._same_source(run.chosen.name, run.chosen.source, str(self.settings.db_path))
        return verified_detail(run, o, self.settings.check, local.list())

    def _same_source(self, name: str, recorded: str | None, live: str) -> None:
        """The run's refusal of another database's backup (``Restore._other_source``),
        where the run gives it: a dry run fails it as the run does (exit 2)."""
        refusal = other_source_refusal(name, recorded, live, self.target.flag)
        if refusal and not self.options.other_source:
            raise OpsError(refusal, ExitCode.USAGE)

    def _choose(self) -> str:
        """There, as the run's choose: the listing, then the rows the confirmation shows
        (a missing or corrupt live database there is said: ``remote_live_warning``)."""
        chosen, detail = _listed(self.target, self.options.which)
        self.found["backup"] = chosen.name
        if self.learn is not None:
            self.learn(backup=chosen.name)
        self._same_source(chosen.name, chosen.source, self.settings.db_remote_path)
        self.found["warning"] = remote_live_warning(self.options, self.settings, self.target,
                                                    self.found)
        return detail

    def _verify_file(self) -> str:
        """There, --from: the run's verify of the local file (``verified_upload``), read
        in place (no private copy, nothing written, no upload), then the rows there, as
        the run counts them before its question: a file or a live database the run
        refuses fails the dry run with the run's error and exit code."""
        o = self.options
        local = Path(o.from_path)
        name = self.found["backup"] = _name_for(local)
        if self.learn is not None:
            self.learn(backup=name)
        detail = verified_upload(local, self.settings.check, o.checked)[3]
        self.found["warning"] = remote_live_warning(o, self.settings, self.target, self.found)
        return detail

    def _verified(self) -> str:
        """There: the restore's own verify alone (``RemoteTarget.restore(read_only=True)``:
        the machine's engine, no lock, nothing written); it fails where the run's restore
        step would refuse the backup, with the same error and exit code."""
        name = self.found["backup"]
        try:
            data = self.target.restore(name, read_only=True)
        except OpsError as exc:
            raise hinted(exc, name, self.target.flag) from None
        self.found["lock_waits"] = data.get("lock_waits", [])  # held locks the run would
        # wait for there (one it would refuse at once failed it, exit 4)
        return f"[{data['strategy']}] {name}  sha256 {str(data['backup_sha256'])[:12]}  " \
            f"{data['check']}_check ok"

    def _resolve(self) -> str:
        found, target = self.found, self.target
        found["stopped"] = resolved(target)
        found["machine"] = target.machine.id
        return f"machine {target.machine.id}" + (
            " (emergency-stopped: no restart, no /health wait)" if found["stopped"] else "")


def verified_phase(phases) -> engine.Restoring:
    """The engine's restore on to its ``verified`` phase (the run's verify step and its
    dry run's): a backup that fails its check is exit 5 with what to do instead."""
    try:
        run = next(phases)
    except EngineError as exc:
        if exc.kind != "verify_failed":
            raise
        raise OpsError(f"{exc}" + verify_failed_hint(exc.run.verdict["problems"],
                                                     exc.run.chosen.name),
                       ExitCode.VERIFY_FAILED) from None
    if run.phase != "verified":  # a step bound to the wrong phase: never go on
        raise OpsError(f"internal error: restore at {run.phase}, expected verified")
    return run


def verified_detail(run: engine.Restoring, o: RestoreOptions, check: str, listing) -> str:
    """The verify step's detail, the run's and its dry run's (one line for both)."""
    chosen = run.chosen
    return f"{_named(o.which, chosen.name)}sha256 {run.verdict['sha256'][:12]}  " \
        f"{check}_check ok" + (" (as it was restored)" if o.checked else "") \
        + _skipped(listing, chosen, o.which)


# ---------------------------------------------------------------- drill


def unverifiable(result: dict) -> bool:
    """A drill of a backup without any checksum record (the old npm scripts')."""
    return any(str(p).startswith("unverifiable") for p in result.get("problems") or [])


def drill_summary(result: dict, flag: str = "") -> str:
    """One line: what the drill found, and the restore time (the RTO); ``flag``: the
    target's (``--production``, ``--host X``) for the commands it names."""
    if not result["restorable"]:
        return f"{result['name']}: NOT restorable: {'; '.join(result['problems'][:2])}"
    head = (f"{result['name']}: restored into a scratch copy in {result['seconds']:.3f}s (the "
            "copy alone, not the recovery time objective: `invoke restore` times and records "
            "the whole restore)")
    if unverifiable(result):  # as verify and restore say (issue 16 #14)
        return (f"{head}; but unverifiable: no checksum record says it is the backup that "
                f"was made" + (f" ({DAMAGED.format(name=result['name'])})"
                               if damaged(result["problems"]) else
                               f" (adopt it first: `invoke backup.adopt {result['name']}{flag}`)"))
    if result["problems"] or result["differences"]:
        found = (result["problems"] + result["differences"])[:3]
        return f"{head}; DIFFERS from its record: {'; '.join(found)}"
    if not result["recorded"]:
        return f"{head}; restorable, nothing recorded to compare (made before row counts " \
               "and content hashes were recorded)"
    matched = (f"{head}; {result['check']}_check ok; "
               f"{engine.tables_matched(result['tables'])} their")
    if result.get("backup_content_sha256") and not result.get("recorded_content"):
        return (f"{matched} recorded row counts; content hash "
                f"{result['content_sha256'][:12]} the same in the backup file and the "
                "restored copy, both computed now")
    if not result.get("recorded_content", True):
        return (f"{matched} recorded row counts (no content hash was recorded: "
                "backup.content_hash was off)")
    return f"{matched} recorded row counts and content hash {result['content_sha256'][:12]}"


# ---------------------------------------------------------------- small helpers


def verify_failed_hint(problems: list[str], name: str, flag: str = "") -> str:
    """What to do when the chosen backup fails its verification (pure): adopt an old one
    without records; restore another one instead of a damaged one (an operator in an
    emergency needs the next command, not only the verdict: review-op s18 #5)."""
    return adopt_hint(problems, name, flag) or (
        f"; restore another backup instead: see `invoke backup.list{flag}`, then "
        f"`invoke restore NAME{flag}`")


def adopt_hint(problems: list[str], name: str, flag: str = "") -> str:
    """What to do about a backup without records (the old npm scripts'): adopt it; but
    one that is also damaged cannot be adopted (adopt checks it first): say so."""
    if not any(str(p).startswith("unverifiable") for p in problems):
        return ""
    if damaged(problems):
        return f"; {DAMAGED.format(name=name)}"
    return (f"; if it is an old backup made without records (the npm scripts), check "
            f"and adopt it with `invoke backup.adopt {name}{flag}`")


DAMAGED = ("{name} is also damaged, so adopting it would fail and it cannot be restored: "
           "restore another backup, and move {name} out of the backups folder (or delete it)")


def damaged(problems: list[str]) -> bool:
    """Problems besides "no record": the file itself fails its check."""
    return any(not str(p).startswith("unverifiable") for p in problems)


def pre_restore_safety(safety: str, backup: str, proof: dict,
                       candidates: list[dict]) -> str | None:
    """The safety backup that holds the data from before a run of restores of ``backup``
    (pure): the newest of ``candidates`` (safety backups of restores of ``backup``, with
    their recorded content hash) made before ``safety`` whose content is not the
    backup's. None when there is none, or when a newer candidate's content is unknown
    (no hash: the machine could not tell): an unknown is never "other content"
    (``unknown_safety`` names it)."""
    item = _first_told(safety, proof, candidates)
    return item["name"] if item and item.get("content_sha256") else None


def unknown_safety(safety: str, proof: dict, candidates: list[dict]) -> str | None:
    """The candidate whose unknown content stopped ``pre_restore_safety`` (pure)."""
    item = _first_told(safety, proof, candidates)
    return item["name"] if item and not item.get("content_sha256") else None


def _first_told(safety: str, proof: dict, candidates: list[dict]) -> dict | None:
    """The newest earlier candidate that is not known to hold the backup's content."""
    mine = next((c["created"] for c in candidates if c["name"] == safety), None)
    same = proof.get("backup_content_sha256"), proof.get("content_format")
    for item in sorted(candidates, key=lambda c: (c["created"], c["name"]), reverse=True):
        if item["name"] == safety or (mine is not None and item["created"] > mine):
            continue
        if not (item.get("content_sha256") and same[0]) or (
                item.get("content_sha256"), item.get("content_format")) != same:
            return item
    return None


def interrupted_safeties(backup: str, listing, audit_entries: list[dict],
                         mine: str | None = None) -> list[str]:
    """Safety backups in ``listing`` made by restores of ``backup`` that no audit line
    names (pure): their runs never finished (kill -9, OOM, a reboot: no line
    can be written then), or ran with another audit log. Each holds the live database
    as it was before its restore, whatever the app wrote since; oldest first."""
    named = {str(e["safety_backup"].get("name")) for e in audit_entries  # any finished
             if isinstance(e, dict) and isinstance(e.get("safety_backup"), dict)}  # run's
    return [item.name for item in sorted(listing, key=lambda i: (i.created, i.name))
            if item.kind == "safety" and (item.restore or {}).get("backup") == backup
            and item.name != mine and item.name not in named]


def failed_outcome(record: dict) -> str:
    """A failed restore's outcome word: what the run already said (refused, not
    confirmed), "not proven" when its proof may have failed only for the app's own writes,
    else "failed" (a wrong copy and a not-proven one must not read alike in the log)."""
    if record["outcome"] != "running":
        return record["outcome"]
    proof = record.get("proof")
    return "not proven" if proof and not proof["ok"] and engine.raced(proof) else "failed"


def undo_backup(record: dict) -> str | None:
    """The backup that puts back what the live database held before: this run's safety
    backup, or an earlier one when this run was a retry (``Restore._retried``); None
    when this run was a retry and the machine could not tell which one (``undo_unknown``)."""
    if record.get("undo_unknown"):
        return None
    return record.get("undo") or (record.get("safety_backup") or {}).get("name")


def nothing_to_undo(record: dict) -> str | None:
    """Why a run that made a safety backup has no undo (pure), or None when it has one.
    The undo line restores the safety backup over the live database: only worth it when
    this run changed the live database and the safety backup holds what it held before.
    Otherwise following it throws away the app's writes since (review-op s19 #3): a copy
    that never happened (the app's write lock outlasted --busy-timeout, any failure
    before the copy: no proof, no copy time), or a live database that already held the
    backup's content with no earlier safety backup holding other content."""
    safety = (record.get("safety_backup") or {}).get("name")
    if not safety:
        return None
    changed = record.get("outcome") == "ok" or record.get("proof") is not None \
        or record.get("restore_seconds") is not None or record.get("holds") in ("backup", "other")
    if not changed:
        return "the live database was not changed by this run"
    if (record.get("proof") or {}).get("held_backup_before") and \
            record.get("undo") == safety and not record.get("undo_unknown"):
        return "it holds the same content the live database holds: the live database " \
            "already held the backup's content"
    return None


def undo_lines(record: dict, flag: str) -> list[str]:
    """How to put back what the live database held before (pure): the command, or, when
    it is unknown, where to look; then any earlier interrupted restore's safety backup."""
    undo = undo_backup(record)
    if undo:
        lines = ["To put back what it held before: "
                 f"`{undo_command(undo, flag, record.get('undo_dir'))}`"]
    else:
        lines = [f"Which safety backup holds the data from before could not be told "
                 f"({record.get('undo_unknown')}): look in `invoke backup.list{flag}`."]
    return lines + interrupted_lines(record, flag)


def interrupted_lines(record: dict, flag: str) -> list[str]:
    """What the run found of earlier restores of its backup that never finished (pure)."""
    backup = (record.get("backup") or {}).get("name")
    return [f"An earlier restore of {backup} was interrupted (no audit line records it "
            f"finishing): its safety backup {name} holds the data from before it: "
            f"`{undo_command(name, flag, record.get('undo_dir'))}`"
            for name in record.get("interrupted_safety") or []]


def by_hand(record: dict, flag: str, machine: tuple[str, str] | None = None) -> list[str]:
    """What to do by hand after a restore was stopped (SIGTERM/SIGHUP, Ctrl-C) or
    crashed, from its record (pure): which step it was in and what that leaves."""
    steps = [step["step"] for step in record.get("steps", [])]
    backup = (record.get("backup") or {}).get("name")
    safety = (record.get("safety_backup") or {}).get("name")
    why = record.get("outcome", "stopped")
    if why in ("not restored", "failed") and record.get("interrupted"):  # not a verb's form
        why = f"stopped by {record['interrupted']}"
    last = (record.get("steps") or [{}])[-1].get("outcome")  # the stopped step's own
    lines = [f"The restore's answer was lost during step {steps[-1]}." if record.get(
        "answer_lost") and steps else f"The restore was {why}" + (
        " before its first step" if not steps
        else f" after step {steps[-1]}" if last in ("ok", "skipped")
        else f" during step {steps[-1]}") + "."]
    if record.get("copied") is False:  # held the backup's content already (op #2b)
        lines.append(f"Nothing was copied: the live database already held backup {backup}'s "
                     "content, and no safety backup was made.")
        if backup:
            lines.append(f"To restore with a safety backup and its proof, run again: "
                         f"`{_again(record, backup, flag)}`")
        return lines
    if record.get("machine_unsettled"):  # the machine's restore may still copy
        return lines + _unsettled_by_hand(record, backup, safety, flag, machine)
    if record.get("holds") == "before":  # the copy never committed (engine.restore_live)
        lines.append("Not restored: the live database is as it was (the app may have written "
                     "since)" + (f"; safety backup {safety} was made" if safety else "") + ".")
        if backup:
            lines.append(f"To restore, run again: `{_again(record, backup, flag)}`")
        return lines
    if "restore" not in steps or record.get("holds") == "safety":  # proven unchanged
        lines.append("The live database was not changed" + (
            " by this run" if not safety else f" (safety backup {safety} was made)") + ".")
        if backup:
            lines.append(f"To restore, run again: `{_again(record, backup, flag)}`")
        return lines
    if (record.get("proof") or {}).get("ok") and record.get("holds") in (None, "backup"):
        return lines + _done_by_hand(record, backup, safety, flag, machine)
    if record.get("live_missing"):
        lines.append("The live database is missing: nothing has its name now"
                     + (f"; what was there is kept at {', '.join(record['moved_aside'])}"
                        if record.get("moved_aside") else "") + ".")
        if backup:
            lines.append(f"To finish the restore: `invoke restore {backup}{flag} "
                         "--app-stopped --yes`")
        return lines
    if record.get("holds") == "other":
        lines.append("The live database held neither the backup's content nor its own from "
                     "before when it was read (the app may have written since the copy).")
    else:
        lines.append("The live database holds either its content before the restore or "
                     "the backup's (one SQLite transaction, never a mix).")
    if safety:
        lines += undo_lines(record, flag)
    if backup:
        lines.append(f"To finish the restore: `invoke restore {backup}{flag} --yes`")
    if machine and "restart" not in [s["step"] for s in record["steps"]
                                     if s.get("outcome") == "ok"]:
        lines.append(f"Then restart the app so it reopens the database: `fly machine restart "
                     f"{machine[1]} -a {machine[0]}`, and check /health")
    return lines


def _unsettled_by_hand(record: dict, backup: str | None, safety: str | None,
                       flag: str, machine: tuple[str, str] | None) -> list[str]:
    """Stopped while the machine's restore had not copied when it was read: what is known
    (what it held then, the safety backup), what is not (whether it copies later: the
    sqlite3-only engine's copy can outlive this run), and what to check before a rerun
    (a rerun would make a second safety backup, of whatever is there then)."""
    held = ("its content from before" if record.get("holds") == "safety"
            else "neither the backup's content nor exactly the safety backup's (the app may "
            "have written since)" if safety else "other content than the backup's")
    lines = [f"When it was read, the live database held {held}." if record.get("holds") else
             "It could not be asked afterwards what the live database holds."]
    if safety:
        lines.append(f"Safety backup {safety} (made by this run, before any copy) holds the "
                     "data from before.")
    lines.append("Not known: whether the restore there " + (
        "is still waiting" if record.get("holds") else "copied, or is still waiting")
                 + " for the app's write lock and copies later. Check before running again: "
                 f"`invoke backup.list{flag}` (a newer safety backup or restore of it) and "
                 "the app's data" + ("; a rerun over a copied backup buries this safety "
                                     "backup under a second one." if safety else "."))
    if backup:  # a rerun over a copy that may still land: only once it did not
        lines.append(f"If it did not copy, to finish the restore: "
                     f"`{_again(record, backup, flag)}`")
    if machine:  # either way the app must reopen the database
        lines.append(f"Then restart the app so it reopens the database: `fly machine restart "
                     f"{machine[1]} -a {machine[0]}`, and check /health")
    return lines


def _again(record: dict, backup: str, flag: str) -> str:
    """The command that runs a stopped restore again: ``--from`` the same file while its
    upload has not finished (the backup is not on the machine under its name yet)."""
    uploaded = any(s["step"] == "upload" and s.get("outcome") == "ok"
                   for s in record.get("steps", []))
    if record.get("from") and (not uploaded or record.get("upload_removed")):
        return f"invoke restore{flag} --from {shlex.quote(record['from'])} --yes"
    return f"invoke restore {backup}{flag} --yes"


def settled_failed(record: dict) -> bool:
    """A restore copied and proven whose restart or /health wait failed (exit 8, 14): the
    restore itself is done, only the app's side is left (s28 review-op2 #2)."""
    failed = [s.get("step") for s in record.get("steps", []) if s.get("outcome") == "failed"]
    proof_ok = bool((record.get("proof") or {}).get("ok"))
    proven = proof_ok and record.get("holds") in (None, "backup")
    return record.get("outcome") == "failed" and failed[-1:] in (["restart"], ["health"]) \
        and proven and not (record.get("interrupted") or record.get("machine_unsettled"))


def _done_by_hand(record: dict, backup: str | None, safety: str | None, flag: str,
                  machine: tuple[str, str] | None) -> list[str]:
    """Stopped after the copy was proven (on Fly: during the restart or the /health
    wait): the restore itself is done; what is left is the app's side."""
    lines = [f"The restore itself was done and proven: the live database holds backup "
             f"{backup}."]
    if safety and (kept := nothing_to_undo(record)):
        lines.append(f"Safety backup {safety}: {kept}; nothing to undo.")
    elif safety:
        lines += undo_lines(record, flag)
    return lines + app_side_lines(record, machine)


def app_side_lines(record: dict, machine: tuple[str, str] | None) -> list[str]:
    """What is left once the restore itself is done: the restart, or /health."""
    done = [s["step"] for s in record["steps"] if s.get("outcome") == "ok"]
    if machine and "restart" not in done:
        return [f"Restart the app so it reopens the database: `fly machine restart "
                f"{machine[1]} -a {machine[0]}`, and check /health"]
    return ["The machine was restarted: check the app's /health"] if machine else []


def refuse_remote_options(o: RestoreOptions, *, written: bool = True) -> None:
    """What a restore on a server refuses before anything (its ``ready``), and its dry run:
    --app-stopped on Fly (exit 2), a --from file that is not there (exit 3; ``written``
    False: the file is still to come, --from-replica's in a dry run)."""
    if o.production and o.app_stopped:
        raise OpsError("--app-stopped is for a local database or --host; on Fly, stop "
                       "the app with `invoke emergency.stop` (its marker says it is "
                       "stopped), then restore", ExitCode.USAGE)
    if written and o.from_path and not Path(o.from_path).is_file():
        raise OpsError(f"--from: no such file: {o.from_path}", ExitCode.NOT_FOUND)


def verified_upload(local: Path, check: str, checked: bool, scratch: Path | None = None):
    """restore --from's verify of the local file, the run's and its dry run's: one read
    (``engine.copy_for_upload``) into a private copy in ``scratch`` (the run's: what it
    uploads), or, ``scratch`` None (the dry run's), of the file in place, nothing
    written. (copy, SHA-256, verdict, detail); a file that fails is exit 5."""
    copy, digest = engine.copy_for_upload(local, scratch)
    verdict, detail = _verified_file(local, check, copy, digest, checked)
    return copy, digest, verdict, detail


def _verified_file(path: Path, check: str, copy: Path, digest: str, checked: bool = False):
    verdict = engine.verify_copy(path, copy, digest, None if checked else check)
    if not verdict.ok:
        raise OpsError(f"{path} failed verification, nothing was changed: "
                       f"{verdict.problems[0]}", ExitCode.VERIFY_FAILED)
    return asdict(verdict), f"sha256 {verdict.sha256[:12]}  {check}_check ok" + (
        " (as it was restored)" if checked else "")


def _name_for(path: Path) -> str:
    """A backup's own name, else one from the file's modification time (UTC)."""
    if engine.parse_created(path.name):
        return path.name
    when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return engine.backup_name(when)


def _manifest(path: Path) -> dict:
    """The local ``NAME.json`` to send along: its checked counts and hash, and what the
    whole record says the backup is (``engine.backup_identity``, review-break s20 #2): its
    ``source`` (so the other-database guard applies to it there), and for a restore's
    safety backup its kind and ``restore`` mark (sent back, it stays a safety backup: never
    `latest`, never removed automatically). Anything else is kind ``upload``: never
    `latest`, kept for its restore (``retention.upload_pending``)."""
    try:
        recorded = engine.read_drill_record(path)
    except EngineError:
        recorded = {}
    identity = engine.backup_identity(engine._any_manifest(path), path.parent)
    marks = engine.safety_marks(identity.get("restore") or {}) \
        if identity.get("kind") == "safety" else {"kind": "upload"}
    if identity.get("source"):
        marks["source"] = identity["source"]
    return {"size": path.stat().st_size, "check": "integrity", "strategy": "upload",
            **recorded, **marks}


def upload_left_line(name: str, directory: str, there: str, why: str, flag: str,
                     uploaded: str | None, safety: bool = False) -> str:
    """What an operator is told of restore --from's upload left there by a run whose
    restore did not begin (pure): the file, why it stays, and the command that removes
    it once its grace (``retention.UPLOAD_GRACE``) from its upload has passed. ``safety``:
    a safety backup sent back, which no cleanup removes (review-break2 #2)."""
    from ops.retention import UPLOAD_GRACE

    if safety:
        return (f"the safety backup {name} this run sent back stays in {directory} on "
                f"{there} ({why}); it is never latest and never removed automatically; "
                f"to restore it: `invoke restore {name}{flag} --yes`")
    until = ""
    # None: not known; OverflowError: an hour past a time at the calendar's end
    with contextlib.suppress(ValueError, TypeError, AttributeError, OverflowError):
        until = " from " + engine.iso(engine.parse_iso(uploaded) + dt.timedelta(
            seconds=UPLOAD_GRACE)) + " on"
    return (f"the upload {name} stays in {directory} on {there} ({why}); it is never "
            f"latest. `invoke backup.cleanup{flag}` removes it{until} (1h after its upload) "
            f"unless a restore of it begins; to restore it: `invoke restore {name}{flag} "
            "--yes`")


def _recorded_tables(path: Path) -> dict | None:
    try:
        return engine.read_drill_record(path).get("tables")
    except EngineError:
        return None


def _made(result: dict):
    return result, f"{result['name']}  sha256 {result['sha256'][:12]}  verified"


def _kept(moved: list[str], where: str) -> str:
    what = ("the corrupt database" if any(".corrupt-" in Path(p).name for p in moved)
            else "the missing database's leftover files")
    return f"Kept {what} {where}, never deleted: {', '.join(sorted(moved))}"


def _placed(done: dict):
    moved = f"; moved aside: {len(done['moved_aside'])} file(s)" if done["moved_aside"] else ""
    return done, f"{done['restore_seconds']:.3f}s into a new file{moved}"


def _timed(seconds: float):
    return seconds, f"{seconds:.3f}s through the backup API"


def _uploaded(result: dict):
    return result, f"{human_bytes(result['size'])}  sha256 {result['sha256'][:12]} matches"


def _listed(target, which: str, found: dict | None = None):
    """The backup ``which`` names on the target; ``found["listing"]``: the whole list."""
    backups_found = target.list()
    if found is not None:
        found["listing"] = backups_found
    try:  # latest: never a safety backup (issue 16 #2, #4); the one rule of every target
        chosen = engine.pick_backups(backups_found, which, target.latest,
                                     f"{target.dir} on {target.session.place}")[0]
    except EngineError as exc:
        raise OpsError.from_engine(exc) from None
    return chosen, f"{_named(which, chosen.name)}{human_bytes(chosen.size)}" + _skipped(
        backups_found, chosen, which)


def _named(which: str, name: str) -> str:
    """The chosen backup's name for its step's detail, unless the step's title already
    says it (a backup named by the operator): one name per line, not two."""
    return "" if which == name else f"{name}  "


def _skipped(backups, chosen, which: str) -> str:
    """Say so when ``latest`` passed over a newer backup with no readable record."""
    notice = engine.skipped_unrecorded(backups, chosen) if which == "latest" else None
    return f"; NOTE: {notice}" if notice else ""

