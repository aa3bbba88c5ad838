"""Undo a deploy, code and data (issue 23 #2): one plan, run by the one runner.

The order is what makes it safe. The app's writes stop first (emergency.stop's steps); the
pre-deploy backup is restored on the machine with its proof, and the restore's own safety
backup (kind `safety`: never `latest`, kept by retention) keeps the live data; then the
previous release's image is deployed (`fly deploy --image`, as deploy.rollback does), so
the app boots on the restored data with the old code: resuming the bad release first would
run its migration again. `fly deploy` rebuilds the machine's command from fly.toml (flyctl
internal/appconfig/machines.go updateMachineConfig), so the maintenance command is gone by
then; resume still clears the stop's metadata and marker and leaves the app running.
/health, then the data guard against the restored backup (it must show no loss).

What is decided is pure and tested as data: ``pick`` chooses the deploy from the audit log
(or refuses), ``plan`` returns the steps with the exact commands; ``ops.commands.deploy``
binds the actions.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass, replace

from ops import audit, backups, data_guard, engine, fly, health, remote, runbook
from ops import deploy as deploys
from ops import emergency as em
from ops.errors import ExitCode, OpsError
from ops.runbook import Step
from ops.text import text_lines

KIND = "undo"
LATER_KINDS = ("deploy", "rollback", KIND)  # what may have changed production since


@dataclass(frozen=True)
class Chosen:
    """The deploy to undo, as its audit line recorded it."""

    when: str
    release: int
    backup: str
    sha256: str
    image: str  # the previous release's image: what runs again
    previous: int  # its version
    later: tuple[str, ...] = ()  # what later runs did (warned when --deploy names it)


def deploy_id(record: dict) -> str:
    """A deploy's ID for --deploy: the release it made (``v13``)."""
    return f"v{(record.get('release') or {}).get('version')}"


def _deployed(record, app: str, kinds=("deploy",)) -> bool:
    """A run of ``kinds`` for ``app`` whose `fly deploy` made a release."""
    return (isinstance(record, dict) and record.get("kind") in kinds and record.get("app") == app
            and isinstance(record.get("release"), dict)
            and type(record["release"].get("version")) is int)


def _matches(record: dict, wanted: str) -> bool:
    text = wanted.strip()
    version = re.fullmatch(r"v?([0-9]{1,9})", text)
    if version:
        return record["release"]["version"] == int(version.group(1))
    return record.get("when") == text


def _later(records: list[dict], app: str, after: int) -> tuple[str, ...]:
    """What each later deploy, rollback or undo of ``app`` did (a release newer than
    ``after``), one phrase each."""
    out = []
    for record in records:
        if _deployed(record, app, LATER_KINDS) and record["release"]["version"] > after:
            out.append(f"{record['kind']} at {str(record.get('when', '?'))[:19]}Z made release "
                       f"v{record['release']['version']} ({record.get('outcome', '?')})")
    return tuple(out)


def ci_hint(log) -> str:
    """Where a CI deploy's audit line is: the audit log read is this computer's (review-op #3)."""
    return (f"this computer's audit log is {log}; a CI deploy's is in its `deploy-record` "
            "artifact: download it and run with INVOKE_DEPLOY_AUDIT_LOG=PATH")


def _undone(records: list[dict], app: str, deploy: str) -> str:
    """The undo of ``deploy`` that redeployed (made a release), as a phrase ('' if none):
    a second undo would restore the pre-deploy backup again over what was written since
    (review-op #2). An undo stopped before its redeploy does not count: running it again
    goes on."""
    for record in reversed(records):
        if _deployed(record, app, (KIND,)) and record.get("deploy") == deploy:
            outcome = record.get("outcome", "?")
            left = "" if outcome == "ok" else (
                "; it did not finish: if the machine is still stopped, `invoke "
                "emergency.resume --yes`")
            return (f"undo at {str(record.get('when', '?'))[:19]}Z made release "
                    f"v{record['release']['version']} ({outcome}){left}")
    return ""


def data_failed_not_undone(records: list[dict], app: str) -> dict | None:
    """The last deploy of ``app`` when it failed its data guard (exit 16) and no undo of it
    redeployed: {"deploy", "when"} (pure). A deploy on top of it would back up the damaged
    data, and a plain undo would then target the new deploy (review-op #5)."""
    found = [(i, r) for i, r in enumerate(records) if _deployed(r, app)]
    if not found:
        return None
    at, record = found[-1]
    if record.get("exit_code") != ExitCode.DATA_LOST or _undone(records[at + 1:], app,
                                                                 deploy_id(record)):
        return None
    return {"deploy": deploy_id(record), "when": str(record.get("when", ""))[:40]}


def pick(records: list[dict], app: str, wanted: str | None,
         log: str = "data/deploys.jsonl") -> Chosen:
    """The deploy to undo: the last one of ``app`` in the audit log ``log``, or the one
    ``wanted`` names (its release ``v13``, or its ``when``). Refuses in one line (pure)."""
    deploys_made = [(i, r) for i, r in enumerate(records) if _deployed(r, app)]
    if not deploys_made:
        raise OpsError(f"no deploy of {app} that made a release in the audit log: nothing to "
                       f"undo; {ci_hint(log)}", ExitCode.NOT_FOUND)
    if wanted is None:
        at, record = deploys_made[-1]
    else:
        found = [(i, r) for i, r in deploys_made if _matches(r, wanted)]
        if not found:
            known = ", ".join(deploy_id(r) for _, r in deploys_made[-5:])
            raise OpsError(f"--deploy {wanted}: no such deploy of {app} in the audit log "
                           f"(recent: {known}); {ci_hint(log)}", ExitCode.NOT_FOUND)
        at, record = found[-1]
    undone = _undone(records[at + 1:], app, deploy_id(record))
    if undone:
        raise OpsError(f"deploy {deploy_id(record)} was already undone: {undone}; nothing to "
                       "undo", ExitCode.USAGE)
    later = _later(records[at + 1:], app, record["release"]["version"])
    if later and wanted is None:
        raise OpsError(f"the last deploy ({deploy_id(record)}) is not what runs now: "
                       f"{later[-1]}; to undo it anyway name it: invoke deploy.undo --deploy "
                       f"{deploy_id(record)}", ExitCode.USAGE)
    version = record["release"]["version"]
    if record.get("skipped_backup") or not isinstance(record.get("backup"), dict):
        raise OpsError(f"deploy {deploy_id(record)} was made with --skip-backup: there is no "
                       "pre-deploy backup to put back; code only: `invoke deploy.rollback`; "
                       "data only: `invoke restore NAME --production`", ExitCode.USAGE)
    previous = record.get("previous_release")
    previous = previous if isinstance(previous, dict) else {}
    image, earlier = previous.get("image"), previous.get("version")
    if not (isinstance(image, str) and image) or type(earlier) is not int:
        raise OpsError(f"deploy {deploy_id(record)} recorded no previous release to go back "
                       "to; data only: `invoke restore "
                       f"{record['backup'].get('name')} --production`", ExitCode.NOT_FOUND)
    return Chosen(when=str(record.get("when", "")), release=version,
                  backup=str(record["backup"].get("name")),
                  sha256=str(record["backup"].get("sha256") or ""), image=previous["image"],
                  previous=previous["version"], later=later)


def put_back(chosen: Chosen, live: list) -> None:
    """Refuse when the live release, newer than the deploy and made by no run of this audit
    log, runs the image from before it: an undo killed after its redeploy (it leaves no
    audit line) may already have restored the data, and the app has been writing on it
    since; restoring the pre-deploy backup again would move those writes into a safety
    backup. Restoring the data all the same is then an explicit `restore` (pure)."""
    for release in live:
        if release.version > chosen.release and release.image_ref == chosen.image:
            raise OpsError(
                f"release v{release.version} already runs v{chosen.previous}'s image again "
                f"(an undo or a rollback put the code back after v{chosen.release}), and the "
                f"app may have taken writes since: undoing v{chosen.release} again would "
                "restore its pre-deploy backup over them. If an undo was stopped: `invoke "
                "emergency.resume --yes` if the machine is still stopped; to put the "
                f"pre-deploy data back all the same: `invoke restore {chosen.backup} "
                "--production` (its safety backup keeps what is live)", ExitCode.USAGE)


def written_since(shape: dict) -> dict[str, tuple[int | None, int | None]]:
    """Rows per table in the pre-deploy backup and live now, for the tables that differ:
    what the safety backup keeps that the restore takes out."""
    before, live = shape.get("backup") or {}, shape.get("live") or {}
    return {t: (before.get(t), live.get(t)) for t in sorted(set(before) | set(live))
            if before.get(t) != live.get(t)}


def since_words(changed: dict) -> str:
    if not changed:
        return "no table differs from the backup"
    parts = [f"{t} {'none' if b is None else f'{b:,}'} → {'none' if a is None else f'{a:,}'}"
             for t, (b, a) in changed.items()]
    return "; ".join(parts[:6]) + (f"; … {len(parts) - 6} more" if len(parts) > 6 else "")


def ssh(app: str, machine: str, what: str) -> tuple[str, ...]:
    return em.ssh_shown(app, machine, what)


def plan_reads(app: str, machine: str, chosen: Chosen) -> list[Step]:
    """What every run reads first (a dry run too): the machine, the backup, the data."""
    return [
        Step("resolve", f"resolve the production machine of {app} and its releases",
             commands=tuple(map(tuple, (fly.version(), fly.volumes_list(app),
                                        fly.machines_list(app), fly.releases(app)))),
             reads_only=True),
        Step("backup_check", f"the pre-deploy backup {chosen.backup} is on the machine and "
             "passes its record (SHA-256, integrity_check)",
             commands=(ssh(app, machine, "list the backups"),
                       ssh(app, machine, f"verify {chosen.backup}")), reads_only=True),
        Step("since", f"rows per table live now against {chosen.backup} (the rows in the "
             "live database since the deploy: the migration's changes and users' writes; "
             "kept in the restore's safety backup)",
             commands=(ssh(app, machine, f"count rows against {chosen.backup}"),),
             reads_only=True),
    ]


def plan(o: deploys.DeployOptions, chosen: Chosen, machine: fly.Machine,
         original: em.Original, *, marker: str, db: str, write: str, since: str,
         live: int | None = None) -> list[Step]:
    """The undo's changes, in order, with real names; ``write`` is the stop's marker
    script. An emergency-stopped machine skips the stop (``original`` came from its
    metadata). After `fly deploy` the machine is ``<machine>``: the deploy may have
    replaced it, so the run finds it again and fills that in (``Runner.learn``)."""
    app, mid = o.app, machine.id
    later = replace(machine, id=deploys.MACHINE)
    stopped = "already emergency-stopped" if machine.in_maintenance else ""
    # by hand, a machine script is one line or a comment saying what the step does
    clear = (f"fly ssh console -a {shlex.quote(app)} --machine {later.id} -C "  # filled in
             + shlex.quote(f"rm -f {shlex.quote(marker)}"))
    stop = [replace(s, key=f"stop.{s.key}", skipped=stopped if s.key != "quiet" else "",
                    by_hand=() if s.key in ("record", "quiet") else s.by_hand)
            for s in em.plan_stop(app, machine, original, marker, db, write)]
    resume = [replace(s, key=f"resume.{s.key}", by_hand=(clear,) if s.key == "clear"
                      else s.by_hand)
              for s in em.plan_resume(app, later, original, marker, o.health_url)]
    deploy_argv = tuple(deploys.redact_argv(deploys.deploy_command(o, chosen.image)))
    still = (f"the live release is still v{chosen.release}" if live in (None, chosen.release)
             else f"release v{live} is live (not v{chosen.release}: --deploy named it)")
    return [
        Step("machine_lock", f"take the deploy lock on the machine; {still}",
             commands=(ssh(app, mid, "take the deploy lock"), tuple(fly.releases(app))),
             abort=ExitCode.DEPLOY_ABORTED_PREFLIGHT, rerun=True),
        *stop,
        Step("restore", f"restore {chosen.backup} on the machine, with its proof; its "
             f"safety backup keeps the live data ({since}), never `latest`",
             commands=(ssh(app, mid, f"restore {chosen.backup}"),),
             by_hand=(f"invoke restore {chosen.backup} --production --yes",)),
        Step("deploy", f"redeploy v{chosen.previous}'s image (the release before "
             f"v{chosen.release}), then find the machine again",
             commands=(deploy_argv, tuple(fly.releases(app)), tuple(fly.volumes_list(app)),
                       tuple(fly.machines_list(app))),
             abort=ExitCode.DEPLOY_FAILED,
             by_hand=(f"fly releases -a {app}   # is v{chosen.previous}'s image out? if not:",
                      shlex.join(["fly", *deploy_argv]))),
        *resume,
        Step("data", f"data guard: the live database against {chosen.backup} (must show "
             "no loss)", commands=(tuple(fly.volumes_list(app)), tuple(fly.machines_list(app)),
                                  ssh(app, later.id, f"compare with {chosen.backup}")),
             reads_only=True),
    ]


def closing(app: str, machine: str) -> Step:
    return Step("unlock", "release the deploy lock on the machine",
                commands=(ssh(app, machine, "release the deploy lock"),),
                by_hand=(deploys.UNLOCK,))


def health_by_hand(url: str) -> str:
    return health.by_hand(url)


# ------------------------------------------------------------------ the actions


class Undo:
    """One undo: the reads (a dry run's too), then the plan's changes, each step's action
    a method here; ``runner`` is the one Runner (kind ``undo``)."""

    def __init__(self, settings, ui, target, runner, wanted: str | None):
        self.settings, self.ui, self.target, self.runner = settings, ui, target, runner
        self.app = target.fly_app
        self.wanted = wanted
        self.chosen = pick(audit.read(settings.audit_log), settings.app, wanted,
                           str(settings.audit_log))
        for line in self.chosen.later:  # only when --deploy named it (pick refuses else)
            ui.warn(f"after deploy v{self.chosen.release}: {line}")
        self.options = deploys.DeployOptions(
            app=settings.app, config=str(settings.fly_config), health_url=settings.health,
            workdir=deploys.working_dir(settings.fly_config))
        self.db = remote.remote_path(settings.db_remote_path, "db.remote_path")
        self.marker = f"{posixpath.dirname(self.db)}/{em.MARKER}"
        self.machine: fly.Machine | None = None
        self.shape: dict = {}
        self.holder = ""
        self.live: int | None = None  # the newest release, as the reads found it

    # -- the reads
    def reads(self) -> list[Step]:
        machine = self.machine.id if self.machine else deploys.MACHINE
        return runbook.bind(plan_reads(self.settings.app, machine, self.chosen), {
            "resolve": self.resolve, "backup_check": self.backup_check,
            "since": self.since})

    def resolve(self) -> str:
        self.target.check_flyctl()
        _, self.machine = self.target.resolve()
        self.runner.learn(machine=self.machine.id)
        releases = self.app.releases()
        newest = self.live = max((r.version for r in releases), default=0)
        # a recorded rollback put back only the code: undoing the data is what is left
        if not self.chosen.later:
            put_back(self.chosen, [r for r in releases if r.version == newest])
        if newest != self.chosen.release:
            why = (f"release v{newest} is live, not v{self.chosen.release} (the deploy to "
                   "undo)")
            if self.wanted is None:  # a later run of this computer's log: pick refused
                raise OpsError(f"{why}, and no run in this audit log made v{newest}: "
                               f"{ci_hint(self.settings.audit_log)}; to undo "
                               f"v{self.chosen.release} all the same: --deploy "
                               f"v{self.chosen.release}", ExitCode.USAGE)
            self.ui.warn(why)
        return f"machine {self.machine.id} ({self.machine.state}), release v{newest} live"

    def backup_check(self) -> str:
        name, listing = self.chosen.backup, self.target.list()
        found = next((b for b in listing if b.name == name), None)
        if found is None:
            raise OpsError(f"the pre-deploy backup {name} is gone from {self.target.dir}: "
                           "nothing to put back; code only: `invoke deploy.rollback`; data "
                           "only: `invoke restore NAME --production`", ExitCode.NOT_FOUND)
        if self.chosen.sha256 and found.sha256 != self.chosen.sha256:
            raise OpsError(f"the pre-deploy backup {name} no longer has the SHA-256 the deploy "
                           f"recorded ({str(found.sha256)[:12]}… instead of "
                           f"{self.chosen.sha256[:12]}…): code only: `invoke deploy.rollback`",
                           ExitCode.VERIFY_FAILED)
        try:
            backups.require_ok(self.target.verify(name))
        except OpsError as exc:
            raise OpsError(f"the pre-deploy backup {name} fails its record ({exc}); code only: "
                           "`invoke deploy.rollback`", ExitCode.VERIFY_FAILED) from None
        return f"{name} verified"

    def since(self) -> str:
        self.shape = self.target.shape(self.chosen.backup)
        changed = written_since(self.shape)
        self.runner.record["written_since"] = {t: list(p) for t, p in changed.items()}
        return since_words(changed)

    def lock_waits(self) -> list[str]:
        """A dry run's look at the locks the run takes after its reads, taking nothing:
        the machine's deploy lock, then the restore's locks there. The run's refusal
        (exit 4) where it would not wait; else what it would wait for."""
        deploy = self.app.deploy_lock_wait(self.settings.deploy_lock_wait)
        return [*([deploy] if deploy else []), *self.target.lock_waits()]

    # -- the plan, with what the reads found
    def original(self) -> em.Original:
        machine = self.machine
        if not machine.in_maintenance:
            return em.original_of(machine)
        try:
            return em.Original.from_data(json.loads(machine.recorded_original or "null"))
        except (ValueError, RecursionError):
            raise OpsError(f"machine {machine.id} is emergency-stopped and its metadata does not "
                           "say what it ran: run `invoke emergency.resume` first",
                           ExitCode.USAGE) from None

    def plan(self) -> tuple[list[Step], Step]:
        """The changes (bound to their actions) and the closing step (the machine's lock)."""
        original = self.original()
        self.write = em.write_marker_script(self.marker, {
            "app": self.settings.app, "machine": self.machine.id,
            "original": original.as_data(), "who": audit.who(), "when": runbook.now()})
        self.steps = plan(self.options, self.chosen, self.machine, original,
                          marker=self.marker, db=self.db, write=self.write,
                          since=since_words(written_since(self.shape)), live=self.live)
        by_key = {s.key: s for s in self.steps}
        s = self.settings
        actions = {
            "machine_lock": self.machine_lock,
            "restore": self.restore, "deploy": self.deploy, "data": self.data,
            "stop.update": lambda: self.update(by_key["stop.update"]),
            "stop.record": lambda: self.on_machine(self.write, "writing the marker"),
            "stop.verify": lambda: self.verify(True), "stop.quiet": self.quiet,
            "resume.update": lambda: self.update(by_key["resume.update"]),
            "resume.verify": lambda: self.verify(False),
            "resume.clear": lambda: self.on_machine(em.clear_marker_script(self.marker),
                                                    "removing the marker"),
            "resume.health": lambda: em.wait_healthy(s.health, s.health_timeout,
                                                     s.health_interval),
        }
        self.close = runbook.bind([closing(self.settings.app, deploys.MACHINE)],
                                  {"unlock": self.unlock})[0]
        return runbook.bind(self.steps, actions), self.close

    # -- the changes
    def machine_lock(self) -> str:
        self.holder = (f"{audit.who()} undo since {self.runner.record['when'][:19]}Z "
                       f"(run {os.urandom(4).hex()})")
        wait = self.settings.deploy_lock_wait
        self.app.lock_deploy(wait, self.holder, on_wait=lambda who: self.ui.waiting(
            f"  waiting up to {wait:g}s for the deploy lock on the machine, held by {who}"))
        self.runner.closing = self.close
        newest = max((r.version for r in self.app.releases()), default=0)
        if newest != self.chosen.release and self.wanted is None:
            raise OpsError(f"release v{newest} went live meanwhile (not v{self.chosen.release}"
                           "): nothing was changed", ExitCode.USAGE)
        return self.app.deploy_lock_path

    def update(self, step: Step) -> str:
        step = step.filled(self.runner.values)  # the machine, found again after the deploy
        result = self.target.session.fly.run(list(step.commands[0]))
        lines = text_lines(result.stdout)
        return lines[-1] if lines else ""

    def on_machine(self, script: str, what: str) -> str:
        if self.target.session.run(script, what=what).status != 0:
            raise OpsError(f"{what} failed on {self.machine.id} ({self.marker})")
        return self.marker

    def verify(self, maintenance: bool) -> str:
        return em.started_as_wanted(self.target.session.fly.machines(self.settings.app),
                                    self.machine.id, maintenance)

    def quiet(self) -> str:
        output = self.target.session.run(em.open_handles_script(self.db),
                                         what="looking for open handles")
        count = em.open_handles(output)
        if output.status != 0 or count is None:
            raise OpsError(f"could not look for open handles on {self.db}")
        if count:
            raise OpsError(f"{count} file handle(s) on {self.db} are still open: the app "
                           "may still write; undo the stop with: invoke emergency.resume --yes")
        return "none"

    def restore(self) -> str:
        data = self.target.restore(self.chosen.backup, app_stopped=True)
        proof = data.get("proof")
        safety = (data.get("safety_backup") or {}).get("name")
        # the restore's own safety backup keeps the live data: marked `safety`, so never
        # `latest` and never pruned by retention (review-op #1: a second, ordinary copy
        # became `latest`, and the next `invoke restore --production` put the damage back)
        self.runner.record["safety_backup"] = {"name": safety} if safety else None
        self.runner.record["restore"] = {
            "backup": self.chosen.backup, "strategy": data.get("strategy"),
            "safety_backup": (data.get("safety_backup") or {}).get("name"),
            "proof_ok": proof["ok"] if proof else data.get("ok")}
        if proof and not proof["ok"]:
            raise OpsError("restore failed: " + "; ".join(engine.proof_problems(proof)),
                           ExitCode.VERIFY_FAILED)
        if not proof and not data.get("ok"):
            raise OpsError(f"restore of {self.chosen.backup} failed its check",
                           ExitCode.VERIFY_FAILED)
        return (f"[{data.get('strategy')}] " + (engine.proof_summary(proof) if proof
                                                 else f"{self.settings.check}_check ok"))

    def deploy(self) -> str:
        argv = deploys.deploy_command(self.options, self.chosen.image)
        self.runner.record["deployed"] = True
        try:
            self.app.deploy(argv, stream=lambda line: self.ui.info(
                "  " + runbook.scrub(line, fly.env_tokens())))
        finally:
            newest = self.app.releases()
            if newest and newest[0].version > self.chosen.release:  # one this run made
                self.runner.record["release"] = {"version": newest[0].version,
                                                 "image": newest[0].image_ref,
                                                 "status": newest[0].status}
        _, self.machine = self.target.resolve(again=True)  # it may have been replaced
        self.runner.learn(machine=self.machine.id)
        release = self.runner.record.get("release")
        return (f"release v{release['version']}" if release else "") + \
            f", machine {self.machine.id}"

    def data(self) -> str:
        self.target.resolve(again=True)
        shape = self.target.shape(self.chosen.backup)
        comparison = data_guard.compare(
            self.chosen.backup, shape["backup"], shape["live"],
            schema_before=shape["backup_schema"], schema_after=shape["live_schema"],
            limit=self.settings.max_row_loss, source=shape["source"])
        self.runner.record["data"] = comparison.as_record()
        if not comparison.ok:
            raise OpsError("the restored data is not the pre-deploy backup's: "
                           + comparison.lost[0], ExitCode.DATA_LOST)
        return data_guard.headline(comparison)

    def unlock(self) -> runbook.Done | str:
        try:
            self.app.unlock_deploy(holder=self.holder)
        except OpsError as exc:
            self.ui.warn(f"could not release the deploy lock on the machine ({exc}); run: "
                         f"{deploys.UNLOCK}")
            return runbook.Done("did NOT release the machine's deploy lock", str(exc),
                                failed=True)
        return "released"


def warned(ui, lines: list[str | None]) -> list[str]:
    """A dry run's lock lines (None: a free lock), each said as a warning."""
    said = [line for line in lines if line]
    for line in said:
        ui.warn(line)
    return said
