"""flyctl: argv builders (pure, tested as data), one runner, JSON parsed into dataclasses.

Every flyctl call in the toolkit goes through ``Fly.run``: argv only (never a
shell string), stdin closed unless we feed it (so flyctl never waits on a
prompt), a deadline (the child's whole process group is killed when it passes),
an environment without what changes flyctl's stdout (``LOG_LEVEL``), output read
as bytes (a non-UTF-8 byte never raises), and failures turned into ``FlyError``
carrying flyctl's own ``Error:`` line. Tokens come from the environment and are
redacted from anything we print.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass, replace

from ops import limits, signals
from ops.engine import parse_iso
from ops.errors import ExitCode, OpsError
from ops.text import text_lines

TOKEN_VARS = ("FLY_API_TOKEN", "FLY_ACCESS_TOKEN")
DEFAULT = object()  # "the runner's own timeout", as opposed to None: no limit
# LOG_LEVEL=debug makes flyctl print DEBUG lines on stdout (terminal/logging.go), FLY_JSON
# turns every command's output into JSON (internal/config/config.go): neither reaches it.
DROPPED_ENV = ("LOG_LEVEL", "FLY_JSON")
GRACE = 5.0  # seconds flyctl gets to stop after Ctrl-C before it is killed


class FlyError(OpsError):
    def __init__(self, message: str, code: ExitCode = ExitCode.FLY, *, stderr: str = ""):
        super().__init__(redact(message), code)
        self.stderr = redact(stderr)


def env_tokens() -> list[str]:
    """The flyctl tokens in the environment: secrets in every flow's lines."""
    return [os.environ.get(var, "") for var in TOKEN_VARS]


def redact(text: str) -> str:
    for token in env_tokens():
        if len(token) >= 4:  # the same threshold as runbook.scrub
            text = text.replace(token, "***")
    return text


# ------------------------------------------------------------------ data
#
# flyctl's JSON is hostile until checked: every field is read through ``_field``,
# which refuses a wrong type (a list where an object belongs, a string for a
# number) with one line instead of a traceback. ``null`` and a missing key give
# the field's empty value unless the field is required.

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as flyctl prints it in JSON


class ShapeError(ValueError):
    """A JSON value flyctl printed is not the shape its Go type has."""


_KINDS = {str: "a string", int: "a number", dict: "an object", list: "a list",
          bool: "true/false"}


def _kind(value) -> str:
    if value is None:
        return "null"
    for kind, name in _KINDS.items():
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return name
    return type(value).__name__


def _field(raw, key: str, kind: type, *, required: bool = False, optional: bool = False):
    """``raw[key]`` if it has ``kind``; ``null``/missing is None (``optional``) or the
    kind's zero value, as Go decodes it."""
    if not isinstance(raw, dict):
        raise ShapeError(f"expected an object, got {_kind(raw)}")
    value = raw.get(key)
    if value is None:
        if required:
            raise ShapeError(f"`{key}` is missing")
        return None if optional else kind()
    if _kind(value) != _KINDS[kind]:
        raise ShapeError(f"`{key}` is {_kind(value)}, expected {_KINDS[kind]}")
    return value


def by_age(snapshots: list[Snapshot]) -> list[Snapshot]:
    """Oldest first; one still running (zero ``created_at``) counts as the newest."""
    return sorted(snapshots, key=lambda snap: (is_zero_time(snap.created_at), snap.created_at))


def same_name(volumes: list[Volume], current: Volume) -> list[Volume]:
    """``current`` first, then the app's other volumes of its name (its predecessors)."""
    return [current, *(vol for vol in volumes if vol.name == current.name
                       and vol.id != current.id)]


def utc_time(stamp: str) -> str:
    """A time flyctl printed, as UTC (``…Z``): one with another offset is converted, so
    sorting the strings sorts the times and ``ui.utc_stamp`` shows the right hour. Fly
    prints UTC today; anything that is not a time (Go's zero time, junk) stays as given."""
    if not stamp or stamp.endswith("Z") or is_zero_time(stamp):
        return stamp
    try:
        when = parse_iso(stamp)
    except ValueError:
        return stamp
    if when.tzinfo is None:
        return stamp
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def is_zero_time(stamp: str) -> bool:
    """Go's zero time (a snapshot still running has no creation time yet)."""
    return not stamp or stamp.startswith("0001-01-01")


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    state: str
    size_gb: int
    region: str
    attached_machine_id: str | None
    snapshot_retention: int | None
    auto_backup_enabled: bool | None = None  # scheduled (daily) snapshots

    @classmethod
    def parse(cls, raw: dict) -> Volume:
        return cls(
            id=_field(raw, "id", str, required=True),
            name=_field(raw, "name", str),
            state=_field(raw, "state", str),
            size_gb=_field(raw, "size_gb", int),
            region=_field(raw, "region", str),
            attached_machine_id=_field(raw, "attached_machine_id", str) or None,
            snapshot_retention=_field(raw, "snapshot_retention", int, optional=True),
            auto_backup_enabled=_field(raw, "auto_backup_enabled", bool, optional=True),
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
    volume: str = ""  # the volume it is a snapshot of (set by ``Fly.snapshots``)

    @classmethod
    def parse(cls, raw: dict) -> Snapshot:
        return cls(
            id=_field(raw, "id", str),
            status=_field(raw, "status", str),
            size=_field(raw, "size", int),
            volume_size=_field(raw, "volume_size", int),
            created_at=utc_time(_field(raw, "created_at", str)),
            retention_days=_field(raw, "retention_days", int, optional=True),
            digest=_field(raw, "digest", str),
        )


MAINTENANCE_CMD = ("sleep", "2147483647")  # emergency.stop's CMD: GNU and busybox sleep
# both take it (68 years)
AUTOSTOP_WORDS = ("off", "stop", "suspend")
# restore.volume's autostart guard records the machine's autostart before it in the
# machine's own metadata, so a run killed after the guard still knows what to put back.
AUTOSTART_BEFORE = "ops_autostart_before"
# emergency.stop's update also writes what the machine ran into its metadata, in the same
# API call that replaces it: no moment exists where the machine sleeps with no record.
ORIGINAL_META = "ops_emergency_original"


def autostop_word(value) -> str | None:
    """fly-go's MachineAutostop as JSON (true/false/"suspend"…) as flyctl's flag word."""
    if value is None:
        return None
    if value is True:
        return "stop"
    if value is False:
        return "off"
    if isinstance(value, str) and value in AUTOSTOP_WORDS:
        return value
    raise ShapeError(f"unknown autostop value {value!r}")


def _guest(raw) -> Guest | None:
    """``config.guest`` when it is whole; None otherwise (nothing is asked of placement)."""
    if not isinstance(raw, dict):
        return None
    kind, cpus, memory = raw.get("cpu_kind"), raw.get("cpus"), raw.get("memory_mb")
    if not (kind in ("shared", "performance") and type(cpus) is int and cpus > 0
            and type(memory) is int and memory > 0):
        return None
    return Guest(kind, cpus, memory)


def _words(raw: dict, key: str) -> tuple[str, ...]:
    words = _field(raw, key, list)
    if not all(isinstance(word, str) for word in words):
        raise ShapeError(f"`{key}` is not a list of strings")
    return tuple(words)


@dataclass(frozen=True)
class Machine:
    """One entry of ``fly machine list --json``: what every flow needs of a machine."""

    id: str
    name: str
    state: str
    region: str
    image: str
    volumes: tuple[str, ...]
    cmd: tuple[str, ...] = ()  # config.init.cmd: `sleep ...` while emergency-stopped
    host_status: str = "ok"
    entrypoint: tuple[str, ...] = ()
    exec: tuple[str, ...] = ()  # config.init.exec: overrides any command
    mounts: tuple[tuple[str, str], ...] = ()  # (volume id, path)
    autostops: tuple[str | None, ...] = ()  # each service's autostop as flyctl's flag word
    autostarts: tuple[bool, ...] = ()  # each service's autostart (missing: Fly's true)
    guest: Guest | None = None
    autostart_before: bool | None = None  # metadata a restore.volume guard left (see there)
    recorded_original: str = ""  # metadata emergency.stop's update left (JSON), "" if none

    @classmethod
    def parse(cls, raw: dict) -> Machine:
        config = _field(raw, "config", dict)
        mounts = _field(config, "mounts", list)
        init = _field(config, "init", dict)
        services = _field(config, "services", list)
        metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
        return cls(
            id=_field(raw, "id", str, required=True),
            name=_field(raw, "name", str),
            state=_field(raw, "state", str),
            region=_field(raw, "region", str),
            image=_field(config, "image", str),
            volumes=tuple(_field(mount, "volume", str) for mount in mounts),
            cmd=_words(init, "cmd"),
            host_status=_field(raw, "host_status", str) or "ok",
            entrypoint=_words(init, "entrypoint"),
            exec=_words(init, "exec"),
            mounts=tuple((_field(m, "volume", str), _field(m, "path", str)) for m in mounts),
            # fly-go's ``MachineService.Autostart`` (*bool, omitempty): absent is Fly's
            # default, on; anything that is not ``false`` counts as on (the proxy may start it)
            autostops=tuple(autostop_word(_service(s).get("autostop")) for s in services),
            autostarts=tuple(_service(s).get("autostart") is not False for s in services),
            guest=_guest(config.get("guest")),
            autostart_before={"true": True, "false": False}.get(
                str(metadata.get(AUTOSTART_BEFORE))),
            recorded_original=str(metadata.get(ORIGINAL_META) or ""),
        )

    @property
    def in_maintenance(self) -> bool:
        """Emergency-stopped: it runs emergency.stop's ``sleep`` instead of the app."""
        return self.cmd == MAINTENANCE_CMD


def _service(raw) -> dict:
    if not isinstance(raw, dict):
        raise ShapeError(f"a service is {_kind(raw)}, expected an object")
    return raw


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
            id=_field(raw, "ID", str),
            version=_field(raw, "Version", int),
            status=_field(raw, "Status", str),
            image_ref=_field(raw, "ImageRef", str),
            created_at=utc_time(_field(raw, "CreatedAt", str)),
            user=_field(_field(raw, "User", dict), "Email", str),
        )


# ------------------------------------------------------------------ flyctl's version

MIN_VERSION = (0, 4, 80)  # PR #5045: `fly ssh console` waits for the command's last output
MIN_CALVER = (2026, 8, 7)  # the same day, for the calendar-versioned builds of 2023-2024
UPGRADE = "fly version upgrade"


def version() -> list[str]:
    return ["version", "--json"]


def parse_version(stdout: str) -> tuple[str, tuple[int, int, int] | None]:
    """flyctl's version as printed and as numbers (None: cannot tell, e.g. a dev build).

    ``fly version --json`` prints buildinfo's ``Version`` as ``"0.4.87"``
    (internal/command/version/version.go, internal/version/version.go).
    """
    text = ""
    try:
        data = json.loads(stdout)
        if isinstance(data, dict) and isinstance(data.get("Version"), str):
            text = data["Version"]
    except ValueError:
        found = re.search(r"\bv([0-9]+\.[0-9]+\.[0-9]+\S*)", stdout)
        text = found.group(1) if found else ""
    match = re.fullmatch(r"v?([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})([-+.][\w.+-]*)?",
                         text.strip())
    if not match:
        return text.strip()[:40], None
    numbers = (int(match[1]), int(match[2]), int(match[3]))
    return text.strip(), None if numbers == (0, 0, 0) else numbers


def too_old(numbers: tuple[int, int, int]) -> bool:
    """Older than the first flyctl that never drops a short command's last output lines."""
    if numbers[0] > 2022:  # flyctl's Version.IsCalVer: YEAR.MONTH.DAY builds
        return numbers < MIN_CALVER
    return numbers < MIN_VERSION


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


def build_source(config: str | os.PathLike, workdir: str | os.PathLike,
                 image: str | None, extra: tuple[str, ...] = ()) -> str:
    """What `fly deploy` will deploy, or an OpsError (exit 10) when it would have nothing
    and fail at its build, after our backup and snapshot (internal/command/deploy/
    deploy_build.go ``determineImage``): an image (``--image``, fly.toml ``[build] image``),
    a Dockerfile (fly.toml ``[build] dockerfile``, relative to fly.toml's folder, or
    ``--dockerfile``), a builder (``[build] builder``/``buildpacks``, ``--nixpacks``), else
    ``Dockerfile`` or ``dockerfile`` in the working directory (imgsrc ``ResolveDockerfile``:
    never fly.toml's folder unless that is where flyctl runs)."""
    import tomllib
    from pathlib import Path

    if image or any(a in ("-i", "--image") or a.startswith("--image=") for a in extra):
        return f"image {image}" if image else "image (--image after --)"
    if any(a == "--dockerfile" or a.startswith("--dockerfile=") for a in extra):
        return "the Dockerfile given after --"
    if any(a == "--nixpacks" or a.startswith("--nixpacks=") for a in extra):
        return "nixpacks"
    config = Path(config)
    try:
        build = tomllib.loads(config.read_text()).get("build") or {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        build = {}  # fly.toml's own checks report it
    if not isinstance(build, dict):
        raise OpsError(f"{config}: [build] must be a table", ExitCode.DEPLOY_ABORTED_PREFLIGHT)
    if isinstance(build.get("image"), str) and build["image"].strip():
        return f"image {build['image']} ([build] in {config.name})"
    dockerfile = build.get("dockerfile")
    if isinstance(dockerfile, str) and dockerfile.strip():
        if dockerfile.startswith(("http://", "https://")):
            return f"Dockerfile {dockerfile}"
        path = (config.resolve().parent / dockerfile)
        if not path.is_file():
            raise OpsError(f"[build] dockerfile = {dockerfile!r} in {config} names no file "
                           f"({path}): `fly deploy` would fail at its build; nothing was "
                           "deployed", ExitCode.DEPLOY_ABORTED_PREFLIGHT)
        return f"Dockerfile {path}"
    if build.get("builder") or build.get("buildpacks"):
        return f"builder {build.get('builder') or 'buildpacks'}"
    for name in ("Dockerfile", "dockerfile"):
        if (Path(workdir) / name).is_file():
            return f"{name} in {workdir}"
    raise OpsError(f"`fly deploy` would have nothing to build: no Dockerfile in {workdir} (its "
                   f"build context), no [build] image, dockerfile or builder in {config}, and "
                   "no --image; nothing was deployed", ExitCode.DEPLOY_ABORTED_PREFLIGHT)


# ------------------------------------------------------------------ restore


def machine_restart(app: str, machine: str) -> list[str]:
    """flyctl waits until the machine started again and its health checks pass."""
    return ["machine", "restart", machine, "-a", app]


def sftp_put(app: str, machine: str, local_path: str, remote_path: str) -> list[str]:
    """flyctl's put refuses an existing remote file and leaves a partial one on failure."""
    return ["ssh", "sftp", "put", local_path, remote_path, "-a", app, "--machine", machine,
            "-q", "--mode", "0600"]


# ------------------------------------------------------------------ emergency and volume restore
# (machine/clone.go, machine/update.go, machine/stop.go, machine/start.go, volumes/create.go)


def machine_update(app: str, machine: str, *, command: str | None = None,
                   autostop: str | None = None, autostart: bool | None = None,
                   skip_start: bool = False, skip_health_checks: bool = False,
                   metadata: dict[str, str] | None = None) -> list[str]:
    """``command=""`` clears the command override (the image's CMD runs again).

    ``autostart=False`` keeps Fly's proxy from starting the machine (every service);
    ``skip_start`` leaves it stopped after the update (``SkipLaunch``, machine/update.go)."""
    argv = ["machine", "update", machine, "-a", app]
    if command is not None:
        argv += ["--command", command]
    if autostop is not None:  # an optional-value flag: `--autostop off` makes `off` an argument
        argv.append(f"--autostop={autostop}")
    if autostart is not None:  # a bool flag: only the `=` form takes a value
        argv.append(f"--autostart={'true' if autostart else 'false'}")
    if skip_start:
        argv.append("--skip-start")
    if skip_health_checks:
        argv.append("--skip-health-checks")
    for key, value in (metadata or {}).items():  # -m/--metadata K=V (run.go parseKVFlag)
        argv += ["-m", f"{key}={value}"]
    return argv + ["--yes"]


def machine_stop(app: str, machine: str) -> list[str]:
    """flyctl returns before the machine is stopped (and ``--wait-timeout`` is clamped to
    60 s by fly-go's ``WithWaitTimeout``): the caller polls ``machine list`` instead."""
    return ["machine", "stop", machine, "-a", app]


def machine_start(app: str, machine: str) -> list[str]:
    return ["machine", "start", machine, "-a", app]


@dataclass(frozen=True)
class Guest:
    """A machine's ``config.guest``: what a volume's host must have room for."""

    cpu_kind: str
    cpus: int
    memory_mb: int

    def flags(self) -> list[str]:
        """``--vm-*`` flags (flag.GetMachineGuest): without them ``volumes create`` asks
        for room for the default shared-cpu-1x 256 MB guest only."""
        return ["--vm-cpu-kind", self.cpu_kind, "--vm-cpus", str(self.cpus),
                "--vm-memory", str(self.memory_mb)]


def volumes_create_from_snapshot(app: str, name: str, snapshot: str, size_gb: int,
                                 region: str, *, retention: int | None = None,
                                 scheduled: bool | None = None,
                                 guest: Guest | None = None) -> list[str]:
    """Size and region are required in practice: the default size is 1 GB and the region
    is never taken from fly.toml; a unique zone per name can make placement fail.
    ``--snapshot-retention`` defaults to 5 days (volumes/create.go), whatever fly.toml
    says, so the old volume's retention and scheduled snapshots are passed on."""
    argv = ["volumes", "create", name, "--snapshot-id", snapshot, "--size", str(size_gb),
            "--region", region, "--require-unique-zone=false"]
    if retention is not None:
        argv += ["--snapshot-retention", str(retention)]
    if scheduled is not None:
        argv.append(f"--scheduled-snapshots={'true' if scheduled else 'false'}")
    if guest is not None:
        argv += guest.flags()
    return argv + ["-a", app, "--yes", "--json"]


def machine_clone(app: str, machine: str, volume: str, path: str, region: str) -> list[str]:
    return ["machine", "clone", machine, "-a", app, "--attach-volume", f"{volume}:{path}",
            "--region", region]


def machine_destroy(app: str, machine: str) -> list[str]:
    return ["machine", "destroy", machine, "-a", app, "--force"]


def volumes_destroy(app: str, volume: str) -> list[str]:
    return ["volumes", "destroy", volume, "-a", app, "--yes"]


# ------------------------------------------------------------------ runner


def error_line(stderr: str, returncode: int) -> str:
    """flyctl's own ``Error:`` line, else its last line, else the exit status."""
    lines = text_lines(stderr)  # split at newlines only (review-break s21 #7)
    for line in lines:  # a line a redraw (\r) ended first: its Error: is still flyctl's
        shown = line.rpartition("\r")[2]
        if shown.startswith("Error:"):
            return shown[len("Error:"):].strip()
    return lines[-1] if lines else signals.ended(returncode)


def child_env(environ=None) -> dict[str, str]:
    """flyctl's environment: the user's (tokens, HOME, PATH...) minus ``DROPPED_ENV``."""
    env = dict(os.environ if environ is None else environ)
    for key in DROPPED_ENV:
        env.pop(key, None)
    return env


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def describe(argv: list[str]) -> str:
    """How errors name a flyctl call: the whole command as it could be pasted (its first
    three words dropped the app's name, review-ox 14), a long argument (a remote script)
    shown by its length instead, an access token hidden."""
    return shlex.join(["fly", *(word if len(word) <= 60 and "\n" not in word
                                else f"<{len(word)} characters>"
                                for word in redact_argv(map(str, argv)))])


REDACTED = "***"  # what a secret becomes in every line written (``runbook.scrub`` too)
TOKEN_FLAGS = ("-t", "--access-token")  # flyctl's global token flag (internal/flag)
# shorthands of `fly deploy` that take a value: in `-aX` the rest is the value, not flags
VALUE_SHORTHANDS = set("acrieslt")


def redact_argv(argv) -> list[str]:
    """argv with every access token replaced, in each form pflag accepts: ``-t X``,
    ``-tX``, ``-yt X``, ``--access-token X``, ``--access-token=X``; any length."""
    return [word if at is None else word[:at] + REDACTED for word, at in _token_parts(argv)]


def tokens_in(argv) -> list[str]:
    """The token values given in argv (see ``redact_argv``)."""
    return [word[at:] for word, at in _token_parts(argv) if at is not None and word[at:]]


def _token_parts(argv):
    """Each word with where the token in it starts (0: the whole word is one, after a
    flag that takes the next word), or None when it holds none."""
    value_next = False
    for word in argv:
        if value_next:
            value_next = False
            yield word, 0
            continue
        at = _token_value_at(word)
        value_next = at == len(word)
        yield word, None if at is None or value_next else at


def _token_value_at(word: str) -> int | None:
    """Where the token starts in ``word`` (len(word): in the next word), or None.

    pflag reads ``-abc`` as shorthands until one takes a value, which gets the rest.
    """
    if word in TOKEN_FLAGS:
        return len(word)
    if word.startswith("--access-token="):
        return len("--access-token=")
    if word.startswith("-") and not word.startswith("--") and len(word) > 1:
        for index, char in enumerate(word[1:], start=1):
            if char == "t":
                return index + 1
            if char in VALUE_SHORTHANDS or not char.isalpha():
                return None
    return None


def login_hint(error: str) -> str:
    """What to do when flyctl says it is not logged in (else nothing)."""
    return ("; log in with `fly auth login`, or set FLY_API_TOKEN"
            if "authenticated" in error.lower() or "auth token" in error.lower() else "")


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class Fly:
    """Runs flyctl: argv in, a ``Completed`` (or a ``FlyError``) out."""

    def __init__(self, binary: str, *, timeout: float | None = 300):
        self.binary = binary
        self.timeout = timeout
        self.flyctl_version: str | None = None  # set by ``check_version``

    @classmethod
    def from_settings(cls, settings) -> Fly:
        """The one way a task gets flyctl (``targets.fly.machine.Resolver``): ``fly.bin``
        with the ``fly.timeout`` deadline on every call that names no longer key. Its
        version is checked on first use (``check_version``: exit 8 when too old)."""
        return cls(settings.flyctl(), timeout=settings.fly_timeout)

    def run(self, argv: list[str], *, input: str | bytes | None = None, check: bool = True,
            timeout=DEFAULT, stream=None, what: str = "", key: str = "fly.timeout") -> Completed:
        """Run one flyctl command; ``stream`` gets output lines (stderr included) as they come.

        ``timeout`` defaults to the runner's (``fly.timeout``); past it the command's
        whole process group is killed and a FlyError (exit 6) names ``what`` ran and the
        configuration ``key`` that gives it more time.
        """
        timeout = self.timeout if timeout is DEFAULT else timeout
        what = what or f"`{describe(argv)}`"
        data = input.encode() if isinstance(input, str) else input
        try:
            code, out, err = _execute([self.binary, *argv], data, stream, timeout)
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            raise FlyError(f"flyctl not found or not executable: {self.binary}") from None
        except subprocess.TimeoutExpired:
            raise FlyError(f"{what} did not finish within {timeout:g}s and was stopped; if it "
                           f"needs longer, raise {key}", ExitCode.TIMEOUT) from None
        except limits.OutputLimit as exc:
            raise FlyError(f"{what} {exc}") from None
        result = Completed(argv, code, decode(out), decode(err if stream is None else out))
        if check and result.returncode != 0:
            error = error_line(result.stderr, result.returncode)
            raise FlyError(
                f"{what} failed: {error}{login_hint(error)}",
                stderr=result.stderr,
            )
        return result

    def check_version(self, warn) -> str:
        """Refuse a flyctl that can lose the end of a remote command's output (once per run).

        ``warn`` is told when the version cannot be read: that is not a refusal.
        """
        if self.flyctl_version is None:
            result = self.run(version())
            shown, numbers = parse_version(result.stdout)
            if numbers is None:
                warn(f"cannot tell which flyctl this is (`fly version --json` said "
                     f"{shown or result.stdout.strip()[:40]!r}); it needs v"
                     + ".".join(map(str, MIN_VERSION)) + " or newer")
            elif too_old(numbers):
                raise FlyError(
                    f"flyctl v{shown} is too old: v{'.'.join(map(str, MIN_VERSION))} or newer "
                    "is needed (older versions can drop the last lines of `fly ssh console` "
                    f"output, where the result is); upgrade with: {UPGRADE}")
            self.flyctl_version = shown
        return self.flyctl_version

    def json(self, argv: list[str]):
        result = self.run(argv)
        try:
            return json.loads(result.stdout)
        except (ValueError, RecursionError):  # RecursionError: planted deeply nested JSON
            sample = result.stdout.strip().replace("\n", " ")[:80]
            raise FlyError(f"`{describe(argv)}` did not print JSON (got {sample!r})") from None

    def volumes(self, app: str) -> list[Volume]:
        return self._parsed(volumes_list(app), Volume)

    def machines(self, app: str) -> list[Machine]:
        return self._parsed(machines_list(app), Machine)

    def snapshots(self, app: str, volume: str) -> list[Snapshot]:
        """Oldest first; one still running (zero ``created_at``) is the newest."""
        found = [replace(snap, volume=volume)
                 for snap in self._parsed(snapshots_list(app, volume), Snapshot)]
        return by_age(found)

    def app_snapshots(self, app: str, volumes: list[Volume]) -> list[Snapshot]:
        """The snapshots of each of these volumes (e.g. the production volume and the app's
        earlier volumes of the same name, which a restore.volume leaves behind), oldest
        first, each naming its volume."""
        return by_age([snap for vol in volumes for snap in self.snapshots(app, vol.id)])

    def releases(self, app: str) -> list[Release]:
        found = self._parsed(releases(app), Release)
        return sorted(found, key=lambda rel: rel.version, reverse=True)

    def _parsed(self, argv: list[str], kind):
        """A JSON array from flyctl as dataclasses, or a FlyError naming the command."""
        data = self.json(argv)
        what = f"`{describe(argv)}`"
        if data is None:  # flyctl may print null for an empty list
            return []
        if not isinstance(data, list):
            raise FlyError(f"{what} printed unexpected JSON: {_kind(data)} where a list "
                           "belongs")
        parsed = []
        for number, raw in enumerate(data):
            try:
                parsed.append(kind.parse(raw))
            except ShapeError as exc:
                raise FlyError(f"{what} printed unexpected JSON: entry {number}: {exc}") from None
        return parsed


# ------------------------------------------------------------------ the child process


def _execute(full: list[str], data: bytes | None, stream, timeout) -> tuple[int, bytes, bytes]:
    """Run flyctl in its own process group; (status, stdout, stderr) as bytes.

    With ``stream``, stderr joins stdout and each line goes to ``stream`` as it comes.
    Pipes are read by threads so neither fills up while we wait for the other.
    """
    proc = subprocess.Popen(
        full, stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stream else subprocess.PIPE,
        env=child_env(), start_new_session=True,
    )
    _CHILDREN[threading.get_ident()] = proc
    try:
        return _wait(proc, data, stream, timeout)
    finally:
        _CHILDREN.pop(threading.get_ident(), None)


_CHILDREN: dict[int, subprocess.Popen] = {}  # thread id -> the flyctl it waits for


def stop_thread_child(ident: int | None) -> None:
    """Kill the flyctl a thread (deploy's full check) waits for: SIGTERM and Ctrl-C reach
    only the main thread, and a stopped run must not wait for that flyctl to end."""
    proc = _CHILDREN.get(ident) if ident is not None else None
    if proc is not None:
        _signal_group(proc, signal.SIGKILL)


def _wait(proc: subprocess.Popen, data: bytes | None, stream,
          timeout) -> tuple[int, bytes, bytes]:
    out: list[bytes] = []
    err: list[bytes] = []
    cap = limits.Cap()  # past it, the readers stop and flyctl is killed: OutputLimit
    stop = functools.partial(_signal_group, proc, signal.SIGKILL)
    threads = [_thread(_drain, proc.stdout, out, stream, cap, stop)]
    if stream is None:
        threads.append(_thread(_drain, proc.stderr, err, None, cap, stop))
    if data is not None:
        threads.append(_thread(_feed, proc.stdin, data))
    # flyctl is reaped by a thread of its own, never by this (the main) thread: a signal's
    # exception raised inside Popen.wait(timeout) just after it took its internal lock
    # leaves that lock held, and the next wait() blocked forever on it, with flyctl a
    # zombie (seen: a SIGHUP during deploy's backup step hung the run)
    ended = threading.Event()
    reaper = threading.Thread(target=_reap, args=(proc, ended), daemon=True)
    threads.append(reaper)
    try:
        reaper.start()
        if not ended.wait(timeout):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        signals.until_reaped(proc, ended, reaper)
        raise
    except BaseException:  # Ctrl-C, SIGTERM: flyctl stops cleanly, or is killed
        try:
            _signal_group(proc, signal.SIGINT)
            with contextlib.suppress(BaseException):  # a second Ctrl-C: kill it at once
                ended.wait(GRACE)
        finally:
            if not ended.is_set():
                _signal_group(proc, signal.SIGKILL)
                signals.until_reaped(proc, ended, reaper)
        raise
    finally:
        for thread in threads:  # a remote process that outlives flyctl may hold a pipe
            if thread.is_alive():  # (the reaper never started when a stop came first)
                thread.join(timeout=GRACE)
    if cap.over:
        raise cap.error()
    return proc.returncode, b"".join(out), b"".join(err)


def _reap(proc: subprocess.Popen, ended: threading.Event) -> None:
    proc.wait()
    ended.set()


def _thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _drain(pipe, sink: list[bytes], stream, cap: limits.Cap, stop) -> None:
    with contextlib.suppress(OSError, ValueError):
        for raw in iter(functools.partial(pipe.readline, limits.MAX_LINE), b""):
            if not cap.take(raw):
                stop()
                return
            sink.append(raw)
            if stream is not None:
                stream(redact(decode(raw).rstrip("\r\n")))


def _feed(pipe, data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        pipe.write(data)
    with contextlib.suppress(OSError, ValueError):
        pipe.close()


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)
