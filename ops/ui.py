"""Output: people read stderr, programs read stdout (like httpie's Environment).

One ``UI`` owns both streams. Every step prints one plain line with its outcome
and duration, so CI logs read well even where spinners print nothing; a spinner
and progress bars are added only on a terminal. Rich already honours
``NO_COLOR`` and turns colour off when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

# The one bytes formatter ("260.0 MB"): the engine's, because the engine prints sizes on the
# machine too (a full disk) and must stay stdlib-only; every line here uses the same units.
from ops.cli import pasteable  # every suggested `invoke TASK` as the operator typed invoke
from ops.engine import human_size as human_bytes  # noqa: F401 - imported from here by the tasks
from ops.text import _CONTROLS, printable, text_lines  # noqa: F401 - one escape, every line


def volume_gb(size: float) -> str:
    """A volume's size in Fly's unit (its GB, what `--size` takes, are GiB): ``3 GB`` for
    3 GiB, where ``human_bytes`` says 3.2 GB; one decimal when not a whole number."""
    gb = size / 1024**3
    return f"{gb:.0f} GB" if abs(gb - round(gb)) < 0.05 else f"{gb:.1f} GB"


def human_age(seconds: float) -> str:
    """An age or a wait as a person reads it, to the two largest units: ``45s``,
    ``1m54s``, ``2h05m``, ``3d04h`` (``2m``, ``1h``, ``2d`` when the second unit is 0).
    The same form as a duration typed in (``--max-age 1h30m``): a shown age can be pasted
    back. Never ``1.9m``, which reads as months (review-op s19 #7). Truncated, never
    rounded up: 23h59m is never ``1d`` and an age over a limit never reads as the limit
    (review-op s20 #2)."""
    if not seconds < 1e12:  # NaN or infinite (a hostile or broken time): no crash
        return "?"
    whole = int(max(seconds, 0))
    for unit, length, small, step in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                      ("m", 60, "s", 1)):
        if whole >= length:
            big, rest = divmod(whole, length)
            return f"{big}{unit}" + (f"{rest // step:02d}{small}" if rest // step else "")
    return f"{whole}s"


def over_limit(seconds: float, limit: float, limit_text: str | None = None,
               name: str = "limit") -> str:
    """``(limit 26h, 20m over)``, said after an age or lag over its limit: the limit as the
    operator typed it and how far over (at least ``1s``), so the two never read the same
    (review-op s20 #2)."""
    shown = limit_text.strip() if limit_text and limit_text.strip() else human_age(limit)
    over = max(seconds - limit, 1) if seconds < 1e12 else seconds
    return f"({name} {shown}, {human_age(over)} over)"


class _Console(Console):
    """Rich's console, but a closed stderr ends the run as a closed stdout does: Rich's
    own handler exits 1; the BrokenPipeError goes on to the task's handler instead
    (``cli.end_quietly``: exit 141, docs/exit-codes.md; review-op s19 #5)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more is written through this console
        raise BrokenPipeError(32, "Broken pipe")


def make_console() -> Console:
    """stderr console; in a log, lines never wrap and tables get room.

    A log is anything that is not a real terminal, even when it claims to be one:
    CI sets TTY_COMPATIBLE=1 for colour, and Rich then assumes 80 columns and
    would wrap every long line."""
    console = _Console(stderr=True, highlight=False)
    if not _real_terminal():
        width = None if "COLUMNS" in os.environ else 160
        console = _Console(stderr=True, highlight=False, soft_wrap=True, width=width)
    return console


def _real_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def utc_stamp(iso: str) -> str:
    """``2026-01-02T03:04:05.123Z`` as ``2026-01-02 03:04:05`` (UTC, to the second)."""
    return iso.replace("T", " ")[:19] if len(iso) >= 19 else iso


def seconds_since(iso: str, now: float) -> float | None:
    """Seconds from an RFC 3339 time (``Z`` or an offset; none: UTC) to ``now`` (epoch
    seconds); None when it is not a time (a running snapshot's zero time is one)."""
    try:
        made = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return None
    if made.tzinfo is None:
        made = made.replace(tzinfo=UTC)
    return now - made.timestamp()


def created_when(iso: str, now: float) -> str:
    """When a thing (a snapshot) was made, for a person deciding whether to restore it:
    ``2026-08-17 02:10:54 UTC, 111d old``."""
    age = seconds_since(iso, now)
    if age is None:
        return f"{iso or 'an unknown time'} (age unknown)"
    return f"{utc_stamp(iso)} UTC, {human_age(age)} old"


def human_seconds(seconds: float) -> str:
    """A step's duration as a log line shows it: 0.4s, 41s, 3m07s (from ten seconds on,
    ``human_age``'s form: one way to write every time span a person reads, ages, waits,
    lags and durations; review-op s20 #3)."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    return human_age(seconds)


def lock_waiting(which: str, lock, wait: float, holder: str) -> str:
    """The line a run prints at once when another run's lock makes it wait: which lock,
    for how long at most (as configured), and its holder (who, pid, host, since when)."""
    return f"  waiting up to {wait:g}s for the {which} lock {lock}, held by {holder}"


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (for a terminal only)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def command_lines(words, width: int | None, indent: str = "    ") -> list[str]:
    """A shell command as lines that each fit ``width`` and paste as one command: broken
    between words with `` \\`` (``None``: one line, as in a log). A single word longer
    than the room stays whole: cutting it would make the command wrong."""
    words = [shlex.quote(str(word)) for word in words]
    at = next((i for i, word in enumerate(words) if word != "env" and "=" not in word), 0)
    if words[at:at + 1] == ["invoke"] and len(words) > at + 1:  # spelled as typed, each
        # of its words one of the line's (`--config FILE` too: s28 review-break2 #5)
        words[at:] = [shlex.quote(word) for word in shlex.split(pasteable(" ".join(words[at:])))]
    if width is None:
        return [indent + " ".join(words)]
    lines, line = [], ""
    for word in words:
        if line and len(indent) + len(line) + 1 + len(word) + 2 > width:
            lines.append(f"{indent}{line} \\")
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [indent + line]


def terminal_width() -> int:
    """Columns of the terminal on stderr (80 when it cannot be told)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def wrapped(text: str, width: int | None, indent: str = "") -> list[str]:
    """Prose as lines within ``width``, broken between words (``None``: one line, as in a
    log); lines after the first start with ``indent``. A word longer than the room stays
    whole rather than be cut. Every suggested ``invoke TASK`` is spelled as the operator
    typed invoke (``cli.pasteable``) first: laid out before, a line grew past ``width``."""
    text = pasteable(text)
    if width is None or len(text) <= width:
        return [text]
    lead = text[: len(text) - len(text.lstrip())]
    # a `command` is one word here: broken, a pasted half ran on its own (review-op s25 #1);
    # not when a stray backtick (in a name, say) would pair the wrong ones
    kept = text.lstrip() if text.count("`") % 2 else BACKTICKED.sub(
        lambda m: m[0].replace(" ", KEPT_SPACE), text.lstrip())
    return [line.replace(KEPT_SPACE, " ") for line in textwrap.wrap(
        kept, width, initial_indent=lead, subsequent_indent=indent or lead,
        break_long_words=False, break_on_hyphens=False)] or [text]


BACKTICKED = re.compile(r"`[^`\n]+`")
KEPT_SPACE = "\x00"  # a space inside a `command`, where textwrap may not break


def broken(line: str, width: int | None, depth: int = 0) -> str:
    """A step's line within ``width``: broken between words onto lines indented under its
    label, never cut inside an id, a path or a date (a single word wider than the whole
    line is the only thing cut); ``None`` (a log): as it is."""
    if width is None:
        return line
    lines = wrapped(line, width, indent="  " * depth + "    ")
    return "\n".join(fit(one, width) for one in lines)


EMITTED = [0]  # JSON documents written on stdout in this process (ops.cli.guarded reads it)

SPINNER_AFTER = 2.0  # seconds before a spinner shows the time so far
STILL_RUNNING = (10.0, 30.0, 60.0)  # when a log says a step is still running; then each minute
MARKS = {"ok": ("✓", "green"), "failed": ("✗", "red"), "skipped": ("-", "yellow"),
         "interrupted": ("✗", "red"), "warning": ("!", "yellow")}


@dataclass
class Step:
    label: str
    detail: str = ""
    seconds: float = 0.0
    outcome: str = "running"
    depth: int = 0  # nested inside another step: its line is indented under its parent's
    reason: str = ""  # why it failed, shown on its line (default: the exception's first line)
    opened: bool = field(default=False, repr=False)  # its "▸" line was printed
    # what it failed by: a parent failing by the same error says it once (``UI.step``)
    error: BaseException | None = field(default=None, repr=False, compare=False)


class UI:
    def __init__(self, *, err: Console | None = None, out=None):
        self.err = err or make_console()
        self.out = out or sys.stdout
        self.steps: list[Step] = []
        self._open: list[Step] = []  # the steps running now, outermost first
        self._spinner = None  # Rich allows one live display at a time: the outermost step's
        self._spinner_text = ""  # what the spinner says, before the elapsed time
        self.redact = lambda text: text  # a deploy hides its tokens from every line

    def shown(self, text: str) -> str:
        """Text as every line prints it: tokens redacted, control characters escaped."""
        return printable(pasteable(self.redact(text)))

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and self.err.is_interactive

    @property
    def width(self) -> int | None:
        """Columns a line must fit in; None in a log, where lines never wrap or get cut."""
        return None if self.err.soft_wrap else self.err.width

    # -- lines for people (stderr)
    def info(self, message: str) -> None:
        self._open_parents()
        if self.width is not None and "\n" not in message:
            # between words, a `command` kept whole (pasted, a half ran on its own: s27
            # review-op2 #2), an indented line (a wait under its step, a plan's note) under
            # its own indent, not at column 0 (review-op s20 #7)
            for line in wrapped(self.shown(message), self.width):
                # a word or `command` wider than the line stays whole, as warn's: Rich broke
                # it at a space, a real newline (s27 review-break4 #2)
                self.err.print(Text(line), soft_wrap=True)
            return
        self.err.print(escape(self.shown(message)))

    def warn(self, message: str) -> None:
        self._open_parents()
        if self.width is None or "\n" in message:
            self.err.print(f"[bold yellow]WARNING:[/] {escape(self.shown(message))}")
            return
        # laid out here, as an Error line is: rich broke a `command` across lines (s25 op3 #1)
        for at, line in enumerate(wrapped(f"WARNING: {self.shown(message)}", self.width)):
            text = Text(line)
            if not at:
                text.stylize("bold yellow", 0, len("WARNING:"))
            self.err.print(text, soft_wrap=True)  # a command wider than the line stays whole

    def lines(self, lines: list[str]) -> None:
        """Plain lines that were laid out for ``width`` already (summaries, plans)."""
        for line in lines:
            self.err.print(Text(self.shown(line)), soft_wrap=True)

    @contextlib.contextmanager
    def step(self, label: str):
        """Run one step: a spinner on a terminal, and always one line when it ends.

        A step that runs steps of its own first prints ``▸ label`` (when the first of
        them starts), so a child's line never comes before its parent's."""
        self._open_parents()
        step = Step(label, depth=len(self._open))
        first_child = len(self.steps) + 1
        self.steps.append(step)
        self._open.append(step)
        started = time.monotonic()
        own_spinner = self.interactive and self._spinner is None
        if own_spinner:
            self._spinner_text = self.shown(label)
            self._spinner = self.err.status(escape(self._spinner_text))
            self._spinner.start()
        ended = threading.Event()
        threading.Thread(target=self._heartbeat, args=(step, started, ended, own_spinner),
                         daemon=True, name="ops-heartbeat").start()
        try:
            yield step
        except BaseException as exc:
            step.outcome = "failed" if isinstance(exc, Exception) else "interrupted"
            step.error = exc
            # a step of its own failed by it and said why in these words (as shown: a secret
            # hidden in both): said once; a parent's other words stay
            said = {self.shown(child.reason) for child in self.steps[first_child:]
                    if child.error is exc}
            if said and self.shown(step.reason) in said | {""}:
                step.reason = ""
            elif not step.reason:
                step.reason = stopped_by(exc) or _first_line(exc) or type(exc).__name__
            raise
        else:
            step.outcome = "ok" if step.outcome == "running" else step.outcome
        finally:
            ended.set()
            self._open.pop()
            if own_spinner:
                self._spinner.stop()
                self._spinner = None
            step.seconds = round(time.monotonic() - started, 3)
            self._print_step(step)

    def _heartbeat(self, step: Step, started: float, ended: threading.Event,
                   own_spinner: bool) -> None:
        """No long silence (issue 20 #9): past ``SPINNER_AFTER`` s a terminal's spinner
        shows the time so far, and a log gets a "still running" line at each of
        ``STILL_RUNNING`` s (then every minute) while this is the innermost step."""
        marks = iter(STILL_RUNNING)
        next_line = next(marks)
        while not ended.wait(1.0 if own_spinner else 0.25):
            elapsed = time.monotonic() - started
            if own_spinner and elapsed >= SPINNER_AFTER and self._spinner is not None:
                self._spinner.update(escape(f"{self._spinner_text}  "
                                            f"({human_seconds(round(elapsed))})"))
            if not self.interactive and elapsed >= next_line and \
                    self._open and self._open[-1] is step:
                self.err.print(escape(fit("  " * step.depth + f"… {self.shown(step.label)}: "
                                          f"still running ({human_seconds(round(elapsed))})",
                                          self.width or 10**6)), soft_wrap=True)
                next_line = next(marks, next_line + 60)

    def waiting(self, message: str) -> None:
        """Why the running step has not finished yet: one plain line (call it when the
        reason changes, not on every poll), also on a terminal, where the step's live line
        may be a progress display that has none (a backup waiting for the lock showed a
        blank screen) and is gone once Ctrl-C ends it; the spinner says it as well."""
        if self._spinner is not None:
            self._spinner_text = self.shown(message.strip())
            self._spinner.update(escape(self._spinner_text))
        self.info(message)

    def skipped(self, label: str, reason: str) -> None:
        self._open_parents()
        step = Step(label, reason, 0.0, "skipped", len(self._open))
        self.steps.append(step)
        self._print_step(step)

    def _open_parents(self) -> None:
        """Print ``▸ label`` for each running step that has not said it started."""
        for step in self._open:
            if not step.opened:
                step.opened = True  # broken between words as a step's line is, never
                line = broken("  " * step.depth + "▸ " + self.shown(step.label),  # cut in
                              self.width, step.depth)  # a date (review-op 11)
                self.err.print(f"[bold]{escape(line)}[/]", soft_wrap=True)

    def step_line(self, step: Step) -> str:
        """A finished step as one line: ``✓ label  detail (1.2s)``, its reason when it
        failed. On a terminal it fits the width: the detail's last parts (separated by two
        spaces, most important first) give way, and what must stay is broken between words
        onto indented lines; in a log nothing is cut or broken."""
        mark = MARKS.get(step.outcome, ("•", ""))[0]
        head = "  " * step.depth + f"{mark} {self.shown(step.label)}"
        tail = f" ({human_seconds(step.seconds)})" if step.outcome != "skipped" else ""
        detail, why = step.detail, ""
        if step.outcome in ("failed", "interrupted"):
            joint = " " if step.reason.startswith("by ") else ": "  # "interrupted by Ctrl-C"
            why = joint.join(filter(None, (step.outcome, step.reason)))
            detail = "  ".join(filter(None, (detail, why)))
        elif step.outcome == "skipped":
            detail = f"skipped: {detail}" if detail else "skipped"
        detail, why = self.shown(detail), self.shown(why)
        line = f"{head}  {detail}{tail}" if detail else head + tail
        width = self.width
        if width is None or len(line) <= width:
            return line
        if why:  # why it failed never gives way: the detail goes first, whole, leaving "…"
            line = f"{head}  {'…  ' if step.detail else ''}{why}{tail}"
            return line if len(line) <= width else broken(line, width, step.depth)
        parts = detail.split("  ")  # most important first: drop whole parts from the end
        while len(parts) > 1:
            parts.pop()
            shorter = f"{head}  {'  '.join(parts)} …{tail}"
            if len(shorter) <= width:
                return shorter
        # what is left is the most important part: broken between words onto lines
        # indented under the label, never cut inside an id, a path or a date (a single word
        # wider than the whole line is the only thing cut)
        return broken(f"{head}  {parts[0]}{tail}" if parts[0] else head + tail, width,
                      step.depth)

    def _print_step(self, step: Step) -> None:
        line = self.step_line(step)
        mark, colour = MARKS.get(step.outcome, ("•", ""))
        indent = "  " * step.depth
        rest = line[len(indent) + len(mark):]
        if colour:
            self.err.print(f"{indent}[{colour}]{mark}[/]{escape(rest)}", soft_wrap=True)
        else:
            self.err.print(escape(line), soft_wrap=True)

    def steps_table(self, title: str = "Steps") -> None:
        table = Table()
        # the step column at least as wide as its longest word: a backup's name there stays
        # whole (it was cut to "steps-2026-12-08T00-59-25.…" at 80 columns: s27 review-op
        # #4). A width, not a min_width: Rich applies that after fitting the table, one
        # column too wide for the terminal, which then cut its right border (s27 break3 #2)
        labels = [self.shown("  " * step.depth + step.label) for step in self.steps]
        widest = max((len(word) for label in labels for word in label.split()), default=0)
        longest = max((len(label) for label in labels), default=0)
        width = max(widest, min(longest, (self.width or self.err.width) * 2 // 5))
        for column in ("step", "outcome", "seconds", "detail"):
            table.add_column(column, justify="right" if column == "seconds" else "left",
                             width=width if column == "step" else None, overflow="fold")
        for step in self.steps:
            label = "  " * step.depth + step.label
            table.add_row(escape(self.shown(label)), step.outcome, f"{step.seconds:.1f}",
                          escape(self.shown(step.detail)))
        self._print_table(title, table)

    def table(self, title: str, columns: list[str], rows: list[list[str]],
              whole: tuple[int, ...] = (0,)) -> None:
        """``whole``: the columns that are never wrapped or cut (names must stay copyable,
        dates readable): the others give way at 80 columns."""
        table = Table(pad_edge=False)
        room = (self.width or self.err.width) // 2  # a whole column leaves the others half
        for index, column in enumerate(columns):
            longest = max((len(self.shown(str(row[index]))) for row in rows), default=0)
            # one wider than that is folded: kept whole, the other columns vanished (a
            # 76-character table name at 80 columns: s27 review-break4 #4)
            kept = index in whole and max(longest, len(column)) <= room
            table.add_column(column, no_wrap=kept,
                             width=max(longest, len(column)) if kept else None,
                             overflow="fold" if index in whole else "ellipsis")
        for row in rows:
            table.add_row(*[escape(self.shown(str(cell))) for cell in row])
        self._print_table(title, table)

    def _print_table(self, title: str, table: Table) -> None:
        """The title as a line of its own, printed as ``info`` prints: in a log never
        wrapped (within the table it wrapped to the table's width)."""
        self.err.print(escape(self.shown(title)), style="table.title")
        self.err.print(table)

    @contextlib.contextmanager
    def transfer(self, label: str, total: int):
        """A byte progress bar on a terminal; a callback ``update(done, total=None)`` either way."""
        if not self.interactive:
            yield lambda done, total=None: None
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
        )
        if self._spinner:
            self._spinner.stop()  # the bar replaces the spinner while it runs
        try:
            with progress:
                task = progress.add_task(escape(self.shown(label)), total=total or None)
                yield lambda done, total=None: progress.update(
                    task, completed=done, **({"total": total} if total else {}))
        finally:
            if self._spinner:
                self._spinner.start()

    # -- data for programs (stdout)
    def emit(self, data) -> None:
        EMITTED[0] += 1
        self.out.write(json.dumps(data, indent=2, default=str) + "\n")
        self.out.flush()


def stopped_by(exc: BaseException) -> str:
    """What stopped a step, in words (``by Ctrl-C``, ``by SIGTERM``): never Python's
    exception name; empty for a failure."""
    if isinstance(exc, KeyboardInterrupt):
        return "by Ctrl-C"
    name = getattr(exc, "name", None)
    return f"by {name}" if not isinstance(exc, Exception) and isinstance(name, str) else ""


def _first_line(exc: BaseException) -> str:
    lines = text_lines(exc)
    return lines[0] if lines else ""


# -- the phases of one local backup (issue 9 #3): copy, then fsync, check, sha256, content


PHASE_LABELS = {"content": "row counts + content hash", "counts": "row counts"}


class BackupPhases:
    """Follows ``engine.create_backup``'s phases: one bar per phase on a terminal
    (progress where the phase has it, elapsed time where not), and on any output a
    line when Ctrl-C stops the backup. The bars replace the step's spinner only once a
    phase is reported: a machine or host that reports none keeps the spinner and its
    elapsed time (else a 40 s backup over SSH was a blank terminal)."""

    def __init__(self, ui: UI, progress: Progress | None):
        self.ui = ui
        self.progress = progress
        self.tasks: dict[str, int] = {}
        self.shown = False  # the bars are on screen, the spinner paused

    def copy(self, done: int, total: int | None = None) -> None:
        self.phase("copy", done, total)

    @contextlib.contextmanager
    def transfer(self, label: str, total: int):
        """``Reporter.transfer``'s shape, so a target reports the copy like any transfer."""
        yield self.copy

    def phase(self, name: str, done: int | None = None, total: int | None = None,
              finished: bool = False) -> None:
        label = PHASE_LABELS.get(name, name)
        if name == "stopping":
            self.ui.err.print("Stopping: removing the unfinished backup (Ctrl-C)…")
            return
        if self.progress is None:  # the step's own line says the rest when it ends
            return
        if not self.shown:
            if self.ui._spinner:
                self.ui._spinner.stop()
            self.progress.start()
            self.shown = True
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(escape(label), total=total or None)
        task = self.tasks[name]
        if finished:
            self.progress.update(task, total=total or 1, completed=total or 1)
            self.progress.stop_task(task)
        elif done is not None:
            self.progress.update(task, completed=done, **({"total": total} if total else {}))

    def close(self) -> None:
        if self.shown:
            self.progress.stop()
            if self.ui._spinner:
                self.ui._spinner.start()


class Percent(ProgressColumn):
    """A phase's percentage where it has a total; ``…`` where it has none (integrity_check
    cannot tell how far it is: a bar stuck at 0 % for 40 s said it was not moving)."""

    def render(self, task) -> Text:
        return Text(f"{task.percentage:>3.0f}%" if task.total else "   …")


@contextlib.contextmanager
def backup_phases(ui: UI):
    """``BackupPhases`` for the length of one backup (its bars replace the step's spinner
    once the first phase is reported)."""
    if not ui.interactive:
        yield BackupPhases(ui, None)
        return
    from rich.progress import TimeElapsedColumn

    progress = Progress(TextColumn("{task.description:<26}"), BarColumn(), Percent(),
                        TimeElapsedColumn(), console=ui.err, transient=True)
    phases = BackupPhases(ui, progress)
    try:
        yield phases
    finally:
        phases.close()

