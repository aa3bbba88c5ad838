"""The command line itself (issue 20 items 1-4): one short flag, one meaning, in every task;
--production alike everywhere; every hint's command parses; every parse error is one line.

Most runs here are the real Invoke ``Program`` in this process (a fresh one per run, loading
tasks.py from the repository as `invoke` does): tens of runs cost a fraction of a second."""

from __future__ import annotations

import ast
import functools
import os
import re
import signal
import stat
import sys

import pytest
from invoke import Program
from invoke.parser import Parser

from ops.cli import parse_error_line
from ops.commands import namespace
from ops.errors import ExitCode
from ops.ui import _CONTROLS, printable
from tests import helpers
from tests.helpers import REPO_ROOT, assert_one_line_error, cli, cli_with_system_config, flags_of

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

NS = namespace()
TASKS = {primary: (aliases[0] if aliases else primary)
         for primary, aliases in NS.task_names.items()}


def test_dry_run_is_dash_n_in_every_task_that_has_one_and_dash_d_is_nobodys():
    with_dry_run = [task for task in TASKS if "--dry-run" in flags_of(task)]
    assert {"emergency.stop", "emergency.resume", "restore.volume"} <= set(with_dry_run)
    for task in with_dry_run:
        assert flags_of(task)["-n"] == "dry-run", task
    assert not any("-d" in flags_of(task) for task in TASKS)


@pytest.mark.parametrize("task", ["emergency.stop", "emergency.resume", "restore.volume"])
def test_dash_d_where_it_was_the_dry_run_is_refused_not_invokes_debug(capsys, task):
    result = cli(capsys, task, "-d")  # Invoke alone read it as --debug and ran the task
    assert_one_line_error(result, ExitCode.USAGE, contains="its dry run is -n (--dry-run)")
    assert cli(capsys, task, "-n", "--help").returncode == 0


def half_taken_core_options() -> list[tuple[str, str]]:
    """(task, flag): each name of Invoke's own options that a task leaves free when the task
    uses another name of the same option (backup's -p is its --production, not --pty)."""
    pairs = []
    for task in TASKS:
        flags = flags_of(task)
        for core in Program().core_args() + Program().task_args():  # -c, -r, --no-dedupe too
            names = [f"-{n}" if len(n) == 1 else f"--{n.replace('_', '-')}" for n in core.names]
            if core.name != "help" and any(n in flags for n in names):
                pairs += [(task, n) for n in names if n not in flags]
    return pairs


@pytest.mark.parametrize(("task", "flag"), half_taken_core_options())
def test_invokes_own_option_after_a_task_that_uses_one_of_its_names_is_refused(
        capsys, task, flag):
    """`invoke backup --pty` ran the backup (Invoke took --pty as its own, and our refusal
    was skipped because backup has -p): every name left free is refused, naming it."""
    typed = TASKS[task]
    result = cli(capsys, typed, flag, *(["latest"] if task == "backup.download" else []))
    line = assert_one_line_error(result, ExitCode.USAGE)
    assert f"{typed} has no {flag}" in line, line
    assert "(Invoke's own" in line or "dry run is -n" in line, line


@pytest.mark.parametrize(("argv", "line"), [
    # the whole command, the option in front: pasting `invoke --echo deploy` alone after
    # `deploy -n -e` deployed for real (review-op s24 #1)
    (["deploy", "-n", "-e"], "deploy has no -e (Invoke's own): run `invoke --echo deploy -n`"),
    (["deploy", "-ne"], "deploy has no -e (Invoke's own): run `invoke --echo deploy -n`"),
    (["restore", "-p", "-n", "--pty", "latest"],
     "restore has no --pty (Invoke's own): run `invoke --pty restore -p -n latest`"),
    # with its value (#2)
    (["backup.verify", "-f", "my file.yaml", "latest"],
     "backup.verify has no -f (Invoke's own): run "
     "`invoke --config 'my file.yaml' backup.verify latest`"),
    (["backup.list", "-T", "5"],
     "backup.list has no -T (Invoke's own): run `invoke --command-timeout 5 backup.list`"),
    (["backup.list", "--hide=both"],
     "backup.list has no --hide (Invoke's own): run `invoke --hide both backup.list`"),
    # one that runs no task is for Invoke alone (#3); --dry is refused before a task too (#4)
    (["backup.list", "--list"],
     "backup.list has no --list (Invoke's own, for Invoke alone): run `invoke --list`"),
    # a task without a dry run is never pointed at a -n it does not have (s24 second round)
    (["backup.list", "--dry"], "backup.list has no --dry: Invoke's --dry does not reach these "
                               "tasks; it has no dry run: `invoke --help backup.list` says "
                               "what it does"),
    # the name typed, not another (#5, #6)
    (["restore", "--debug", "latest"],
     "restore has no --debug (Invoke's own): run `invoke --debug restore latest`"),
    (["restore", "-d"], "restore has no -d: its dry run is -n (--dry-run)"),
    (["emergency.stop", "--pty"],
     "emergency.stop has no --pty (Invoke's own): run `invoke --pty emergency.stop`"),
    (["emergency.stop", "-p"], "emergency.stop has no --production (-p): it always works on "
                               "the production machine"),
    # an on/off option's "=value" is no value: it must not become a task (review-break2 #3)
    (["backup.list", "-w=deploy"], "backup.list has no -w (Invoke's own): run "
                                   "`invoke --warn-only backup.list`"),
    (["backup.list", "--echo=backup"], "backup.list has no --echo (Invoke's own): run "
                                       "`invoke --echo backup.list`"),
    # every one of Invoke's options after the task moves, once: pasted, the command was
    # refused again for the next one (s24 review-break2 #5)
    (["deploy", "-n", "-e", "-e"],
     "deploy has no -e (Invoke's own): run `invoke --echo deploy -n`"),
    (["deploy", "-n", "-w", "-e"],
     "deploy has no -w (Invoke's own): run `invoke --warn-only --echo deploy -n`"),
    (["backup.list", "-e", "-T", "5"],
     "backup.list has no -e (Invoke's own): run `invoke --echo --command-timeout 5 backup.list`"),
    (["backup.list", "-ew"], "backup.list has no -e (Invoke's own): run "
                             "`invoke --echo --warn-only backup.list`"),
    (["backup.list", "-w", "-d"],  # Invoke's --debug, where -d is no dry run's typo
     "backup.list has no -w (Invoke's own): run `invoke --warn-only --debug backup.list`"),
    (["restore", "-w", "--debug", "latest"],
     "restore has no -w (Invoke's own): run `invoke --warn-only --debug restore latest`"),
    (["restore", "-w", "-d", "latest"],  # here -d is said on its own: "its dry run is -n"
     "restore has no -w (Invoke's own): run `invoke --warn-only restore -d latest`"),
    (["restore", "-e", "-p", "latest"],  # restore's own -p stays where it was
     "restore has no -e (Invoke's own): run `invoke --echo restore -p latest`"),
    # a short one with its value attached: no command was given (#5)
    (["backup.list", "-T5"],
     "backup.list has no -T (Invoke's own): run `invoke --command-timeout 5 backup.list`"),
    (["backup.verify", "-fmy.yaml", "latest"],
     "backup.verify has no -f (Invoke's own): run `invoke --config my.yaml backup.verify latest`"),
    # one that takes a value, given none: the task's name was shown as its value (#5);
    # the task's next flag never is (pasted, `--hide --production` ate --production and
    # restored this computer's database: s27 review-op2 #1), nor a value Invoke would
    # crash on (-Tx: #4)
    *[(argv, f"{argv[0]} has no {shown} (Invoke's own): it goes before the task name, with "
             "its value (`invoke --help` lists Invoke's own options)")
      for argv, shown in ((["backup.list", "--hide"], "--hide"),
                          (["backup.list", "--hide="], "--hide"), (["backup.list", "-c"], "-c"),
                          (["restore", "--hide", "--production", "--yes"], "--hide"),
                          (["backup", "--hide", "-p"], "--hide"),
                          (["backup.list", "--hide", "--json"], "--hide"),
                          (["restore", "--hide=--production"], "--hide"),
                          (["backup.list", "-Tx"], "-T"),
                          (["backup.list", "--command-timeout=abc"], "--command-timeout"),
                          (["backup.list", "-T", "5s"], "-T"), (["backup.list", "-D", "x"], "-D"),
                          # a task's own word is no value Invoke takes: moved in front, the
                          # restore ran on `latest` (s27 review-break4 #1)
                          (["restore", "--hide", "steps-2026-01-01T00-00-00.db", "--yes"],
                           "--hide"),
                          (["restore", "-F", "steps-2026-01-01T00-00-00.db", "--yes"], "-F"))],
    (["backup.list", "-F", "json"],
     "backup.list has no -F (Invoke's own): run `invoke --list-format json backup.list`"),
    # an option of Invoke's with its value before the task: the value is no task name, and
    # the same option after the task is not ours to choose between (s28 review-break2 #4)
    (["-c", "tasks", "backup", "-e"],
     "backup has no -e (Invoke's own): run `invoke --echo -c tasks backup`"),
    (["-c", "tasks", "backup.verify", "-c", "other", "latest"],
     "backup.verify has no -c (Invoke's own): it is given before the task name too; give it "
     "once, there"),
    # in a bundle too, and when it is the second option refused (s28 review-break3 #3)
    (["-ec", "tasks", "backup", "-w"],
     "backup has no -w (Invoke's own): run `invoke --warn-only -ec tasks backup`"),
    (["-ec", "tasks", "backup.list", "-c", "other"],
     "backup.list has no -c (Invoke's own): it is given before the task name too; give it "
     "once, there"),
    (["-c", "tasks", "backup.list", "-e", "-c", "other"],
     "backup.list has no -e nor -c (Invoke's own): -c is given before the task name too; "
     "give each once, before it"),
    # a short flag's attached value is no bundle: its letters stay (review-break2 #4)
    (["deploy", "-n", "-iregistry.fly.io/app:deployment-1", "-e"],
     "deploy has no -e (Invoke's own): run "
     "`invoke --echo deploy -n -iregistry.fly.io/app:deployment-1`"),
])
def test_invokes_own_option_after_a_task_suggests_the_whole_command_line(capsys, argv, line):
    refused = assert_one_line_error(cli(capsys, *argv), ExitCode.USAGE)
    # the tests' own `--search-root REPO` is part of the command line, so kept
    assert refused.replace(f" --search-root {REPO_ROOT}", "") == f"Error: {line}"


# ---------------------------------------------------------------- 2: --production

def test_production_and_p_are_accepted_or_refused_alike_in_every_task(capsys):
    for task in TASKS:
        if "--production" in flags_of(task):
            assert flags_of(task)["-p"] == "production"
            for flag in ("-p", "--production"):
                result = cli(capsys, task, flag, "--help")
                assert result.returncode == 0 and "--production" in result.stdout, result
            continue
        lines = []
        for flag in ("-p", "--production"):
            args = [task, flag] + (["latest"] if task == "backup.download" else [])
            lines.append(assert_one_line_error(cli(capsys, *args), ExitCode.USAGE))
        assert lines[0] == lines[1] and "has no --production (-p)" in lines[0], lines


# ---------------------------------------------------------------- 4: parse errors

@pytest.mark.parametrize(("argv", "expected"), [
    (["backup.download"], "backup.download needs which backup: `latest` (the newest) or a "
                          "backup's file name: `invoke backup.download latest`"),
    (["backup.verify"], "backup.verify needs which backup: `latest` (the newest), `all` or a "
                        "backup's file name: `invoke backup.verify latest`"),
    (["backup.list", "--bogus"], "backup.list has no flag --bogus: `invoke --help backup.list` "
                                 "lists its flags"),
    (["backup.list", "-k", "3"], "backup.list has no flag -k (-k is --keep where a task has it)"),
    (["backup.cleanup", "--keep"], "--keep needs a value (backup.cleanup)"),
    (["backup.list", "latest"], "backup.list takes no argument 'latest'"),
    (["backupp"], "no task named 'backupp': did you mean backup? `invoke --list` shows every "
                  "task"),
    (["backup.lst"], "no task named 'backup.lst': did you mean backup.list?"),  # review-ox 21
    (["zzz"], "no task named 'zzz': `invoke --list` shows every task"),
    (["--bogus", "backup"], "no option --bogus before a task name"),
    (["deploy", "-R"], "deploy has no -R: Invoke's --dry does not reach these tasks; its "
                       "dry run is -n (--dry-run)"),
    (["backup.volume", "-R"], "backup.volume has no -R: Invoke's --dry does not reach these "
                              "tasks; it has no dry run"),
    (["-R", "deploy"], "Invoke's -R/--dry does not reach these tasks"),
    # before the task name, a task without a dry run is not promised one (s26 review-op2 #5)
    (["-R", "backup.list"], "a task's dry run, where it has one, is its -n (--dry-run); "
                            "`invoke --help TASK` lists its flags"),
    (["backup.list", "-e"], "backup.list has no -e (Invoke's own): run `invoke --echo "
                            "--search-root"),
    (["backup.status", "-l"], "backup.status has no -l (Invoke's own, for Invoke alone): run "
                              "`invoke --list`"),
    (["backup.download", "--production", "latest"], "backup.download has no --production"),
])
def test_a_command_line_invoke_cannot_parse_is_one_line_and_exit_2(capsys, argv, expected):
    line = assert_one_line_error(cli(capsys, *argv), ExitCode.USAGE)
    assert expected in line


@pytest.mark.parametrize("help_flag", ["--help", "-h"])
def test_help_after_a_task_with_a_positional_is_help_not_a_backup_name(capsys, help_flag):
    for task in ("backup.verify", "backup.download", "restore"):
        result = cli(capsys, task, help_flag)  # Invoke took it as WHICH (pyinvoke/invoke#982)
        assert result.returncode == 0 and "Usage: inv[oke]" in result.stdout, result


def test_help_keeps_every_flags_text(capsys):  # parsing twice must not lose them
    for argv in (["--help", "backup.cleanup"], ["backup.cleanup", "--help"],
                 ["backup.verify", "-h"]):
        result = cli(capsys, *argv)
        assert result.returncode == 0 and "--json" in result.stdout, result
        assert "print one JSON document on stdout" in result.stdout, result


def test_parse_errors_through_the_real_cli_too(tmp_path):
    result = helpers.run_invoke("backup.download", cwd=tmp_path)
    assert_one_line_error(result, ExitCode.USAGE, contains="`invoke backup.download latest`")


def test_every_invoke_parse_error_message_gets_a_line_of_ours():
    assert parse_error_line("Flag <Argument: keep (k)> needed value and was not given one!",
                            None) == "--keep needs a value"
    assert parse_error_line("Flag <Argument: json (j) [bool]> doesn't take any value!",
                            None) == "--json takes no value"
    assert parse_error_line("something new!", None) == "something new"


# ---------------------------------------------------------------- 3: hints

HINT = re.compile(r"invoke ([a-z][a-z.]*)((?: (?:--?[a-z][\w-]*|[A-Z]+|[\x00\d.]+))*)")


def hint_commands() -> list[tuple[str, str]]:
    """Every ``invoke TASK ...`` the sources can print: (file:line, command), with each
    f-string placeholder as a NUL (a value whatever it holds)."""
    found = []
    for path in sorted((REPO_ROOT / "ops").rglob("*.py")):
        tree = ast.parse(path.read_text())
        parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                 for part in node.values}
        for node in ast.walk(tree):
            if id(node) in parts:
                continue
            if isinstance(node, ast.JoinedStr):
                text = "".join(part.value if isinstance(part, ast.Constant) else "\x00"
                               for part in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            if isinstance(node, ast.Constant) and text.startswith(('"""', "\n")):
                continue
            for match in HINT.finditer(text):
                found.append((f"{path.relative_to(REPO_ROOT)}:{node.lineno}", match.group(0)))
    return found


def test_every_hint_names_a_task_and_flags_that_exist():
    hints = hint_commands()
    assert len(hints) >= 10, hints
    contexts = NS.to_contexts()
    initial = Program().initial_context
    for where, command in hints:
        argv = [word.replace("\x00", "X") for word in command.split()[1:]]
        if argv[0] not in {name for c in contexts for name in (c.name, *c.aliases)}:
            continue  # prose such as "invoke restore.volume`:" is not a command line
        Parser(initial=initial, contexts=contexts).parse_argv(argv)  # ParseError: wrong hint
        for word in argv[1:]:
            if word.startswith("-"):
                assert word in flags_of(next(c.name for c in contexts
                                             if argv[0] in (c.name, *c.aliases))), where


def test_the_lock_hint_of_cleanup_names_a_flag_cleanup_has(backup_dir, backup_now, tmp_path,
                                                           run_invoke):
    helpers.old_script_backup(backup_dir, helpers.utc(2026, 1, 1))
    backup_now()
    with helpers.lock_held_elsewhere(backup_dir, tmp_path):
        result = run_invoke("backup.cleanup", "--keep", "1")
        assert_one_line_error(result, ExitCode.LOCKED, contains="--lock-wait SECONDS")
        waited = run_invoke("backup.cleanup", "--keep", "1", "--lock-wait", "0.2")
    line = assert_one_line_error(waited, ExitCode.LOCKED, contains="holds the lock", strict=False)
    assert "waiting up to 0.2s" in waited.stderr and "--lock-wait" not in line


# ---------------------------------------------------------------- 5: every config file


WRONG_TYPED = [("backup: 5\n", "backup must be a mapping of keys (backup.dir"),
               ("db:\n  path: {a: 1}\n", "db.path must be a single value"),
               ("backup:\n", "backup must be a mapping of keys")]


@pytest.mark.parametrize(("text", "complaint"), WRONG_TYPED)
def test_a_wrong_typed_system_config_is_one_line_naming_it(capsys, tmp_path, monkeypatch,
                                                            text, complaint):
    monkeypatch.setenv("HOME", str(tmp_path))  # no developer's ~/.invoke.yaml
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "invoke.yaml").write_text(text)
    line = assert_one_line_error(cli_with_system_config(capsys, etc, "backup.list"),
                                 ExitCode.USAGE, contains=complaint)
    assert str(etc / "invoke.yaml") in line


def test_wrong_typed_home_and_runtime_configs_are_one_line_naming_them(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    files = {"r.yaml": "x: [\n", "r.json": '{"backup": ', "r.py": "backup = 5\n",
             "wrong.yaml": "backup: 5\n", "r.toml": "backup = 5\n", "bad.py": "import nope\n"}
    for name, text in files.items():
        (work / name).write_text(text)
    (home / ".invoke.yaml").write_text("db: [1]\n")
    cases = [
        (["backup.list"], {"HOME": str(home)}, f"{home}/.invoke.yaml: db must be a mapping"),
        (["-f", "r.yaml", "backup.list"], {}, "r.yaml is not valid YAML (line 2)"),
        (["-f", "r.json", "backup.list"], {}, "r.json is not valid JSON"),
        (["-f", "wrong.yaml", "backup.list"], {}, "wrong.yaml: backup must be a mapping"),
        (["-f", "r.py", "backup.list"], {}, "r.py: backup must be a mapping"),
        (["-f", "bad.py", "backup.list"], {}, "No module named 'nope'"),
        (["-f", "r.toml", "backup.list"], {}, "r.toml: Invoke reads only .yaml, .yml, .json"),
        (["-f", "missing.yaml", "backup.list"], {}, "is not a file: missing.yaml"),
        (["backup.list"], {"INVOKE_RUNTIME_CONFIG": "wrong.yaml"}, "wrong.yaml: backup must"),
    ]
    results = helpers.run_parallel(
        functools.partial(helpers.run_invoke, *argv, cwd=work, env=env)
        for argv, env, _ in cases)
    for (_, _, complaint), result in zip(cases, results, strict=True):
        assert_one_line_error(result, ExitCode.USAGE, contains=complaint)


# ---------------------------------------------------------------- 11: early Ctrl-C

@pytest.mark.cli_in_process(per="none")  # a real Ctrl-C: the run signals its own process
@pytest.mark.fresh_process  # ... a fresh `python -m invoke`, as a user's
def test_ctrl_c_before_the_task_runs_is_interrupted_and_130(tmp_path):
    # Invoke runs a .py runtime config after tasks.py is imported and the arguments are
    # parsed, before the task: a Ctrl-C arriving exactly there (Invoke alone: exit 1, silent)
    (tmp_path / "ctrl_c.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n")
    result = helpers.run_invoke("-f", "ctrl_c.py", "backup.list", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (ExitCode.INTERRUPTED, "Interrupted.\n")


def test_every_task_creates_the_backup_folder_0700(wal_db, tmp_path):
    made = tmp_path / "data" / "backups"
    assert not made.exists()
    result = helpers.run_invoke("backup", cwd=tmp_path)
    assert result.returncode == 0, result
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    other = tmp_path / "restored"
    other.mkdir(mode=0o755)
    result = helpers.run_invoke("backup", env={"INVOKE_BACKUP_DIR": "restored"}, cwd=tmp_path)
    assert result.returncode == 0, result
    assert stat.S_IMODE(other.stat().st_mode) == 0o755  # a folder of yours keeps its mode


# ---------------------------------------------------------------- 12: hostile remote text

HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31mfake ok\r\u202esdrawkcab\x9b31m"


def test_printable_escapes_every_control_character_but_newline():
    assert printable(HOSTILE + "\nnext\tline") == (
        "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mfake ok\\x0d\\u202esdrawkcab\\x9b31m"
        "\nnext\\x09line")
    assert printable("steps-2026-01-02T03-04-05.db  1.2 MB  ✓ ok") == \
        "steps-2026-01-02T03-04-05.db  1.2 MB  ✓ ok"


def test_flyctls_error_text_reaches_the_terminal_escaped(tmp_path, fly_world):
    fly_world.write_fly_toml(tmp_path)
    fly_world.fail(["volumes", "list"], stderr=f"Error: {HOSTILE}\n", times=None)
    result = helpers.run_invoke("backup.snapshots", cwd=tmp_path, env=fly_world.env())
    assert result.returncode == ExitCode.FLY, result
    assert not _CONTROLS.search(result.stderr.replace("\n", "")), repr(result.stderr)
    assert "\\x1b]0;owned\\x07" in result.error_lines[0]


# ---------------------------------------------------------------- 6: the worst problem first

def test_verify_all_names_the_damaged_backup_not_the_unrecorded_one(backup_dir, run_invoke):
    unrecorded = helpers.old_script_backup(backup_dir, helpers.utc(2026, 1, 1))  # listed first
    damaged = helpers.old_script_backup(backup_dir, helpers.utc(2026, 1, 2))
    (backup_dir / f"{damaged.name}.sha256").write_text(f"{'0' * 64}  {damaged.name}\n")
    result = run_invoke("backup.verify", "all")
    line = assert_one_line_error(result, ExitCode.VERIFY_FAILED, strict=False)
    assert line == (f"Error: 2 of 2 backups failed verification; {damaged.name}: SHA-256 "
                    f"mismatch: recorded 000000000000…, file has {helpers.sha256(damaged)[:12]}…"
                    "; 1 without records (the old npm scripts'?): check and adopt with "
                    f"`invoke backup.adopt {unrecorded.name}`")
    assert unrecorded.name in result.stderr  # its own line still says it is unverifiable


def test_worst_first_keeps_the_order_within_each_kind():
    from ops.backups import worst_first

    unverifiable = ["unverifiable: no usable checksum record beside it"]
    bad = [{"name": "a", "problems": unverifiable}, {"name": "b", "problems": ["integrity"]},
           {"name": "c", "problems": unverifiable}, {"name": "d", "problems": ["SHA-256 x"]}]
    assert [item["name"] for item in worst_first(bad)] == ["b", "d", "a", "c"]


# ---------------------------------------------------------------- in-process runs are honest

def test_an_in_process_run_is_what_the_process_prints(tmp_path):
    """``helpers.run_here`` (the matrices' way to run the CLI) gives the exit code, stdout
    and stderr a real ``python -m invoke`` gives, for help, a usage error and a config error."""
    cases = [("--help", "backup.status"), ("backup.status", "--max-age", "400d"),
             ("backup.list",)]
    env = {"INVOKE_BACKUP_DIR": "data/bakcups"}
    here = [helpers.run_here(*args, cwd=tmp_path, env=env) for args in cases]
    there = helpers.run_parallel(functools.partial(helpers.run_invoke, *args, cwd=tmp_path,
                                                   env=env) for args in cases)
    for ours, theirs in zip(here, there, strict=True):
        assert (ours.returncode, ours.stdout, ours.stderr) == (
            theirs.returncode, theirs.stdout, theirs.stderr), f"{ours}\n{theirs}"
    assert [r.returncode for r in here] == [0, 2, 3]


def test_an_in_process_run_that_hangs_fails_the_test_instead_of_the_worker(site, tmp_path):
    """``run_here`` has no process to kill: past its timeout the run is stopped by SIGALRM
    and the test fails with what the run printed, and the run's state is put back."""
    site.world.hang(["version"], seconds=30, until=tmp_path / "never")
    before = (dict(os.environ), os.getcwd(), sys.argv[:], signal.getsignal(signal.SIGALRM))

    with pytest.raises(AssertionError, match="still ran after 1s in-process"):
        site.here("emergency.stop", "--yes", timeout=1)

    assert (dict(os.environ), os.getcwd(), sys.argv[:],
            signal.getsignal(signal.SIGALRM)) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_tasks_a_run_carries_backup_dir_into_are_the_tasks_that_take_it():
    """cli.CARRIES names them as a suggested command spells them: one list that must
    follow the tasks' own signatures (a task given the flag and not listed would lose it
    from every command suggested for it)."""
    from ops import cli as ops_cli

    taking = {shown for primary, shown in TASKS.items() if "--backup-dir" in flags_of(primary)}
    assert taking == ops_cli.CARRIES["backup-dir"]
