"""At 80 columns on a real terminal (issue 20 item 10): the snapshot list keeps the created
time whole and says "not yet" for a running snapshot; the emergency and restore.volume plans
break commands between arguments with ` \\`; prompts break between words."""

from __future__ import annotations

import json
import re
import shlex
import sys

import pytest

from ops import cli, engine, runbook
from ops.errors import ExitCode, OpsError
from ops.ui import wrapped
from tests import helpers
from tests.flyctl_double import DEFAULT_VOLUME_ID
from tests.helpers import commands_in

# the module's first CLI run in a worker is a process, its later ones in-process
# (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_80(site, *args: str, answer: str | None = None) -> tuple[int, list[str]]:
    code, shown = helpers.on_terminal(list(args), cwd=site.cwd, env=site.env(), columns=80,
                                      answer=answer)
    lines = ANSI.sub("", shown).replace("\r", "").split("\n")
    # wider only where one word (a shell word in a command) is itself wider: cut, it would
    # be wrong (the test's tmp paths are long; /data/steps.db is not)
    wide = [line for line in lines if len(line) > 80
            and len(shlex.split(line.strip().removesuffix(" \\").removeprefix("$ "))) > 1]
    assert wide == [], wide
    return code, lines


def test_snapshots_keep_the_created_time_whole_and_name_a_running_one(site):
    running = site.world.start_scheduled_snapshot(DEFAULT_VOLUME_ID)
    code, lines = on_80(site, "backup.snapshots")
    assert code == 0, lines
    rows = {line.split("│")[1].strip(): line for line in lines if line.count("│") > 2}
    assert "not yet (running)" in rows[running] and "0001-01-01" not in "".join(lines)
    created = [snap["created_at"] for snap in site.world.snapshots(DEFAULT_VOLUME_ID)
               if snap["id"] != running]
    for stamp in created:
        assert stamp.replace("T", " ")[:19] in "".join(lines), stamp


def test_the_emergency_plan_breaks_commands_between_arguments(site):
    code, lines = on_80(site, "emergency.stop", "--dry-run")
    assert code == 0, lines
    wide = helpers.run_invoke("emergency.stop", "--dry-run", "--json", cwd=site.cwd,
                              env=site.env())
    expected = [shlex.join(["fly", *step["argv"]]) for step in wide.json()["steps"]
                if step["argv"]]
    assert commands_in(lines) == expected
    assert any(line.endswith(" \\") for line in lines)  # at least one was long enough


def test_the_restore_volume_plan_breaks_commands_between_arguments(site):
    code, lines = on_80(site, "restore.volume", "--snapshot", "latest", "--dry-run")
    assert code == 0, lines
    wide = helpers.run_invoke("restore.volume", "--snapshot", "latest", "--dry-run", "--json",
                              cwd=site.cwd, env=site.env())
    expected = [shlex.join(["fly", *step["argv"]]) for step in wide.json()["steps"]
                if step["argv"]]
    assert commands_in(lines) == expected


def test_a_prompt_breaks_between_words(site):
    code, lines = on_80(site, "emergency.stop", answer="no")
    assert code == 1, lines
    asked = [line for line in lines if line.strip()]
    start = next(i for i, line in enumerate(asked) if line.startswith("Stop the app"))
    question = asked[start:start + 4]
    words = " ".join(question).split()
    assert "Type" in words
    for line in question[:-1]:
        assert not line.endswith("-") and line == line.rstrip()


def test_wrapping_is_pure_and_keeps_long_words_whole():
    assert wrapped("short", 80) == ["short"]
    assert wrapped("a " * 50, None) == ["a " * 50]
    long = "x" * 100
    assert wrapped(f"see {long} here", 40) == ["see", long, "here"]
    assert wrapped("  1. update: " + "word " * 20, 40, indent="     ") == [
        "  1. update: word word word word word", "     word word word word word word word",
        "     word word word word word word word", "     word"]
    title = runbook.render("T:", [runbook.Step("k", "t", commands=(("machine", "update",
                                                                     "x" * 90),))], width=80)
    assert title[2] == "       $ fly machine update \\" and title[3] == " " * 9 + "x" * 90


def test_restore_volume_shows_the_snapshots_date_and_age_in_plan_prompt_and_json(site):
    """review-ox item 2: the date was the cut-off tail of the resolve line; a four-month
    old snapshot looked like any other."""
    (newest,) = [s for s in site.world.snapshots(DEFAULT_VOLUME_ID)
                 if s["id"] == "vs_M3n4O5p6Q7r8S9t0U1v2W3x4"]
    stamp = newest["created_at"].replace("T", " ")[:19] + " UTC"
    code, lines = on_80(site, "restore.volume", "--snapshot", "latest", answer="no")
    assert code == 1, lines
    text = " ".join(" ".join(lines).split())
    assert text.count(stamp) >= 3, lines  # the resolve line, the plan's title, the prompt
    assert re.search(r"made " + re.escape(stamp) + r", (\d+[dhms])+ old, onto", text), lines
    plan = helpers.run_invoke("restore.volume", "--snapshot", "latest", "--dry-run", "--json",
                              cwd=site.cwd, env=site.env()).json()
    assert plan["snapshot_created_at"] == newest["created_at"]
    assert plan["snapshot_age_seconds"] > 0


def test_created_when_is_the_utc_time_and_age():
    from ops.ui import created_when, seconds_since

    assert created_when("2026-08-17T02:10:54Z", 1786932654.0 + 86400 * 2) == \
        "2026-08-17 02:10:54 UTC, 2d old"
    assert seconds_since("garbage", 0) is None
    assert created_when("", 0) == "an unknown time (age unknown)"


def test_the_undo_command_after_a_restore_pastes_whole(wal_db, tmp_path, run_invoke):
    """review-ox item 11: it was word-wrapped with no ` \\`, so its second line pasted
    alone ran `restore …`."""
    assert run_invoke("backup").returncode == 0
    (name,) = [p.name for p in helpers.backup_files(tmp_path) if p.suffix == ".db"]
    helpers.change(wal_db)  # the restore changes it, so there is something to undo
    code, shown = helpers.on_terminal(["restore", name], cwd=tmp_path, columns=40,
                                      answer="yes")
    assert code == 0, shown
    lines = ANSI.sub("", shown).replace("\r", "").split("\n")
    words = shlex.split(helpers.command_after("\n".join(lines), "restore:"))
    assert words[:2] == ["invoke", "restore"] and words[-1] == "--yes", lines
    assert words[2].startswith("steps-") and words[2] != name, lines  # the safety backup


def test_the_run_again_command_after_a_busy_timeout_pastes_whole(wal_db, backup_dir):
    """s28 review-op #2: at 80 columns "To restore, run again: invoke restore NAME --yes"
    broke at a real newline after `restore`; pasted, its first line restored `latest`
    and the second answered the question. Every command in the lines after a stopped
    restore is backticked now, so no break falls inside one."""
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    with helpers.app_holds_write_lock(wal_db):
        code, shown = helpers.on_terminal(
            ["restore", made.name, "--yes", "--busy-timeout", "0.5"],
            cwd=wal_db.parent.parent, columns=80)
    assert code == ExitCode.TIMEOUT, shown
    shown = ANSI.sub("", shown).replace("\r", "")
    (command,) = re.findall(r"run again:\s+`([^`]*)`", shown)
    assert "\n" not in command, shown  # soft-wrapped by the terminal, if at all
    assert shlex.split(command) == ["invoke", "restore", made.name, "--yes"], shown


def test_ctrl_d_at_the_prompt_is_130_and_the_error_starts_its_own_line(site):
    """review-ox item 16: no, Ctrl-C and Ctrl-D all exited 1, and after Ctrl-D the error
    was printed on the prompt's line."""
    declined, _ = on_80(site, "emergency.stop", answer="no")
    assert declined == ExitCode.ERROR
    code, lines = on_80(site, "emergency.stop", answer="\x04")
    assert code == ExitCode.INTERRUPTED, lines
    (error,) = [line for line in lines if "Error:" in line]
    assert error.startswith("Error: interrupted by end of input (Ctrl-D) at the prompt"), lines


def test_ctrl_c_at_the_prompt_is_an_interruption(monkeypatch, capsys):
    class Terminal:
        def isatty(self):
            return True

        def readline(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with pytest.raises(OpsError) as raised:
        cli.confirm("Go?", refused="nothing was changed")
    assert raised.value.code == ExitCode.INTERRUPTED
    assert str(raised.value) == "interrupted by Ctrl-C at the prompt; nothing was changed"
    assert capsys.readouterr().err.endswith("Type yes to go on: \n")


def test_task_help_breaks_between_words_at_80_columns(tmp_path):
    """review-ox item 10: Invoke printed the docstring and Usage lines as they are, and
    the terminal cut them mid-word (`…never the one a run just mad` / `e.`)."""
    for task_name, words in (("backup.cleanup", "never the one a run just made."),
                             ("backup.snapshots", "[other tasks here ...]")):
        code, shown = helpers.on_terminal(["--help", task_name], cwd=tmp_path, columns=80)
        assert code == 0, shown
        lines = ANSI.sub("", shown).replace("\r", "").split("\n")
        assert all(len(line) <= 80 for line in lines), lines
        assert words in " ".join(" ".join(lines).split()), lines


def test_volume_sizes_are_in_flys_gb_everywhere(site):
    """review-ox item 20: `a 3.2 GB volume` in backup.snapshots, `3 GB` and `--size 3` in
    restore.volume, for the same 3 GiB volume."""
    from ops.ui import volume_gb

    assert (volume_gb(3 * 1024**3), volume_gb(1.5 * 1024**3)) == ("3 GB", "1.5 GB")
    code, listed = on_80(site, "backup.snapshots")
    assert code == 0, listed
    planned = helpers.run_invoke("restore.volume", "--snapshot", "latest", "--dry-run",
                                 cwd=site.cwd, env=site.env())  # a log: no part dropped
    assert planned.returncode == 0, planned
    listed, planned = " ".join(" ".join(listed).split()), " ".join(planned.stderr.split())
    assert "of a 3 GB volume" in listed and "3.2 GB" not in listed, listed
    assert "3 GB volume" in planned and "(3 GB in ams" in planned and "3.2 GB" not in planned


def test_the_steps_table_keeps_a_backups_name_whole_within_80_columns():
    """The demo's summary cut its backups' names (`steps-2026-12-08T00-59-25.…`: s27
    review-op #4); a min_width for the name made Rich's table a column too wide, which a
    log showed 81 wide and a terminal cut at its right border (s27 review-break3 #2)."""
    for soft_wrap in (True, False):  # a log, a terminal
        table = _steps_table_at_80(soft_wrap)
        assert table and max(len(line) for line in table) == 80, table
        assert all(line[-1] in "┓┃┩│┘" for line in table), table  # whole, border and all
        assert any("│ steps-2026-12-08T00-59-25.db " in line for line in table), table


def _steps_table_at_80(soft_wrap: bool) -> list[str]:
    import io

    from ops.ui import UI, _Console

    out = io.StringIO()
    ui = UI(err=_Console(file=out, width=80, soft_wrap=soft_wrap, highlight=False))
    ui.skipped("build a sample database", "d/data/steps.db exists (use --fresh to rebuild)")
    name = "steps-2026-12-08T00-59-25.db"
    with ui.step(f"backup {name}") as step:
        step.detail = "1.4 MB  sha256 033c6eccc556  integrity_check ok  [engine]  from local"
    with ui.step("verify every backup (SHA-256 + integrity_check)") as step:
        step.detail = "5 of 5 ok"
    out.truncate(0)
    ui.steps_table("Demo")
    return [line for line in out.getvalue().splitlines() if line[:1] in "┏┃┡│└"]


def test_suggested_commands_paste_whole_from_an_80_column_terminal(tmp_path):
    """The demo's "Try:" command broke at a real newline at 80 columns (pasted, its first
    line only set two shell variables), and backup.list's "To undo that restore: invoke
    restore …" broke inside the command (s27 review-op2 #2, #3): the one is printed on its
    own ` \\`-continued lines, the other kept whole in backticks."""
    code, shown = helpers.on_terminal(["demo", "--mb", "1", "--dir", "a demo folder"],
                                      cwd=tmp_path, columns=80, timeout=120)
    assert code == 0, shown
    screen = ANSI.sub("", shown).replace("\r", "")
    command = helpers.command_after(screen, "Try:")
    words = shlex.split(command)
    assert words[0].endswith("invoke") and words[1:] == [
        "-f", "a demo folder/config.yaml", "backup.list"], command

    env = {"INVOKE_DB_PATH": str(tmp_path / "a demo folder" / "data" / "steps.db"),
           "INVOKE_BACKUP_DIR": str(tmp_path / "a demo folder" / "data" / "backups")}
    assert helpers.run_invoke("restore", "--yes", cwd=tmp_path, env=env).returncode == 0
    code, shown = helpers.on_terminal(["backup.list"], cwd=tmp_path, env=env, columns=80)
    assert code == 0, shown
    lines = ANSI.sub("", shown).replace("\r", "").splitlines()
    undo = [line for line in lines if "`invoke restore " in line or "invoke restore" in line]
    assert undo and all(re.search(r"`[^`]*invoke restore steps-\S+ --yes`", line)
                        for line in undo), lines

    # a record's words with a backtick and a newline (anyone can write there) unpaired the
    # backticks and split the command (s27 review-break4 #3); one wider than the line:
    # test_a_command_wider_than_the_terminal_is_never_broken_at_a_space
    (record,) = [path for path in (tmp_path / "a demo folder" / "data" / "backups").glob("*.json")
                 if json.loads(path.read_text()).get("kind") == "safety"]
    data = json.loads(record.read_text())
    data["restore"] |= {"backup": "x`y\nz", "when": "`\n"}
    record.write_text(json.dumps(data))
    code, shown = helpers.on_terminal(["backup.list"], cwd=tmp_path, env=env, columns=80)
    assert code == 0, shown
    text = ANSI.sub("", shown).replace("\r", "")
    assert "before it put back ? (at ?)" in " ".join(text.split()), text
    assert re.search(r"`[^`\n]*invoke restore steps-\S+ --yes`$", text, re.M), text


def test_a_command_wider_than_the_terminal_is_never_broken_at_a_space():
    """On a terminal an info line's `command` wider than the line was broken by Rich at a
    space, a real newline: pasted, the first line ran alone (s27 review-break4 #2)."""
    import io

    from ops.ui import UI, _Console

    out = io.StringIO()
    ui = UI(err=_Console(file=out, width=80, soft_wrap=False, highlight=False))
    command = "/a/long/path/to/a/project/.venv/bin/invoke restore steps-2026-12-08T02-02-12.db " \
              "--host deploy@db1.example.com:2222 --yes"
    ui.info(f"safety: a copy a restore made; never latest. To undo that restore: `{command}`")
    assert f"`{command}`\n" in out.getvalue(), out.getvalue()


def test_a_very_long_name_in_a_table_never_takes_the_other_columns():
    """A 76-character table name made the restore's "Rows per table" lose its counts at
    80 columns (s27 review-break4 #4): a name wider than half the line is folded."""
    import io

    from ops.ui import UI, _Console

    out = io.StringIO()
    ui = UI(err=_Console(file=out, width=80, soft_wrap=False, highlight=False))
    ui.table("Rows per table", ["table", "before", "after"],
             [["t" * 76, "1234567", "7654321"], ["steps", "3000", "3000"]])
    text = out.getvalue()
    assert "1234567" in text and "7654321" in text and "3000" in text, text
    assert sum(map(len, re.findall(r"t{2,}", text))) == 76, text  # the whole name, folded
    assert max(len(line) for line in text.splitlines()) <= 80, text

