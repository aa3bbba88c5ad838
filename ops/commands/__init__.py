"""The Invoke namespace: one module per collection, configured with every public key."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection
from invoke.config import Config, merge_dicts
from invoke.exceptions import Exit

from ops.commands import backup, demo, deploy, emergency, machine, restore, restore_volume
from ops.config import DEFAULTS, check_project_file
from ops.errors import ExitCode, OpsError


def namespace(root: Path | None = None) -> Collection:
    """Every task; ``root`` (tasks.py's folder) is where relative config paths start."""
    ns = Collection()
    ns.add_collection(Collection.from_module(backup))
    ns.add_collection(Collection.from_module(deploy))
    ns.add_collection(Collection.from_module(emergency))
    ns.add_collection(Collection.from_module(machine))
    restores = Collection.from_module(restore)
    restores.add_task(restore_volume.volume)
    ns.add_collection(restores)
    ns.add_task(demo.demo)
    ns.configure(DEFAULTS)
    if root is not None:
        ns.configure({"project": {"root": str(root)}})
    # Invoke's own echo format is raw ANSI that ignores NO_COLOR; ours is plain.
    ns.configure({"run": {"echo_format": "$ {command}"}})
    return ns


def check_project_config(ns: Collection, root: Path) -> None:
    """Stop with one line (exit 2) on an invoke.yaml Invoke would crash on while merging.

    Called from tasks.py, which Invoke imports just before it reads invoke.yaml."""
    expected = merge_dicts(Config.global_defaults(), ns.configuration())
    try:
        check_project_file(root, expected)
    except OpsError as exc:
        raise Exit(f"Error: {exc}", code=int(ExitCode.USAGE)) from None
