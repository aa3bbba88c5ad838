"""Which target a task run means, decided in one place.

``--production`` is the Fly machine, an SSH host (``--host``, else ``ssh.host``) is that
host, neither is this computer's folder. Every task that acts on backups (backup,
verify, drill, restore, …) opens its target here.
"""

from __future__ import annotations

from ops.config import Settings
from ops.targets.local import LocalTarget
from ops.targets.protocol import Reporter


def target_for(settings: Settings, report: Reporter, *, production: bool = False):
    """The target ``settings`` and ``--production`` name (an SSH target holds a connection
    once used: its caller closes it)."""
    from ops.targets.fly import FlyTarget  # imported here: a run on this computer
    from ops.targets.ssh import SshTarget  # needs neither module (~30 ms of each start)

    if production:
        return FlyTarget(settings, report)
    if settings.ssh_host:
        return SshTarget(settings, report, settings.ssh_host)
    return LocalTarget(settings, report)
