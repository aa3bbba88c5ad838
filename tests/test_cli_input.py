"""What a new operator trips over, through the real `invoke` command: bad numbers and
config files, app names, short flags, output that must fit, where paths start, hints that
must run as pasted."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import NEW_IMAGE, make_site
from tests.helpers import REPO_ROOT, assert_one_line_error, make_project, run_in, run_parallel

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

# ---------------------------------------------------------------- a project of its own


# ---------------------------------------------------------------- numbers (issue 7 #10)

BAD_NUMBERS = ("inf", "nan", "-1", "1e12", "9" * 400)
NUMBER_FLAGS = [
    ("backup", "--lock-wait"),
    ("backup", "--timeout"),
    ("backup", "--keep"),
    ("backup.cleanup", "--keep"),
    ("backup.volume", "--timeout"),
    ("deploy", "--lock-wait"),
    ("deploy", "--health-timeout"),
    ("deploy.rollback", "--lock-wait"),
    ("deploy.rollback", "--health-timeout"),
]


def rotate(cases: list, values: tuple) -> list:
    """Each case with two of ``values`` in turn (every value is used; test_config checks
    every pair in-process, where it costs nothing)."""
    return [(*case, values[(i + k) % len(values)]) for i, case in enumerate(cases)
            for k in (0, 2)]


def test_every_number_flag_refuses_inf_nan_negative_and_huge(tmp_path, wal_db):
    calls = rotate(NUMBER_FLAGS, BAD_NUMBERS)
    results = helpers.run_each(
        functools.partial(helpers.run_here, task, flag, value, cwd=tmp_path)
        for task, flag, value in calls
    )
    for (task, flag, value), result in zip(calls, results, strict=True):
        line = assert_one_line_error(result, 2, contains=flag)
        assert "must be" in line, (task, flag, value, line)
    assert helpers.backup_files(tmp_path / "data" / "backups") == []


@pytest.mark.parametrize("value", ["9" * 400, "400d", "1000000h"])
def test_max_age_has_a_ceiling(tmp_path, backup_now, value):
    backup_now()
    result = helpers.run_here("backup.status", "--max-age", value, cwd=tmp_path)
    assert_one_line_error(result, 2, contains="--max-age must be at most 366d")


NUMBER_KEYS = [
    ("INVOKE_BACKUP_LOCK_WAIT", "backup.lock_wait"),
    ("INVOKE_BACKUP_TIMEOUT", "backup.timeout"),
    ("INVOKE_BACKUP_SNAPSHOT_TIMEOUT", "backup.snapshot_timeout"),
    ("INVOKE_HEALTH_TIMEOUT", "health.timeout"),
    ("INVOKE_HEALTH_INTERVAL", "health.interval"),
    ("INVOKE_DEPLOY_LOCK_WAIT", "deploy.lock_wait"),
    ("INVOKE_BACKUP_KEEP", "backup.keep"),
]


def test_every_number_key_refuses_inf_nan_negative_and_huge(tmp_path, backup_now):
    backup_now()
    calls = rotate(NUMBER_KEYS, BAD_NUMBERS)
    results = helpers.run_each(
        functools.partial(helpers.run_here, "backup.list", cwd=tmp_path, env={var: value})
        for var, _, value in calls
    )
    for (_, key, _), result in zip(calls, results, strict=True):
        assert_one_line_error(result, 2, contains=key.split(".")[1])


# ---------------------------------------------------------------- invoke.yaml (issue 7 #10)

BROKEN_CONFIG_FILES = [
    ("invoke.yaml", "backup: 5\n", "backup must be a mapping"),
    ("invoke.yaml", "db: [1]\n", "db must be a mapping"),
    ("invoke.yaml", "backup:\n", "backup must be a mapping of keys (backup.dir"),
    ("invoke.yaml", "backup:\n  keep: [1\n", "is not valid YAML (line 3)"),
    ("invoke.yaml", "- backup\n", "must be a mapping of sections"),
    ("invoke.yaml", "just words\n", "must be a mapping of sections"),
    ("invoke.yaml", "backup:\n  dir: {a: 1}\n", "backup.dir must be a single value"),
    ("invoke.yaml", "run: 5\n", "run must be a mapping"),
    ("invoke.yaml", b"backup:\n  dir: \xff\n", "cannot read"),
    ("invoke.yml", "fly: [x]\n", "fly must be a mapping"),
    ("invoke.json", '{"backup": ', "is not valid JSON"),
    # review-ox 5: a misspelled key was ignored in silence (retention stayed at 10)
    ("invoke.yaml", "backup:\n  kep: 3\n", "unknown key backup.kep (did you mean backup.keep?"),
    ("invoke.yml", "health:\n  url: x\n  time_out: 5\n", "unknown key health.time_out"),
    ("invoke.json", '{"ssh": {"hosts": "a"}}', "unknown key ssh.hosts (did you mean ssh.host?"),
]


def projects_with(tmp_path, files: list[tuple[str, str | bytes]]) -> list[Path]:
    """One project per (file name, content), each with that file written next to tasks.py."""
    made = []
    for index, (name, text) in enumerate(files):
        project = make_project(tmp_path / f"proj{index}")
        (project / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        made.append(project / name)
    return made


def test_an_invoke_yaml_invoke_cannot_merge_is_one_line(tmp_path):
    paths = projects_with(tmp_path, [(name, text) for name, text, _ in BROKEN_CONFIG_FILES])
    results = helpers.run_each(functools.partial(helpers.run_here, "backup.list",
                                                 cwd=path.parent, search=True)
                               for path in paths)
    for (_, _, complaint), path, result in zip(BROKEN_CONFIG_FILES, paths, results, strict=True):
        assert_one_line_error(result, 2, contains=complaint)
        assert str(path) in result.error_lines[0]


WRONG_VALUES = [
    ("backup:\n  dir: null\n", "config backup.dir must be a string, got null"),
    ("backup:\n  dir: [a, b]\n", "config backup.dir must be a string, got a list"),
    ("db:\n  path: 5\n", "config db.path must be a string, got 5"),
    ("fly:\n  app: [x]\n", "config fly.app must be a string, got a list"),
    ("backup:\n  check: [quick]\n", "config backup.check must be a string"),
    ("backup:\n  keep: null\n", "config backup.keep must be a whole number"),
    ("backup:\n  lock_wait: [1]\n", "config backup.lock_wait must be a number, got a list"),
    ("health:\n  interval: .inf\n", "config health.interval must be a finite number"),
    ("health:\n  timeout: true\n", "config health.timeout must be a number, got a boolean"),
    ("deploy:\n  audit_log: {}\n", "deploy.audit_log must be a single value"),
]


def test_null_list_and_wrongly_typed_values_are_one_line(tmp_path):
    paths = projects_with(tmp_path, [("invoke.yaml", text) for text, _ in WRONG_VALUES])
    results = helpers.run_each(functools.partial(helpers.run_here, "backup.list",
                                                 cwd=path.parent, search=True)
                               for path in paths)
    for (_, complaint), result in zip(WRONG_VALUES, results, strict=True):
        assert_one_line_error(result, 2, contains=complaint)


def test_null_means_unset_where_the_default_is_empty(tmp_path, backup_now):
    project = make_project(tmp_path)
    (project / "invoke.yaml").write_text("backup:\n  remote_command:\nhealth:\n  url: null\n")
    backup_now()
    result = run_in(project, "backup.list", "--json")
    assert result.returncode == 0, result
    assert len(result.json()) == 1


# ---------------------------------------------------------------- fly.toml (issue 7 #10)

BROKEN_FLY_TOMLS = [
    ('app = "a"\nchecks = "x"\n', "[checks] must be a table of named checks"),
    ('app = "a"\n[[checks]]\npath = "/h"\n', "[checks] must be a table of named checks"),
    ('app = "a"\n[checks]\nalive = 5\n', "[checks] must be a table of named checks"),
    ('app = "a"\nhttp_service = 5\n', "[http_service] must be a table"),
    ('app = "a"\n[http_service]\nchecks = "x"\n', "http_service.checks must be an array"),
    ('app = "a"\n[checks.alive]\npath = 5\n', "a check's path must be a string"),
    ('app = "a"\nmounts = ["data"]\n', "[mounts] must be a table"),
    ('app = "a"\n[mounts]\nsource = 5\n', "[mounts] source must be a string"),
    ("app = 5\n", "`app` must be a string"),
    (b'app = "\xff"\n', "cannot read"),
    ('app = "a\n', "not valid TOML"),
]


def test_fly_toml_of_an_unexpected_shape_is_one_line(tmp_path):
    paths = projects_with(tmp_path, [("fly.toml", text) for text, _ in BROKEN_FLY_TOMLS])
    results = helpers.run_each(
        functools.partial(helpers.run_here, "deploy", "--dry-run", cwd=path.parent)
        for path in paths
    )
    for (_, complaint), result in zip(BROKEN_FLY_TOMLS, results, strict=True):
        line = assert_one_line_error(result, 2, contains=complaint)
        assert "fly.toml" in line


# ---------------------------------------------------------------- app names (7 #14, 8 #4)

BAD_APP_NAMES = ["../../x", "x/../../y", "Step-App", "-a", "a b", "app\n", "a" * 64, "äpp"]


def _no_app_env(fly_world, **extra):
    return {**fly_world.env(), "FLY_APP": None, **extra}


APP_TASKS = [("deploy",), ("deploy", "--skip-backup"), ("backup", "--production"),
             ("backup.list", "--production"), ("deploy.unlock",), ("deploy.rollback",),
             ("backup.volume",), ("backup.snapshots",)]


def test_an_app_name_fly_could_not_have_made_is_refused_before_it_is_used(tmp_path, fly_world):
    audit = tmp_path / "a" / "b" / "audit"
    audit.mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    env = _no_app_env(fly_world, INVOKE_DEPLOY_AUDIT_LOG=str(audit / "deploys.jsonl"))
    results = helpers.run_each(
        functools.partial(helpers.run_here, *args, cwd=audit, env={**env, "INVOKE_FLY_APP": name})
        for name, args in zip(BAD_APP_NAMES, APP_TASKS, strict=True)
    )
    for result in results:
        assert_one_line_error(result, 2, contains="fly.app is not a Fly app name")
    assert fly_world.calls() == []
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, anywhere


@pytest.mark.parametrize("where", ["FLY_APP", "fly.toml"])
def test_app_names_from_every_source_are_checked(tmp_path, fly_world, where):
    fly_world.write_fly_toml(tmp_path, app="../x" if where == "fly.toml" else "fine")
    env = _no_app_env(fly_world, FLY_APP="../x" if where == "FLY_APP" else None)
    result = helpers.run_here("backup", "--production", cwd=tmp_path, env=env)
    expected = "FLY_APP" if where == "FLY_APP" else "`app` in fly.toml"
    assert_one_line_error(result, 2, contains=f"{expected} is not a Fly app name")
    assert fly_world.calls() == []


def test_without_any_app_name_production_tasks_name_the_three_places(tmp_path, fly_world):
    fly_world.write_fly_toml(tmp_path, app="")
    env = _no_app_env(fly_world, INVOKE_FLY_APP="", FLY_APP="")
    results = helpers.run_each(
        functools.partial(helpers.run_here, *args, cwd=tmp_path, env=env)
        for args in (("backup", "--production"), ("backup.list", "-p"), ("backup.volume",),
                     ("deploy",), ("deploy.rollback",), ("deploy.unlock",))
    )
    for result in results:
        assert_one_line_error(
            result, 2, contains="no Fly app name: set fly.app (INVOKE_FLY_APP), FLY_APP, or "
                                "`app` in fly.toml")
    assert fly_world.calls() == []  # never `-a ""`


# ---------------------------------------------------------------- short flags (issue 9 #2)

TASKS = ["backup", "backup.list", "backup.verify", "backup.cleanup", "backup.status",
         "backup.volume", "backup.snapshots", "backup.download", "deploy", "deploy.rollback",
         "deploy.unlock", "demo"]
SHORT = re.compile(r"^\s+-(\w)(?: \w+)?, --([\w-]+)", re.M)


def short_flags(tmp_path) -> dict[str, dict[str, str]]:
    results = helpers.run_each(
        functools.partial(helpers.run_here, "--help", task, cwd=tmp_path) for task in TASKS
    )
    found = {}
    for task, result in zip(TASKS, results, strict=True):
        assert result.returncode == 0, result
        found[task] = dict(SHORT.findall(result.stdout))
    return found


def test_a_short_flag_means_one_thing_everywhere_and_h_is_help(tmp_path):
    found = short_flags(tmp_path)
    meaning: dict[str, set[str]] = {}
    for flags in found.values():
        for short, long in flags.items():
            meaning.setdefault(short, set()).add(long)
    assert {short: longs for short, longs in meaning.items() if len(longs) > 1} == {}
    assert "h" not in meaning
    assert "skip-backup" not in found["deploy"].values()
    assert found["deploy"] == {"i": "image", "j": "json", "l": "lock-wait", "n": "dry-run"}
    assert found["backup"]["p"] == "production" and found["backup.list"]["p"] == "production"
    readme = (REPO_ROOT / "docs" / "flags.md").read_text()
    for short, longs in meaning.items():
        assert f"`-{short}` `--{longs.pop()}`" in readme, short


@pytest.mark.parametrize("task", ["deploy", "deploy.rollback", "backup", "backup.status"])
def test_dash_h_shows_help(tmp_path, task):
    result = helpers.run_here(task, "-h", cwd=tmp_path)
    assert result.returncode == 0, result
    assert f"Usage: inv[oke] [--core-opts] {task}" in result.stdout


def run_on_a_terminal(site, args: list[str], answer: str) -> tuple[int, str]:
    """The real CLI with stdin and stderr on a pseudo-terminal; ``answer`` is typed when
    the question appears. Returns the exit code and what the terminal showed."""
    return helpers.on_terminal(args, cwd=site.cwd, env=site.env(), answer=answer,
                               streams=("stdin", "stderr"))


def test_skip_backup_on_a_terminal_asks_and_no_deploys_nothing(tmp_path, fly_world):
    site = make_site(tmp_path, fly_world)
    try:
        for answer in ("no", "y"):  # only the word asked for goes on (issue 16 #17)
            code, shown = run_on_a_terminal(
                site, ["deploy", "--skip-backup", "--image", NEW_IMAGE], answer)
            assert "--skip-backup deploys WITHOUT a backup and a volume snapshot" in shown, shown
            assert code == 1, shown
            assert "Error: --skip-backup was not confirmed; nothing was deployed" in shown
            assert fly_world.calls() == []

        code, shown = run_on_a_terminal(site, ["deploy", "--skip-backup", "--image", NEW_IMAGE],
                                        "yes")
        assert code == 0, shown
        assert "deploy" in [call[0] for call in fly_world.calls()]
    finally:
        site.health.close()


# ---------------------------------------------------------------- output (issue 9 #7)


def test_a_log_line_never_wraps_even_when_ci_claims_a_terminal(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "data" / "steps.db"
    helpers.make_wal_db(deep)
    env = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": None}  # as deploy.yml
    result = helpers.run_invoke("backup", "--db", str(deep), cwd=tmp_path, env=env)
    assert result.returncode == 0, result
    lines = STYLE.sub("", result.stderr).splitlines()
    step = next(line for line in lines if line.startswith("✓ backup"))
    assert str(deep) in step and step.endswith("s)") and "[engine]" in step, result.stderr


STYLE = re.compile(r"\x1b\[[0-9;]*m")  # TTY_COMPATIBLE=1 keeps bold and italic under NO_COLOR


def test_the_backup_list_fits_80_columns(tmp_path, backup_now):
    made = [backup_now() for _ in range(3)]
    env = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": "80"}
    result = helpers.run_invoke("backup.list", cwd=tmp_path, env=env)
    assert result.returncode == 0, result
    lines = STYLE.sub("", result.stderr).splitlines()
    assert max(len(line) for line in lines) <= 80, result.stderr
    assert "…" not in result.stderr, result.stderr
    for backup in made:
        row = next(line for line in lines if backup.name in line)
        assert backup.sha256[:12] in row, result.stderr
    assert "created" not in result.stderr  # the name says when


# ---------------------------------------------------------------- paths (issue 9 #11)


def test_relative_config_paths_start_at_the_project_root(tmp_path):
    project = make_project(tmp_path / "proj")
    sub = project / "tests"
    sub.mkdir()
    db = helpers.make_wal_db(project / "data" / "steps.db")
    made = run_in(sub, "backup", "--db", "../data/steps.db")  # a flag: from the current folder
    assert made.returncode == 0, made
    assert len(engine.list_backups(project / "data" / "backups")) == 1
    assert not (sub / "data").exists()

    listed = helpers.run_here("backup.list", cwd=sub, search=True)
    assert listed.returncode == 0, listed
    assert f"Backups in {project / 'data' / 'backups'} (1)" in listed.stderr
    as_json = helpers.run_here("backup.list", "--json", cwd=sub, search=True)
    assert [item["name"] for item in as_json.json()] == [
        item.name for item in engine.list_backups(project / "data" / "backups")]
    status = helpers.run_here("backup.status", cwd=sub, search=True)
    assert status.returncode == 0 and str(project / "data" / "backups") in status.stderr
    assert db.exists()


def test_a_backup_folder_that_does_not_exist_is_reported_as_such(tmp_path):
    results = helpers.run_each(
        functools.partial(helpers.run_here, *args, cwd=tmp_path,
                          env={"INVOKE_BACKUP_DIR": "data/bakcups"})
        for args in (("backup.list",), ("backup.list", "--json"), ("backup.verify", "latest"),
                     ("backup.status",), ("backup.status", "--max-age", "1d"),
                     ("backup.cleanup",), ("backup.cleanup", "-n"), ("backup.drill",))
    )  # cleanup and drill: review-ox item 6 (an empty table and exit 0; "no backups")
    for result in results:
        # with --max-age, the alert's code: a folder that is not there holds no backup
        code = 7 if "--max-age" in result.args else 3  # (s27 review-op #7)
        assert_one_line_error(result, code, contains="backup folder not found: data/bakcups")
        if "--json" in result.args:  # one JSON document still (review-ox item 7)
            assert result.json()["exit_code"] == 3
        else:
            assert result.stdout == ""


def test_an_empty_backup_folder_says_where_it_looked(tmp_path):
    (tmp_path / "data" / "backups").mkdir(parents=True)
    result = helpers.run_invoke("backup.list", cwd=tmp_path)
    assert result.returncode == 0 and "No backups in data/backups." in result.stderr, result


# ---------------------------------------------------------------- fresh clone (issue 9 #12)


def test_backup_on_a_fresh_clone_says_where_the_path_comes_from(tmp_path):
    result = helpers.run_invoke("backup", cwd=tmp_path)
    line = assert_one_line_error(result, 3, contains="database not found: data/steps.db")
    for hint in ("db.path", "INVOKE_DB_PATH", "--db PATH", " demo"):
        assert hint in line
    assert not (tmp_path / "data").exists()


def test_db_flag_backs_up_another_database(tmp_path):
    other = helpers.make_wal_db(tmp_path / "elsewhere" / "app.db")
    result = helpers.run_invoke("backup", "--db", str(other), "--json", cwd=tmp_path)
    assert result.returncode == 0, result
    made = tmp_path / result.json()["backup"]["path"]
    assert engine.verify_backup(made).ok
    # another database's backups have a folder of their own in backup.dir (issue 16 #3)
    assert made.parent.parent == tmp_path / "data" / "backups"
    assert made.parent.name.startswith("db-app-")
    assert len(engine.list_backups(made.parent)) == 1
    assert engine.list_backups(tmp_path / "data" / "backups") == []


# ---------------------------------------------------------------- suggestions (issue 9 #13)


def test_the_demos_closing_hint_runs_as_pasted(tmp_path):
    project = make_project(tmp_path / "proj")
    demo = run_in(project, "demo", "--mb", "2", timeout=120)
    assert demo.returncode == 0, demo
    command = helpers.command_after(demo.stderr, "Try:")
    pasted = subprocess.run(["bash", "-c", command], cwd=project, env=helpers.clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert pasted.returncode == 0, (command, pasted.stderr)
    assert f"Backups in {Path('demo') / 'data' / 'backups'} (2)" in pasted.stderr, pasted.stderr


def test_invoke_list_shows_the_demos_whole_first_sentence(tmp_path):
    result = helpers.run_invoke("--list", cwd=tmp_path)
    assert result.returncode == 0, result
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("demo"))
    assert line.rstrip().endswith("."), line
    assert "..." not in line


def test_an_invoke_json_in_the_project_still_works(tmp_path, backup_now):
    project = make_project(tmp_path)
    (project / "invoke.json").write_text(json.dumps({"backup": {"keep": 3}}))
    backup_now()
    result = run_in(project, "backup.list", "--json")
    assert result.returncode == 0, result


def test_invoke_from_inside_the_package_finds_the_projects_tasks(tmp_path):
    """Invoke searches up from the current folder for `tasks.py` or a `tasks/` package: the
    toolkit's own collections are in ops/commands/, so `cd ops && invoke ...` finds the
    project's tasks.py instead of a package of that name."""
    folder = tmp_path / "backups"
    folder.mkdir()
    listed = run_in(REPO_ROOT / "ops", "backup.list", env={"INVOKE_BACKUP_DIR": str(folder)})
    assert listed.returncode == 0, listed
    assert f"No backups in {folder}" in listed.stderr
    assert not (REPO_ROOT / "ops" / "tasks").exists()


def test_verify_and_drill_lines_name_the_backup_folder_not_the_database(wal_db, tmp_path):
    """review-ox item 13: `verify all on local data/steps.db` named a file that need not
    exist (here the backups are elsewhere and there is no database at the default path)."""
    elsewhere = tmp_path / "other"
    env = {"INVOKE_DB_PATH": str(wal_db), "INVOKE_BACKUP_DIR": str(elsewhere / "backups")}
    assert helpers.run_invoke("backup", cwd=tmp_path, env=env).returncode == 0
    env = {"INVOKE_DB_PATH": str(wal_db), "INVOKE_BACKUP_DIR": "backups"}  # the same source
    verified, drilled = run_parallel(
        functools.partial(helpers.run_invoke, *args, cwd=elsewhere, env=env)
        for args in (("backup.verify", "all"), ("backup.drill",)))
    assert verified.returncode == 0 and drilled.returncode == 0, (verified, drilled)
    assert "✓ verify all in backups " in verified.stderr, verified
    assert "✓ drill latest in backups " in drilled.stderr, drilled
