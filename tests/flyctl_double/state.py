"""Build and inspect the world the flyctl test double runs against.

Typical use::

    world = default_world(tmp_path)              # or FlyWorld(tmp_path) + add_* calls
    world.fail(["ssh", "console"], stderr="Error: tunnel unavailable\\n")
    proc = subprocess.run(["fly", "volumes", "list", "--json"], env=world.subprocess_env(),
                          cwd=tmp_path, capture_output=True, text=True)
    assert world.calls() == [["volumes", "list", "--json"]]

Everything lives under ``<tmp_dir>/flyworld/``: ``state.json`` (the world),
``calls.jsonl`` (one line per invocation), ``bin/`` (``fly`` and ``flyctl``
launchers; put it first on PATH via :meth:`FlyWorld.env`) and
``machines/<id>/{bin,root}`` (each machine's PATH directory and HOME).

The "machine's filesystem" is the local filesystem: ``ssh console -C`` runs the
command locally with ``PATH=<machine bin>``, ``HOME=<machine root>`` and
``LANG=C.UTF-8`` only, so point database paths at tmp directories.

The TypedDicts below (``World`` and its records) are the shape of ``state.json``, shared with
the double's ``cli`` package.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from . import launcher, machine_python
from .cli import records
from .cli.clock import now_rfc3339, now_seconds
from .cli.ids import new_release_id, rand_str, ulid
from .cli.records import (
    GIB,
    image_ref_object,
    render_machine,
    render_release,
    render_snapshot,
    render_volume,
    sorted_releases,
    sorted_snapshots,
    sync_image_bin,
)
from .cli.snapshots import pending_snapshot
from .cli.store import Store
from .cli.version import FLYCTL_VERSION

# ---------------------------------------------------------------------- the state file's shape
# ``state.json`` as the double and FlyWorld read and write it (plain JSON objects: these
# TypedDicts only name their keys).  Keys starting with ``_`` are the double's own and never
# printed.  The double's modules import these names for annotations only.


class Org(TypedDict):
    id: str
    internal_numeric_id: str
    name: str
    slug: str
    paid_plan: bool


class Mount(TypedDict):
    """A machine's ``config.mounts`` entry (fly-go machine_types.go ``MachineMount``)."""

    encrypted: bool
    path: str
    size_gb: int
    volume: str
    name: str


class Init(TypedDict, total=False):
    cmd: list[str]
    exec: list[str]
    entrypoint: list[str]


class MachineConfig(TypedDict, total=False):
    env: dict[str, str]
    init: Init
    guest: dict[str, Any]
    metadata: dict[str, str]
    mounts: list[Mount]
    services: list[dict[str, Any]]
    image: str
    restart: dict[str, Any]


class ImageRef(TypedDict):
    registry: str
    repository: str
    tag: str
    digest: str
    labels: dict[str, str]


class Check(TypedDict):
    name: str
    status: str  # passing | critical
    output: str
    updated_at: str


class Runtime(TypedDict):
    """Where a machine's remote commands run: its PATH dir, HOME, cwd and extra env.

    ``image`` names the image the machine runs (a key of :data:`MACHINE_IMAGES`, or
    ``"custom"`` once a test changed its tools) and ``tools`` is what that image has on
    PATH: tool name -> the host file it stands for.  The double rebuilds ``bin`` from
    ``tools`` before every remote command, so ``tools`` is the truth."""

    bin: str
    home: str
    cwd: str
    env: dict[str, str]
    image: NotRequired[str]
    tools: NotRequired[dict[str, str]]
    image_only: NotRequired[list[str]]  # the image has them; this host cannot provide them


class Machine(TypedDict):
    """``fly machine list --json`` keys, plus the double's ``_runtime``."""

    id: str
    name: str
    state: str  # started | stopped | destroyed ...
    region: str
    image_ref: ImageRef
    instance_id: str
    private_ip: str
    created_at: str
    updated_at: str
    config: MachineConfig
    events: list[dict[str, Any]]
    checks: list[Check]
    host_status: str
    cordoned: bool
    _runtime: Runtime


class Volume(TypedDict):
    """``fly volumes list --json`` keys, plus the double's restore countdown."""

    id: str
    name: str
    state: str  # created | restoring | ...
    size_gb: int
    region: str
    zone: str
    encrypted: bool
    attached_machine_id: str | None
    attached_alloc_id: str | None
    created_at: str
    host_dedication_id: str
    snapshot_retention: int
    auto_backup_enabled: bool
    host_status: str
    _restoring_lists: NotRequired[int]  # ``volumes list`` calls left while restoring
    _snapshot_id: NotRequired[str | None]  # created from this snapshot


class SnapshotSim(TypedDict):
    """How a pending snapshot evolves, one step per ``snapshots list`` of its volume."""

    mode: str  # progress | never | fail
    lists_before_created: int
    seen: int
    final_size: int
    final_digest: str
    done: NotRequired[bool]


class Snapshot(TypedDict):
    """``fly volumes snapshots list --json`` keys (a pending one: zero ``created_at``)."""

    id: str
    size: int
    volume_size: int
    digest: str
    created_at: str
    status: str  # waiting | running | created | failed
    retention_days: int | None
    _sim: NotRequired[SnapshotSim]


class SnapshotPlan(TypedDict):
    """What ``FlyWorld.snapshot_behavior`` asks of snapshots created later."""

    mode: str
    lists_before_created: int
    size: NotRequired[int | None]


class SnapshotPlans(TypedDict):
    default: SnapshotPlan
    volumes: dict[str, SnapshotPlan]


class ReleaseUser(TypedDict):
    ID: str
    Name: str
    Email: str
    EnablePaidHobby: bool


class Release(TypedDict):
    """``fly releases --json`` keys (PascalCase, as flyctl prints them)."""

    ID: str
    Version: int
    Stable: bool
    InProgress: bool
    Reason: str
    Description: str
    Status: str  # complete | failed | running
    DeploymentStrategy: str
    Metadata: None
    User: ReleaseUser
    EvaluationID: str
    CreatedAt: str
    ImageRef: str


class App(TypedDict):
    name: str
    org: Org
    machines: list[Machine]
    volumes: list[Volume]
    releases: list[Release]


class Fault(TypedDict, total=False):
    """``fail``/``garbage``/``hang``/``drop_output_tail``: matched against argv."""

    kind: str  # fail | hang | drop_tail
    match: list[str]
    times: int | None  # None: always
    stdout: str
    stdout_hex: str  # raw bytes (garbage that is not UTF-8)
    stderr: str
    exit: int
    sleep: float
    until: str | None
    lines: int


class SftpFault(TypedDict):
    """``sftp get``: copy ``after_bytes`` then fail."""

    after_bytes: int
    error: str
    times: int | None
    remote: str | None


class SftpPutFault(TypedDict):
    """``sftp put``: stop after ``after_bytes`` or flip the byte at ``flip_at``."""

    after_bytes: int | None
    flip_at: int | None
    error: str
    times: int | None
    remote: str | None


class DeployFault(TypedDict, total=False):
    kind: str  # health_timeout | replace_machine
    machine_id: str | None
    times: int | None
    new_id: str | None
    state: str


class Account(TypedDict):
    email: str
    name: str
    user_id: str


class Auth(TypedDict):
    valid_tokens: list[str]
    config_token: str | None
    config_token_expired: bool


class Features(TypedDict, total=False):
    local_docker: bool
    version: str  # what ``fly version`` reports
    volume_restore_lists: int
    volume_restore_ends: str | None  # a failed restore's end state
    proxy_traffic: bool  # Fly's proxy starts stopped autostart machines
    transition_lists: int  # `machine list` calls a stop/start takes
    no_capacity: list[str]  # regions where start/launch fail for capacity
    host_room_mb: dict[str, int]  # region -> memory a host with volume space can give
    clones_unhealthy: bool  # cloned machines never pass their health checks
    zones: dict[str, list[str]]  # region -> zones with room for a volume


class World(TypedDict):
    """The whole state file."""

    schema: int
    account: Account
    auth: Auth
    apps: dict[str, App]
    snapshots: dict[str, list[Snapshot]]  # by volume id
    snapshot_plan: SnapshotPlans
    faults: list[Fault]
    sftp_faults: list[SftpFault]
    sftp_put_faults: NotRequired[list[SftpPutFault]]
    deploy_faults: list[DeployFault]
    migrations: NotRequired[list[dict[str, str]]]  # SQL the next deploys' releases run
    features: Features



PACKAGE_DIR = Path(__file__).resolve().parent
DOUBLE_SCRIPT = PACKAGE_DIR / "fly"

DEFAULT_APP = "step-app-4x-yhw"
DEFAULT_MACHINE_ID = "e2865013c41e86"
DEFAULT_VOLUME_ID = "vol_4y5p2k8qz1m7r3dv"
SPARE_VOLUME_ID = "vol_r7l0wm3x9gq2vn5j"
DEFAULT_TOKEN = "test-token"
DEFAULT_EMAIL = "ci@example.com"
DEFAULT_PRIVATE_IP = "fdaa:9:1c2d:a7b:1f0:6e2a:4b1c:2"
IMAGE_V12 = f"registry.fly.io/{DEFAULT_APP}:deployment-01K3B7Q9X2M4N6P8R0T2V4W6Y8"
IMAGE_V11 = (
    f"registry.fly.io/{DEFAULT_APP}@sha256:"
    "9a0e3c5b7d1f2e4a6c8b0d2f4e6a8c0b1d3f5e7a9c1b3d5f7e9a1c3b5d7f9e1a"
)

#: Tools a default machine has on its PATH (symlinks to the host's binaries).
DEFAULT_MACHINE_TOOLS: tuple[str, ...] = (
    "sh", "bash", "ls", "cat", "cp", "rm", "mv", "ln", "mkdir", "find", "stat", "date",
    "sha256sum", "python3", "sqlite3", "sleep", "test", "[", "printf", "echo", "head", "tail",
    "sort", "wc", "du", "df", "chmod", "sync", "env", "true", "false", "touch", "mktemp",
    "dirname", "basename", "readlink", "realpath", "id", "uname", "tr", "cut", "tee", "grep",
    "sed", "tar", "gzip", "xargs", "node", "flock",
)

#: The images a machine can run, by name: the tools each has on PATH (host binaries it
#: stands for; a tool the host lacks is left out).  ``default`` is a Debian-based image
#: with python3 and sqlite3.  Another image is one more entry here plus
#: ``FlyWorld.set_machine_image(name)`` (or ``add_machine(..., image_name=)``).
MACHINE_IMAGES: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_MACHINE_TOOLS,
    # the Step Challenge App's own image (issue 17): node and the app's node_modules (point
    # machine.app_dir at a folder that has them), neither python3 nor the sqlite3 CLI
    "node": tuple(t for t in DEFAULT_MACHINE_TOOLS if t not in ("python3", "sqlite3")),
}
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_python_cache: str | None = None


def real_python3() -> str:
    """A real (non-venv, non-shim) Python >= 3.11 that works when invoked via a symlink.

    The system's own first: it runs every ``fly`` call and a machine's python3, and a
    distribution's build (static, PGO) starts ~15 % cheaper than a pyenv build
    (``--enable-shared``, no PGO); the one running the tests where the system's is too old."""
    global _python_cache
    if _python_cache:
        return _python_cache
    candidates = [
        shutil.which("python3", path=_SYSTEM_PATH),
        getattr(sys, "_base_executable", None),
        sys.executable,
    ]
    probe = "import sys, json, sqlite3, tomllib; assert sys.version_info >= (3, 11)"
    for cand in candidates:
        if not cand:
            continue
        real = os.path.realpath(cand)
        with tempfile.TemporaryDirectory() as tmp:
            link = os.path.join(tmp, "python3")
            os.symlink(real, link)
            try:
                ok = subprocess.run(
                    [link, "-c", probe],
                    env={"PATH": tmp, "LANG": "C.UTF-8"},
                    capture_output=True,
                    timeout=30,
                ).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
        if ok:
            _python_cache = real
            return real
    raise RuntimeError("no usable Python >= 3.11 found for the flyctl double")


_tool_cache: dict[str, str | None] = {}


def _host_tools(names: Iterable[str]) -> dict[str, str]:
    """Tool name -> the host binary it stands for (``""``: the host lacks it)."""
    return {name: _tool_target(name) or "" for name in names}


def _tool_target(name: str) -> str | None:
    if name not in _tool_cache:
        _tool_cache[name] = (
            (machine_python.command(real_python3()) or real_python3()) if name == "python3"
            else shutil.which(name, path=_SYSTEM_PATH)
        )
    return _tool_cache[name]


class FlyWorld:
    """A fake Fly.io account (apps, machines, volumes, snapshots, releases) plus faults.

    All mutations go through the same flock + atomic-replace protocol as the double,
    so a world may be edited while a double invocation is running.
    """

    def __init__(self, tmp_dir: str | os.PathLike[str], *,
                 binaries: Sequence[str] = ("fly", "flyctl")) -> None:
        self.root = Path(tmp_dir) / "flyworld"
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_path = self.root / "state.json"
        self.calls_path = self.root / "calls.jsonl"
        self.bin_dir = self.root / "bin"
        self.machines_dir = self.root / "machines"
        self._store = Store(str(self.state_path))
        if not self.state_path.exists():
            self._store.write(_empty_state())
        self.set_binaries(binaries)

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[World]:
        with self._store.mutate() as state:
            yield state

    def raw_state(self) -> World:
        """A copy of the whole state file."""
        return self._store.load()

    def set_binaries(self, names: Iterable[str]) -> None:
        """Which of ``fly`` / ``flyctl`` exist in :attr:`bin_dir` (e.g. only ``flyctl``)."""
        self.bin_dir.mkdir(exist_ok=True)
        for old in ("fly", "flyctl"):
            with contextlib.suppress(FileNotFoundError):
                (self.bin_dir / old).unlink()
        names = list(names)
        for name in names:
            if name not in ("fly", "flyctl"):
                raise ValueError(f"unknown binary name {name!r}")
        # the zygote client, or the Python launcher (launcher.py, README "What runs a call")
        launcher.install(self.bin_dir, names, real_python3())

    def env(self, token: str | None = DEFAULT_TOKEN, *, app: str | None = None) -> dict[str, str]:
        """Env vars a test must set: PATH (bin dir first), FLY_DOUBLE_STATE, FLY_API_TOKEN.

        ``token=None`` leaves FLY_API_TOKEN out; ``app`` adds FLY_APP.
        """
        env = {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', _SYSTEM_PATH)}",
            "FLY_DOUBLE_STATE": str(self.state_path),
        }
        if token is not None:
            env["FLY_API_TOKEN"] = token
        if app is not None:
            env["FLY_APP"] = app
        return env

    def subprocess_env(self, token: str | None = DEFAULT_TOKEN, *, app: str | None = None,
                       base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        """``base`` (default ``os.environ``) minus every ``FLY_*`` var, plus :meth:`env`."""
        src = dict(os.environ if base is None else base)
        env = {k: v for k, v in src.items() if not k.startswith("FLY_")}
        env.update(self.env(token, app=app))
        env.update(extra)
        return env

    # ------------------------------------------------------------------ building

    def add_app(self, name: str, *, org: str = "personal") -> None:
        with self._mutate() as s:
            s["apps"].setdefault(name, {
                "name": name,
                "org": {"id": "Org_" + rand_str(10), "internal_numeric_id": "314159",
                        "name": org, "slug": org, "paid_plan": True},
                "machines": [], "volumes": [], "releases": [],
            })

    def add_volume(self, app: str, volume_id: str, *, name: str = "data", region: str = "ams",
                   size_gb: int = 1, attached_machine_id: str | None = None,
                   snapshot_retention: int = 5, state: str = "created", zone: str | None = None,
                   encrypted: bool = True, auto_backup_enabled: bool = True,
                   host_status: str = "ok", created_at: str | None = None) -> Volume:
        """Add a volume (keys in ``fly volumes list --json`` order)."""
        vol = {
            "id": volume_id, "name": name, "state": state, "size_gb": size_gb,
            "region": region, "zone": zone or rand_str(4, "0123456789abcdef"),
            "encrypted": encrypted, "attached_machine_id": attached_machine_id,
            "attached_alloc_id": None, "created_at": created_at or now_rfc3339(),
            "host_dedication_id": "", "snapshot_retention": snapshot_retention,
            "auto_backup_enabled": auto_backup_enabled, "host_status": host_status,
        }
        with self._mutate() as s:
            _app(s, app)["volumes"].append(vol)
        return copy.deepcopy(vol)

    def add_machine(self, app: str, machine_id: str, *, state: str = "started",
                    region: str = "ams", image: str | None = None,
                    mounts: Sequence[tuple[str, str]] = (), name: str | None = None,
                    private_ip: str | None = None, process_group: str = "app",
                    env: dict[str, str] | None = None, release_version: int | None = None,
                    tools: Iterable[str] | None = None,
                    remote_env: dict[str, str] | None = None,
                    image_name: str = "default") -> dict[str, Any]:
        """Add a machine. ``mounts`` is ``[(volume_id, path), ...]``; mounted volumes get
        ``attached_machine_id`` set.  Its tools are those of the image ``image_name`` (a
        key of :data:`MACHINE_IMAGES`), or exactly ``tools`` when given."""
        image = image or f"registry.fly.io/{app}:deployment-{ulid()}"
        mdir = self.machines_dir / machine_id
        home = mdir / "root"
        home.mkdir(parents=True, exist_ok=True)
        (mdir / "bin").mkdir(exist_ok=True)
        now = now_rfc3339()
        with self._mutate() as s:
            a = _app(s, app)
            vols = {v["id"]: v for v in a["volumes"]}
            mount_objs = []
            for vol_id, path in mounts:
                vol = vols.get(vol_id)
                if vol is not None:
                    vol["attached_machine_id"] = machine_id
                mount_objs.append({
                    "encrypted": True if vol is None else vol["encrypted"], "path": path,
                    "size_gb": 1 if vol is None else vol["size_gb"], "volume": vol_id,
                    "name": "data" if vol is None else vol["name"],
                })
            rel = next((r for r in a["releases"] if r["ImageRef"] == image), None)
            version = release_version or (rel["Version"] if rel else 1)
            machine = {
                "id": machine_id,
                "name": name or f"{rand_str(5, 'abcdefghijklmnopqrstuvwxyz')}-machine-"
                                f"{rand_str(4, '0123456789')}",
                "state": state,
                "region": region,
                "image_ref": image_ref_object(image, {"fly.version": f"v{version}"}),
                "instance_id": ulid(),
                "private_ip": private_ip or _new_private_ip(),
                "created_at": now,
                "updated_at": now,
                "config": {
                    "env": dict(sorted({"FLY_PROCESS_GROUP": process_group,
                                        "PRIMARY_REGION": region, **(env or {})}.items())),
                    "init": {},
                    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
                    "metadata": {
                        "fly_flyctl_version": FLYCTL_VERSION,
                        "fly_platform_version": "v2",
                        "fly_process_group": process_group,
                        "fly_release_id": rel["ID"] if rel else new_release_id(),
                        "fly_release_version": str(version),
                    },
                    "mounts": mount_objs,
                    "services": [_default_service()],
                    "image": image,
                    "restart": {"policy": "on-failure", "max_retries": 10},
                },
                "events": [
                    {"type": "start", "status": "started", "source": "flyd",
                     "timestamp": 1755698322101},
                    {"type": "launch", "status": "created", "source": "user",
                     "timestamp": 1755698318430},
                ],
                "checks": [{
                    "name": "servicecheck-00-http-8080", "status": "passing",
                    "output": "[\u2713]\n\nRequest: GET /health\nResponse: 200 OK",
                    "updated_at": now,
                }],
                "host_status": "ok",
                "cordoned": False,
                "_runtime": {"bin": str(mdir / "bin"), "home": str(home), "cwd": str(home),
                             "env": dict(remote_env or {})},
            }
            a["machines"].append(machine)
        if tools is None:
            self.set_machine_image(image_name, machine_id)
        else:
            self.set_machine_tools(tools, machine_id)
        return render_machine(machine)

    def add_snapshot(self, volume_id: str, snapshot_id: str, *, size: int, created_at: str,
                     status: str = "created", retention_days: int | None = 5,
                     digest: str | None = None, volume_size: int | None = None
                     ) -> Snapshot:
        """Add an existing snapshot (keys in ``snapshots list --json`` order)."""
        with self._mutate() as s:
            if volume_size is None:
                vol = _find_volume(s, volume_id)
                volume_size = (vol["size_gb"] if vol else 1) * GIB
            snap = {
                "id": snapshot_id, "size": size, "volume_size": volume_size,
                "digest": digest or rand_str(32, "0123456789abcdef"),
                "created_at": created_at, "status": status, "retention_days": retention_days,
            }
            s["snapshots"].setdefault(volume_id, []).append(snap)
        return dict(snap)

    def add_release(self, app: str, version: int, *, image_ref: str, status: str = "complete",
                    created_at: str | None = None, release_id: str | None = None,
                    description: str = "Deploy image", reason: str = "deploy",
                    stable: bool | None = None, user_name: str = "CI Bot",
                    user_email: str = DEFAULT_EMAIL) -> Release:
        """Add a release (PascalCase keys as in ``fly releases --json``)."""
        rel = {
            "ID": release_id or new_release_id(), "Version": version,
            "Stable": (status == "complete") if stable is None else stable,
            "InProgress": status == "running", "Reason": reason, "Description": description,
            "Status": status, "DeploymentStrategy": "", "Metadata": None,
            "User": {"ID": "Usr_p8d2w6k0", "Name": user_name, "Email": user_email,
                     "EnablePaidHobby": False},
            "EvaluationID": "", "CreatedAt": created_at or now_seconds(),
            "ImageRef": image_ref,
        }
        with self._mutate() as s:
            _app(s, app)["releases"].append(rel)
        return dict(rel)

    def set_machine_state(self, machine_id: str, state: str) -> None:
        """e.g. ``"stopped"``: ssh/sftp only consider ``started`` machines."""
        with self._mutate() as s:
            _find_machine(s, machine_id)["state"] = state

    def remove_volume(self, volume_id: str) -> None:
        """e.g. the spare volume, so a canary machine finds no unattached one."""
        with self._mutate() as s:
            for a in s["apps"].values():
                a["volumes"] = [v for v in a["volumes"] if v["id"] != volume_id]

    def remove_machine(self, machine_id: str) -> None:
        with self._mutate() as s:
            for a in s["apps"].values():
                a["machines"] = [m for m in a["machines"] if m["id"] != machine_id]
                for v in a["volumes"]:
                    if v["attached_machine_id"] == machine_id:
                        v["attached_machine_id"] = None

    # ------------------------------------------------------------------ machine runtime

    def machine_bin_dir(self, machine_id: str) -> Path:
        return self.machines_dir / machine_id / "bin"

    def machine_home(self, machine_id: str) -> Path:
        """HOME (and working directory) of remote commands on that machine."""
        return self.machines_dir / machine_id / "root"

    def set_machine_image(self, name: str, machine_id: str | None = None) -> None:
        """The machine (default: every machine) runs the image ``name``: its PATH holds
        that image's tools (:data:`MACHINE_IMAGES`) and nothing of the host's."""
        if name not in MACHINE_IMAGES:
            raise ValueError(f"unknown machine image {name!r} (known: {sorted(MACHINE_IMAGES)})")
        self._set_tools(machine_id, name, lambda old: _host_tools(MACHINE_IMAGES[name]))

    def set_machine_tools(self, tools: Iterable[str], machine_id: str | None = None) -> None:
        """The machine's image has exactly these tools (host binaries of these names).

        Tools the host lacks are skipped silently (e.g. ``node``)."""
        tools = list(tools)
        self._set_tools(machine_id, "custom", lambda old: _host_tools(tools))

    def remove_machine_tools(self, *names: str, machine_id: str | None = None) -> None:
        """E.g. ``remove_machine_tools("python3", "sqlite3")`` to emulate the Node.js image."""
        self._set_tools(machine_id, "custom",
                        lambda old: {k: v for k, v in old.items() if k not in names})

    def add_machine_tool(self, name: str, target: str | os.PathLike[str],
                         machine_id: str | None = None) -> None:
        """Put ``target`` (e.g. a fake script) on the machine's PATH as ``name``."""
        self._set_tools(machine_id, "custom",
                        lambda old: {**old, name: os.path.abspath(target)})

    def machine_tools(self, machine_id: str) -> list[str]:
        return sorted(self.raw_state_machine(machine_id)["_runtime"].get("tools") or {})

    def raw_state_machine(self, machine_id: str) -> Machine:
        return _find_machine(self.raw_state(), machine_id)

    def _set_tools(self, machine_id: str | None, image: str, change) -> None:
        """Change the ``tools`` of one machine (or all) in the state, then its PATH folder.

        ``change`` maps the old {name: host file} to the new one; a tool the host lacks
        has ``""`` and is recorded in ``image_only`` (the image has it, this host cannot
        provide it: not on PATH, but a machine command naming it still "runs")."""
        with self._mutate() as s:
            ids = self._machine_ids_in(s, machine_id)
            for mid in ids:
                rt = _find_machine(s, mid)["_runtime"]
                old = {**dict.fromkeys(rt.get("image_only") or [], ""),
                       **(rt.get("tools") or {})}
                new = change(old)
                rt["tools"] = {k: v for k, v in sorted(new.items()) if v}
                rt["image_only"] = sorted(k for k, v in new.items() if not v)
                rt["image"] = image
                sync_image_bin(rt)

    @staticmethod
    def _machine_ids_in(s: World, machine_id: str | None) -> list[str]:
        if machine_id is not None:
            return [machine_id]
        return [m["id"] for a in s["apps"].values() for m in a["machines"]]

    def set_remote_env(self, machine_id: str, env: dict[str, str]) -> None:
        """Extra env vars remote commands see (default: only PATH, HOME, LANG)."""
        with self._mutate() as s:
            _find_machine(s, machine_id)["_runtime"]["env"] = dict(env)

    # ------------------------------------------------------------------ auth

    def add_token(self, token: str) -> None:
        with self._mutate() as s:
            if token not in s["auth"]["valid_tokens"]:
                s["auth"]["valid_tokens"].append(token)

    def unauthenticated(self) -> None:
        """Every token (env, -t or logged-in) is now rejected by the 'API'."""
        with self._mutate() as s:
            s["auth"]["valid_tokens"] = []

    def login(self, token: str = DEFAULT_TOKEN, *, expired: bool = False) -> None:
        """Simulate ``access_token`` in ~/.fly/config.yml (used when no env/-t token)."""
        with self._mutate() as s:
            s["auth"]["config_token"] = token
            s["auth"]["config_token_expired"] = expired

    def logout(self) -> None:
        with self._mutate() as s:
            s["auth"]["config_token"] = None

    def set_account(self, *, email: str | None = None, name: str | None = None) -> None:
        with self._mutate() as s:
            if email is not None:
                s["account"]["email"] = email
            if name is not None:
                s["account"]["name"] = name

    # ------------------------------------------------------------------ behaviour / faults

    def snapshot_behavior(self, mode: str = "progress", *, lists_before_created: int = 2,
                          size: int | None = None, volume_id: str | None = None) -> None:
        """How snapshots created *after* this call evolve across ``snapshots list`` calls.

        ``progress``: list #1 shows ``waiting``, then ``running`` until
        ``lists_before_created`` lists have seen it pending, then ``created`` with a
        ``vs_`` id.  ``never``: stays ``running`` forever.  ``fail``: ends ``failed``.
        """
        if mode not in ("progress", "never", "fail"):
            raise ValueError(mode)
        plan = {"mode": mode, "lists_before_created": lists_before_created, "size": size}
        with self._mutate() as s:
            if volume_id is None:
                s["snapshot_plan"]["default"] = plan
            else:
                s["snapshot_plan"]["volumes"][volume_id] = plan

    def fail(self, match: Sequence[str], *, stderr: str = "Error: injected failure\n",
             exit: int = 1, times: int | None = 1, stdout: str = "") -> None:
        """The next ``times`` (None = always) invocations whose argv (global flags removed)
        contains ``match`` as a subsequence print ``stdout``/``stderr`` and exit ``exit``."""
        self._add_fault({"kind": "fail", "match": list(match), "stderr": stderr,
                         "stdout": stdout, "exit": exit, "times": times})

    def garbage(self, match: Sequence[str], *, stdout: str | bytes = "not json\n",
                exit: int = 0, times: int | None = 1, stderr: str = "") -> None:
        """Like :meth:`fail` but emits non-JSON on stdout and exits 0 by default.

        ``stdout`` may be bytes (e.g. not UTF-8): they are written as they are."""
        raw = stdout if isinstance(stdout, bytes) else b""
        self._add_fault({"kind": "fail", "match": list(match), "stderr": stderr,
                         "stdout": "" if raw else stdout, "stdout_hex": raw.hex(),
                         "exit": exit, "times": times})

    def drop_output_tail(self, match: Sequence[str], *, lines: int = 1,
                         times: int | None = 1) -> None:
        """Matching invocations run normally, then lose their last ``lines`` stdout lines,
        as ``fly ssh console`` before v0.4.80 could (flyctl PR #5045, ssh/io.go)."""
        self._add_fault({"kind": "drop_tail", "match": list(match), "lines": lines,
                         "times": times})

    def set_flyctl_version(self, version: str) -> None:
        """What ``fly version`` reports (default ``FLYCTL_VERSION``), e.g. ``"0.4.79"``."""
        with self._mutate() as s:
            s["features"]["version"] = version

    def start_scheduled_snapshot(self, volume_id: str, *, lists_before_created: int = 1,
                                 mode: str = "progress", size: int = 1048576) -> str:
        """Fly's daily snapshot of the volume starts now (pending, as ``create`` makes
        one); returns its id."""
        plan = {"mode": mode, "lists_before_created": lists_before_created}
        with self._mutate() as s:
            vol = _find_volume(s, volume_id) or {"size_gb": 1, "snapshot_retention": 5}
            record = pending_snapshot(vol, plan, size)
            record["status"] = "running"  # already past `waiting`: the next list shows it
            record["_sim"].update(seen=1, lists_before_created=lists_before_created + 1)
            s["snapshots"].setdefault(volume_id, []).append(record)
        return record["id"]

    def hang(self, match: Sequence[str], seconds: float, *, times: int | None = 1,
             until: str | os.PathLike[str] | None = None) -> None:
        """Matching invocations sleep ``seconds`` first (or until the file ``until``
        exists, at most ``seconds``), then run normally."""
        self._add_fault({"kind": "hang", "match": list(match), "sleep": seconds,
                         "times": times, "until": str(until) if until else None})

    def clear_faults(self) -> None:
        with self._mutate() as s:
            s["faults"] = []
            s["sftp_faults"] = []
            s["deploy_faults"] = []

    def _add_fault(self, fault: Fault) -> None:
        with self._mutate() as s:
            s["faults"].append(fault)

    def sftp_fail_after(self, nbytes: int, *, error: str = "connection lost",
                        times: int | None = 1, remote: str | None = None) -> None:
        """The next ``sftp get`` copies ``nbytes`` then fails, leaving the partial file."""
        with self._mutate() as s:
            s["sftp_faults"].append({"after_bytes": nbytes, "error": error, "times": times,
                                     "remote": remote})

    def sftp_put_fault(self, *, after_bytes: int | None = None, flip_at: int | None = None,
                       error: str = "connection lost", times: int | None = 1,
                       remote: str | None = None) -> None:
        """The next ``sftp put`` stops after ``after_bytes`` (partial remote file, exit 1),
        or arrives with the byte at ``flip_at`` flipped (exit 0)."""
        with self._mutate() as s:
            s.setdefault("sftp_put_faults", []).append(
                {"after_bytes": after_bytes, "flip_at": flip_at, "error": error,
                 "times": times, "remote": remote})

    def deploy_health_timeout(self, *, machine_id: str | None = None,
                              times: int | None = 1) -> None:
        """The next deploy times out on health checks (not with --detach / immediate)."""
        with self._mutate() as s:
            s["deploy_faults"].append({"kind": "health_timeout", "machine_id": machine_id,
                                       "times": times})

    def deploy_replaces_machine(self, *, new_id: str | None = None, state: str = "started",
                                machine_id: str | None = None, times: int | None = 1) -> None:
        """The next deploy destroys the machine and launches a new one (new id, same
        volume), left in ``state`` (e.g. ``"stopped"``: it did not come up)."""
        with self._mutate() as s:
            s["deploy_faults"].append({"kind": "replace_machine", "new_id": new_id,
                                       "state": state, "machine_id": machine_id,
                                       "times": times})

    def deploy_migrates(self, db: str | Path, sql: str) -> None:
        """The next successful ``fly deploy`` starts a release that runs ``sql`` against
        the machine's database ``db`` (the app's migrations, at boot)."""
        with self._mutate() as s:
            s.setdefault("migrations", []).append({"db": str(db), "sql": sql})

    # ------------------------------------------------------------------ Fly's platform

    def proxy_traffic(self, on: bool = True) -> None:
        """Requests keep arriving: before every later invocation, Fly's proxy starts a
        stopped machine whose services autostart when its app has no started machine."""
        with self._mutate() as s:
            s["features"]["proxy_traffic"] = on

    def hold_lease(self, machine_id: str, holder: str = "other@example.com",
                   expires: str = "2026-12-06T20:00:00Z") -> None:
        """Someone else holds the machine's lease (a deploy, another operator)."""
        with self._mutate() as s:
            _find_machine(s, machine_id)["_lease"] = {"holder": holder, "expires": expires}

    def release_lease(self, machine_id: str) -> None:
        with self._mutate() as s:
            _find_machine(s, machine_id).pop("_lease", None)

    def transition_lists(self, lists: int) -> None:
        """``machine stop``/``start`` leave the machine ``stopping``/``starting`` for this
        many ``machine list`` calls (default 1; 0: at once)."""
        with self._mutate() as s:
            s["features"]["transition_lists"] = lists

    def machine_takes(self, machine_id: str, seconds: float) -> None:
        """The machine needs ``seconds`` to stop: a ``--wait-timeout`` shorter than that
        (after fly-go's 60 s clamp) fails."""
        with self._mutate() as s:
            _find_machine(s, machine_id)["_takes"] = seconds

    def update_never_settles(self, machine_id: str, on: bool = True) -> None:
        """``machine update`` of it ends in flyctl's ``WaitTimeoutErr``."""
        with self._mutate() as s:
            _find_machine(s, machine_id)["_never_settles"] = on

    def no_capacity(self, *regions: str) -> None:
        """``machine start`` and ``clone`` (launch) fail for lack of capacity there."""
        with self._mutate() as s:
            s["features"]["no_capacity"] = list(regions)

    def host_room(self, region: str, memory_mb: int | None) -> None:
        """Hosts in ``region`` with volume space have room for machines of at most
        ``memory_mb``: ``volumes create`` asking for more fails, and a volume made there
        keeps that room, so a bigger machine cannot be launched (cloned) onto it."""
        with self._mutate() as s:
            rooms = s["features"].setdefault("host_room_mb", {})
            if memory_mb is None:
                rooms.pop(region, None)
            else:
                rooms[region] = memory_mb

    def zones(self, region: str, zones: list[str] | None) -> None:
        """The hardware zones of ``region`` that have room for a volume (None: any):
        ``volumes create`` with ``--require-unique-zone`` (its default) needs one that no
        volume of the same name uses."""
        with self._mutate() as s:
            table = s["features"].setdefault("zones", {})
            if zones is None:
                table.pop(region, None)
            else:
                table[region] = list(zones)

    def clones_unhealthy(self, on: bool = True) -> None:
        """Machines ``machine clone`` creates never pass their health checks (the clone
        exists and runs; flyctl fails after "Machine ID has been created")."""
        with self._mutate() as s:
            s["features"]["clones_unhealthy"] = on

    def volume_restore_ends(self, state: str | None) -> None:
        """Volumes created from a snapshot later end in ``state`` instead of ``created``
        (a failed restore; Fly does not document the state it shows)."""
        with self._mutate() as s:
            s["features"]["volume_restore_ends"] = state

    def set_local_docker(self, available: bool) -> None:
        """Whether ``deploy --local-only`` finds a Docker daemon (default: no)."""
        with self._mutate() as s:
            s["features"]["local_docker"] = available

    # ------------------------------------------------------------------ inspection

    def call_records(self) -> list[dict[str, Any]]:
        """Raw ``calls.jsonl`` records: ``{"argv": [...], "token": bool}``. Read under the
        lock each call is appended under (``cli/calls.log_call``): a test polling while a
        long call (a machine script) is being written never sees half a line."""
        try:
            handle = self.calls_path.open("rb")
        except FileNotFoundError:
            return []
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            text = handle.read().decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line]

    def calls(self) -> list[list[str]]:
        """argv (after the binary name) of every invocation, in order."""
        return [r["argv"] for r in self.call_records()]

    def clear_calls(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.calls_path.unlink()

    def _app_of(self, s: World, app: str | None) -> App:
        if app is None:
            if len(s["apps"]) != 1:
                raise ValueError("several apps: pass app=")
            return next(iter(s["apps"].values()))
        return _app(s, app)

    def releases(self, app: str | None = None) -> list[dict[str, Any]]:
        """Releases newest first (as ``fly releases --json`` shows them, uncapped)."""
        return [render_release(r) for r in sorted_releases(self._app_of(
            self.raw_state(), app))]

    def machines(self, app: str | None = None) -> list[dict[str, Any]]:
        return [render_machine(m) for m in self._app_of(self.raw_state(), app)["machines"]]

    def machine(self, machine_id: str) -> dict[str, Any]:
        return render_machine(_find_machine(self.raw_state(), machine_id))

    def machine_image(self, machine_id: str) -> str:
        """``config.image`` of the machine (what deploy changes)."""
        return records.machine_image(_find_machine(self.raw_state(), machine_id))

    def volumes(self, app: str | None = None) -> list[dict[str, Any]]:
        return [render_volume(v) for v in self._app_of(self.raw_state(), app)["volumes"]]

    def snapshots(self, volume_id: str) -> list[dict[str, Any]]:
        """Current snapshots of a volume, oldest first, without advancing pending ones."""
        recs = self.raw_state()["snapshots"].get(volume_id, [])
        return [render_snapshot(r) for r in sorted_snapshots(recs)]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def write_fly_toml(directory: str | os.PathLike[str], *, app: str = DEFAULT_APP,
                       mounts: bool = True, extra: str = "") -> Path:
        """Write a minimal fly.toml (with ``[mounts] source="data"`` unless mounts=False)."""
        text = f'app = "{app}"\nprimary_region = "ams"\n'
        if mounts:
            text += '\n[mounts]\n  source = "data"\n  destination = "/data"\n'
        text += extra
        path = Path(directory) / "fly.toml"
        path.write_text(text)
        return path


def _empty_state() -> World:
    return {
        "schema": 1,
        "account": {"email": DEFAULT_EMAIL, "name": "CI Bot", "user_id": "Usr_p8d2w6k0"},
        "auth": {"valid_tokens": [], "config_token": None, "config_token_expired": False},
        "apps": {},
        "snapshots": {},
        "snapshot_plan": {"default": {"mode": "progress", "lists_before_created": 2},
                          "volumes": {}},
        "faults": [],
        "sftp_faults": [],
        "deploy_faults": [],
        "features": {"local_docker": False},
    }


def _app(s: World, name: str) -> App:
    try:
        return s["apps"][name]
    except KeyError:
        raise KeyError(f"no app {name!r} in the world; call add_app first") from None


def _find_machine(s: World, machine_id: str) -> Machine:
    for a in s["apps"].values():
        for m in a["machines"]:
            if m["id"] == machine_id:
                return m
    raise KeyError(f"no machine {machine_id!r}")


def _find_volume(s: World, volume_id: str) -> Volume | None:
    for a in s["apps"].values():
        for v in a["volumes"]:
            if v["id"] == volume_id:
                return v
    return None


def _new_private_ip() -> str:
    h = rand_str(8, "0123456789abcdef")
    return f"fdaa:9:1c2d:a7b:1f0:{h[:4].lstrip('0') or '0'}:{h[4:].lstrip('0') or '0'}:2"


def _default_service() -> dict[str, Any]:
    return {
        "protocol": "tcp", "internal_port": 8080, "autostop": True, "autostart": True,
        "min_machines_running": 1,
        "ports": [{"port": 80, "handlers": ["http"], "force_https": True},
                  {"port": 443, "handlers": ["http", "tls"]}],
        "checks": [{"type": "http", "interval": "15s", "timeout": "5s", "grace_period": "10s",
                    "method": "GET", "path": "/health"}],
        "force_instance_key": None,
    }


def default_world(tmp_dir: str | os.PathLike[str]) -> FlyWorld:
    """The reference world: app ``step-app-4x-yhw``; started machine ``e2865013c41e86``
    (ams, image = release v12) with ``vol_4y5p2k8qz1m7r3dv`` ("data", 3 GB, retention 14,
    two existing ``created`` snapshots) at /data; an unattached second volume also named
    "data" (``vol_r7l0wm3x9gq2vn5j``, retention 5, no snapshots); releases v12 (complete,
    current) and v11 (complete, older digest image); token ``test-token`` valid."""
    w = FlyWorld(tmp_dir)
    w.add_app(DEFAULT_APP)
    w.add_token(DEFAULT_TOKEN)
    w.add_release(DEFAULT_APP, 11, image_ref=IMAGE_V11, created_at="2026-08-19T10:21:05Z",
                  release_id="Rel_3m1vq8z5kx7wp", stable=False)
    w.add_release(DEFAULT_APP, 12, image_ref=IMAGE_V12, created_at="2026-08-20T13:57:31Z",
                  release_id="Rel_9x4kq2m7ln0vz")
    w.add_volume(DEFAULT_APP, DEFAULT_VOLUME_ID, size_gb=3, zone="a1c7",
                 snapshot_retention=14, created_at="2026-07-02T09:14:31.118Z")
    w.add_volume(DEFAULT_APP, SPARE_VOLUME_ID, size_gb=3, zone="9f02", snapshot_retention=5,
                 created_at="2026-08-19T21:02:07.540913Z")
    w.add_machine(DEFAULT_APP, DEFAULT_MACHINE_ID, name="wispy-moon-4128", region="ams",
                  image=IMAGE_V12, mounts=[(DEFAULT_VOLUME_ID, "/data")],
                  private_ip=DEFAULT_PRIVATE_IP, release_version=12,
                  env={"DATABASE_PATH": "/data/app.db"})
    w.add_snapshot(DEFAULT_VOLUME_ID, "vs_A1b2C3d4E5f6G7h8I9j0K1l2", size=2147483648,
                   created_at="2026-08-16T02:11:09Z", retention_days=14,
                   digest="0b5c1f9e2d7a4c3b8e6f1a2d9c0e7b45")
    w.add_snapshot(DEFAULT_VOLUME_ID, "vs_M3n4O5p6Q7r8S9t0U1v2W3x4", size=196083712,
                   created_at="2026-08-17T02:10:54Z", retention_days=14,
                   digest="6e3d0a7c1b9f48e2a5c7d1f0b3e96a28")
    return w
