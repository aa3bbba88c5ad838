"""A faithful test double of flyctl (``fly``) plus a small API to build its world.

See README.md.  Import :class:`FlyWorld` / :func:`default_world` from here, and the
pytest fixture from :mod:`tests.flyctl_double.plugin`.
"""

from .state import (
    DEFAULT_APP,
    DEFAULT_MACHINE_ID,
    DEFAULT_TOKEN,
    DEFAULT_VOLUME_ID,
    IMAGE_V11,
    IMAGE_V12,
    SPARE_VOLUME_ID,
    FlyWorld,
    default_world,
)

__all__ = [
    "DEFAULT_APP",
    "DEFAULT_MACHINE_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_VOLUME_ID",
    "IMAGE_V11",
    "IMAGE_V12",
    "SPARE_VOLUME_ID",
    "FlyWorld",
    "default_world",
]
