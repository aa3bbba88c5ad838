"""Step Challenge App operations: `invoke --list` shows every task."""

from ops.tasks import namespace

ns = namespace()
