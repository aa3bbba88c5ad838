"""A misspelled *section* in an Invoke config file is refused, not ignored (review-op P6):
``bakcup: {keep: 3}`` left retention at its default of 10 in silence, while
docs/configuration.md promises a misspelling never does that. Invoke's own sections (run,
tasks, sudo, runners, timeouts) stay allowed; the system-wide file, which every Invoke
project on the machine reads, refuses only a near miss of one of ours."""

from __future__ import annotations

import functools

import invoke

from ops.config import DEFAULTS, unknown_section
from ops.errors import ExitCode
from tests.helpers import (
    assert_one_line_error,
    cli_with_system_config,
    make_project,
    run_in,
    run_mixed,
    run_parallel,
)

EXPECTED = invoke.Config.global_defaults() | DEFAULTS

REFUSED = [
    ("invoke.yaml", "bakcup:\n  keep: 3\n", "unknown section bakcup: (did you mean backup?"),
    ("invoke.yaml", "backups:\n  keep: 14\n", "unknown section backups: (did you mean backup?"),
    ("invoke.yml", "helth:\n  url: x\n", "unknown section helth: (did you mean health?"),
    ("invoke.json", '{"mystuff": {"a": 1}}', "unknown section mystuff: (the sections are"),
]


def test_a_misspelled_section_in_the_project_file_is_one_line_naming_it(tmp_path):
    paths = []
    for index, (name, text, _) in enumerate(REFUSED):
        path = make_project(tmp_path / f"proj{index}") / name
        path.write_text(text)
        paths.append(path)
    results = run_mixed(functools.partial(run_in, path.parent, "backup.cleanup", "-n")
                        for path in paths)
    for (_, _, complaint), path, result in zip(REFUSED, paths, results, strict=True):
        line = assert_one_line_error(result, ExitCode.USAGE, contains=complaint)
        assert line.startswith(f"Error: {path}: "), line


def test_a_misspelled_section_in_the_users_file_is_refused_and_invokes_own_pass(tmp_path):
    home, project = tmp_path / "home", make_project(tmp_path / "proj")
    home.mkdir()
    (tmp_path / "backups").mkdir()
    (home / ".invoke.yaml").write_text("fly:\n  app: step-app\nflyy:\n  app: x\n")
    (project / "invoke.yaml").write_text(
        "run:\n  echo: true\ntasks:\n  dedupe: true\nsudo:\n  prompt: 'pw: '\n"
        "timeouts:\n  command: 60\nrunners:\n  local: invoke.runners.Local\n"
        f"backup:\n  dir: {tmp_path / 'backups'}\n")
    refused, allowed = run_parallel([
        lambda: run_in(project, "backup.list", env={"HOME": str(home)}),
        lambda: run_in(project, "backup.list", env={"HOME": str(tmp_path)}),
    ])  # fmt: skip
    line = assert_one_line_error(refused, ExitCode.USAGE,
                                 contains="unknown section flyy: (did you mean fly?")
    assert str(home / ".invoke.yaml") in line
    assert allowed.returncode == 0, allowed


def test_the_system_file_refuses_only_a_near_miss_of_ours(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no developer's ~/.invoke.yaml
    monkeypatch.setenv("INVOKE_BACKUP_DIR", str(tmp_path / "backups"))
    (tmp_path / "backups").mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "invoke.yaml").write_text("otherproject:\n  x: 1\n")
    assert cli_with_system_config(capsys, etc, "backup.list").returncode == 0
    (etc / "invoke.yaml").write_text("otherproject:\n  x: 1\nbakup:\n  keep: 3\n")
    line = assert_one_line_error(cli_with_system_config(capsys, etc, "backup.list"),
                                 ExitCode.USAGE, contains="unknown section bakup: (did you")
    assert str(etc / "invoke.yaml") in line


def test_which_sections_are_known_as_data():
    assert unknown_section({"backup": {}, "run": {}, "tasks": {}, "sudo": {}}, EXPECTED) is None
    assert unknown_section({"_defaults": {"keep": 3}, "_helper": 1}, EXPECTED) is None
    assert "did you mean deploy?" in unknown_section({"deplyo": {}}, EXPECTED)
    assert "did you mean" not in unknown_section({"zzz": 1}, EXPECTED)
    assert unknown_section({"zzz": 1}, EXPECTED, shared=True) is None
    assert "did you mean ssh?" in unknown_section({"sshh": 1}, EXPECTED, shared=True)
