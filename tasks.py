"""Step Challenge App operations: `invoke --list` shows every task."""

import sys
from pathlib import Path

# Invoke turns bytecode caching off (its --write-pyc, for this file's sake): then every run
# compiles ops/ from source again, 0.1-0.2 s of CPU of each task's start
# (docs/performance.md). Its cache goes to ops/__pycache__; `python -B` and
# PYTHONDONTWRITEBYTECODE (both read at Python's start: sys.flags) still win.
if not sys.flags.dont_write_bytecode:
    sys.dont_write_bytecode = False

from ops.signals import interrupt_quietly_until_a_task_runs  # noqa: E402

interrupt_quietly_until_a_task_runs()  # before the heavy imports below

from ops.commands import check_project_config, namespace  # noqa: E402

ROOT = Path(__file__).resolve().parent  # the project root: relative config paths start here

ns = namespace(ROOT)
check_project_config(ns, ROOT)
