"""Safe deploys: plan (pure) → act (step by step, abort before `fly deploy`) → verify → record.

``plan`` turns options into the ordered ``runbook.Step``s with the exact flyctl argv of
each and a ``Deployment``'s methods as their actions; ``runbook.Runner`` runs them: every
step is timed, any failure before ``fly deploy`` aborts with that step's own exit code,
and every run ends with one audit-log line. ``--dry-run`` is the same runner running the
one step that only reads (preflight), then the plan with what it learnt filled in.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import textwrap
import threading
import time
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

from ops import audit, backups, data_guard, engine, fly, health, machine, replica_hooks, runbook
from ops.engine import EngineError, file_lock
from ops.errors import ExitCode, OpsError
from ops.fly import MAINTENANCE_CMD, redact_argv, tokens_in  # (lived here: fly's errors need them)
from ops.runbook import Argv, Done, Step, scrub
from ops.ui import command_lines, fit, human_seconds, lock_waiting

MACHINE = "<machine>"
VOLUME = "<volume>"
SCRIPT = "<backup script>"
RELEASE = "<previous release>"  # deploy.rollback without --to
IMAGE = "<release image>"  # the image deploy.rollback redeploys
BACKUP = "<backup>"  # the pre-deploy backup, named once the backup step made it
RELEASES_SHOWN = 25  # `fly releases` returns the newest 25: internal/command/apps/releases.go
SINGLE_VOLUME = ("bluegreen", "canary")  # start a second machine, which needs the volume


@dataclass(frozen=True)
class DeployOptions:
    app: str
    config: str
    health_url: str
    skip_backup: bool = False
    image: str | None = None
    remote_only: bool = False
    local_only: bool = False
    strategy: str | None = None
    wait_timeout: str | None = None
    extra: tuple[str, ...] = ()
    require_clean: bool = False
    rollback_to: int | None = None  # deploy.rollback: that release's image (0: the previous)
    workdir: str | None = None  # fly.config's folder when it is not the current one
    replica: object = None  # replica.* when the deploy looks at the replica (replica_hooks)


def plan(o: DeployOptions, run: Deployment | None = None) -> list[Step]:
    """The ordered steps of a deploy (or rollback), with the flyctl argv each will run, and
    ``run``'s methods as their actions (None: the plan as data). What only a run can know
    is a ``<placeholder>`` the preflight fills in (``Runner.learn``): machine, volume, and
    the release a rollback redeploys; a dry run runs the preflight and shows the rest."""
    act = (lambda name: getattr(run, name)) if run else (lambda name: None)
    ssh = {name: tuple(fly.ssh_console(o.app, MACHINE, f"<{name} script>"))
           for name in ("lock", "backup", "verify", "list", "shape", "unlock")}
    rollback = o.rollback_to is not None
    what = "rollback" if rollback else "deploy"
    # learnt by a dry run's preflight: an emergency deploy or a rollback goes on without it
    no_machine = "no usable machine" if run is not None and not run.machine_ok else ""
    before = BEFORE_DEPLOY
    steps = [
        Step("lock", f"take the deploy lock of {o.app} on this computer", act("lock"),
             abort=ExitCode.DEPLOY_ABORTED_PREFLIGHT,  # a held lock exits LOCKED anyway
             running="deploy lock on this computer", **before),
        Step("preflight", "flyctl, login, fly.toml, production machine and volume"
             + (", clean git tree" if o.require_clean else ""), act("preflight"),
             commands=preflight_reads(o.app), reads_only=True,
             abort=ExitCode.DEPLOY_ABORTED_PREFLIGHT, running="preflight", **before),
        Step("machine_lock", "take the deploy lock on the machine (shared with CI and "
             "every laptop)", act("machine_lock"), commands=() if no_machine else (ssh["lock"],),
             abort=ExitCode.DEPLOY_ABORTED_PREFLIGHT, running="deploy lock on the machine",
             skipped=no_machine, **before),
    ]
    lag, caught_up = replica_hooks.deploy_steps(
        o, act, lambda what: tuple(fly.ssh_console(o.app, MACHINE, f"<{what} script>")))
    steps[2:2] = lag  # after preflight, before the machine's lock: a stop there holds none
    if not rollback:  # a rollback never touches data
        steps += data_steps(o, act, ssh)
    release = f"v{o.rollback_to}" if o.rollback_to else RELEASE
    image = IMAGE if rollback else o.image
    deploy_argv = tuple(redact_argv(deploy_command(o, image)))
    title = f"redeploy {release}" if rollback else "fly deploy"
    if o.workdir:
        title += f" (builds {o.workdir}, fly.config's folder)"
    gate = f"poll {o.health_url} until 200" + (
        "" if o.skip_backup or rollback else " and it reports the new backup")
    steps += [
        Step("deploy", title, act("deploy"),
             commands=(deploy_argv, tuple(fly.releases(o.app))),
             abort=ExitCode.DEPLOY_FAILED, running="fly deploy",
             by_hand=(f"fly releases -a {o.app}   # is the {what}'s release out? if not:",
                      shlex.join(["fly", *deploy_argv]))),
        Step("health", gate, act("health"), abort=ExitCode.HEALTH_FAILED,
             running="health gate", by_hand=(health.by_hand(o.health_url),)),
        *caught_up,
        *closing_steps(o, act, ssh, no_machine),
    ]
    if rollback:  # a release that does not exist is the operator's input: exit 2 or 3
        steps = [replace(step, keeps=KEEPS[True]) for step in steps]
    return steps


def closing_steps(o: DeployOptions, act, ssh: dict, no_machine: str) -> list[Step]:
    """The data guard (not for a rollback: it has no pre-deploy backup), then the closing
    step. Both find the machine again after `fly deploy`, which may have replaced it; when
    the guard ran, the closing step uses what it found."""
    rollback = o.rollback_to is not None
    find_again = (tuple(fly.volumes_list(o.app)), tuple(fly.machines_list(o.app)))
    guarded = not rollback and not o.skip_backup
    return [
        *([] if rollback else [guard_step(o, act, (*find_again, ssh["shape"]))]),
        Step("record", "append to the audit log" if no_machine else "append to the audit "
             "log, find the machine again (the deploy may have replaced it) and release the "
             "machine's lock", act("close"), commands=() if no_machine else (
                 (ssh["unlock"],) if guarded else (*find_again, ssh["unlock"])),
             running="release the deploy lock on the machine", by_hand=(UNLOCK,)),
    ]


def data_steps(o: DeployOptions, act, ssh: dict) -> list[Step]:
    """The backup, the snapshot and the backup's full check before `fly deploy`, or the
    two skipped with --skip-backup."""
    before = BEFORE_DEPLOY
    if o.skip_backup:
        return [
            Step("backup", "verified backup on the machine", skipped="--skip-backup",
                 running="backup on the machine"),
            Step("snapshot", "volume snapshot", skipped="--skip-backup",
                 running="volume snapshot"),
        ]
    return [
        Step("backup", "backup on the machine, published after quick_check and its "
             "SHA-256 (then remote retention: list and delete, then list: still "
             "there, same SHA-256)", act("backup"),
             commands=(ssh["backup"], ssh["list"], ssh["list"]),
             abort=ExitCode.DEPLOY_ABORTED_BACKUP, running="backup on the machine",
             **before),
        Step("snapshot", "volume snapshot, waited for until created, while the "
             "machine runs the backup's full check", act("snapshot"),
             commands=(tuple(fly.snapshots_list(o.app, VOLUME)),
                       tuple(fly.snapshots_create(o.app, VOLUME)), ssh["verify"],
                       tuple(fly.snapshots_list(o.app, VOLUME))),
             abort=ExitCode.DEPLOY_ABORTED_SNAPSHOT, running="volume snapshot", **before),
        Step("full_check", "the backup's full check on the machine (SHA-256 and "
             "backup.check), run during the snapshot: must pass", act("full_check"),
             abort=ExitCode.DEPLOY_ABORTED_BACKUP, **before),
    ]


def guard_step(o: DeployOptions, act, commands: tuple[Argv, ...]) -> Step:
    """The data guard after /health: the live database against the pre-deploy backup."""
    return Step("data", f"data guard: find the machine again, then the live database against "
                f"backup {BACKUP} (rows per table and the schema; a table gone, or rows lost "
                "over deploy.max_row_loss, fails)", act("data"),
                commands=() if o.skip_backup else commands,
                running="data guard", skipped="--skip-backup: no backup to compare with"
                if o.skip_backup else "",
                by_hand=(f"{UNDO}   # back to {BACKUP} and the previous release (code and "
                         "data)",), not_run=(GUARD_NOT_RUN.format(backup=BACKUP),))


# a step before the guard stopped the deploy (the health or replica gate): nobody knows
# whether the migration lost rows; the undo's dry run counts them (review-op #4)
GUARD_NOT_RUN = ("invoke deploy.undo --dry-run   # the data guard did not run: this counts "
                 "the rows per table live against {backup}; rows lost: invoke deploy.undo")


def preflight_reads(app: str) -> tuple[tuple[str, ...], ...]:
    return tuple(map(tuple, (fly.version(), fly.whoami(), fly.volumes_list(app),
                             fly.machines_list(app), fly.releases(app))))


BEFORE_DEPLOY = {"rerun": True}  # stopping before `fly deploy` leaves nothing to finish
KEEPS = {False: frozenset({ExitCode.LOCKED}),  # someone else's deploy, wherever its lock was
         True: frozenset({ExitCode.LOCKED, ExitCode.NOT_FOUND, ExitCode.USAGE})}
CLOSING = "record"  # the runner's closing step once the machine lock is held (``machine_lock``)
UNLOCK = "invoke deploy.unlock --yes"  # the machine's deploy lock, by hand


def render(steps: list[Step], app: str, width: int | None) -> list[str]:
    """The plan as lines that fit ``width`` (None: a log, nothing wrapped): each step,
    what it does, the exact flyctl commands; then which values only a run can know."""
    lines = runbook.render(runbook.dry_run_title(f"Plan for {app}"), steps, width=width)
    shown = "\n".join(lines)
    later = [text if SCRIPT in shown else text.replace(BACKUP_SCRIPT_NOTE, "")
             for placeholder, text in RUN_TIME.items() if placeholder in shown]
    if later:
        note = "Resolved at run time: " + "; ".join(later) + "."
        lines += textwrap.wrap(note, width) if width else [note]
    return lines


BACKUP_SCRIPT_NOTE = "; a backup script, the backup it made"  # a plan with one only
RUN_TIME = {
    MACHINE: f"{MACHINE}, the started machine with the volume (not known now)",
    VOLUME: f"{VOLUME}, the volume named in fly.toml's [mounts] (not known now)",
    SCRIPT: f"{SCRIPT}, the engine for the machine's python3, else node, else the sqlite3 "
            "CLI, else backup.remote_command (the machine's tools are only asked when it runs)",
    " script>": "each <... script> is the sh script run on the machine (a lock script names "
                f"this run in the lock{BACKUP_SCRIPT_NOTE})",
    RELEASE: f"{RELEASE}, the newest complete release before the live one (not known now)",
    IMAGE: f"{IMAGE}, the image of the release to redeploy (not known now)",
}


def plan_as_data(steps: list[Step]) -> list[dict]:
    """The plan for ``--json``: runbook's form, with each step's exit code."""
    return [data | {"abort": int(step.abort or ExitCode.ERROR), "skipped": step.skipped,
                    "keeps": sorted(int(code) for code in step.keeps)}  # a held lock: 4
            for step, data in zip(steps, runbook.plan_as_data(steps), strict=True)]


# ------------------------------------------------------------------ what a run prints

DONE = {  # what its line says once it is done, before the step's own detail
    "lock": "locked on this computer",
    "preflight": "preflight ok",
    "machine_lock": "locked on the machine",
    "backup": "backup",
    "snapshot": "snapshot",
    "full_check": "full check",
    "deploy": "deployed",
    "health": "healthy",
}


def done_line(key: str, detail: str) -> tuple[str, str]:
    """(label, detail) of a finished step as a log line: ``snapshot vs_123 created``.

    Each step's detail already names what it made (``vs_123 created``, ``release v13``),
    so the label is a short verb or noun before it, and nothing is said twice."""
    label = DONE.get(key, key)
    if key == "machine_lock" and detail.startswith("skipped"):
        return "machine lock", detail
    if key in ("backup", "snapshot", "deploy"):  # one phrase: `backup NAME verified (...)`
        return (f"{label} {detail}" if detail else label), ""
    return label, detail


def done(key: str, detail: str) -> Done:
    """A finished step's line (``done_line``); its record keeps the detail as it is."""
    label, shown = done_line(key, detail)
    return Done(label, shown, record=detail)


def snapshot_summary(snap: dict) -> str:
    """The summary's word on the snapshot: its id once created. One requested but not
    seen created (the run was stopped or gave up waiting) goes on on Fly: say which one
    and where to look, never "none"."""
    status = snap.get("status") or "created"
    if status == "created":
        return str(snap["id"])
    seen = "not listed yet" if status == "requested" else f"last seen {status}"
    return f"{snap.get('id') or 'one'} requested, {seen}: see invoke backup.snapshots"


def summary(record: dict, deployed: bool, width: int | None) -> list[str]:
    """The end of a run in a few lines: outcome, backup, snapshot, release, the way back.

    The steps and their details are in ``--json`` and the audit log; these lines fit
    ``width`` (None: a log, one line each)."""
    kind, app = record.get("kind", "deploy"), record.get("app", "")
    seconds = sum(step.get("seconds") or 0 for step in record.get("steps", []))
    outcome = record.get("outcome", "?")
    code = record.get("exit_code") or 0
    lines = [f"{kind} of {app}: {outcome}" + (f" (exit {code})" if code else "")
             + f" in {human_seconds(seconds)}"]
    previous = record.get("previous_release") or {}
    if kind == "deploy":
        backup, snap = record.get("backup"), record.get("snapshot")
        skipped = "skipped (--skip-backup)" if record.get("skipped_backup") else "none"
        lines.append("  backup    " + (f"{backup['name']} (sha256 {str(backup['sha256'])[:12]})"
                                       if backup else skipped))
        lines.append("  snapshot  " + (snapshot_summary(snap) if snap else skipped))
    if record.get("data"):
        lines += [f"  data      {line}" if i == 0 else f"            {line}"
                  for i, line in enumerate(data_guard.record_lines(record["data"]))]
    elif kind == "deploy" and deployed and record.get("backup"):
        lines.append("  data      " + guard_not_run(record))
    release = record.get("release")
    was = f"v{previous['version']}" if previous.get("version") else "unknown"
    if release:
        status = "" if release.get("status") == "complete" else f", {release.get('status')}"
        lines.append(f"  release   v{release['version']}{status} (was {was})")
    elif deployed:
        lines.append(f"  release   unknown: check `fly releases -a {app}` (was {was})")
    else:
        lines.append("  release   nothing deployed"
                     + (f" ({was} is live)" if previous.get("version") else ""))
    lost = kind == "deploy" and (record.get("data") or {}).get("ok") is False
    if deployed and lost:  # the way back that puts the data back too comes first
        lines.append(f"  undo      {UNDO} (code and data: the backup above)")
    again = record.get("rollback_to")
    if kind == "rollback" and deployed and again and record.get("outcome") != "ok":
        # a rollback that failed goes on with itself, never back (s28 review-op2 #4)
        lines.append(f"  retry     invoke deploy.rollback --to {again}")
    redeployed = any(isinstance(step, dict) and step.get("step") == "deploy"
                     and step.get("outcome") == "ok" for step in record.get("steps") or [])
    if deployed and previous.get("version") and (kind != "rollback" or redeployed):
        label = "undo     " if kind == "rollback" else "rollback "  # back to what was live
        lines.append(f"  {label} invoke deploy.rollback --to {previous['version']}"
                     + (" (code only)" if lost else "")
                     + (f" (back to v{previous['version']}, live before this rollback)"
                        if kind == "rollback" else "")
                     + ", or by hand:")
        lines += command_lines(["fly", "deploy", "-a", app, "--image", previous["image"]],
                               width)
    return [fit(line, width) if width else line for line in lines[:1]] + lines[1:]


def guard_not_run(record: dict) -> str:
    """The summary's data line when `fly deploy` ran but a step before the guard failed."""
    failed = next((s.get("step") for s in reversed(record.get("steps") or [])
                   if isinstance(s, dict) and s.get("outcome") == "failed"), None)
    return (f"the data guard did not run: {failed or 'a step before it'} failed first; "
            "`invoke deploy.undo --dry-run` counts the rows against "
            f"{(record.get('backup') or {}).get('name')}")


class FullCheck:
    """The backup's full check on the machine, run in a thread beside the snapshot wait
    (a second flyctl process): its verdict is kept for ``Deployment.full_check``."""

    def __init__(self, what: str, run=None):
        self.what = what
        self.run = run
        self.started = time.monotonic()
        self.seconds: float | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the check in a thread (``snapshots.take`` calls this once it has asked
        for the snapshot)."""
        self.started = time.monotonic()

        def work():
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - reported by full_check
                self.error = exc
            finally:
                self.seconds = round(time.monotonic() - self.started, 1)
                self.finished.set()

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    @classmethod
    def done(cls, what: str) -> FullCheck:
        self = cls(what)
        self.seconds = 0.0
        self.finished.set()
        return self

    def failed(self) -> bool:
        return self.finished.is_set() and self.error is not None

    def sleep(self, seconds: float) -> None:
        """Wait for the next poll, or less if the check ends meanwhile (once it has
        ended, a plain wait: the polls never spin)."""
        if self.finished.is_set():
            time.sleep(seconds)
        else:
            self.finished.wait(seconds)

    def wait(self) -> None:
        """Until the check has ended; at once if it never started (the snapshot request
        failed first)."""
        while self.thread is not None and not self.finished.wait(0.2):  # Ctrl-C stays quick
            pass

    def stop(self) -> None:
        """End the check now if it still runs (a stopped or failed run): its flyctl,
        which signals never reach (they go to the main thread), is killed, then waited for."""
        while self.thread is not None and not self.finished.wait(0.1):  # the check may
            fly.stop_thread_child(self.thread.ident)  # start its next flyctl meanwhile

    def status(self) -> str:
        """Its state, its own time in words: a step line ends with the step's "(0.3s)"."""
        if not self.finished.is_set():
            return f"{self.what} running on the machine for " \
                   f"{human_seconds(time.monotonic() - self.started)} so far"
        return f"{self.what} {'failed after' if self.error else 'ok in'} " \
               f"{human_seconds(self.seconds)}"

    def result(self) -> str:
        self.wait()
        if isinstance(self.error, OpsError):  # say which check it was
            raise OpsError(f"{self.what} of the backup on the machine: {self.error}",
                           self.error.code) from None
        if self.error is not None:
            raise self.error
        if self.seconds == 0.0:
            return self.what
        return (f"{self.what} ok, SHA-256 matches, in {human_seconds(self.seconds)} beside "
                "the snapshot")


@dataclass
class Deployment:
    """A deploy's actions, run by ``runbook.Runner`` through one ``FlyTarget`` and its
    ``FlyApp`` (made in preflight). ``problems`` is a dry run's: what would stop a real
    run at preflight is collected there instead of raised, so the plan can still be shown."""

    options: DeployOptions
    settings: object
    make_target: object  # () -> ops.targets.fly.FlyTarget
    ui: object
    runner: runbook.Runner | None = None
    target: object = None  # the backups
    app: object = None  # ops.targets.fly.app.FlyApp: releases, deploy, snapshots, lock
    machine_ok: bool = True  # False: an emergency deploy or rollback going on without it
    holder: str = ""  # who this run is, in the machine's deploy lock
    deploy_started: bool = False  # `fly deploy` ran (it may have replaced the machine)
    rollback_image: str = ""
    newest_seen: int = 0  # the newest release version before this run's `fly deploy`
    check: FullCheck | None = None  # the backup's full check, run beside the snapshot
    held: contextlib.ExitStack | None = None  # the locks (and the check) this run holds
    problems: list[str] | None = None  # a dry run's: why a real run would stop
    stop_code: ExitCode | None = None  # a dry run's: the exit code its run would stop with
    stop_step: str = "preflight"  # a dry run's: the step its run would stop at
    lock_waits: list[str] = field(default_factory=list)  # a dry run's: held locks the run
    # would wait for
    found_again: bool = False  # the machine was looked up after `fly deploy` (data guard)

    def __post_init__(self):
        self.runner = runbook.Runner(
            "rollback" if self.options.rollback_to is not None else "deploy", self.ui,
            self.settings.audit_log, secrets=lambda: self.secrets, message=self._message,
            on_stop=self._stopped, audit_first=False)  # its lock step checks it (exit 10)
        self.ui.redact = lambda text: scrub(text, self.secrets)  # every line, dry run too

    @property
    def record(self) -> dict:
        return self.runner.record

    def plan(self) -> list[Step]:
        return plan(self.options, self)

    def run(self) -> dict:
        """Run the plan; the machine's lock is released by the runner's closing step (after
        finding the machine again), then the audit line is appended, then this computer's
        lock is released."""
        o = self.options
        self.runner.start(
            app=o.app, skipped_backup=o.skip_backup, backup=None, snapshot=None,
            release=None, previous_release=None,
            fly_deploy=redact_argv(deploy_command(o, o.image if o.rollback_to is None
                                                  else IMAGE)))
        if o.skip_backup:
            self.ui.warn("--skip-backup: deploying WITHOUT a backup or a volume snapshot. "
                         "This is recorded in the audit log.")
        with contextlib.ExitStack() as self.held:
            return self.runner.run([s for s in self.plan() if s.key != CLOSING])

    def dry_run(self) -> list[Step]:
        """The same preflight a run makes (its reads only: the local lock guards nothing
        they depend on), then the plan with what it learnt filled in."""
        self.problems = []
        self.runner.start(app=self.options.app)
        at = "preflight"  # the step the run would stop at (review-op s21 #6)
        try:  # the run's lock step refuses an unwritable audit log first (exit 10)
            self._check_audit_log(create=False)
            at = "lock"
            self._would_wait(self._local_lock_wait)  # then meets this computer's lock
        except OpsError as exc:
            self._problem(exc, at)
        self.runner.run([s for s in self.plan() if s.reads_only], dry_run=True)
        o = self.options
        if self.machine_ok and self.app is not None and not self.problems:
            try:  # and, after its preflight, the machine's; then its backup's lock there
                at = "machine_lock"
                self._would_wait(lambda: self.app.deploy_lock_wait(
                    self.settings.deploy_lock_wait))
                if not o.skip_backup and o.rollback_to is None:
                    at = "backup"
                    self._would_wait(lambda: self.target.lock_waits(restore=False, live=True))
            except OpsError as exc:
                self._problem(exc, at)
        return [s.filled(self.runner.values) for s in self.plan()]  # with what it learnt

    def _would_wait(self, look) -> None:
        """A dry run at the run's locks (``look()``: None, a line or lines saying what the
        run would wait for; it raises the run's refusal when it would not wait)."""
        found = look()
        for line in [found] if isinstance(found, str) else found or ():
            self.ui.warn(line)
            self.lock_waits.append(line)

    def _local_lock_wait(self) -> str | None:
        return local_lock_wait(self.settings, self.options.app)

    @property
    def lock_path(self) -> Path:
        return local_lock_path(self.settings, self.options.app)

    @property
    def secrets(self) -> list[str]:
        """Tokens (after --, or in the environment), kept out of every line we write."""
        return tokens_in(self.options.extra) + fly.env_tokens()

    def _stopped(self, exc: BaseException, step: Step | None) -> None:
        """A signal or Ctrl-C: say whether the release may already be out (once `fly
        deploy` has started, even if the stop came between two steps)."""
        self.record["fly_deploy_started"] = self.deploy_started
        if self.deploy_started or (step is not None and step.key == CLOSING):
            self.record["error"] = self.stopped_error()

    def stopped_error(self) -> str:
        """What a stop after `fly deploy` had started leaves: the release, or the lock."""
        release = self.record.get("release") or {}
        steps = self.record.get("steps") or []
        if steps and steps[-1].get("step") == CLOSING and steps[-1].get("outcome") != "ok":
            out = (f"release v{release['version']} is {release.get('status')}"
                   if release else "nothing was deployed")
            return (f"stopped while releasing the machine's deploy lock ({out}): the lock "
                    f"may still be held; run: {UNLOCK}")
        return ("stopped after `fly deploy` had started: the release may be out; check "
                "`fly releases`")

    def _message(self, step: Step, text: str) -> str:
        if self.problems is not None:  # a dry run: only a rollback's bad release stops it
            return text
        what = "rollback" if self.options.rollback_to is not None else "deploy"
        if step.abort in (ExitCode.DEPLOY_ABORTED_PREFLIGHT, ExitCode.DEPLOY_ABORTED_BACKUP,
                          ExitCode.DEPLOY_ABORTED_SNAPSHOT, ExitCode.LOCKED):
            return f"{what} aborted before `fly deploy` ({step.key} failed): {text}"
        return f"{step.key} failed: {text}"

    def _problem(self, exc: OpsError, at: str = "preflight") -> None:
        """Stop a run at preflight; a dry run notes why (and the step ``at`` which its run
        would stop) and looks further."""
        if self.problems is None:
            raise exc
        self.problems.append(str(exc))
        if self.stop_code is None:  # the run stops at the first, with the code its step
            self.stop_step = at  # maps it to (a rollback's bad input: 2 or 3; a lock: 4)
            self.stop_code = runbook.Runner.exit_code_of(
                next(s for s in self.plan() if s.key == at), exc)

    # -- steps: each returns what its line says once done (``done_line``)
    def lock(self) -> Done:
        path = self.lock_path
        self._check_audit_log()  # before anything can happen unrecorded
        wait = self.settings.deploy_lock_wait
        self.held.enter_context(file_lock(
            path, wait, f"another deploy of {self.options.app}",
            on_wait=lambda holder: self.ui.info(  # the one wording (review-op s21 #12)
                lock_waiting("deploy", path, wait, holder))))
        return done("lock", str(path))

    def _check_audit_log(self, create: bool = True) -> None:
        """The audit log's folder and the log (never through a symlink); ``create`` False:
        a dry run's, the same verdict with nothing created."""
        try:
            if create:
                self.settings.audit_log.parent.mkdir(parents=True, exist_ok=True)
            audit.check_writable(self.settings.audit_log, create=create)
        except OSError as exc:
            raise OpsError(f"cannot write the audit log {self.settings.audit_log} "
                           f"(deploy.audit_log): {exc.strerror}", ExitCode.USAGE) from None

    def preflight(self) -> Done:
        """flyctl, login, fly.toml, what to build, the machine, the releases. In a dry run
        a problem is noted and the reads go on while they can still tell something."""
        o = self.options
        try:
            self.target = self.make_target()
            self.app = self.target.fly_app
            self.target.check_flyctl()
            self.app.whoami()
        except OpsError as exc:  # without flyctl, or logged out, nothing more to read
            self._problem(exc)
            return self._would_stop()
        self.settings.fly_toml()
        if o.rollback_to is None:  # a rollback deploys a release's image
            try:
                fly.build_source(o.config, o.workdir or Path.cwd(), o.image, o.extra)
            except OpsError as exc:
                self._problem(exc)
        where = self._production_machine()
        try:
            releases = self.app.releases()
        except OpsError as exc:
            self._problem(exc)
            return self._would_stop()
        current = self._note_previous(releases)
        if o.rollback_to is None:  # a rollback makes no backup to lack the rows
            self._data_failed_before()
        if o.rollback_to is not None:
            # what this rollback leaves: the newest release (live, whatever its status)
            self.record["rolled_back_from"] = max((r.version for r in releases), default=None)
            version = o.rollback_to or previous_version(
                releases, rolled_back_from(audit.read(self.settings.audit_log), o.app))
            self.rollback_image = _release_image(releases, version)
            self.record["rollback_to"] = version
            newest = max(releases, key=lambda r: r.version)
            if o.rollback_to and self.rollback_image == newest.image_ref:  # s28 review-op #6
                self.ui.warn(f"v{version}'s image is the one v{newest.version} runs now: this "
                             "rollback redeploys what is live and goes back nowhere; to go "
                             f"back, name an earlier release (`fly releases -a {o.app} --image`)")
            self.runner.learn(**{RELEASE[1:-1]: f"v{version}", IMAGE[1:-1]: self.rollback_image})
        if o.require_clean:
            try:
                _require_clean_tree()
            except OpsError as exc:
                self._problem(exc)
        if self.problems:
            return self._would_stop()
        # most important first: a narrow terminal drops parts from the end
        return done("preflight", "  ".join(filter(None, (
            f"release v{current.version} is live" if current else "", where))))

    def _data_failed_before(self) -> None:
        """A warning (and the audit line's ``data_failed_before``) when the last deploy
        in the audit log failed its data guard and was not undone."""
        from ops import undo  # ops.undo builds on this module

        found = undo.data_failed_not_undone(audit.read(self.settings.audit_log),
                                            self.options.app)
        if found:
            self.record["data_failed_before"] = found
            self.ui.warn(f"the last deploy, {found['deploy']} at {found['when'][:19]}Z, failed "
                         "its data guard (exit 16) and was not undone: this deploy's backup "
                         "would not have the lost rows; to put them back first: invoke "
                         "deploy.undo")

    def _would_stop(self) -> Done:
        return Done("preflight would stop", "; ".join(self.problems or ()), warning=True)

    def _production_machine(self) -> str:
        """Resolve the machine; an emergency deploy or a rollback can go on without it
        (a crashed app is exactly when they are needed)."""
        try:
            volume, machine = self.target.resolve()
        except OpsError as exc:
            if not (self.options.skip_backup or self.options.rollback_to is not None):
                self._problem(exc)
                return ""
            self.ui.warn(f"the production machine is not usable ({exc}); going on without "
                         "the machine's deploy lock")
            self.machine_ok = False
            return "no usable machine"
        self.machine_ok = True
        self.runner.learn(machine=machine.id, volume=volume.id)
        try:
            refuse_emergency_stopped(machine)
        except OpsError as exc:
            self._problem(exc)
        return f"machine {machine.id}, volume {volume.id}"

    def _note_previous(self, releases: list[fly.Release]) -> fly.Release | None:
        current = next((r for r in releases if r.status == "complete"), None)
        self.newest_seen = max([r.version for r in releases] + [self.newest_seen])
        if current:
            self.record["previous_release"] = {"version": current.version,
                                               "image": current.image_ref}
        return current

    def machine_lock(self) -> Done:
        if not self.machine_ok:
            return done("machine_lock", "skipped: no usable machine")
        self.holder = (f"{audit.who()} {self.record['kind']} since "
                       f"{self.record['when'][:19]}Z (run {os.urandom(4).hex()})")
        wait = self.settings.deploy_lock_wait
        waited = self.app.lock_deploy(wait, self.holder, on_wait=lambda who: self.ui.waiting(
            f"  waiting up to {wait:g}s for the deploy lock on the machine "
            f"({self.app.deploy_lock_path}), held by {who}"))
        # released by the runner before the audit line, however the run ends (a real step:
        # a signal or a failed release there is in the record and the by-hand lines)
        self.runner.closing = next(s for s in self.plan() if s.key == CLOSING)
        if waited:  # another deploy finished meanwhile: what is live now?
            self._note_previous(self.app.releases())
        self._machine_check()
        return done("machine_lock", self.app.deploy_lock_path
                    + (" (after waiting)" if waited else ""))

    def _machine_check(self) -> None:
        """machine.check, from the lock's own call: a machine where a restore cannot run is
        a warning before the deploy (and in its record), never a reason to stop it. Not
        when the backup this deploy takes next meets the same reason and there is no
        Dockerfile line to add: the backup's step says it."""
        facts = getattr(self.target.session, "machine_facts", None)
        if not facts:
            return
        decided = machine.plan(facts, remote_command=bool(self.settings.remote_command))
        self.record["machine_check"] = decided
        cannot, o = decided["cannot"], self.options
        backs_up = not o.skip_backup and o.rollback_to is None
        said_next = backs_up and cannot.get("backup") == cannot.get("restore") and \
            not decided["fixes"]
        if "restore" in cannot and not said_next:
            fix = f"; fix: {decided['fixes'][0]}" if decided["fixes"] else ""
            self.ui.warn(f"a restore cannot run on the production machine: "
                         f"{decided['cannot']['restore']}{fix} (invoke machine.check --production)")

    def close(self) -> Done:
        """The closing step: stop the full check if it still runs (a stopped run must not
        wait for its flyctl), then release this run's lock on the machine (only this
        run's). After `fly deploy` the machine is looked up again: the deploy may have
        replaced it, or left it stopped. A failed release is ✗ and recorded, never ✓; the
        run's exit code stays (the release, if any, is out)."""
        if self.check is not None:
            self.check.stop()
        try:
            if self.deploy_started and not self.found_again:
                self.target.resolve(again=True)
            self.app.unlock_deploy(holder=self.holder)
        except OpsError as exc:
            if exc.code == ExitCode.LOCKED:  # an operator forced it and another run took it
                self.ui.warn(f"did not release the deploy lock on the machine: {exc}")
                return Done("left the machine's deploy lock to its holder", str(exc),
                            warning=True)
            self.ui.warn(f"could not release this deploy's lock on the machine ({exc}); "
                         f"once the machine is running, run: {UNLOCK}")
            self.record["machine_lock_held"] = self.app.deploy_lock_path
            self.record.setdefault("manual", []).append(f"  {UNLOCK}   # {CLOSING}")
            return Done("did NOT release the machine's deploy lock",
                        f"{exc}; once the machine is running: {UNLOCK}", failed=True)
        return Done("released the machine's deploy lock")

    def backup(self) -> Done:
        """Publish the backup after SQLite's quick_check and its SHA-256: the full check
        runs beside the snapshot (``snapshot``), and ``full_check`` requires it."""
        result = backups.make_backup(self.target, self.ui, check="quick")
        self.record["backup"] = {k: result.get(k) for k in
                                 ("name", "sha256", "size", "strategy", "path")}
        self.runner.learn(backup=result["name"])
        backups.cleanup(self.target, self.ui, self.settings.keep, made=result["name"])
        require_still_there(self.target.list(), result["name"], result["sha256"],
                            self.target.dir)
        if result.get("strategy") == "remote_command":  # downloaded and checked in full here
            self.check = FullCheck.done(f"{self.settings.check}_check ok when downloaded")
            return done("backup", f"{result['name']} verified (sha256 {result['sha256'][:12]})")
        return done("backup", f"{result['name']} published ({result['check']}_check ok, sha256 "
                f"{result['sha256'][:12]}); {self.settings.check}_check next, beside the "
                "snapshot")

    def snapshot(self) -> Done:
        """Request the snapshot, start the backup's full check on the machine, and wait
        for the snapshot: the time before `fly deploy` is the longer of the two, not
        their sum. A failed check stops the wait (the snapshot is left to finish)."""
        target, settings = self.target, self.settings
        beside = None
        if self.check is None:
            name = self.record["backup"]["name"]
            self.check = beside = FullCheck(
                f"{settings.check}_check", lambda: backups.require_ok(target.verify(name)))
            self.held.callback(self.check.stop)  # never leave it running unobserved
        snap = self.app.snapshot(wait=True, timeout=settings.snapshot_timeout,
                                 interval=settings.health_interval, beside=beside,
                                 on_snapshot=self._snapshot_seen)
        self.record["snapshot"] = {k: snap.get(k) for k in ("id", "volume", "size")} | (
            {"status": snap["status"]} if snap.get("status") != "created" else {})
        if snap.get("status") != "created":
            return done("snapshot", f"{snap['id'] or 'requested'} {snap['status']}, left "
                        "to finish: not "
                    "waited for, the backup failed its check")
        return done("snapshot", f"{snap['id']} created; {self.check.status()}")

    def _snapshot_seen(self, seen: dict) -> None:
        """The snapshot as soon as it is requested, and its id and status as Fly lists
        them: a run stopped (or timed out) in the wait still records which one it asked
        for, which keeps running on Fly."""
        self.record["snapshot"] = {k: seen.get(k) for k in ("id", "volume", "size", "status")}

    def full_check(self) -> Done:
        return done("full_check", self.check.result())

    def deploy(self) -> Done:
        o = self.options
        image = self.rollback_image if o.rollback_to is not None else o.image
        self.record["fly_deploy"] = redact_argv(deploy_command(o, image))
        self.deploy_started = True
        try:
            self.app.deploy(deploy_command(o, image), stream=lambda line: self.ui.info(
                "  " + scrub(line, self.secrets)))
        finally:
            self._note_release()  # a failed rolling deploy still leaves a (failed) release
        release = self.record.get("release")
        return done("deploy", f"release v{release['version']}" if release else "")

    def _note_release(self) -> None:
        """The release this run made, if any (a refused build makes none)."""
        try:
            newest = self.app.releases()[0]
        except (OpsError, IndexError):
            return
        if newest.version <= self.newest_seen:
            return
        self.record["release"] = {"version": newest.version, "image": newest.image_ref,
                                  "status": newest.status}

    def health(self) -> Done:
        expected = (self.record.get("backup") or {}).get("name")
        result = health.wait_healthy(
            self.options.health_url, expected_backup=expected,
            timeout=self.settings.health_timeout, interval=self.settings.health_interval,
            on_reason=lambda reason: self.ui.waiting(f"  health: not yet: {reason}"))
        ahead = health.future_dated(result.get("backup")) if expected else None
        if ahead:
            self.ui.warn(f"/health reports {ahead!r}, dated in the future, as its latest backup: "
                         f"it hides this deploy's {expected}; check the machine's clock and "
                         "`invoke backup.list --production`")
        latest = ((result.get("backup") or {}).get("latest") or {}) if expected else {}
        name = latest.get("name") if isinstance(latest, dict) else None
        reports = f", reports {name if isinstance(name, str) else expected}" if expected else ""
        return done("health", f"200 after {result['polls']} poll(s){reports}")

    def replica(self) -> Done:
        """The machine's replica lag (replica_hooks): a warning, or a stop before anything
        changes (replica.deploy_gate = fail; a dry run notes it)."""
        if not self.machine_ok or self.target is None or self.problems:
            return Done("replica lag not read", "preflight would stop" if self.problems
                        else "no usable machine", warning=bool(self.problems))
        try:
            level, text = replica_hooks.preflight(self.target.session, self.options.replica,
                                                  self.settings.db_remote_path, self.ui)
        except OpsError as exc:
            self._problem(exc)
            return self._would_stop()
        self.record["replica"] = {"lag": level, "detail": text}
        return Done("replica lag", text, warning=level != "ok")

    def replica_current(self) -> Done:
        self.target.resolve(again=True)  # the deploy may have replaced the machine
        said = replica_hooks.wait_current(
            self.target.session, self.options.replica, self.settings.db_remote_path,
            timeout=self.settings.health_timeout, interval=self.settings.health_interval,
            on_reason=lambda reason: self.ui.waiting(f"  replica: not yet: {reason}"))
        return Done("new machine's replica current", said)


    def data(self) -> Done:
        """The data guard: the live database (on the machine the deploy left, found again)
        against the backup made before `fly deploy`, judged by ``data_guard.compare``."""
        backup = self.record["backup"]["name"]
        try:
            self.target.resolve(again=True)
            self.found_again = True
            shape = self.target.shape(backup)
        except OpsError as exc:  # unknown is not ok: the gate did not pass (exit 14) ...
            self.record["data"] = {"against": backup, "ok": None, "error": str(exc)}
            if getattr(exc, "no_engine", False):  # ... unless preflight already said so
                self.ui.warn(f"the data guard cannot run on this machine: {exc}")
                return Done("data guard", f"NOT compared: {exc}", warning=True)
            raise OpsError(f"the data guard could not compare the live database with "
                           f"{backup}: {exc}", ExitCode.HEALTH_FAILED) from None
        comparison = data_guard.compare(
            backup, shape["backup"], shape["live"], schema_before=shape["backup_schema"],
            schema_after=shape["live_schema"], limit=self.settings.max_row_loss,
            allow=self.settings.allow_data_loss, source=shape["source"])
        self.record["data"] = comparison.as_record()
        for table in data_guard.unseen_allowed(comparison, self.settings.allow_data_loss):
            self.ui.warn(f"--allow-data-loss {table}: no table {table} in {backup} nor in the "
                         "live database (a typo?): it excused nothing")
        if not comparison.ok:
            raise OpsError(data_guard.failure(comparison, UNDO.format(backup=backup)),
                           ExitCode.DATA_LOST)
        return Done("data", data_guard.headline(comparison))


UNDO = "invoke deploy.undo"  # puts the pre-deploy data ({backup}) and the previous code back


def local_lock_path(settings, app: str) -> Path:
    """This computer's deploy lock (deploy, rollback and deploy.undo take it)."""
    return settings.audit_log.parent / f".deploy-{app}.lock"


def local_lock_wait(settings, app: str) -> str | None:
    """This computer's deploy lock, looked at without taking it (``engine.lock_holder``):
    None when free; the run's refusal (exit 4) when it would not wait; else how long."""
    path = local_lock_path(settings, app)
    try:
        return engine.lock_verdict(path, engine.lock_holder(path), settings.deploy_lock_wait,
                                   f"another deploy of {app}")
    except EngineError as exc:
        raise OpsError.from_engine(exc) from None


def deploy_command(o: DeployOptions, image: str | None) -> list[str]:
    """`fly deploy`; with fly.config elsewhere, its folder is the working directory
    (flyctl chdirs there first, so -c is made absolute: internal/command/command.go)."""
    config = str(Path(o.config).resolve()) if o.workdir else o.config
    argv = fly.deploy(o.app, config, image=image, remote_only=o.remote_only,
                      local_only=o.local_only, strategy=o.strategy,
                      wait_timeout=o.wait_timeout)
    return argv + ([o.workdir] if o.workdir else []) + list(o.extra)


def working_dir(config: str | Path, cwd: Path | None = None) -> str | None:
    """fly.config's folder when it is not the current folder (flyctl builds the folder
    it runs in, so we pass this one as `fly deploy [WORKING_DIRECTORY]`)."""
    folder = Path(config).resolve().parent
    return None if folder == (cwd or Path.cwd()).resolve() else str(folder)


def refuse_emergency_stopped(machine) -> None:
    """A deploy would replace the maintenance command and start the app writing again
    in the middle of a restore: only `emergency.resume` ends an emergency stop."""
    if tuple(machine.cmd) == MAINTENANCE_CMD:
        raise OpsError(f"machine {machine.id} is emergency-stopped (it runs "
                       f"`{shlex.join(MAINTENANCE_CMD)}`, not the app): run `invoke "
                       "emergency.resume` first", ExitCode.DEPLOY_ABORTED_PREFLIGHT)


def _release_image(releases: list[fly.Release], version: int) -> str:
    for release in releases:
        if release.version == version:
            if not release.image_ref:
                raise OpsError(f"release v{version} has no image to redeploy", ExitCode.USAGE)
            return release.image_ref
    known = ", ".join(f"v{r.version}" for r in releases[:10]) or "none"
    versions = [r.version for r in releases]
    if len(releases) >= RELEASES_SHOWN and version < min(versions):
        raise OpsError(
            f"release v{version} is older than the last {RELEASES_SHOWN} releases flyctl "
            f"returns (v{min(versions)} to v{max(versions)}): redeploy its image by name "
            "with `invoke deploy --image IMAGE` (the audit log records each release's image)",
            ExitCode.NOT_FOUND)
    raise OpsError(f"no release v{version} (recent: {known})", ExitCode.NOT_FOUND)


def require_still_there(listing, name: str, sha256: str, where: str) -> None:
    """The deploy's own backup must have survived retention, with the checksum it had."""
    found = next((item for item in listing if item.name == name), None)
    if found is None:
        raise OpsError(f"the new backup {name} is no longer in {where} after retention; "
                       "nothing deployed", ExitCode.DEPLOY_ABORTED_BACKUP)
    if found.sha256 != sha256:
        raise OpsError(f"the new backup {name} in {where} no longer has its recorded SHA-256 "
                       f"({str(found.sha256)[:12]}… instead of {sha256[:12]}…); nothing "
                       "deployed", ExitCode.DEPLOY_ABORTED_BACKUP)


# ------------------------------------------------------------------ secrets in argv


# ------------------------------------------------------------------ flags fly deploy gets


def flag_values(argv, name: str) -> list[str]:
    """Every value pflag would see for ``--name`` in argv (``--name x``, ``--name=x``),
    up to a ``--`` that ends flag parsing."""
    values, words = [], list(argv)
    for index, word in enumerate(words):
        if word == "--":
            break
        if word == f"--{name}" and index + 1 < len(words):
            values.append(words[index + 1])
        elif word.startswith(f"--{name}="):
            values.append(word.split("=", 1)[1])
    return values


GO_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
              "m": 60 * 10**9, "h": 3600 * 10**9}
GO_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
MAX_NS = 2**63 - 1


def go_wait_seconds(text: str) -> float | None:
    """``--wait-timeout`` as flyctl reads it (deploy.go parseDurationFlag): ``none`` is 0,
    else Go's time.ParseDuration, else whole seconds (strconv.Atoi); None if invalid."""
    if text == "none":
        return 0.0
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    if body == "0":
        return 0.0
    if re.fullmatch(r"[+-]?[0-9]+", text):  # "missing unit": flyctl's Atoi fallback
        seconds = int(text)
        return float(seconds) if abs(seconds) * 10**9 <= MAX_NS else None
    parts = GO_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        return None
    total = sum(float(number) * GO_UNIT_NS[unit] for number, unit in parts)
    return sign * total / 10**9 if total <= MAX_NS else None


def check_flags(strategy, wait_timeout, extra) -> None:
    """Refuse what would fail `fly deploy` for sure, given as our flags or after ``--``."""
    for value in ([strategy] if strategy is not None else []) + flag_values(extra, "strategy"):
        if value == "canary":
            raise OpsError("--strategy canary is refused by flyctl for apps with volumes",
                           ExitCode.USAGE)
        if value not in STRATEGIES:
            raise OpsError(f"--strategy must be one of {', '.join(STRATEGIES)}, "
                           f"got {value!r}", ExitCode.USAGE)
    waits = ([wait_timeout] if wait_timeout is not None else [])
    for value in waits + flag_values(extra, "wait-timeout"):
        seconds = go_wait_seconds(str(value))
        if seconds is None:
            raise OpsError(f"--wait-timeout must be a duration like 5m, 90s or 300, got "
                           f"{value!r}", ExitCode.USAGE)
        if seconds < 1:
            raise OpsError(f"--wait-timeout {value} leaves flyctl no time to wait for health "
                           "checks (none and 0 mean no wait): every machine would fail; give "
                           "at least 1s, e.g. 5m", ExitCode.USAGE)


STRATEGIES = ("rolling", "bluegreen", "immediate")


def check_strategy_with_volume(strategy, extra, fly_toml_path: Path, has_mounts: bool) -> None:
    """bluegreen and canary start a second machine beside the one holding the volume;
    a volume attaches to one machine only, so with [mounts] they always fail."""
    if not has_mounts:
        return
    given = ([strategy] if strategy else []) + flag_values(extra, "strategy")
    chosen = given[-1] if given else _toml_strategy(fly_toml_path)
    if chosen in SINGLE_VOLUME:
        where = "--strategy" if given else f"{fly_toml_path}'s [deploy] strategy"
        raise OpsError(f"{where} {chosen} cannot deploy this app: fly.toml has [mounts], and "
                       f"{chosen} needs a second machine with the volume, which stays "
                       "attached to the running one; use rolling or immediate",
                       ExitCode.USAGE)


def _toml_strategy(path: Path) -> str:
    try:
        section = tomllib.loads(Path(path).read_text()).get("deploy")
    except (OSError, ValueError):
        return ""  # read_fly_toml already said what is wrong with it
    value = section.get("strategy") if isinstance(section, dict) else None
    return value if isinstance(value, str) else ""


def previous_version(releases: list[fly.Release], avoid: Collection[int] = ()) -> int:
    """The newest complete release older than the newest one, whatever that one's status,
    and not one an earlier rollback left (``avoid``, from ``rolled_back_from``).

    After a failed rolling deploy its image is live although the release says failed,
    so "previous" is measured from the newest release, not the newest complete one.
    After a rollback the release before the newest is the bad one it rolled back from:
    a second rollback must go further back, never redeploy it (issue 16 #16).
    """
    if not releases:
        raise OpsError("the app has no releases", ExitCode.NOT_FOUND)
    newest = max(releases, key=lambda r: r.version)
    older = [r for r in releases
             if r.version < newest.version and r.status == "complete" and r.image_ref
             and r.version not in avoid]
    if not older:
        skipped = sorted(set(avoid) & {r.version for r in releases}, reverse=True)
        why = (f" (not rolling back to v{', v'.join(map(str, skipped))}: rolled back from "
               "before; name one with --to)") if skipped else ""
        raise OpsError(f"no earlier complete release to roll back to{why}", ExitCode.NOT_FOUND)
    chosen = max(older, key=lambda r: r.version)
    if newest.image_ref and chosen.image_ref == newest.image_ref:  # review-op #12
        raise OpsError(f"the app already runs v{chosen.version}'s image (release "
                       f"v{newest.version} deployed it): rolling back to it again would change "
                       f"nothing; to go further back name a release: `invoke deploy.rollback "
                       f"--to N` (see `fly releases -a APP --image`)", ExitCode.USAGE)
    return chosen.version


def rolled_back_from(records: list[dict], app: str) -> set[int]:
    """Releases of ``app`` that a rollback in the audit log moved away from (pure).

    A rollback counts once its `fly deploy` ran. Lines written before
    ``rolled_back_from`` was recorded name the release that was live as
    ``previous_release``."""
    found = set()
    for record in records:
        if not isinstance(record, dict) or record.get("kind") != "rollback" \
                or record.get("app") != app:
            continue
        steps = record.get("steps") if isinstance(record.get("steps"), list) else []
        if not any(isinstance(s, dict) and s.get("step") == "deploy"
                   and s.get("outcome") not in (None, "skipped") for s in steps):
            continue
        version = record.get("rolled_back_from")
        if version is None:
            version = (record.get("previous_release") or {}).get("version") \
                if isinstance(record.get("previous_release"), dict) else None
        if type(version) is int:
            found.add(version)
    return found


def _require_clean_tree() -> None:
    try:
        out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise OpsError(f"--require-clean: cannot read git status ({exc})") from None
    if out.strip():
        count = len(out.strip().splitlines())
        raise OpsError(f"--require-clean: the git tree has {count} uncommitted change(s)")
