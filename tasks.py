"""Step Challenge App operations: `invoke --list` shows every task."""

from pathlib import Path

from ops.signals import interrupt_quietly_until_a_task_runs

interrupt_quietly_until_a_task_runs()  # before the heavy imports below

from ops.commands import check_project_config, namespace  # noqa: E402

ROOT = Path(__file__).resolve().parent  # the project root: relative config paths start here

ns = namespace(ROOT)
check_project_config(ns, ROOT)
