"""Files to and from the machine through ``fly ssh sftp get/put`` (flyctl shows no
progress: a download's growing file is watched instead). The checks around them
(temporary names, SHA-256, linking into place) are in ``ops.targets.scripted``."""

from __future__ import annotations

import contextlib
import posixpath
import shlex
import threading
from pathlib import Path

from ops import fly
from ops.targets.fly.machine import MachineSession


def get(session: MachineSession, remote_file: str, local: Path, size: int, on_bytes) -> None:
    """``fly ssh sftp get`` into the new path ``local`` within the copy deadline."""
    with _Watch(local, on_bytes):
        seconds, key = session.deadline(size)
        session.fly.run(fly.sftp_get(session.app, session.machine.id, remote_file, str(local)),
                        timeout=seconds, key=key,
                        what=f"`fly ssh sftp get` of {local.name}")


def put(session: MachineSession, local: Path, remote_file: str) -> None:
    """``fly ssh sftp put``; the partial file flyctl leaves on failure is removed."""
    session.run(f"# ops: mkdir\nmkdir -p {shlex.quote(posixpath.dirname(remote_file))}")
    try:
        seconds, key = session.deadline(local.stat().st_size)
        session.fly.run(fly.sftp_put(session.app, session.machine.id, str(local), remote_file),
                        timeout=seconds, key=key, what=f"`fly ssh sftp put` of {local.name}")
    except fly.FlyError:
        session.run(f"# ops: rm\nrm -f {shlex.quote(remote_file)}")
        raise


class _Watch:
    """Report a growing file's size while flyctl writes it."""

    def __init__(self, path: Path, update):
        self.path, self.update = path, update
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.update(self.path.stat().st_size)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
