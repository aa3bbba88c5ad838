"""The Fly session *has* a machine resolver, and the fly modules below it ask only for
what ``MachineSession`` offers (issue 22 item 2): read from their source, so a module
that reaches past the interface fails here, and ``FlySession`` must offer all of it."""

from __future__ import annotations

import ast
import inspect

import pytest

from ops.targets.fly import app, lock, snapshots, transfers
from ops.targets.fly.machine import MachineSession, Resolver
from ops.targets.fly.session import FlySession

OFFERED = {name for name in dir(MachineSession) if not name.startswith("_")} | set(
    MachineSession.__annotations__)


def asked_of_session(module) -> set[str]:
    """Every ``session.X`` (and ``self.session.X``) the module's code reads or calls."""
    asked = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id == "session" or \
                isinstance(base, ast.Attribute) and base.attr == "session":
            asked.add(node.attr)
    return asked


@pytest.mark.parametrize("module", [app, lock, snapshots, transfers])
def test_the_fly_modules_use_only_the_narrow_session(module):
    asked = asked_of_session(module)
    assert asked, module  # the walk found its uses
    assert asked <= OFFERED, sorted(asked - OFFERED)


def test_the_session_offers_the_whole_interface_and_is_no_resolver():
    assert not issubclass(FlySession, Resolver)
    assert {"resolve", "run", "deadline", "fly", "machine", "volume", "volumes"} <= OFFERED
    for name in OFFERED - set(MachineSession.__annotations__):
        assert hasattr(FlySession, name), name
    init = inspect.getsource(FlySession.__init__)
    for field in MachineSession.__annotations__:
        assert f"self.{field}" in init or hasattr(FlySession, field), field
