"""One way to run a mutating task: the plan is the program.

A flow (deploy, rollback, restore, drill, emergency.stop/resume, restore.volume) is a
pure function that returns its ``Step`` list; one ``Runner`` runs any such list. The
runner gives each step its line and timing, records it, maps a failure to the step's
exit code, turns SIGTERM/SIGHUP/Ctrl-C into an honest record, prints what is left to do
by hand, appends the audit line and keeps secrets out of every line it writes.

``--dry-run`` is the same runner with ``dry_run=True``: it runs only the steps that
``reads_only`` (a preflight learns the machine's id that way), then the read-only first
part of a step that ``reads_first`` (a restore on a host: its verify), and shows the rest, with
every ``<placeholder>`` the run has learnt filled in, so what a dry run prints is what
the run does. Values learnt during a run go into ``Runner.values`` (``runner.learn``).
"""

from __future__ import annotations

import datetime as dt
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ops import audit, fly, signals, ui
from ops.engine import EngineError
from ops.errors import ExitCode, OpsError
from ops.signals import Terminated

Argv = tuple[str, ...]
REDACTED = fly.REDACTED  # what a secret becomes in every line written


@dataclass(frozen=True)
class Done:
    """What an action may return instead of a detail: the step's line changes its label
    too (``snapshot`` → ``snapshot scheduled``)."""

    label: str
    detail: str = ""
    record: str | None = None  # what the record says, when not the detail (it is in the label)
    warning: bool = False  # the step ran, but what it found would stop a real run (`!`, not ✓)
    failed: bool = False  # it did not do what it says (✗, recorded as failed), yet the run goes on
    then: tuple[Step, ...] | None = None  # what it found changes the rest of the plan: these
    # steps replace the ones after it (restore: a corrupt live database found by the safety
    # backup is moved aside instead)


@dataclass(frozen=True)
class Step:
    """One step of a plan: what it does, the commands it runs, how it fails.

    ``abort`` is the exit code a failure maps to (None: the error's own code); the codes in
    ``keeps`` always stay the error's own (a held lock is 4 wherever it was met).
    ``by_hand`` is what an operator runs when the run stops at or before this step
    (default: its commands, whole)."""

    key: str
    title: str
    action: Callable[[], str | Done | None] | None = field(default=None, compare=False,
                                                          repr=False)
    commands: tuple[Argv, ...] = ()
    reads_only: bool = False
    abort: ExitCode | None = None
    keeps: frozenset[ExitCode] = frozenset({ExitCode.LOCKED})
    by_hand: tuple[str, ...] = ()
    skipped: str = ""  # why it does not run (shown and recorded); its action is not called
    running: str = ""  # its line while it runs, when shorter than the plan's title
    rerun: bool = False  # stopping here leaves nothing half done: no by-hand lines, run again
    # the three below are for flows with work between their plan's steps (restore):
    shown: bool = True  # False: the runner draws no line (its action draws its own, or it
    # only checks a precondition); it is still timed, and recorded unless ``recorded`` is False
    recorded: bool = True  # False: no entry in the record's steps (not a step of the plan)
    pause: bool = False  # the operator's answer (a confirmation): no line, no record entry,
    # and the time it takes is not the run's (``Runner.paused``)
    not_run: tuple[str, ...] = ()  # by hand when a step before it stopped the run (it never
    # started), if that differs from ``by_hand`` (the data guard: "it did not run")
    reads_first: str = ""  # it changes things, but it starts by reading (a restore on a
    # host verifies its backup first): a dry run runs that read-only part (the action the
    # dry run binds), under this line, and stops after it

    @property
    def line(self) -> str:
        return self.running or self.title

    def filled(self, values: dict[str, str]) -> Step:
        """This step with the ``<name>`` placeholders the run has learnt put in."""
        if not values:
            return self
        return replace(self, title=fill(self.title, values), running=fill(self.running, values),
                       commands=tuple(tuple(fill(w, values) for w in argv)
                                      for argv in self.commands),
                       by_hand=tuple(fill(line, values) for line in self.by_hand),
                       not_run=tuple(fill(line, values) for line in self.not_run))


def bind(steps: list[Step], actions: dict[str, Callable[[], str | Done | None]]) -> list[Step]:
    """``steps`` (a pure plan) with the actions that do them, by key: the plan stays data
    that tests and ``--dry-run`` read, the command module says how each step is done."""
    return [replace(step, action=actions[step.key]) if step.key in actions else step
            for step in steps]


def fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        if value:
            text = text.replace(f"<{name}>", value)
    return text


def scrub(value, secrets: list[str]):
    """``value`` (text, or a record of them) with each secret of 4+ characters replaced.

    Secrets are scrubbed where they sit in argv whatever their length (``fly.redact_argv``);
    in free text a shorter one would only garble the words around it.
    """
    secrets = [s for s in set(secrets) if s and len(s) >= 4]
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    return value


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first_line(value) -> str:
    lines = ui.text_lines(value)
    return lines[0] if lines else ""


# ------------------------------------------------------------------ showing a plan


def shown_commands(step: Step, binary: str = "fly") -> list[str]:
    """The step's commands as an operator would type them (flyctl argv get the binary)."""
    return [shlex.join([binary, *argv]) for argv in step.commands]


# Every flow's dry-run header says this (restore, deploy, emergency.*, restore.volume,
# deploy.undo, drill): a dry run runs its reading steps, so "nothing runs" was false
# right under their ✓ lines (review-op s20 #5)
DRY_RUN = "dry run: only the reading steps ran, nothing was changed"


def dry_run_title(title: str, dry_run: bool = True, also: str = "") -> str:
    """``title`` with the one dry-run note when ``dry_run`` (and ``also``, what a run
    would do besides), and the colon a plan has."""
    return f"{title} ({DRY_RUN}{'; ' + also if also else ''}):" if dry_run else f"{title}:"


def render(title: str, steps: list[Step], binary: str = "fly",
           width: int | None = None) -> list[str]:
    """The plan as plain lines: every command whole, copyable from a log; within ``width``
    (a terminal) prose wraps between words and a command between arguments with `` \\``."""
    lines = ui.wrapped(title, width)
    for number, step in enumerate(steps, 1):
        what = step.title + (f" (skipped: {step.skipped})" if step.skipped else "")
        lines += ui.wrapped(f"  {number}. {step.key}: {what}", width, indent="     ")
        for argv in step.commands:
            command = ui.command_lines([binary, *argv], width, indent=" " * 9)
            lines += [f"       $ {command[0][9:]}", *command[1:]]
    return lines


def plan_as_data(steps: list[Step], binary: str = "fly") -> list[dict]:
    """The plan for ``--json``: what each step does and the exact commands it runs."""
    return [{"key": s.key, "title": s.title, "commands": [list(a) for a in s.commands],
             "reads_only": s.reads_only, "skipped": s.skipped or None} for s in steps]


SCRIPT_SHOWN = "<script: "  # how a plan shows a machine script by its purpose


def by_hand_lines(steps: list[Step], binary: str = "fly") -> list[str]:
    """What is left to do by hand, from the step that stopped on: each command whole."""
    lines = []
    for at, step in enumerate(steps):
        if step.skipped:
            continue
        todo = list(step.not_run if at and step.not_run else step.by_hand) or \
            shown_commands(step, binary)
        if any(SCRIPT_SHOWN in line for line in todo):  # a script named by its purpose
            todo = []  # cannot be pasted: say what the step does instead
        if todo:  # the step's key as a label, unless the line has its own comment
            lines += [f"  {line}" if " # " in line else f"  {line}   # {step.key}"
                      for line in todo]
        else:
            lines.append(f"  # {step.key}: {step.title}")
    return lines


# ------------------------------------------------------------------ running a plan


@dataclass
class Runner:
    """Runs a plan step by step: one line per step, one record, one audit line.

    ``message(step, text)`` words a failure (deploy says "aborted before `fly deploy`");
    ``on_stop(exc, step)`` lets the flow add what it knows when the run stops (restore
    reads what the live database holds); ``on_failure()`` runs whenever a run that is not a
    dry run ends other than ok (a failure, a signal, a crash), after the by-hand lines and
    before the audit line, so what it adds to the record (restore.volume's go-back) is
    written; ``secrets()`` are kept out of every line."""

    kind: str
    ui: object
    audit_log: Path | None
    binary: str = "fly"
    record: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    secrets: Callable[[], list[str]] = fly.env_tokens  # every flow: the flyctl tokens at least
    message: Callable[[Step, str], str] | None = None
    on_stop: Callable[[BaseException, Step | None], None] | None = None
    on_failure: Callable[[], None] | None = None
    by_hand_title: str = "To finish by hand, run from the failed step on:"
    audit_first: bool = True  # refuse an unwritable audit log before the first step
    closing: Step | None = None  # runs however the run ends (not in a dry run), before the
    # audit line: a signal there is recorded; its action reports a failure as Done(failed=True)
    # additive hooks for a flow whose record others read as it is (restore's):
    outcome_words: Callable[[str, Step | None], str] | None = None  # how the record words a
    # failed step ("failed") or a signal ("terminated by SIGTERM", "interrupted"); default:
    # "KEY failed", "... during KEY"
    error_key: str = "detail"  # the field a failed step's reason is recorded in
    end_to_end: bool = False  # `seconds`: the run's wall time less its pauses, recorded only
    # when it ends ok (restore, issue 20 #7); default: the sum of its steps' times, always
    step_by_hand: bool = True  # False: the flow says what is left by hand itself (on_failure)
    paused: float = 0.0  # seconds spent in pauses (waiting for the operator's answer)

    def __post_init__(self):
        """Every line the run's UI prints hides the secrets too, a nested step's included
        (its reason is the raw error): on top of whatever the UI hid already."""
        if hasattr(self.ui, "redact"):
            before = self.ui.redact
            self.ui.redact = lambda text: scrub(before(text), self.secrets())

    def start(self, **fields) -> dict:
        self.record = {"kind": self.kind, "who": audit.who(), "when": now(), "steps": [],
                       "outcome": "running", "exit_code": 0, **fields}
        return self.record

    def learn(self, **values: str) -> None:
        """Values the run found out (a machine id): they fill the later steps' placeholders."""
        self.values.update({k: v for k, v in values.items() if v})

    def run(self, steps: list[Step], *, dry_run: bool = False) -> dict:
        """Run ``steps`` (in a dry run only those that read) and return the record; the
        audit line is appended whatever happens, except in a dry run."""
        if not self.record:
            self.start()
        self.check_audit_log(dry_run=dry_run)
        done, started = 0, time.monotonic()
        steps = list(steps)  # a step's Done(then=...) replaces the rest
        try:
            while done < len(steps):
                step = steps[done]
                if dry_run and not (step.reads_only or step.reads_first):
                    break
                if dry_run and step.reads_first:
                    step = replace(step, running=step.reads_first)
                then = self._run_step(step.filled(self.values))
                done += 1
                if dry_run and step.reads_first:
                    break
                if then is not None:
                    steps[done:] = then
            self.record["outcome"] = "dry run" if dry_run else "ok"
            return self.record
        except (KeyboardInterrupt, Terminated) as exc:  # Ctrl-C, SIGTERM, SIGHUP
            signals.unwinding()  # a SIGTERM after this Ctrl-C must not change how we exit
            step = steps[done].filled(self.values) if done < len(steps) else None
            self._stopped(exc, step)
            if not dry_run:
                self._show_by_hand(steps[done:])
            raise
        except OpsError:
            if not dry_run:
                self._show_by_hand(steps[done:])
            raise
        finally:
            if self.record["outcome"] == "running":  # whatever ended the run, say so
                self.record.update(outcome="crashed", exit_code=int(ExitCode.ERROR))
            self.record["finished"] = now()
            try:
                if not dry_run and self.closing is not None:
                    self._close(self.closing.filled(self.values))
            finally:
                self._timed(time.monotonic() - started)
                if not dry_run and self.record["outcome"] != "ok" and self.on_failure:
                    self.on_failure()
                if not dry_run:
                    self._append()

    def _timed(self, elapsed: float) -> None:
        if not self.end_to_end:
            self.record["seconds"] = round(sum(s["seconds"] for s in self.record["steps"]), 3)
        elif self.record["outcome"] == "ok":
            self.record["seconds"] = round(elapsed - self.paused, 3)

    def _close(self, step: Step) -> None:
        """The closing step (a lock's release): a signal during it is what the record and
        the by-hand lines say, whatever the run's outcome was before."""
        try:
            self._run_step(step)
        except (KeyboardInterrupt, Terminated) as exc:
            signals.unwinding()
            self._stopped(exc, step)
            self._show_by_hand([step])
            raise

    def check_audit_log(self, *, dry_run: bool = False) -> None:
        """Like deploy and restore: nothing changes when its audit line cannot be written
        (a flow calls this first, before its reads; ``run`` checks again). A dry run
        checks it too, creating nothing: it fails where the run would refuse."""
        if self.audit_log is None or not self.audit_first:
            return
        try:
            audit.check_writable(self.audit_log, create=not dry_run)
        except OSError as exc:
            self.record["outcome"] = "not started"
            raise OpsError(f"cannot write the audit log {self.audit_log} (deploy.audit_log): "
                           f"{exc.strerror}; nothing was changed", ExitCode.USAGE) from None

    def _run_step(self, step: Step) -> tuple[Step, ...] | None:
        """Run one step; what it returns: the steps that replace the rest (``Done.then``)."""
        if step.skipped:
            self.ui.skipped(step.line, step.skipped)
            self._log(step, "skipped", 0.0, step.skipped)
            return None
        if step.pause or not step.shown:
            return self._run_unshown(step)
        shown, recorded, then = None, None, None
        try:
            with self.ui.step(step.line) as shown:
                try:
                    result = step.action() if step.action else None
                except Exception as exc:  # its line shows why, without a secret
                    shown.reason = self._scrub(first_line(self._text(exc)))
                    raise
                if isinstance(result, Done):
                    then = result.then
                    shown.label, shown.detail = result.label, self._scrub(result.detail)
                    if result.warning:
                        shown.outcome = "warning"
                    if result.failed:
                        shown.outcome = "failed"
                    if result.record is not None:
                        recorded = self._scrub(result.record)
                else:
                    shown.detail = self._scrub(result or "")
        except (KeyboardInterrupt, Terminated):
            self._log(step, "interrupted", shown.seconds if shown else 0.0, "")
            raise
        except Exception as exc:  # noqa: BLE001 (a crash is recorded as one, then reported)
            self._failed(step, exc, shown.seconds if shown else 0.0)
        self._log(step, "failed" if shown.outcome == "failed" else "ok", shown.seconds,
                  shown.detail if recorded is None else recorded)
        return then

    def _failed(self, step: Step, exc: Exception, seconds: float):
        """A step raised: record it, then raise its error with the step's exit code."""
        text = self._scrub(self._text(exc))
        code = self.exit_code_of(step, exc)
        self._log(step, "failed", seconds, text)
        self.record.update(outcome=self._words("failed", step), exit_code=int(code), error=text)
        raise OpsError(self.message(step, text) if self.message else text, code) from None

    def _run_unshown(self, step: Step) -> tuple[Step, ...] | None:
        """A pause (the operator's answer) or a step without a line of the runner's: timed
        and recorded as any step, except that a pause is neither recorded nor counted."""
        started = time.monotonic()
        try:
            result = step.action() if step.action else None
        except (KeyboardInterrupt, Terminated):
            self._log(step, "interrupted", round(time.monotonic() - started, 3), "")
            raise
        except Exception as exc:  # noqa: BLE001 (as in a shown step)
            self._failed(step, exc, round(time.monotonic() - started, 3))
        finally:
            if step.pause:
                self.paused += time.monotonic() - started
        done = result if isinstance(result, Done) else Done("", str(result or ""))
        self._log(step, "failed" if done.failed else "ok", round(time.monotonic() - started, 3),
                  self._scrub(done.detail if done.record is None else done.record))
        return done.then

    def _words(self, what: str, step: Step | None) -> str:
        """How the record words the end: ``what`` is "failed", "terminated by SIGTERM" or
        "interrupted" (``outcome_words`` may say it otherwise)."""
        if self.outcome_words is not None:
            return self.outcome_words(what, step)
        if what == "failed":
            return f"{step.key} failed"
        return f"{what} during {step.key}" if step is not None else what

    @staticmethod
    def _text(exc: Exception) -> str:
        if isinstance(exc, OpsError | EngineError):
            return str(exc)
        return f"internal error: {type(exc).__name__}: {exc}"

    @staticmethod
    def exit_code_of(step: Step, exc: Exception) -> ExitCode:
        """The exit code ``exc`` raised by ``step`` ends a run with (a dry run that notes a
        problem instead of raising it says the same code)."""
        if isinstance(exc, EngineError):
            exc = OpsError.from_engine(exc)
        if not isinstance(exc, OpsError):
            return step.abort or ExitCode.ERROR
        if step.abort is None or exc.code in step.keeps:
            return exc.code
        return step.abort

    def _stopped(self, exc: BaseException, step: Step | None) -> None:
        term = isinstance(exc, Terminated)
        why = exc.name if term else "Ctrl-C"
        if step is not None and self.record["steps"] and \
                self.record["steps"][-1]["step"] == step.key:
            self.record["steps"][-1]["detail"] = why
        self.record.update(
            outcome=self._words(f"terminated by {why}" if term else "interrupted", step),
            exit_code=int(ExitCode.TERMINATED if term else ExitCode.INTERRUPTED))
        if self.on_stop is not None:
            self.on_stop(exc, step)

    def _show_by_hand(self, remaining: list[Step]) -> None:
        if not self.step_by_hand or remaining and remaining[0].rerun:  # nothing half done
            return
        lines = by_hand_lines([s.filled(self.values) for s in remaining], self.binary)
        if lines:
            lines = self._scrub(lines)
            self.record["manual"] = self.record.get("manual", []) + lines  # a closing step's too
            self.ui.info(self.by_hand_title)
            # each line whole, never wrapped with a bare newline: pasted, a wrapped line
            # runs its tail as a command (review-op #8); the terminal wraps it for the eye
            shown = getattr(self.ui, "lines", None)
            if shown is None:
                self.ui.info("\n".join(lines))
            else:
                shown(lines)

    def _log(self, step: Step, outcome: str, seconds: float, detail: str) -> None:
        if step.pause or not step.recorded:
            return
        entry = {"step": step.key, "outcome": outcome, "seconds": seconds,
                 self.error_key if outcome == "failed" else "detail": detail}
        if len(step.commands) == 1:
            entry["command"] = list(step.commands[0])
        elif step.commands:
            entry["commands"] = [list(argv) for argv in step.commands]
        self.record["steps"].append(self._scrub(entry))

    def _scrub(self, value):
        return scrub(value, self.secrets())

    def _append(self) -> None:
        if self.audit_log is None:
            return
        try:
            audit.append(self.audit_log, self._scrub(self.record))
        except OSError as exc:  # never hide why the run itself ended
            self.ui.warn(f"could not append to {self.audit_log}: {exc.strerror}")
