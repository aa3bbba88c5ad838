"""The world's records (apps, machines, volumes, snapshots, releases) as flyctl shows them.

``--json`` key orders and the filters flyctl applies before printing (hidden volume states,
destroyed machines, release order).  Keys starting with ``_`` are the double's own and are
never printed."""

from __future__ import annotations

import copy

from .clock import parse_time
from .output import FlyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt
    from typing import Any

    from ..state import App, ImageRef, Machine, Release, Runtime, Snapshot, Volume


GIB = 1024**3


VOLUME_KEYS = (
    "id",
    "name",
    "state",
    "size_gb",
    "region",
    "zone",
    "encrypted",
    "attached_machine_id",
    "attached_alloc_id",
    "created_at",
    "host_dedication_id",
    "snapshot_retention",
    "auto_backup_enabled",
    "host_status",
)


SNAPSHOT_KEYS = (
    "id",
    "size",
    "volume_size",
    "digest",
    "created_at",
    "status",
    "retention_days",
)


RELEASE_KEYS = (
    "ID",
    "Version",
    "Stable",
    "InProgress",
    "Reason",
    "Description",
    "Status",
    "DeploymentStrategy",
    "Metadata",
    "User",
    "EvaluationID",
    "CreatedAt",
    "ImageRef",
)


HIDDEN_VOLUME_STATES = frozenset(
    {"scheduling_destroy", "fork_cleanup", "waiting_for_detach", "pending_destroy", "destroying"}
)


INACTIVE_MACHINE_STATES = frozenset({"destroyed", "destroying"})


def image_ref_object(image: str, labels: dict[str, str] | None = None) -> ImageRef:
    """Split an image string into fly-go's ``MachineImageRef`` object."""
    ref, _, digest = image.partition("@")
    tag = ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    head, sep, rest = ref.partition("/")
    if sep and ("." in head or ":" in head or head == "localhost"):
        registry, repository = head, rest
    else:
        registry = "docker-hub-mirror.fly.io"
        repository = ref if sep else f"library/{ref}"
    if not digest:
        import hashlib

        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
    return {
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "labels": dict(sorted((labels or {}).items())),
    }


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


def render_volume(v: Volume) -> dict[str, Any]:
    return {k: v.get(k) for k in VOLUME_KEYS if not (k == "host_status" and not v.get(k))}


def render_snapshot(s: Snapshot) -> dict[str, Any]:
    return {k: s.get(k) for k in SNAPSHOT_KEYS}


def render_release(r: Release) -> dict[str, Any]:
    return {k: copy.deepcopy(r.get(k)) for k in RELEASE_KEYS}


def render_machine(m: Machine) -> dict[str, Any]:
    d = public(m)
    cfg = d.get("config")
    if isinstance(cfg, dict):
        for key in ("env", "metadata"):
            if isinstance(cfg.get(key), dict):
                cfg[key] = dict(sorted(cfg[key].items()))
    ref = d.get("image_ref")
    if isinstance(ref, dict) and isinstance(ref.get("labels"), dict):
        ref["labels"] = dict(sorted(ref["labels"].items()))
    return d


def machine_image(m: Machine) -> str:
    return str((m.get("config") or {}).get("image") or "")


def process_group(m: Machine) -> str:
    return str(((m.get("config") or {}).get("metadata") or {}).get("fly_process_group") or "")


def active_machines(app: App) -> list[Machine]:
    return [m for m in app.get("machines", []) if m.get("state") not in INACTIVE_MACHINE_STATES]


def sorted_snapshots(records: list[Snapshot]) -> list[Snapshot]:
    import datetime as _dt  # here, not at the top (clock.py)

    def key(rec: Snapshot) -> _dt.datetime:
        try:
            return parse_time(str(rec.get("created_at")))
        except ValueError:
            return _dt.datetime.min.replace(tzinfo=_dt.UTC)

    return sorted(records, key=key)


def sorted_releases(app: App) -> list[Release]:
    return sorted(app.get("releases", []), key=lambda r: int(r.get("Version", 0)), reverse=True)


def machine_runtime(m: Machine) -> Runtime:
    """The machine's runtime, its PATH folder made to hold exactly its image's tools."""
    rt = m.get("_runtime") or {}
    if not rt.get("bin") or not rt.get("home"):
        raise FlyError(f"flyctl test double: machine {m['id']} has no runtime directories")
    sync_image_bin(rt)
    return rt


def sync_image_bin(rt: Runtime) -> None:
    """The machine's tools are its image's, not the host's: ``rt["tools"]`` (name -> the
    host file it stands for) is the truth, and the PATH folder ``rt["bin"]`` becomes one
    symlink per tool, nothing else.  Remote commands run with ``PATH=rt["bin"]`` only."""
    import os

    tools = rt.get("tools")
    if tools is None:  # a state written before images existed: the folder is the truth
        return
    bin_dir = rt["bin"]
    os.makedirs(bin_dir, exist_ok=True)
    for entry in os.listdir(bin_dir):
        path = os.path.join(bin_dir, entry)
        if entry not in tools or not os.path.islink(path) or os.readlink(path) != tools[entry]:
            os.unlink(path)
    for name, target in tools.items():
        path = os.path.join(bin_dir, name)
        if not os.path.lexists(path):
            os.symlink(target, path)
    _machine_python_venv(bin_dir, tools.get("python3"))


def _machine_python_venv(bin_dir: str, python: str | None) -> None:
    """The machine's python3 has its image's own (empty) site-packages, not the host's: a
    ``pyvenv.cfg`` beside its PATH folder, where Python looks for one next to the program it
    runs as (``home``: the real Python's folder, so any version works). Without it, every
    python3 on a machine ran the host's ``.pth`` files (on the test machines one imports
    certifi: ~45 ms of CPU of a ~60 ms start) and could import what only the host has."""
    import os

    cfg = os.path.join(os.path.dirname(bin_dir), "pyvenv.cfg")
    if not python:
        if os.path.exists(cfg):
            os.unlink(cfg)
        return
    text = (f"home = {os.path.dirname(os.path.realpath(python))}\n"
            "include-system-site-packages = false\n")
    try:
        with open(cfg) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    staged = f"{cfg}.{os.getpid()}.tmp"  # two fly calls at once each stage their own file
    with open(staged, "w") as f:
        f.write(text)
    os.replace(staged, cfg)
