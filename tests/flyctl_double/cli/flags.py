"""Flags many flyctl commands share (internal/flag/flag.go: ``-a``, ``-c``, ``--json``, VM size)."""

from __future__ import annotations

from .parser import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


def vm_flags() -> list[Flag]:
    return [Flag("vm-size", None, "string"), Flag("vm-cpus", None, "int"),
            Flag("vm-memory", None, "string"), Flag("vm-cpu-kind", None, "string"),
            Flag("vm-gpus", None, "int"), Flag("vm-gpu-kind", None, "string")]


def app_flag() -> Flag:
    return Flag("app", "a", "string", help="Application name")


def config_flag() -> Flag:
    return Flag("config", "c", "string", help="Path to application configuration file")


def json_flag() -> Flag:
    return Flag("json", "j", help="JSON output")
