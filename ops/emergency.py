"""Emergency stop and resume: the app stops writing, its machine and volume stay reachable.

``fly scale count 0`` or ``fly machine stop`` stop the writes but also every way in:
``fly ssh console`` reaches only started machines, and a volume attaches to one machine
at a time, so nothing could run ``invoke restore --production``. Stop therefore keeps
the machine and changes what it runs: ``fly machine update --command "sleep
2147483647"`` (a new CMD; the image's ENTRYPOINT execs it) with ``--skip-health-checks``
(nothing listens any more) and, when the app's services autostop, ``--autostop=off`` (else
Fly's proxy would stop the idle machine). What the machine ran before is recorded on the
volume (``.ops-emergency.json`` beside the database) and in the audit log, so resume puts
back exactly that. Plans are data (``plan_stop``, ``plan_resume``), run by ``runbook.Runner``.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass

from ops import cli, digits, fly, health, remote, runbook
from ops.errors import ExitCode, OpsError
from ops.fly import MAINTENANCE_CMD, ORIGINAL_META
from ops.runbook import Step
from ops.signals import Terminated, stop_on_signals
from ops.text import text_lines

MARKER = ".ops-emergency.json"
MARK = "__OPS_EMERGENCY__"


def on_signals(body):
    """Run a task body inside ``stop_on_signals()``: SIGTERM/SIGHUP (a cancelled CI job)
    unwind through its ``finally`` blocks (the audit line, the "finish by hand" and
    go-back lines), then end as one ``Error:`` line with exit 143."""

    @functools.wraps(body)
    def run(*args, **kwargs):
        try:
            with stop_on_signals():
                return body(*args, **kwargs)
        except Terminated as exc:
            raise OpsError(f"terminated by {exc.name}: the lines above say where it stopped "
                           "and what is left to do", ExitCode.TERMINATED) from None

    return run


def confirm(ui, question: str, *, yes: bool, kind: str | None = None) -> None:
    """Ask on a terminal; without one, only ``--yes`` goes on (exit 2 otherwise).
    ``kind``: the task's audit kind (a refusal is recorded: ``cli.record_refusal``)."""
    cli.confirm(question, yes=yes, without_terminal=WITHOUT_TERMINAL, kind=kind)


WITHOUT_TERMINAL = cli.WITHOUT_TERMINAL  # one wording for every task that asks


def refuse_unasked(yes: bool, dry_run: bool = False, kind: str | None = None) -> None:
    """``confirm``'s refusal without a terminal, before the task's reads (op #9)."""
    if not dry_run:
        cli.refuse_unasked(yes, WITHOUT_TERMINAL, kind)


# ------------------------------------------------------------------ the machine, as data


def _words(value, what: str) -> tuple[str, ...] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ValueError(f"{what} is not a list of strings")
    return tuple(value)


def is_stopped(raw_machine: dict) -> bool:
    """For ``restore --production``: is this machine (machine list JSON) emergency-stopped?"""
    try:
        return fly.Machine.parse(raw_machine).in_maintenance
    except fly.ShapeError:
        return False


def started_as_wanted(machines, machine_id: str, maintenance: bool) -> str:
    """Stop's and resume's `verify` step, judged from `fly machine list` (pure): the
    machine is started and runs the maintenance command (or, after resume, its own)."""
    machine = {m.id: m for m in machines}.get(machine_id)
    if machine is None:
        raise OpsError(f"machine {machine_id} is gone from `fly machine list`",
                       ExitCode.NOT_FOUND)
    if machine.state != "started" or machine.in_maintenance != maintenance:
        runs = "the maintenance command" if machine.in_maintenance else "its own command"
        raise OpsError(f"machine {machine.id} is {machine.state} and runs {runs}")
    return f"{machine.state}, cmd {' '.join(machine.cmd or ('(image CMD)',))}"


# ------------------------------------------------------------------ what stop changes


@dataclass(frozen=True)
class Original:
    """What the machine ran before the stop: resume restores exactly this."""

    cmd: tuple[str, ...] | None  # None: the image's own CMD
    autostop: str | None  # None: stop left autostop alone

    def as_data(self) -> dict:
        return {"cmd": list(self.cmd) if self.cmd else None, "autostop": self.autostop}

    def as_json(self) -> str:
        return json.dumps(self.as_data(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_data(cls, data) -> Original:
        """From the marker on the volume or the audit log: checked, it came from outside."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        cmd = _words(data.get("cmd"), "cmd")
        autostop = data.get("autostop")
        if autostop is not None and autostop not in ("stop", "suspend"):
            raise ValueError(f"autostop {autostop!r}")
        if cmd == MAINTENANCE_CMD:
            raise ValueError("the recorded command is the maintenance command itself")
        return cls(cmd, autostop)

    def command_flag(self) -> str:
        """``--command`` for resume: the old CMD, or "" (flyctl then clears the override)."""
        return shlex.join(self.cmd) if self.cmd else ""

    def describe(self) -> str:
        what = shlex.join(self.cmd) if self.cmd else "the image's CMD"
        return what + (f", autostop {self.autostop}" if self.autostop else "")


def original_of(machine: fly.Machine) -> Original:
    """What to record before the stop, or a refusal when stop could not be undone exactly."""
    if machine.exec:
        raise OpsError(f"machine {machine.id} runs init.exec {shlex.join(machine.exec)}, which "
                       "overrides any command: emergency.stop cannot replace it; stop the "
                       "app's writes by hand", ExitCode.USAGE)
    words = set(machine.autostops) - {None, "off"}
    if not words:
        return Original(machine.cmd or None, None)
    if len(words) == 1 and all(word not in (None, "off") for word in machine.autostops):
        return Original(machine.cmd or None, words.pop())
    raise OpsError(f"the services of {machine.id} autostop differently "
                   f"({', '.join(str(w) for w in machine.autostops)}): one --autostop value "
                   "cannot put them back; set them alike first", ExitCode.USAGE)


# ------------------------------------------------------------------ plans


def ssh_shown(app: str, machine: str, what: str) -> tuple[str, ...]:
    return tuple(fly.ssh_console(app, machine, f"<script: {what}>"))


def ssh_by_hand(app: str, machine: str, script: str) -> tuple[str, ...]:
    """The exact ssh command to run by hand (the plan shows the script by its purpose)."""
    return (shlex.join(["fly", *fly.ssh_console(app, machine, remote.wrap(script))]),)


def plan_resolve(app: str) -> list[Step]:
    """What every run reads first, for real also in a dry run: flyctl's version, then the
    app's volumes and machines (which machine is production)."""
    return [Step("resolve", f"resolve production machine of {app}",
                 commands=(tuple(fly.version()), tuple(fly.volumes_list(app)),
                           tuple(fly.machines_list(app))), reads_only=True)]


def plan_recorded(app: str, machine: fly.Machine, marker: str) -> list[Step]:
    """Resume reads what the stop recorded on the volume (ssh reaches a started machine
    only), beside its metadata (which wins where they differ); the audit log is the last
    place (``commands.emergency._recorded``)."""
    return [Step("recorded", f"read what {machine.id} ran before the stop ({marker})",
                 commands=(ssh_shown(app, machine.id, f"read {marker}"),), reads_only=True,
                 skipped="" if machine.state == "started" else "the machine is not started")]


def plan_stop(app: str, machine: fly.Machine, original: Original, marker: str,
              db: str, write: str = "") -> list[Step]:
    """The intent is recorded in the update itself: the machine's metadata, written by the
    same API call that replaces its command, so a stop killed at any point still tells
    resume what the machine ran. Writes stop first (an emergency), and the record on the
    volume follows (ssh reaches a machine only once it is started). ``write`` is the
    marker script (its by-hand line)."""
    return [
        Step("update", f"run `{shlex.join(MAINTENANCE_CMD)}` instead of the app on "
             f"{machine.id} (was: {original.describe()}; kept in its metadata)",
             commands=(tuple(fly.machine_update(
                 app, machine.id, command=shlex.join(MAINTENANCE_CMD),
                 autostop="off" if original.autostop else None, skip_health_checks=True,
                 metadata={ORIGINAL_META: original.as_json()})),)),
        Step("record", f"record what it ran in {marker}",
             commands=(ssh_shown(app, machine.id, f"write {marker}"),),
             by_hand=ssh_by_hand(app, machine.id, write) if write else ()),
        Step("verify", f"{machine.id} is started and runs the maintenance command",
             commands=(tuple(fly.machines_list(app)),), reads_only=True),
        Step("quiet", f"no process has {db} open",
             commands=(ssh_shown(app, machine.id, f"look for open handles on {db}"),),
             reads_only=True, by_hand=ssh_by_hand(app, machine.id, open_handles_script(db))),
    ]


def plan_resume(app: str, machine: fly.Machine, original: Original, marker: str,
                health_url: str) -> list[Step]:
    return [
        Step("update", f"run the app again on {machine.id} ({original.describe()}), "
             "waiting for its health checks",
             commands=(tuple(fly.machine_update(app, machine.id,
                                                command=original.command_flag(),
                                                autostop=original.autostop,
                                                metadata={ORIGINAL_META: ""})),)),
        Step("verify", f"{machine.id} is started and no longer runs the maintenance command",
             commands=(tuple(fly.machines_list(app)),), reads_only=True),
        Step("clear", f"remove {marker}",
             commands=(ssh_shown(app, machine.id, f"remove {marker}"),),
             by_hand=ssh_by_hand(app, machine.id, clear_marker_script(marker))),
        Step("health", f"poll {health_url} until 200", reads_only=True,
             by_hand=(health.by_hand(health_url),)),
    ]


def plan_data(steps: list[Step]) -> list[dict]:
    """The plan for ``--json``: runbook's shape, plus the keys these plans always had:
    ``argv`` (the step's flyctl command, [] when none) and ``changes``."""
    return [{**data, "argv": data["commands"][0] if data["commands"] else [],
             "changes": not step.reads_only}
            for step, data in zip(steps, runbook.plan_as_data(steps), strict=True)]


# ------------------------------------------------------------------ scripts on the machine


def write_marker_script(path: str, record: dict) -> str:
    """Write a fresh ``mktemp`` file beside the marker, then rename it over the marker:
    never through a name someone planted (a symlink at a fixed temporary name would
    truncate what it points to, the database included)."""
    q = shlex.quote(path)
    tmp = shlex.quote(f"{path.rsplit('/', 1)[0]}/.ops-emergency.XXXXXX")
    return (f"t=$(mktemp {tmp}) || exit 1\n"
            f"printf '%s\\n' {shlex.quote(json.dumps(record, sort_keys=True))} > \"$t\" "
            f"&& mv -f \"$t\" {q} || {{ rm -f \"$t\"; exit 1; }}")


def read_marker_script(path: str) -> str:
    q = shlex.quote(path)
    return f"[ -f {q} ] || exit 3\nprintf '{MARK} '\nhead -c 65536 {q}\necho"


def clear_marker_script(path: str) -> str:
    return f"rm -f {shlex.quote(path)}"


def open_handles_script(db: str) -> str:
    """How many file handles point at the database, its -wal or -shm (plain sh + ls)."""
    pattern = " -> " + re.sub(r"([.+])", r"\\\1", db) + "(-wal|-shm)?$"
    return (f"n=$(ls -l /proc/[0-9]*/fd 2>/dev/null | grep -cE {shlex.quote(pattern)})\n"
            f"printf '{remote.ENTRY_MARK} open %s\\n' \"${{n:-0}}\"")


def open_handles(output: remote.RemoteOutput) -> int | None:
    """The count ``open_handles_script`` printed (ASCII digits: ``ops.digits``), or None."""
    return next((int(e[1]) for e in output.entries
                 if e[:1] == ["open"] and len(e) == 2 and digits.is_whole(e[1])), None)


def parse_marker(stdout: str) -> dict | None:
    for line in text_lines(stdout):
        if line.startswith(MARK + " "):
            try:
                data = json.loads(line[len(MARK) + 1:])
            except (ValueError, RecursionError):  # a planted `[[[[...` marker
                return None
            return data if isinstance(data, dict) else None
    return None


def wait_healthy(url: str, timeout: float, interval: float) -> str:
    result = health.wait_healthy(url, expected_backup=None, timeout=timeout, interval=interval)
    return f"200 after {result['polls']} poll(s)"
