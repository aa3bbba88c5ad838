"""Stop the app's writes in an emergency, keeping its machine and volume reachable; resume."""

from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING

from ops import config
from ops.cli import guarded, on_signals, task
from ops.errors import ExitCode, OpsError
from ops.text import text_lines

if TYPE_CHECKING:  # annotations only: the modules are imported by the tasks that run them
    from ops import emergency as em
    from ops import remote, runbook

HELP = {
    "yes": "go ahead without asking (required when not on a terminal)",
    "dry_run": "print the plan with the exact flyctl commands; change nothing",
    "json": "print the audit record (or the plan, with --dry-run) as JSON on stdout",
}


class Emergency:
    """One run: settings, flyctl, the production machine and where the marker lives.

    The reads come first, as steps of the same runner (``plan_resolve``): for real in a
    dry run too, so the plan it prints is the one a run would do, machine id and all."""

    def __init__(self, c, json: bool, kind: str, dry_run: bool = False):
        from ops import emergency as em
        from ops import remote, runbook
        from ops.targets.fly.machine import ANY_STATE
        from ops.targets.fly.session import FlySession
        from ops.ui import UI

        self.settings = config.load(c.config)
        self.ui = UI()
        self.json = json
        self.dry_run = dry_run
        self.app = self.settings.app
        self.db = remote.remote_path(self.settings.db_remote_path, "db.remote_path")
        self.marker = f"{posixpath.dirname(self.db)}/{em.MARKER}"
        # the same session as every task: flyctl with fly.timeout, one `fly ssh console`
        # runner; production is the machine with the volume, started or not
        self.session = FlySession(self.settings, self.ui, policy=ANY_STATE)
        self.fly = self.session.fly
        self.runner = runbook.Runner(kind, self.ui, self.settings.audit_log)
        if not dry_run:  # an emergency with no audit line loses who stopped production
            self.runner.check_audit_log()
        self.reads = self.read(em.plan_resolve(self.app), {"resolve": self._resolve})

    def read(self, steps: list[runbook.Step], actions: dict) -> list[runbook.Step]:
        """Run read-only steps now (no audit line: nothing has changed yet); the steps."""
        from ops import runbook

        steps = runbook.bind(steps, actions)
        self.runner.run(steps, dry_run=True)
        return steps

    def _resolve(self) -> str:
        self.volume, self.machine = self.session.look_up()
        return f"machine {self.machine.id} ({self.machine.state}), volume {self.volume.id}"

    def show(self, title: str, steps: list[runbook.Step], dry_run: bool, **data) -> bool:
        """Print the plan; with --dry-run also emit it and say so (True: stop here)."""
        from ops import emergency as em
        from ops import runbook

        self.ui.lines(runbook.render(runbook.dry_run_title(title, dry_run), steps,
                                     width=self.ui.width))
        if dry_run and self.json:
            self.ui.emit({"dry_run": True, "outcome": "dry run", "app": self.app,
                          "machine": self.machine.id, "steps": em.plan_data(steps),
                          "read": em.plan_data(self.reads), **data})
        return dry_run

    def nothing(self, message: str, **data) -> None:
        self.ui.info(message)
        if self.json:
            self.ui.emit({"app": self.app, "machine": self.machine.id, "changed": False,
                          "message": message, **data,
                          **({"dry_run": True, "outcome": "dry run"} if self.dry_run else {})})

    def run(self, steps: list[runbook.Step], **fields) -> None:
        """Run the plan: one record (the audit line), emitted with --json however it ends."""
        self.runner.start(app=self.app, machine=self.machine.id, volume=self.volume.id,
                          **fields)
        try:
            self.runner.run(steps)
        finally:
            if self.json:
                self.ui.emit(self.runner.record)

    def update(self, step: runbook.Step) -> str:
        """Run a ``fly machine update`` step: flyctl's line that says how it went."""
        return _line(self.fly.run(list(step.commands[0])).stdout, "updated successfully")

    def ssh(self, script: str, what: str) -> remote.RemoteOutput:
        return self.session.run(script, what=what)

    def on_machine(self, script: str, verb: str) -> str:
        """Run a marker script on the machine (``verb`` it): the marker's path."""
        if self.ssh(script, f"{verb[:-1]}ing the marker").status != 0:
            raise OpsError(f"could not {verb} {self.marker} on {self.machine.id}")
        return self.marker

    def started_in_maintenance(self, want: bool) -> str:
        from ops import emergency as em

        return em.started_as_wanted(self.fly.machines(self.app), self.machine.id, want)


@task(help=HELP)
@guarded
@on_signals
def stop(c, yes=False, dry_run=False, json=False):
    """Stop the app's writes; the machine stays up with its volume for `restore --production`."""
    from ops import audit, runbook
    from ops import emergency as em

    em.refuse_unasked(yes, dry_run, "emergency.stop")
    run = Emergency(c, json, "emergency.stop", dry_run)
    machine, app = run.machine, run.app
    if machine.in_maintenance:
        return run.nothing(f"{app} is already emergency-stopped on {machine.id}; "
                           "undo it with: `invoke emergency.resume`")
    original = em.original_of(machine)
    when = runbook.now()
    write = em.write_marker_script(run.marker, {
        "app": app, "machine": machine.id, "original": original.as_data(),
        "who": audit.who(), "when": when})
    steps = em.plan_stop(app, machine, original, run.marker, run.db, write)
    if run.show(f"Emergency stop of {app}", steps, dry_run, original=original.as_data()):
        return
    em.confirm(run.ui, f"Stop the app {app} on {machine.id} (its writes stop until "
               "`invoke emergency.resume`)?", yes=yes, kind="emergency.stop")

    def quiet():
        output = run.ssh(em.open_handles_script(run.db), "looking for open handles")
        count = em.open_handles(output)
        if output.status != 0 or count is None:
            raise OpsError(f"could not look for open handles on {run.db} on {machine.id}")
        if count:
            raise OpsError(f"{count} file handle(s) on {run.db} are still open on "
                           f"{machine.id}: the image's ENTRYPOINT may not run the new command, "
                           "so writes may go on; undo with: invoke emergency.resume --yes")
        return "none"

    run.run(runbook.bind(steps, {
        "update": lambda: run.update(steps[0]), "quiet": quiet,
        "record": lambda: run.on_machine(write, "write"),
        "verify": lambda: run.started_in_maintenance(True),
    }), original=original.as_data(), marker=run.marker, when=when)
    run.ui.info(f"{app} is stopped: {machine.id} runs `{' '.join(em.MAINTENANCE_CMD)}` with "
                f"{run.volume.id} attached. Restore with `invoke restore --production`, then "
                "`invoke emergency.resume`.")


@task(help=HELP)
@guarded
@on_signals
def resume(c, yes=False, dry_run=False, json=False):
    """Undo `emergency.stop` exactly: the app's own command (and autostop) back, health checked."""
    from ops import emergency as em
    from ops import runbook

    em.refuse_unasked(yes, dry_run, "emergency.resume")
    run = Emergency(c, json, "emergency.resume", dry_run)
    machine, app = run.machine, run.app
    if not machine.in_maintenance:
        return run.nothing(f"{app} is not emergency-stopped ({machine.id} is {machine.state} "
                           "and runs its own command): nothing to resume")
    found = {}
    run.reads += run.read(em.plan_recorded(app, machine, run.marker),
                          {"recorded": lambda: _read_marker(run, found)})
    original, source = _recorded(run, found)
    s = run.settings
    steps = em.plan_resume(app, machine, original, run.marker, s.health)
    if run.show(f"Resume {app}", steps, dry_run, original=original.as_data(),
                recorded_in=source):
        return
    em.confirm(run.ui, f"Start the app {app} again on {machine.id} ({original.describe()})?",
               yes=yes, kind="emergency.resume")
    clear = em.clear_marker_script(run.marker)
    run.run(runbook.bind(steps, {
        "update": lambda: run.update(steps[0]),
        "clear": lambda: run.on_machine(clear, "remove"),
        "verify": lambda: run.started_in_maintenance(False),
        "health": lambda: em.wait_healthy(s.health, s.health_timeout, s.health_interval),
    }), original=original.as_data(), recorded_in=source)
    run.ui.info(f"{app} runs again on {machine.id}.")


def _read_marker(run: Emergency, found: dict) -> str:
    """The marker on the volume, read into ``found`` (``data``, or ``problem``)."""
    from ops import emergency as em

    output = run.ssh(em.read_marker_script(run.marker), "reading the marker")
    found["data"] = em.parse_marker(output.stdout) if output.status == 0 else None
    found["problem"] = "it is missing" if output.status == 3 else "it is unreadable"
    return "found" if found["data"] is not None else found["problem"]


def _recorded(run: Emergency, found: dict) -> tuple[em.Original, str]:
    """What the machine ran before the stop: the machine's metadata, written by this stop's
    own update, and the marker on the volume (``found`` by the ``recorded`` step), written
    after it; else the audit log. Where both are there and differ, the marker is an
    earlier stop's, left by a resume that could not remove it, and this stop's own record
    wins (s27 review-break #1: the marker won, and resume started an old command)."""
    from ops import audit
    from ops import emergency as em

    problem = found.get("problem", "the machine is not started")
    data = found.get("data")
    marker = None
    if data is not None and data.get("machine") == run.machine.id:
        try:
            marker = em.Original.from_data(data.get("original"))
        except ValueError as exc:
            problem = f"it is unusable ({exc})"
    elif data is not None:
        problem = f"it names another machine ({str(data.get('machine'))[:40]!r})"
    meta, meta_problem = _metadata_original(run.machine)
    if marker is not None and (meta is None or meta == marker):
        if meta_problem:
            run.ui.warn(f"the machine's metadata {em.ORIGINAL_META}: {meta_problem}; using "
                        f"{run.marker}")
        return marker, run.marker
    if meta is not None:
        when = str(data.get("when"))[:40] if data else ""
        said = (f"it holds an earlier stop's record ({marker.describe()}; written {when})"
                if marker is not None else problem)
        run.ui.warn(f"{run.marker} on the machine: {said}; using what the stop recorded in "
                    f"the machine's metadata ({em.ORIGINAL_META}): {meta.describe()}")
        return meta, f"metadata {em.ORIGINAL_META}"
    if meta_problem:
        problem += f"; the machine's metadata {meta_problem}"
    for entry in reversed(audit.read(run.settings.audit_log)):
        if (entry.get("kind") == "emergency.stop" and entry.get("app") == run.app
                and entry.get("machine") == run.machine.id and "original" in entry):
            try:
                original = em.Original.from_data(entry["original"])
            except ValueError:
                continue
            run.ui.warn(f"{run.marker} on the machine: {problem}; using the stop recorded in "
                        f"{run.settings.audit_log} at {entry.get('when')}")
            return original, str(run.settings.audit_log)
    raise OpsError(f"cannot tell what {run.machine.id} ran before the stop ({run.marker}: "
                   f"{problem}; no emergency.stop in {run.settings.audit_log}); find its "
                   "command (fly.toml [processes], or `fly releases` and the image's CMD), "
                   f"then: fly machine update {run.machine.id} -a {run.app} --command "
                   "'THAT COMMAND' --yes (--command '' only if it ran the image's own CMD)",
                   ExitCode.NOT_FOUND)


def _metadata_original(machine) -> tuple[em.Original | None, str]:
    """What the stop's update wrote into the machine's metadata, or why it cannot be used
    ("" when there is none: a stop by an older toolkit, or a machine config replaced)."""
    from ops import emergency as em

    if not machine.recorded_original:
        return None, ""
    try:
        if len(machine.recorded_original) > 65536:
            raise ValueError("longer than 64 KB")
        return em.Original.from_data(json.loads(machine.recorded_original)), ""
    except (ValueError, RecursionError) as exc:
        return None, f"is unusable ({exc})"


def _line(text: str, words: str) -> str:
    """flyctl's line that says how it went (its output is not JSON)."""
    lines = text_lines(text)
    return next((line for line in lines if words in line), lines[-1] if lines else "")
