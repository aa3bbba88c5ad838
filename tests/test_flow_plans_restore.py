"""What a restore's dry run shows is what its run does (issue 22 item 2).

Each flow runs twice through the real CLI: ``--dry-run --json`` (the plan), then for
real (``--yes --json``), locally, on an SSH host (the real sshd) and on Fly. The steps
the run recorded are the plan's, in its order; on Fly (the flyctl double) every flyctl
call the run made is a command the plan showed, in the order shown, with the machine the
dry run resolved filled in.
"""

from __future__ import annotations

import os
import re
import shlex

import pytest

from ops import engine, fly
from tests import helpers
from tests.fake_production import APP, MACHINE, changed_after_backup, command_words, ssh_purpose

pytestmark = pytest.mark.cli_in_process(per="module")


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


def ran_steps(record: dict) -> list[str]:
    return [step["step"] for step in record["steps"]]


def test_local_restore_runs_the_steps_its_dry_run_shows(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    plan = run_invoke("restore", "--dry-run", "--json")
    assert plan.returncode == 0, plan
    shown = [step["key"] for step in plan.json()["steps"]]
    assert plan.json()["backup"] == made.name and plan.json()["outcome"] == "dry run"
    run = run_invoke("restore", "--yes", "--json")
    assert run.returncode == 0, run
    assert run.json()["backup"]["name"] == made.name
    # the last step, the audit line, is the record itself
    assert [*ran_steps(run.json()), "record"] == shown


def shown_call(argv: list[str]) -> list[str]:
    """A command as the plan shows it: a machine's script by its purpose, the mark on its
    first line (a plan showed every one as `<restore script>`: s27 review-op #11)."""
    if argv[:2] == ["ssh", "console"]:
        (script,) = command_words(argv[-1])[2:]
        return [*argv[:-1], f"<{ssh_purpose(script)} script>"]
    return argv


def test_production_restore_makes_the_calls_its_dry_run_shows(prod):  # noqa: F811
    made = changed_after_backup(prod)
    plan = prod.run("restore", "--production", "--dry-run", "--json")
    assert plan.returncode == 0, plan
    steps = plan.json()["steps"]
    assert plan.json()["backup"] == made.name and plan.json()["outcome"] == "dry run"
    shown = [list(argv) for step in steps for argv in step["commands"]]
    # the dry run resolved the machine: its commands name it, no placeholder left
    assert fly.machine_restart(APP, MACHINE) in shown
    assert not [argv for argv in shown if "<machine>" in argv]
    before = len(prod.calls())
    run = prod.run("restore", "--production", "--yes", "--json")
    assert run.returncode == 0, run
    made_calls = [shown_call(argv) for argv in prod.calls()[before:]]
    assert made_calls == shown, "\n".join(shlex.join(a) for a in made_calls)
    assert [*ran_steps(run.json()), "record"] == [step["key"] for step in steps]


def sent_as_shown(argv: list[str], file) -> list[str]:
    """An upload call as the plan shows it: ``file`` for its private copy, the staging
    name without the run's pid."""
    if argv[:3] != ["ssh", "sftp", "put"]:
        return argv
    copy, staged = argv[3], argv[4]
    assert os.path.basename(copy) == file.name and copy != str(file), argv
    assert re.fullmatch(r".*/\.upload-" + re.escape(file.name) + r"\.[0-9]+", staged), argv
    return [*argv[:3], str(file), staged.rsplit(".", 1)[0], *argv[5:]]


def test_a_production_restore_from_a_file_makes_the_calls_its_dry_run_shows(prod):  # noqa: F811
    changed_after_backup(prod)
    assert prod.run("backup.download", "latest").returncode == 0
    (file,) = [prod.local_dir / name for name in prod.local_files() if name.endswith(".db")]
    for there in prod.remote_dir.glob(f"{file.name}*"):  # sent back as a new one
        there.unlink()
    plan = prod.run("restore", "--production", "--from", str(file), "--dry-run", "--json")
    assert plan.returncode == 0, plan
    steps = plan.json()["steps"]
    shown = [list(argv) for step in steps for argv in step["commands"]]
    before = len(prod.calls())
    run = prod.run("restore", "--production", "--from", str(file), "--yes", "--json")
    assert run.returncode == 0, run
    # the upload sends a private copy of the file it read once (never the path again),
    # to a staging name with the run's pid: the plan shows the file and the folder
    made_calls = [sent_as_shown(shown_call(argv), file) for argv in prod.calls()[before:]]
    assert made_calls == [[word.replace("<name>", file.name) for word in argv]
                          for argv in shown], "\n".join(shlex.join(a) for a in made_calls)
    assert [*ran_steps(run.json()), "record"] == [step["key"] for step in steps]


def test_restore_on_an_ssh_host_runs_the_steps_its_dry_run_shows(ssh_host, tmp_path,
                                                                 run_invoke):
    db = helpers.make_wal_db(tmp_path / "host" / "data" / "steps.db")
    folder = tmp_path / "host" / "backups"
    made = engine.create_backup(db, folder)
    env = {"HOME": os.environ["HOME"], "INVOKE_DB_REMOTE_PATH": str(db),
           "INVOKE_BACKUP_REMOTE_DIR": str(folder), "INVOKE_SSH_CONNECT_TIMEOUT": "5"}
    addr = f"{ssh_host.user}@127.0.0.1:{ssh_host.port}"
    plan = run_invoke("restore", "--host", addr, "--dry-run", "--json", env=env)
    assert plan.returncode == 0, plan
    assert plan.json()["backup"] == made.name and plan.json()["outcome"] == "dry run"
    run = run_invoke("restore", "--host", addr, "--yes", "--json", env=env)
    assert run.returncode == 0, run
    assert [*ran_steps(run.json()), "record"] == [step["key"] for step in plan.json()["steps"]]
    connect = run.json()["steps"][0]
    assert connect["outcome"] == "ok" and connect["detail"].startswith("connected to ")
    assert f"connect to {addr}" in run.stderr  # its own line, before anything runs there
    # an SSH host is named as such, never "the machine" (issue 20 #8)
    assert f"restore {made.name} on {addr}" in run.stderr and "the machine" not in run.stderr
