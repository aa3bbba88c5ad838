"""pytest fixture for the flyctl double.  Re-export it from ``tests/conftest.py``::

    from tests.flyctl_double.plugin import fly_world  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .state import FlyWorld, default_world


@pytest.fixture
def fly_world(tmp_path: Path) -> FlyWorld:
    """A :func:`~tests.flyctl_double.state.default_world` under ``tmp_path/flyworld``.

    Run subprocesses with ``env=fly_world.subprocess_env()`` (or merge ``fly_world.env()``).
    """
    return default_world(tmp_path)
