"""The Fly.io production machine as a target, one module per job:

- ``machine``: which machine is production (pure choice; ``Resolver`` asks once per run),
  and ``MachineSession``, what the modules below may ask of the session
- ``session``: ``FlySession``, which has a resolver, runs a script on the machine
  (``fly ssh console``) — the bottom layer
- ``transfers``: files over ``fly ssh sftp``
- ``snapshots``: volume snapshots, waited for
- ``lock``: the deploy lock on the volume
- ``app``: ``FlyApp``, the app itself: releases, ``fly deploy``, restart, snapshots, lock
- ``target``: ``FlyTarget``, the shared scripted backups over the session, and its ``fly_app``
"""

from ops.targets.fly.target import FlyTarget

__all__ = ["FlyTarget"]
