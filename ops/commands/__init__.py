"""The Invoke namespace: one module per collection, configured with every public key.

Every `invoke` process imports every module here to declare the tasks, so a task module
imports its flow (ops.restore, ops.replica, ops.deploy, ...), ops.ui (Rich) and ops.engine
inside the task bodies and helpers that use them, and names them for annotations only under
``TYPE_CHECKING``: `invoke --list` or a task's --help needs none of them, and a task run
imports only its own (tests/test_startup_imports.py, benchmarks/startup.py)."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import Collection
from invoke.config import Config, merge_dicts
from invoke.exceptions import Exit

from ops.cli import (
    end_quietly_on_closed_pipe,
    forget_carried,
    one_line,
    running_program,
    strict_parsing,
)
from ops.commands import backup, demo, deploy, emergency, machine, replica, restore, restore_volume
from ops.config import DEFAULTS, check_config_data, check_config_files, config_files
from ops.errors import ExitCode, OpsError


def namespace(root: Path | None = None) -> Collection:
    """Every task; ``root`` (tasks.py's folder) is where relative config paths start."""
    ns = Collection()
    ns.add_collection(Collection.from_module(backup))
    ns.add_collection(Collection.from_module(deploy))
    ns.add_collection(Collection.from_module(emergency))
    ns.add_collection(Collection.from_module(machine))
    ns.add_collection(Collection.from_module(replica))
    restores = Collection.from_module(restore)
    restores.add_task(restore_volume.volume)
    ns.add_collection(restores)
    ns.add_task(demo.demo)
    ns.configure(DEFAULTS)
    if root is not None:
        ns.configure({"project": {"root": str(root)}})
    return ns


def check_project_config(ns: Collection, root: Path) -> None:
    """Stop with one line (exit 2) on an Invoke config file Invoke would crash on while
    merging: /etc/invoke.*, ~/.invoke.*, the project's invoke.*, ``invoke -f FILE``.

    Called from tasks.py, which Invoke imports just before it reads the project's file and
    (after parsing) the runtime one; the running Invoke (if tasks.py was imported by one)
    says where its system and user files are, and gets our command-line parsing."""
    expected = merge_dicts(Config.global_defaults(), ns.configuration())
    program = running_program()
    config = program.config if program is not None else Config(lazy=True)
    runtime = program.args.config.value if program is not None else None
    if runtime is None and program is not None:
        runtime = os.environ.get("INVOKE_RUNTIME_CONFIG")
    try:
        files = config_files(config._system_prefix, config._user_prefix, root, runtime)
        check_config_files([path for path, _ in files], expected,
                           shared=[path for path, level in files if level == "system"])
    except OpsError as exc:
        raise Exit(f"Error: {one_line(exc)}", code=int(ExitCode.USAGE)) from None
    if program is not None:
        end_quietly_on_closed_pipe()
        forget_carried()  # a Program run in a process that ran one before (the tests)
        strict_parsing(program)
        checked_update_config(program, expected)


def checked_update_config(program, expected: dict) -> None:
    """A .py config file is only known once Invoke has run it (the runtime one in
    ``update_config``): its sections are checked then, before anything merges them."""
    update_config = program.update_config

    def update(*args, **kwargs):
        config = program.config
        try:
            update_config(*args, **kwargs)
            check_config_data([(getattr(config, f"_{level}_path"), getattr(config, f"_{level}"))
                               for level in ("system", "user", "project", "runtime")
                               if str(getattr(config, f"_{level}_path", "")).endswith(".py")],
                              expected, shared=[config._system_path])
        except OpsError as exc:
            raise Exit(f"Error: {one_line(exc)}", code=int(ExitCode.USAGE)) from None
        except Exception as exc:  # running a .py config file failed: say so in one line
            raise Exit(f"Error: Invoke could not load its config files: {one_line(exc)}",
                       code=int(ExitCode.USAGE)) from None

    program.update_config = update
