"""flyctl: argv builders (pure, tested as data), one runner, JSON parsed into dataclasses.

Every flyctl call in the toolkit goes through ``Fly.run``: argv only (never a
shell string), stdin closed unless we feed it (so flyctl never waits on a
prompt), and failures turned into ``FlyError`` carrying flyctl's own ``Error:``
line. Tokens come from the environment and are redacted from anything we print.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from ops.errors import ExitCode, OpsError

TOKEN_VARS = ("FLY_API_TOKEN", "FLY_ACCESS_TOKEN")
DEFAULT = object()  # "the runner's own timeout", as opposed to None: no limit


class FlyError(OpsError):
    def __init__(self, message: str, code: ExitCode = ExitCode.FLY, *, stderr: str = ""):
        super().__init__(redact(message), code)
        self.stderr = redact(stderr)


def redact(text: str) -> str:
    for var in TOKEN_VARS:
        token = os.environ.get(var, "")
        if len(token) >= 6:
            text = text.replace(token, "***")
    return text


# ------------------------------------------------------------------ data


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    state: str
    size_gb: int
    region: str
    attached_machine_id: str | None
    snapshot_retention: int | None

    @classmethod
    def parse(cls, raw: dict) -> Volume:
        return cls(
            id=raw["id"],
            name=raw.get("name", ""),
            state=raw.get("state", ""),
            size_gb=int(raw.get("size_gb") or 0),
            region=raw.get("region", ""),
            attached_machine_id=raw.get("attached_machine_id") or None,
            snapshot_retention=raw.get("snapshot_retention"),
        )


@dataclass(frozen=True)
class Snapshot:
    id: str
    status: str
    size: int
    volume_size: int
    created_at: str
    retention_days: int | None
    digest: str = ""

    @classmethod
    def parse(cls, raw: dict) -> Snapshot:
        return cls(
            id=raw.get("id") or "",
            status=raw.get("status", ""),
            size=int(raw.get("size") or 0),
            volume_size=int(raw.get("volume_size") or 0),
            created_at=raw.get("created_at", ""),
            retention_days=raw.get("retention_days"),
            digest=raw.get("digest") or "",
        )


@dataclass(frozen=True)
class Machine:
    id: str
    name: str
    state: str
    region: str
    image: str
    volumes: tuple[str, ...]

    @classmethod
    def parse(cls, raw: dict) -> Machine:
        config = raw.get("config") or {}
        return cls(
            id=raw["id"],
            name=raw.get("name", ""),
            state=raw.get("state", ""),
            region=raw.get("region", ""),
            image=config.get("image", ""),
            volumes=tuple(m.get("volume", "") for m in config.get("mounts") or []),
        )


@dataclass(frozen=True)
class Release:
    id: str
    version: int
    status: str
    image_ref: str
    created_at: str
    user: str

    @classmethod
    def parse(cls, raw: dict) -> Release:
        return cls(
            id=raw.get("ID", ""),
            version=int(raw.get("Version") or 0),
            status=raw.get("Status", ""),
            image_ref=raw.get("ImageRef", ""),
            created_at=raw.get("CreatedAt", ""),
            user=(raw.get("User") or {}).get("Email", ""),
        )


# ------------------------------------------------------------------ argv builders


def whoami() -> list[str]:
    return ["auth", "whoami"]


def volumes_list(app: str) -> list[str]:
    return ["volumes", "list", "-a", app, "--json"]


def machines_list(app: str) -> list[str]:
    return ["machine", "list", "-a", app, "--json"]


def snapshots_list(app: str, volume: str) -> list[str]:
    return ["volumes", "snapshots", "list", volume, "-a", app, "--json"]


def snapshots_create(app: str, volume: str) -> list[str]:
    return ["volumes", "snapshots", "create", volume, "-a", app]


def ssh_console(app: str, machine: str, command: str) -> list[str]:
    """``command`` is run without a shell by flyctl: pass a ``remote.wrap``-ed script."""
    return ["ssh", "console", "-a", app, "--machine", machine, "-q", "-C", command]


def sftp_get(app: str, machine: str, remote_path: str, local_path: str) -> list[str]:
    return ["ssh", "sftp", "get", remote_path, local_path, "-a", app, "--machine", machine, "-q"]


def releases(app: str) -> list[str]:
    return ["releases", "-a", app, "--json"]


def deploy(
    app: str,
    config: str,
    *,
    image: str | None = None,
    remote_only: bool = False,
    local_only: bool = False,
    strategy: str | None = None,
    wait_timeout: str | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    argv = ["deploy", "-a", app, "-c", config]
    if image:
        argv += ["--image", image]
    if remote_only and not image:
        argv.append("--remote-only")
    if local_only and not image:
        argv.append("--local-only")
    if strategy:
        argv += ["--strategy", strategy]
    if wait_timeout:
        argv += ["--wait-timeout", wait_timeout]
    return argv + list(extra)


# ------------------------------------------------------------------ runner


def error_line(stderr: str, returncode: int) -> str:
    """flyctl's own ``Error:`` line, else its last line, else the exit status."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Error:"):
            return line[len("Error:"):].strip()
    return lines[-1] if lines else f"exit status {returncode}"


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class Fly:
    """Runs flyctl. ``calls`` keeps what ran, for summaries and dry-run comparisons."""

    def __init__(self, binary: str, *, timeout: float | None = 600):
        self.binary = binary
        self.timeout = timeout
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], *, input: str | None = None, check: bool = True,
            timeout=DEFAULT, stream=None) -> Completed:
        """Run one flyctl command; ``stream`` gets stdout lines as they come.

        ``timeout`` defaults to the runner's; ``None`` means no limit (long transfers).
        """
        timeout = self.timeout if timeout is DEFAULT else timeout
        self.calls.append(argv)
        full = [self.binary, *argv]
        what = "fly " + " ".join(argv[:3])
        try:
            if stream is None:
                done = subprocess.run(
                    full,
                    input=input,
                    stdin=None if input is not None else subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                result = Completed(argv, done.returncode, done.stdout, done.stderr)
            else:
                result = self._streamed(full, argv, stream, timeout)
        except FileNotFoundError:
            raise FlyError(f"flyctl not found: {self.binary}") from None
        except subprocess.TimeoutExpired:
            raise FlyError(f"`{what}` did not answer within {timeout:g}s",
                           ExitCode.TIMEOUT) from None
        if check and result.returncode != 0:
            raise FlyError(
                f"`{what}` failed: {error_line(result.stderr, result.returncode)}",
                stderr=result.stderr,
            )
        return result

    def _streamed(self, full, argv, stream, timeout) -> Completed:
        """stderr joins stdout, so neither pipe can fill up while we read the other."""
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        lines = []
        for line in proc.stdout:
            lines.append(line)
            stream(redact(line.rstrip("\n")))
        proc.wait(timeout=timeout)
        output = "".join(lines)
        return Completed(argv, proc.returncode, output, output)

    def json(self, argv: list[str]):
        result = self.run(argv)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            sample = result.stdout.strip().replace("\n", " ")[:80]
            raise FlyError(
                f"`fly {' '.join(argv[:3])}` did not print JSON (got {sample!r})"
            ) from None

    def volumes(self, app: str) -> list[Volume]:
        return self._parsed(volumes_list(app), Volume)

    def machines(self, app: str) -> list[Machine]:
        return self._parsed(machines_list(app), Machine)

    def snapshots(self, app: str, volume: str) -> list[Snapshot]:
        found = self._parsed(snapshots_list(app, volume), Snapshot)
        return sorted(found, key=lambda snap: snap.created_at)

    def releases(self, app: str) -> list[Release]:
        found = self._parsed(releases(app), Release)
        return sorted(found, key=lambda rel: rel.version, reverse=True)

    def _parsed(self, argv: list[str], kind):
        """A JSON array from flyctl as dataclasses, or a FlyError naming the command."""
        data = self.json(argv)
        what = f"`fly {' '.join(argv[:3])}`"
        if data is None:  # flyctl may print null for an empty list
            return []
        if not isinstance(data, list):
            raise FlyError(f"{what} printed JSON of an unexpected shape")
        try:
            return [kind.parse(raw) for raw in data]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise FlyError(f"{what} printed unexpected JSON ({exc!r})") from None


# ------------------------------------------------------------------ emergency and volume restore
# (machine/clone.go, machine/update.go, machine/stop.go, machine/start.go, volumes/create.go)


def machine_update(app: str, machine: str, *, command: str | None = None,
                   autostop: str | None = None, skip_health_checks: bool = False) -> list[str]:
    """``command=""`` clears the command override (the image's CMD runs again)."""
    argv = ["machine", "update", machine, "-a", app]
    if command is not None:
        argv += ["--command", command]
    if autostop is not None:  # an optional-value flag: `--autostop off` makes `off` an argument
        argv.append(f"--autostop={autostop}")
    if skip_health_checks:
        argv.append("--skip-health-checks")
    return argv + ["--yes"]


def machine_stop(app: str, machine: str, wait: str = "2m") -> list[str]:
    """Without ``--wait-timeout`` flyctl returns before the machine is stopped."""
    return ["machine", "stop", machine, "-a", app, "--wait-timeout", wait]


def machine_start(app: str, machine: str) -> list[str]:
    return ["machine", "start", machine, "-a", app]


def volumes_create_from_snapshot(app: str, name: str, snapshot: str, size_gb: int,
                                 region: str) -> list[str]:
    """Size and region are required in practice: the default size is 1 GB and the region
    is never taken from fly.toml; a unique zone per name can make placement fail."""
    return ["volumes", "create", name, "--snapshot-id", snapshot, "--size", str(size_gb),
            "--region", region, "--require-unique-zone=false", "-a", app, "--yes", "--json"]


def machine_clone(app: str, machine: str, volume: str, path: str, region: str) -> list[str]:
    return ["machine", "clone", machine, "-a", app, "--attach-volume", f"{volume}:{path}",
            "--region", region]


def machine_destroy(app: str, machine: str) -> list[str]:
    return ["machine", "destroy", machine, "-a", app, "--force"]


def volumes_destroy(app: str, volume: str) -> list[str]:
    return ["volumes", "destroy", volume, "-a", app, "--yes"]
