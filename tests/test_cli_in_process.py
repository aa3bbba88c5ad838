"""The suite's own speed-up, ``@pytest.mark.cli_in_process`` (tests/helpers.py,
``HERE_AFTER_FIRST``): in a marked test only the first CLI run is a process, later ones
give the same answer in-process, and runs from other threads stay processes."""

from __future__ import annotations

import subprocess

import pytest

from tests import helpers

# it counts the CLI's process starts (subprocess.run): every run a fresh `python -m invoke`
# (tests/test_cli_server.py tests the forks of the CLI server)
pytestmark = pytest.mark.fresh_process


@pytest.fixture
def started(monkeypatch) -> list[list[str]]:
    """The argv of every ``subprocess.run`` the test makes (the CLI's process starts)."""
    seen: list[list[str]] = []
    real = subprocess.run

    def run(argv, *args, **kwargs):
        seen.append(list(argv))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    return seen


@pytest.mark.cli_in_process
def test_a_marked_test_starts_a_process_for_its_first_run_only(run_invoke, started):
    first, second, third = (run_invoke("--list") for _ in range(3))
    assert len(started) == 1 and "invoke" in started[0]
    assert first.returncode == second.returncode == third.returncode == 0
    assert first.stdout == second.stdout == third.stdout and "restore" in first.stdout
    assert first.stderr == second.stderr == ""


@pytest.mark.cli_in_process
def test_runs_from_other_threads_stay_processes(run_invoke, started):
    run_invoke("--list")
    parallel = helpers.run_parallel([lambda: run_invoke("--list"), lambda: run_invoke("--list")])
    assert len(started) == 3
    assert [r.returncode for r in parallel] == [0, 0]


def test_an_unmarked_test_starts_a_process_for_every_run(run_invoke, started):
    run_invoke("--list")
    run_invoke("--list")
    assert len(started) == 2


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.cli_in_process(per="module")
def test_per_module_only_the_modules_first_run_in_this_worker_is_a_process(
        run_invoke, started, n):
    seen = __name__ in helpers.HERE_AFTER_FIRST.modules  # a test of this module ran a CLI
    assert run_invoke("--list").returncode == run_invoke("--list").returncode == 0
    assert len(started) == (0 if seen else 1)
