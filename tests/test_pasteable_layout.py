"""A suggested `invoke TASK` is spelled as the operator typed invoke (cli.pasteable:
`.venv/bin/invoke` with the venv not active) BEFORE its line is laid out for the terminal:
rewritten after, a line fitted to 80 columns grew past them (issue 22 leftover 4)."""

from __future__ import annotations

import io
import re
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest
from rich.console import Console

from ops import cli, engine, ui
from tests import helpers

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
OURS = shlex.quote(str(Path(sys.executable).parent / "invoke"))
LONG = "/home/operator/projects/step-challenge-ops/.venv/bin/invoke"


@pytest.fixture
def venv_not_active(monkeypatch):
    monkeypatch.setattr(cli, "invoke_command", lambda: LONG)


def test_a_command_is_laid_out_as_it_will_be_shown(venv_not_active):
    name = "steps-2026-12-07T10-45-00.db"
    for words in (["invoke", "restore", name, "--yes"],
                  ["env", "INVOKE_BACKUP_DIR=/srv/backups", "invoke", "restore", name, "--yes"]):
        lines = ui.command_lines(words, 80, "  ")
        assert all(len(line) <= 80 for line in lines), lines
        joined = " ".join(line.strip().removesuffix(" \\") for line in lines)
        assert shlex.split(joined)[-4:] == [LONG, "restore", name, "--yes"], lines
        assert [cli.pasteable(line) for line in lines] == lines  # shown as laid out


def test_the_config_file_a_run_was_given_is_words_of_the_line(monkeypatch):
    """`invoke --config FILE` was one word of the layout: with a long FILE the first line
    was 97 columns though each word fits (s28 review-break2 #5)."""
    config = "a very long configuration file name for the production database.yaml"
    monkeypatch.setattr(cli, "invoke_command", lambda: f"{LONG} --config {shlex.quote(config)}")
    name = "steps-2026-12-07T10-45-00.db"
    lines = ui.command_lines(["invoke", "restore", name, "--yes"], 80, "  ")
    assert all(len(line) <= 80 for line in lines), lines
    joined = " ".join(line.strip().removesuffix(" \\") for line in lines)
    assert shlex.split(joined) == [LONG, "--config", config, "restore", name, "--yes"], lines


def test_prose_is_laid_out_as_it_will_be_shown(venv_not_active):
    text = ("  Safety backup kept; to put it back later run invoke restore "
            "steps-2026-12-07T10-45-00.db --yes from the project's folder")
    lines = ui.wrapped(text, 80, indent="    ")
    assert all(len(line) <= 80 for line in lines), lines
    assert f"{LONG} restore" in " ".join(lines)
    assert [cli.pasteable(line) for line in lines] == lines


def test_plain_invoke_is_left_as_it_is_when_the_venv_is_active(monkeypatch):
    monkeypatch.setattr(cli, "invoke_command", lambda: "invoke")
    assert ui.command_lines(["invoke", "restore", "x.db", "--yes"], 80, "  ") == [
        "  invoke restore x.db --yes"]


def test_the_undo_command_fits_80_columns_with_the_venv_not_active(wal_db, backup_dir,
                                                                    tmp_path):
    """The real CLI on a terminal of 80 columns. The venv is not active: the `invoke` the
    PATH finds first is not the venv's (another one, earlier on the PATH; helpers.clean_env
    appends the venv's bin to every PATH). How far past 80 the old layout went depends on
    the checkout's path (exactly 80 from /work/wt/<branch>): the cases above pin it."""
    made = engine.create_backup(wal_db, backup_dir)
    with sqlite3.connect(wal_db) as db:  # the live data moves on: the restore has an undo
        db.execute("DELETE FROM steps WHERE rowid % 2 = 0")
    other = tmp_path / "other-bin"
    other.mkdir()
    (other / "invoke").write_text("#!/bin/sh\nexit 127\n")
    (other / "invoke").chmod(0o755)
    code, shown = helpers.on_terminal(["restore", made.name, "--yes"], cwd=tmp_path,
                                      env={"PATH": f"{other}:/usr/bin:/bin"}, columns=80)
    assert code == 0, shown
    lines = ANSI.sub("", shown).replace("\r", "").split("\n")
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    at = next((i for i, line in enumerate(lines) if line.rstrip().endswith("restore:")), None)
    assert at is not None, lines
    command = re.match(r"(?:.* \\\n)*.*", "\n".join(lines[at + 1:]))[0]  # lines ending ` \`
    words = shlex.split(command.replace(" \\\n", " "))
    assert words[:2] == [shlex.split(OURS)[0], "restore"] and words[-1] == "--yes", lines


@pytest.mark.parametrize("width", [40, 60, 80])
def test_a_backticked_command_is_never_broken_across_lines(width):
    """Broken between its words, a pasted half ran on its own: `find / -xdev` walked the
    whole disk (s25 review-op #1). Prose around it still wraps; the command may overrun."""
    command = "find /data -xdev -samefile /data/steps.db 2>/dev/null"
    text = ("Error: database /data/steps.db has another name (a hard link): The other name: "
            f"1 outside its folder (`{command}` lists them); also run `invoke backup.list`.")
    lines = ui.wrapped(text, width)
    assert len(lines) > 2 and " ".join(lines) == text, lines
    assert [line for line in lines if f"`{command}`" in line], lines
    assert any("`invoke backup.list`." in line for line in lines), lines
    assert all(len(line) <= width for line in lines if "`find" not in line), lines


def test_a_warning_keeps_its_command_whole_at_80_columns():
    """A warning was laid out by rich, which broke `fly ssh console -a APP --machine ID`
    across two lines (s25 review-op3 #1); it is laid out as an Error line is now."""
    buffer = io.StringIO()
    shown = ui.UI(err=Console(file=buffer, width=80, force_terminal=True,
                              force_interactive=False, color_system=None))
    command = "fly ssh console -a step-app-4x-yhw --machine e2865013c41e86"
    message = ("the machine cannot run a restore there: database /data/steps.db has another "
               f"name (a hard link) (the names are on the machine: open a shell there with "
               f"`{command}`)")
    shown.warn(message)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("WARNING: the machine") and len(lines) > 1, lines
    assert any(f"`{command}`" in line for line in lines), lines
    assert " ".join(lines) == f"WARNING: {message}", lines
