"""Safe deploys: plan (pure) → act (step by step, abort before `fly deploy`) → verify → record.

``plan`` turns options into the ordered steps with the exact flyctl argv of each,
so ``--dry-run`` can print it and tests can check it as data. ``Deployment``
runs a plan: every step is timed, any failure before ``fly deploy`` aborts with
that step's own exit code, and every run ends with one audit-log line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field

from ops import audit, backups, fly, health
from ops.engine import EngineError, file_lock
from ops.errors import ExitCode, OpsError

MACHINE = "<machine>"
VOLUME = "<volume>"
SCRIPT = "<backup script>"


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


@dataclass(frozen=True)
class PlanStep:
    key: str
    title: str
    commands: tuple[tuple[str, ...], ...] = ()
    abort: ExitCode = ExitCode.ERROR
    skipped: str = ""


def plan(o: DeployOptions) -> list[PlanStep]:
    """The ordered steps of a deploy (or rollback), with the flyctl argv each will run."""
    preflight = [fly.version(), fly.whoami(), fly.volumes_list(o.app),
                 fly.machines_list(o.app), fly.releases(o.app)]
    ssh = tuple(fly.ssh_console(o.app, MACHINE, SCRIPT))
    steps = [
        PlanStep("lock", f"take the deploy lock of {o.app} on this computer", (),
                 ExitCode.DEPLOY_ABORTED_PREFLIGHT),  # a held lock exits LOCKED anyway
        PlanStep("preflight", "flyctl, login, fly.toml, production machine and volume"
                 + (", clean git tree" if o.require_clean else ""),
                 tuple(map(tuple, preflight)), ExitCode.DEPLOY_ABORTED_PREFLIGHT),
        PlanStep("machine_lock", "take the deploy lock on the machine (shared with CI and "
                 "every laptop)", (ssh,), ExitCode.DEPLOY_ABORTED_PREFLIGHT),
    ]
    if o.rollback_to is not None:
        pass  # a rollback never touches data
    elif o.skip_backup:
        steps += [
            PlanStep("backup", "verified backup on the machine", skipped="--skip-backup"),
            PlanStep("snapshot", "volume snapshot", skipped="--skip-backup"),
        ]
    else:
        steps += [
            PlanStep("backup", "verified backup on the machine (backup, verify, then remote "
                     "retention: list and delete)", (ssh, ssh, ssh),
                     ExitCode.DEPLOY_ABORTED_BACKUP),
            PlanStep("snapshot", "volume snapshot, waited for until created",
                     (tuple(fly.snapshots_list(o.app, VOLUME)),
                      tuple(fly.snapshots_create(o.app, VOLUME)),
                      tuple(fly.snapshots_list(o.app, VOLUME))),
                     ExitCode.DEPLOY_ABORTED_SNAPSHOT),
        ]
    release = f"v{o.rollback_to}" if o.rollback_to else "the previous release"
    image = o.image if o.rollback_to is None else f"<image of {release}>"
    deploy_argv = deploy_command(o, image)
    title = "fly deploy" if o.rollback_to is None else f"redeploy {release}"
    steps += [
        PlanStep("deploy", title, (tuple(deploy_argv),), ExitCode.DEPLOY_FAILED),
        PlanStep("health", f"poll {o.health_url} until 200"
                 + ("" if o.skip_backup or o.rollback_to is not None
                    else " and it reports the new backup"), (), ExitCode.HEALTH_FAILED),
        PlanStep("record", "append to the audit log, find the machine again (the deploy may "
                 "have replaced it) and release the machine's lock",
                 (tuple(fly.volumes_list(o.app)), tuple(fly.machines_list(o.app)), ssh)),
    ]
    return steps


def render(steps: list[PlanStep], binary: str = "fly") -> list[list[str]]:
    """Rows for the plan table: step, what, the commands."""
    rows = []
    for step in steps:
        commands = "\n".join(shlex.join([binary, *argv]) for argv in step.commands)
        what = step.title + (f" (skipped: {step.skipped})" if step.skipped else "")
        rows.append([step.key, what, commands or "-"])
    return rows


@dataclass
class Deployment:
    """Runs a plan against production through one ``FlyTarget``, made in preflight."""

    options: DeployOptions
    settings: object
    make_target: object  # () -> ops.production.FlyTarget
    ui: object
    record: dict = field(default_factory=dict)
    target: object = None
    machine_ok: bool = True  # False: an emergency deploy or rollback going on without it
    holder: str = ""  # who this run is, in the machine's deploy lock
    deploy_started: bool = False  # `fly deploy` ran (it may have replaced the machine)
    rollback_image: str = ""

    def run(self, steps: list[PlanStep]) -> dict:
        o = self.options
        self.record = {
            "kind": "rollback" if o.rollback_to is not None else "deploy",
            "who": audit.who(), "when": _now(), "app": o.app, "skipped_backup": o.skip_backup,
            "backup": None, "snapshot": None, "release": None, "previous_release": None,
            "steps": [], "outcome": "running", "exit_code": 0,
        }
        if o.skip_backup:
            self.ui.warn("--skip-backup: deploying WITHOUT a backup or a volume snapshot. "
                         "This is recorded in the audit log.")
        with contextlib.ExitStack() as held:
            try:
                for step in steps:
                    self._run_step(step, held)
                self.record.update(outcome="ok")
                self._hint()
                return self.record
            except KeyboardInterrupt:
                self.record.update(outcome="interrupted", exit_code=int(ExitCode.INTERRUPTED))
                raise
            finally:
                self.record["finished"] = _now()
                self.record["seconds"] = round(sum(s["seconds"] for s in self.record["steps"]), 3)
                try:
                    audit.append(self.settings.audit_log, self.record)
                except OSError as exc:  # never hide why the run itself ended
                    self.ui.warn(f"could not append to {self.settings.audit_log}: {exc.strerror}")

    def _run_step(self, step: PlanStep, held: contextlib.ExitStack) -> None:
        if step.skipped:
            self.ui.skipped(step.key, step.skipped)
            self._log(step.key, "skipped", 0.0, step.skipped)
            return
        if step.key == "record":
            return  # written by ``run`` whatever happens
        shown = None
        try:
            with self.ui.step(step.title) as shown:
                shown.detail = getattr(self, step.key)(held) or ""
        except (OpsError, EngineError) as exc:
            code = self._exit_code(step, exc)
            self._log(step.key, "failed", shown.seconds if shown else 0.0, str(exc))
            self.record.update(outcome=f"{step.key} failed", exit_code=int(code),
                               error=str(exc))
            if step.key in ("deploy", "health"):
                self._hint()
            raise OpsError(self._message(step, exc), code) from None
        self._log(step.key, "ok", shown.seconds, shown.detail)

    def _log(self, key, outcome, seconds, detail):
        self.record["steps"].append(
            {"step": key, "outcome": outcome, "seconds": seconds, "detail": detail})

    def _exit_code(self, step: PlanStep, exc: Exception) -> ExitCode:
        """The step's own code; a held lock is always 4; a rollback's bad --to keeps the
        error's own (not found, usage)."""
        own = (OpsError.from_engine(exc) if isinstance(exc, EngineError) else exc).code
        if own == ExitCode.LOCKED:  # someone else's deploy, wherever its lock was
            return ExitCode.LOCKED
        if self.options.rollback_to is not None and own in (ExitCode.NOT_FOUND, ExitCode.USAGE):
            return own
        return step.abort

    def _message(self, step: PlanStep, exc: Exception) -> str:
        what = "rollback" if self.options.rollback_to is not None else "deploy"
        if step.abort in (ExitCode.DEPLOY_ABORTED_PREFLIGHT, ExitCode.DEPLOY_ABORTED_BACKUP,
                          ExitCode.DEPLOY_ABORTED_SNAPSHOT, ExitCode.LOCKED):
            return f"{what} aborted before `fly deploy` ({step.key} failed): {exc}"
        return f"{step.key} failed: {exc}"

    def _hint(self) -> None:
        """How to go back to the release that ran before this deploy."""
        previous = self.record.get("previous_release")
        if previous:
            self.ui.info(
                f"To roll back: invoke deploy.rollback --to {previous['version']}   "
                f"(= fly deploy -a {self.options.app} --image {previous['image']})")

    # -- steps: each returns the detail shown on its line
    def lock(self, held: contextlib.ExitStack) -> str:
        path = self.settings.audit_log.parent / f".deploy-{self.options.app}.lock"
        try:  # the audit log's folder: checked here, before anything can happen unrecorded
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.settings.audit_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                             0o600))
        except OSError as exc:
            raise OpsError(f"cannot write the audit log {self.settings.audit_log} "
                           f"(deploy.audit_log): {exc.strerror}", ExitCode.USAGE) from None
        wait = self.settings.deploy_lock_wait
        held.enter_context(file_lock(
            path, wait, f"another deploy of {self.options.app}",
            on_wait=lambda holder: self.ui.info(
                f"  waiting up to {wait:g}s for the deploy lock, held by {holder}")))
        return str(path)

    def preflight(self, held) -> str:
        self.target = self.make_target()
        runner = self.target.fly
        self.target.check_flyctl()
        runner.run(fly.whoami())
        self.settings.fly_toml()
        where = self._production_machine()
        releases = runner.releases(self.options.app)
        current = self._note_previous(releases)
        if self.options.rollback_to is not None:
            version = self.options.rollback_to or previous_version(releases)
            self.rollback_image = _release_image(releases, version)
            self.record["rollback_to"] = version
        if self.options.require_clean:
            _require_clean_tree()
        return where + (f", current release v{current.version}" if current else "")

    def _production_machine(self) -> str:
        """Resolve the machine; an emergency deploy or a rollback can go on without it
        (a crashed app is exactly when they are needed)."""
        try:
            volume, machine = self.target.resolve()
        except OpsError as exc:
            if not (self.options.skip_backup or self.options.rollback_to is not None):
                raise
            self.ui.warn(f"the production machine is not usable ({exc}); going on without "
                         "the machine's deploy lock")
            self.machine_ok = False
            return "no usable machine"
        self.machine_ok = True
        return f"machine {machine.id}, volume {volume.id}"

    def _note_previous(self, releases: list[fly.Release]) -> fly.Release | None:
        current = next((r for r in releases if r.status == "complete"), None)
        if current:
            self.record["previous_release"] = {"version": current.version,
                                               "image": current.image_ref}
        return current

    def machine_lock(self, held) -> str:
        if not self.machine_ok:
            return "skipped: no usable machine"
        self.holder = (f"{audit.who()} {self.record['kind']} since "
                       f"{self.record['when'][:19]}Z (run {os.urandom(4).hex()})")
        waited = self.target.lock_deploy(self.settings.deploy_lock_wait, self.holder)
        held.callback(self._unlock_machine)
        if waited:  # another deploy finished meanwhile: what is live now?
            self._note_previous(self.target.fly.releases(self.options.app))
        return self.target.deploy_lock_path + (" (after waiting)" if waited else "")

    def _unlock_machine(self) -> None:
        """Release this run's lock (only this run's). After `fly deploy` the machine is
        looked up again: the deploy may have replaced it, or left it stopped."""
        try:
            if self.deploy_started:
                self.target.resolve(again=True)
            self.target.unlock_deploy(holder=self.holder)
        except OpsError as exc:
            if exc.code == ExitCode.LOCKED:  # an operator forced it and another run took it
                self.ui.warn(f"did not release the deploy lock on the machine: {exc}")
                return
            self.ui.warn(f"could not release this deploy's lock on the machine ({exc}); "
                         "once the machine is running, run: invoke deploy.unlock --yes")

    def backup(self, held) -> str:
        result = backups.make_backup(self.target, self.ui)
        if result.get("strategy") != "remote_command":  # that one was downloaded and checked
            backups.require_ok(self.target.verify(result["name"]))
        backups.cleanup(self.target, self.ui, self.settings.keep)
        self.record["backup"] = {k: result.get(k) for k in
                                 ("name", "sha256", "size", "strategy", "path")}
        return f"{result['name']} verified (sha256 {result['sha256'][:12]})"

    def snapshot(self, held) -> str:
        snap = self.target.snapshot(wait=True, timeout=self.settings.snapshot_timeout,
                                    interval=self.settings.health_interval)
        self.record["snapshot"] = {"id": snap["id"], "volume": snap["volume"],
                                   "size": snap.get("size")}
        return f"{snap['id']} created"

    def deploy(self, held) -> str:
        o = self.options
        image = self.rollback_image if o.rollback_to is not None else o.image
        self.deploy_started = True
        try:
            self.target.fly.run(deploy_command(o, image), timeout=self.settings.fly_deploy_timeout,
                                key="fly.deploy_timeout",
                                stream=lambda line: self.ui.info(f"  {line}"))
        finally:
            self._note_release()  # a failed rolling deploy still leaves a (failed) release
        release = self.record.get("release")
        return f"release v{release['version']}" if release else "deployed"

    def _note_release(self) -> None:
        try:
            newest = self.target.fly.releases(self.options.app)[0]
        except (OpsError, IndexError):
            return
        self.record["release"] = {"version": newest.version, "image": newest.image_ref,
                                  "status": newest.status}

    def health(self, held) -> str:
        expected = (self.record.get("backup") or {}).get("name")
        result = health.wait_healthy(self.options.health_url, expected_backup=expected,
                                     timeout=self.settings.health_timeout,
                                     interval=self.settings.health_interval)
        reports = f", reports {expected}" if expected else ""
        return f"200 after {result['polls']} poll(s){reports}"


def deploy_command(o: DeployOptions, image: str | None) -> list[str]:
    return fly.deploy(o.app, o.config, image=image, remote_only=o.remote_only,
                      local_only=o.local_only, strategy=o.strategy,
                      wait_timeout=o.wait_timeout, extra=o.extra)


def _release_image(releases: list[fly.Release], version: int) -> str:
    for release in releases:
        if release.version == version:
            if not release.image_ref:
                raise OpsError(f"release v{version} has no image to redeploy", ExitCode.USAGE)
            return release.image_ref
    known = ", ".join(f"v{r.version}" for r in releases[:10]) or "none"
    raise OpsError(f"no release v{version} (recent: {known})", ExitCode.NOT_FOUND)


def previous_version(releases: list[fly.Release]) -> int:
    """The newest complete release older than the newest one, whatever that one's status.

    After a failed rolling deploy its image is live although the release says failed,
    so "previous" is measured from the newest release, not the newest complete one.
    """
    if not releases:
        raise OpsError("the app has no releases", ExitCode.NOT_FOUND)
    newest = max(releases, key=lambda r: r.version)
    older = [r for r in releases
             if r.version < newest.version and r.status == "complete" and r.image_ref]
    if not older:
        raise OpsError("no earlier complete release to roll back to", ExitCode.NOT_FOUND)
    return max(older, key=lambda r: r.version).version


def _require_clean_tree() -> None:
    try:
        out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise OpsError(f"--require-clean: cannot read git status ({exc})") from None
    if out.strip():
        count = len(out.strip().splitlines())
        raise OpsError(f"--require-clean: the git tree has {count} uncommitted change(s)")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plan_as_data(steps: list[PlanStep]) -> list[dict]:
    return [asdict(step) | {"abort": int(step.abort)} for step in steps]
