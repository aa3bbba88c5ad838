"""Any host reached over SSH as a target: the database at ``db.remote_path`` and the
backups in ``backup.remote_dir`` there, exactly as on the Fly machine.

The backups are the shared scripted ones (``ops.targets.scripted``): the same remote
scripts and the same shipped engine, run over one Paramiko connection
(``ops.ssh.session``) that opens on first use and closes with the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ops import node
from ops.targets.protocol import Reporter
from ops.targets.scripted import ScriptedTarget

if TYPE_CHECKING:
    from ops.ssh.session import SshSession


class SshHost:
    """The ``Session`` the scripted backups need, over one SSH connection."""

    def __init__(self, ssh: SshSession):
        self.ssh = ssh
        self.place = str(ssh.address)

    @property
    def where(self) -> str:
        return self.ssh.where

    def connect(self) -> str:
        """Open the connection now (the host key checked; a restore's ``connect`` step),
        and say where it leads."""
        self.ssh.connection  # noqa: B018 - opened on first use
        return self.where

    def reconnect(self) -> None:
        """After a lost link: the next call opens a new connection (``SshSession``)."""
        self.ssh.reconnect()

    def run(self, script: str, *, engine_source: bool = False, timeout=None,
            what: str = "a command"):
        """``timeout`` None is ``ssh.timeout``; a copy's ``deadline()`` is no limit (a
        backup bounds itself with ``backup.timeout``)."""
        stdin = node.engine_stdin().decode() if engine_source else ""
        if timeout is None:
            return self.ssh.run(script, stdin)
        return self.ssh.run(script, stdin, timeout=timeout or None)

    def deadline(self, size: int | None = None) -> float:
        return 0  # no limit: a stalled connection still fails after ssh.timeout

    def get_file(self, remote_file: str, local: Path, size: int, on_bytes) -> None:
        self.ssh.get(remote_file, local, on_bytes=on_bytes)

    def put_file(self, local: Path, remote_file: str, progress=None) -> None:
        if progress is None:
            self.ssh.put(local, remote_file)
            return
        with progress(local.name, local.stat().st_size) as update:
            self.ssh.put(local, remote_file, on_bytes=update)

    def source(self, remote_file: str) -> str:
        return f"{self.ssh.address}:{remote_file}"

    def manual_restore(self, name: str) -> str:
        return (f"{self.where} has neither python3 nor the sqlite3 CLI; nothing was changed. "
                f"Install sqlite3 there (e.g. apt-get install -y sqlite3), then run "
                f"invoke restore {name} --host {self.ssh.address} again")

    def close(self) -> None:
        self.ssh.close()


class SshTarget(ScriptedTarget):
    """Backups in ``backup.remote_dir`` on an SSH host (``--host`` or ``ssh.host``)."""

    def __init__(self, settings, report: Reporter, host: str | None = None):
        # The one deferred import: Fabric and Paramiko (with cryptography) hold about
        # 25 MiB, and only runs that use SSH should carry them (peak RSS, issue 12).
        from ops.ssh.session import from_settings

        ssh = from_settings(settings, host)
        super().__init__(settings, report, SshHost(ssh), flag=f" --host {ssh.address}")

    def describe(self) -> str:
        return f"ssh {self.session.place}:{self.db}"

    @property
    def downloads_name(self) -> str:
        return f"ssh-{self.session.place}"

    @property
    def host(self) -> str:
        """Messages name the host by its address, never as "the machine"."""
        return self.session.where

    def folder(self) -> str:
        return f"{self.dir} on {self.session.place}"

    def close(self) -> None:
        """Close the run's one connection (every hop)."""
        self.session.close()
