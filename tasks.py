"""Step Challenge App operations: `invoke --list` shows every task."""

from pathlib import Path

from ops.commands import check_project_config, namespace

ROOT = Path(__file__).resolve().parent  # the project root: relative config paths start here

ns = namespace(ROOT)
check_project_config(ns, ROOT)
