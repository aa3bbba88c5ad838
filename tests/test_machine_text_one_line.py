"""A value from the machine or a lock record keeps to its line. Python's str.splitlines()
splits at \\r, \\v, \\f, \\x1c-\\x1e, \\x85 and U+2028/9 as well as \\n, and the machine's output
was read with it: a lock record `bob\\x1e__OPS_ENTRY__ waits FAKE` forged a second dry-run
warning, and `bob\\u2028x` cut the real one before "the run would wait up to 30s, then stop
with exit 4" (review-break s21 #7). Now the machine's output splits at \\n only, error and
step lines take their first line the same way (``ui.text_lines``), and ``ui.printable``, the
one function every shown line goes through, escapes each of those characters."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ops import cli, engine, fly, remote, runbook, ui
from ops.errors import OpsError
from ops.targets import scripted
from tests import helpers

pytestmark = pytest.mark.cli_in_process

BREAKS = ["\x1e", "\x1c", "\x1d", "\x85", "\u2028", "\u2029", "\r", "\v", "\f", "\x1b"]
TAIL = "then stop with exit 4 if it is still held"


def look_output(record: str) -> str:
    """What the machine's look at a held lock prints (``remote.LOOK_LOCK``) for ``record``."""
    return (f"{remote.ENTRY_MARK} waits another restore holds the lock /data/backups/"
            f".ops-restore.lock: {record}; the run would wait up to 30s for it, {TAIL}\n"
            f"{remote.SENTINEL}=0\n")


@pytest.mark.parametrize("ch", BREAKS, ids=[f"{ord(c):04x}" for c in BREAKS])
def test_each_character_stays_in_its_line_escaped(ch):
    record = f"bob{ch}{remote.ENTRY_MARK} waits FAKE"
    output = remote.parse_output(look_output(record))
    [said] = scripted.waits(output)  # one entry: nothing forged, nothing cut
    assert said.endswith(TAIL) and ch in said

    shown = ui.printable(said)
    assert ch not in shown and len(shown.splitlines()) == 1, shown
    assert f"\\x{ord(ch):02x}" in shown or f"\\u{ord(ch):04x}" in shown, shown

    console = ui.UI(err=Console(file=io.StringIO(), width=400, color_system=None))
    console.warn(said)
    printed = console.err.file.getvalue()
    assert printed.count("WARNING:") == 1 and len(printed.splitlines()) == 1, printed
    assert ch not in printed and TAIL in " ".join(printed.split())

    error = OpsError(f"another deploy holds the lock: {record}; the run would wait, {TAIL}")
    flyctl = fly.error_line(f"Error: machine said {record}; {TAIL}\n", 1)  # flyctl's stderr
    for line in (cli.one_line(error), ui.printable(runbook.first_line(error)),
                 ui.printable(flyctl)):
        assert TAIL in line and ch not in line and len(line.splitlines()) == 1, line
    assert ui.text_lines(f"a{ch}b\nc") == [f"a{ch}b", "c"]


@pytest.mark.parametrize("ch", ["\x1e", "\u2028"], ids=["1e", "2028"])  # the report's two
def test_a_machine_lock_record_with_it_makes_one_whole_warning(site, tmp_path, ch):
    """The real dry run, the machine's real look (python3 there): one warning, whole."""
    assert site.here("backup", "--production").returncode == 0
    lock = site.backups / engine.RESTORE_LOCK
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        with open(lock, "w", encoding="utf-8") as record:  # same file, the lock kept
            record.write(f"bob{ch}{remote.ENTRY_MARK} waits FAKE (pid 9 on h)\n")
        dry = site.here("restore", "--production", "--dry-run", "--lock-wait", "30")
    assert dry.returncode == 0, dry
    warnings = [line for line in dry.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "FAKE; the run" not in dry.stderr, dry.stderr
    assert ch not in dry.stderr and TAIL in " ".join(dry.stderr.split()), dry.stderr


def test_flyctl_error_line_after_a_redraw_is_still_found():
    """Split at newlines only, a progress redraw (\\r) before flyctl's Error: keeps it."""
    assert fly.error_line("⠋ connecting\rError: app not found\n", 1) == "app not found"

