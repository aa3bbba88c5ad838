"""The machine session: the production machine, and running a script on it.

Everything that touches the machine (backups, the deploy lock, snapshots'
volume, transfers) goes through one ``FlySession``; nothing here calls back up
into a target. The session *has* a resolver (``machine.Resolver``: flyctl and which
machine is production) and offers the fly modules the narrow ``MachineSession``.
"""

from __future__ import annotations

from pathlib import Path

from ops import fly, node, remote
from ops.fly import DEFAULT as RUNNER_DEFAULT
from ops.targets.fly import transfers
from ops.targets.fly.machine import STARTED, Resolver
from ops.targets.protocol import Reporter


class FlySession:
    """Scripts over ``fly ssh console``, files over ``fly ssh sftp``, on the machine."""

    place = "the production machine"

    def __init__(self, settings, report: Reporter, runner: fly.Fly | None = None,
                 policy: str = STARTED):
        self.settings = settings
        self.report = report
        self.app = settings.app
        self.resolver = Resolver(settings, report, runner, policy)
        self.machine_facts: dict | None = None  # what the deploy lock's probe found (lock)

    # -- what the resolver knows, as the fly modules and flows ask for it
    @property
    def fly(self) -> fly.Fly:
        return self.resolver.fly

    @property
    def volumes(self) -> list[fly.Volume]:
        return self.resolver.volumes

    def check_flyctl(self) -> str:
        return self.resolver.check_flyctl()

    def resolve(self, *, again: bool = False) -> tuple[fly.Volume, fly.Machine]:
        return self.resolver.resolve(again=again)

    def look_up(self) -> tuple[fly.Volume, fly.Machine]:
        return self.resolver.look_up()

    @property
    def volume(self) -> fly.Volume:
        return self.resolve()[0]

    @property
    def machine(self) -> fly.Machine:
        return self.resolve()[1]

    @property
    def where(self) -> str:
        return self.machine.id

    def deadline(self, size: int | None = None) -> tuple[float, str]:
        """Seconds a copy, verify or download of ``size`` bytes may take (default: the
        volume's size, which bounds the database), and the keys that give it more."""
        s = self.settings
        if size is None:
            size = self.volume.size_gb * 1024 ** 3
        seconds = s.fly_timeout + size / s.fly_min_rate + s.backup_timeout + s.lock_wait
        return seconds, "fly.timeout (or lower fly.min_rate)"

    def run(self, script: str, *, engine_source: bool = False, timeout=RUNNER_DEFAULT,
            what: str = "a command", key: str = "fly.timeout") -> remote.RemoteOutput:
        """Run a script on the machine; its real status comes back through the sentinel.

        ``timeout`` (default ``fly.timeout``) may be ``(seconds, key)`` from
        ``deadline``; ``what`` names the script in errors.
        """
        if isinstance(timeout, tuple):
            timeout, key = timeout
        stdin = node.engine_stdin() if engine_source else b""
        machine = self.machine.id
        result = self.fly.run(
            fly.ssh_console(self.app, machine, remote.wrap(script)),
            input=stdin, check=False, timeout=timeout, key=key,
            what=f"`fly ssh console` ({what} on machine {machine})",
        )
        output = remote.parse_output(result.stdout,
                                     there=f"fly ssh console -a {self.app} --machine {machine}")
        if output.status is None:
            reason = (fly.error_line(result.stderr, result.returncode) if result.returncode
                      else "flyctl exited 0 but the script's status line never arrived")
            raise fly.FlyError(f"`fly ssh console` ({what} on machine {machine}) failed: "
                               f"{reason}", stderr=result.stderr)
        return output

    def get_file(self, remote_file: str, local: Path, size: int, on_bytes) -> None:
        transfers.get(self, remote_file, local, size, on_bytes)

    def put_file(self, local: Path, remote_file: str, progress=None) -> None:
        transfers.put(self, local, remote_file)  # flyctl reports no upload progress

    def source(self, remote_file: str) -> str:
        return f"{self.app}:{remote_file}"

    def manual_restore(self, name: str) -> str:
        return manual_restore_steps(self.app, self.machine.id, name)


def manual_restore_steps(app: str, machine: str, name: str) -> str:
    """What to do by hand when the machine has neither python3 nor sqlite3."""
    return (f"the production machine has neither python3 nor the sqlite3 CLI; nothing was "
            f"changed. By hand: 1) fly ssh console -a {app} --machine {machine} -C "
            f"\"sh -c 'apt-get update && apt-get install -y sqlite3'\" (or add sqlite3 to the "
            f"image and deploy, or add the app's better-sqlite3 for the Node engine: invoke "
            f"machine.check --production); 2) invoke restore {name} --production")
