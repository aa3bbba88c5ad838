"""The Invoke namespace: one module per collection, configured with every public key."""

from __future__ import annotations

from invoke import Collection

from ops.config import DEFAULTS
from ops.tasks import backup, demo, deploy, emergency, restore_volume


def namespace() -> Collection:
    ns = Collection()
    ns.add_collection(Collection.from_module(backup))
    ns.add_collection(Collection.from_module(deploy))
    ns.add_collection(Collection.from_module(emergency))
    # `restore.volume`; with ops/tasks/restore.py: Collection.from_module(restore) + this task
    restore = Collection("restore")
    restore.add_task(restore_volume.volume)
    ns.add_collection(restore)
    ns.add_task(demo.demo)
    ns.configure(DEFAULTS)
    # Invoke's own echo format is raw ANSI that ignores NO_COLOR; ours is plain.
    ns.configure({"run": {"echo_format": "$ {command}"}})
    return ns
