"""The double's entry point and the helpers tests compare against, at their old path.

The implementation is the ``cli`` package next to this file (see README.md for which module
holds which command); the launchers import ``cli.main`` directly.
"""

from .cli.clock import ZERO_TIME, parse_time
from .cli.main import main
from .cli.output import go_json

__all__ = ["ZERO_TIME", "go_json", "main", "parse_time"]
