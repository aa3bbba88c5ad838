"""pytest fixtures for the flyctl double.  Re-export them from ``tests/conftest.py``::

    from tests.flyctl_double.plugin import fly_double_server, fly_world  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import launcher
from .state import FlyWorld, default_world


@pytest.fixture(scope="session", autouse=True)
def fly_double_server():
    """The session's end stops the double's zygote server (launcher.py), which the first
    world started; a server whose pytest process died exits by itself."""
    yield
    launcher.stop_server()


@pytest.fixture
def fly_world(tmp_path: Path) -> FlyWorld:
    """A :func:`~tests.flyctl_double.state.default_world` under ``tmp_path/flyworld``.

    Run subprocesses with ``env=fly_world.subprocess_env()`` (or merge ``fly_world.env()``).
    """
    return default_world(tmp_path)
