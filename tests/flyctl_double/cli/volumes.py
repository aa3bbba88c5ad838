"""``fly volumes list|create`` (internal/command/volumes/{list,create,volumes}.go)."""

from __future__ import annotations

import copy

from . import platform
from .clock import now_rfc3339, parse_time
from .flags import app_flag, config_flag, json_flag, vm_flags
from .ids import rand_str
from .output import FlyError, err, go_json, go_quote, humanize_time, out, render_table
from .parser import NO_ARGS, Command, Flag, exact_args, not_emulated
from .records import GIB, HIDDEN_VOLUME_STATES, render_volume
from .session import Ctx, api_auth, authenticated_app, get_app, require_app_name, require_session
from .snapshots import snapshots_group

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import App, Snapshot, Volume, World


def cmd_volumes_list(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    if any("_restoring_lists" in v for v in app.get("volumes", [])):
        app = _advance_restoring(ctx, name)
    vols = [v for v in app.get("volumes", [])]
    if not ctx.flag("all"):
        vols = [v for v in vols if v.get("state") not in HIDDEN_VOLUME_STATES]
    if ctx.json_on():
        out(go_json([render_volume(v) for v in vols]))
        return 0
    rows = []
    unreachable = False
    for v in vols:
        vid = v["id"]
        if v.get("host_status") == "unreachable":
            vid += "*"
            unreachable = True
        rows.append(
            [
                vid,
                str(v.get("state", "")),
                str(v.get("name", "")),
                f"{v.get('size_gb')}GB",
                str(v.get("region", "")),
                str(v.get("zone", "")),
                "true" if v.get("encrypted") else "false",
                str(v.get("attached_machine_id") or ""),
                humanize_time(str(v.get("created_at") or "")),
            ]
        )
    text = render_table(
        rows,
        ["ID", "State", "Name", "Size", "Region", "Zone", "Encrypted", "Attached VM", "Created At"],
    )
    if unreachable:
        text += "* These volumes' hosts could not be reached.\n"
    out(text)
    return 0


def _advance_restoring(ctx: Ctx, name: str) -> App:
    """A volume created from a snapshot stays `restoring` for ``_restoring_lists`` listings,
    then is `created` (flyctl's create returns before the restore finishes)."""
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        for vol in app.get("volumes", []):
            if vol.get("_restoring_lists", 0) > 0:
                vol["_restoring_lists"] -= 1
            elif "_restoring_lists" in vol:
                del vol["_restoring_lists"]
                # a failed restore ends in the state the world names (see README)
                vol["state"] = vol.pop("_restore_ends", None) or "created"
        return copy.deepcopy(app)


VOLUME_WARNING = (
    "Warning! Every volume is pinned to a specific physical host. You should create two or "
    "more volumes per application to avoid downtime. Learn more at "
    "https://fly.io/docs/volumes/overview/"
)


def new_volume(app: App, name: str, region: str, size_gb: int, encrypted: bool,
               retention: int, restoring: bool, state: World) -> Volume:
    vol = {
        "id": "vol_" + rand_str(16, "0123456789abcdefghijklmnopqrstuvwxyz"), "name": name,
        "state": "restoring" if restoring else "created", "size_gb": size_gb,
        "region": region, "zone": rand_str(4, "0123456789abcdef"), "encrypted": encrypted,
        "attached_machine_id": None, "attached_alloc_id": None, "created_at": now_rfc3339(),
        "host_dedication_id": "", "snapshot_retention": retention,
        "auto_backup_enabled": True, "host_status": "ok",
    }
    if restoring:  # `restoring` for this many `volumes list` calls, then `created`
        features = state.get("features") or {}
        vol["_restoring_lists"] = int(features.get("volume_restore_lists", 1))
        if features.get("volume_restore_ends"):
            vol["_restore_ends"] = str(features["volume_restore_ends"])
    app.setdefault("volumes", []).append(vol)
    return vol


def _find_snapshot(state: World, app: App, snapshot_id: str) -> Snapshot | None:
    for vol in app.get("volumes", []):
        for snap in (state.get("snapshots") or {}).get(vol["id"], []):
            if snap.get("id") == snapshot_id and snap.get("status") == "created":
                return snap
    return None


def _print_volume(vol: dict[str, Any], app_name: str) -> str:
    created = parse_time(vol["created_at"]).strftime("%d %b %y %H:%M UTC")
    rows = [("ID", vol["id"]), ("Name", vol["name"]), ("App", app_name),
            ("Region", vol["region"]), ("Zone", vol["zone"]), ("Size GB", str(vol["size_gb"])),
            ("Encrypted", "true" if vol["encrypted"] else "false"), ("Created at", created),
            ("Snapshot retention", str(vol["snapshot_retention"])),
            ("Scheduled snapshots", "true" if vol["auto_backup_enabled"] else "false")]
    return "".join(f"{label:>20}: {value}\n" for label, value in rows)


def cmd_volumes_create(ctx: Ctx) -> int:
    require_session(ctx)
    name, _ = require_app_name(ctx)
    api_auth(ctx)
    vol_name = ctx.args[0]
    count = int(ctx.flag("count") or 1)
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        same_name = [v for v in app.get("volumes", []) if v.get("name") == vol_name]
        if not ctx.flag("yes") and count <= 1 and not same_name:
            err(VOLUME_WARNING + "\n")
            raise FlyError("yes flag must be specified when not running interactively")
        region = ctx.flag("region") or ctx.environ.get("FLY_REGION", "")
        if not region:
            raise FlyError("region code must be specified when not running interactively")
        platform.check_region(region)
        size = int(ctx.flag("size"))
        snapshot_id = ctx.flag("snapshot-id") or ""
        if snapshot_id:
            snap = _find_snapshot(state, app, snapshot_id)
            if snap is None:  # guess: the API's answer for an unknown snapshot
                raise FlyError(f"failed to create volume: snapshot {snapshot_id} not found")
            needed = -(-int(snap.get("volume_size") or 0) // GIB)
            if size < needed:  # [D] the size must be at least the snapshot's volume size
                raise FlyError(f"failed to create volume: size must be at least {needed}GB "
                               "for this snapshot")
        if "fs-type" in ctx.inv.specified and ctx.flag("fs-type") not in ("ext4", "raw"):
            raise FlyError(f'filesystem {go_quote(ctx.flag("fs-type"))} must be either "ext4" '
                           'or "raw"')
        # flag.GetMachineGuest(ctx, nil): no --vm-* flag asks for the default 256 MB guest
        memory = _vm_memory(ctx)
        room = platform.host_room(state, region)
        if room is not None and memory > room:  # guess: the API's text
            raise FlyError("failed to create volume: insufficient resources to place a volume "
                           f"with room for a {memory} MB machine in {region}")
        made = []
        for _ in range(count):
            zone = _placement(ctx, state, app, vol_name, region)
            vol = new_volume(app, vol_name, region, size, not ctx.flag("no-encryption"),
                              int(ctx.flag("snapshot-retention")), bool(snapshot_id), state)
            vol["_snapshot_id"] = snapshot_id or None
            if zone:
                vol["zone"] = zone
            if "scheduled-snapshots" in ctx.inv.specified:  # only then sent (create.go)
                vol["auto_backup_enabled"] = bool(ctx.flag("scheduled-snapshots"))
            if room is not None:
                vol["_host_room_mb"] = room
            made.append(render_volume(vol))
    for vol in made:
        out(go_json(vol) if ctx.json_on() else _print_volume(vol, name))
    return 0


def _placement(ctx: Ctx, state: World, app: App, name: str, region: str) -> str | None:
    """``--require-unique-zone`` (default true): a zone of the region (``features.zones``;
    none set: any) that no volume of this name (``--unique-zone-app-wide``: of the app)
    uses yet.  None left fails (the API's text is a guess)."""
    zones = ((state.get("features") or {}).get("zones") or {}).get(region)
    if zones is None:
        return None
    if not ctx.flag("require-unique-zone"):
        return zones[0]
    app_wide = bool(ctx.flag("unique-zone-app-wide"))
    taken = {v.get("zone") for v in app.get("volumes", [])
             if v.get("region") == region and (app_wide or v.get("name") == name)}
    free = [zone for zone in zones if zone not in taken]
    if not free:
        raise FlyError(f"failed to create volume: no zone left in {region} for another "
                       f"volume named {name!r} (the existing ones use every zone); "
                       "--require-unique-zone=false allows sharing one")
    return free[0]


def _vm_memory(ctx: Ctx) -> int:
    """The compute requirement's memory (internal/flag/machines.go ``GetMachineGuest``)."""
    memory = platform.DEFAULT_GUEST_MB
    size = ctx.flag("vm-size") or ""
    if size:
        sizes = {"shared-cpu-1x": 256, "shared-cpu-2x": 512, "shared-cpu-4x": 1024,
                 "shared-cpu-8x": 2048, "performance-1x": 2048, "performance-2x": 4096}
        if size not in sizes:  # guess: fly-go SetSize's text
            raise FlyError(f"invalid machine size requested, '{size}', available:")
        memory = sizes[size]
    raw = str(ctx.flag("vm-memory") or "")
    if raw:
        try:
            memory = int(raw.lower().removesuffix("mb").removesuffix("m"))
        except ValueError:
            raise FlyError(f"invalid size {go_quote(raw)}") from None  # guess
        if memory == 0:
            raise FlyError("--vm-memory cannot be zero")
    return memory


def _create_cmd() -> Command:
    return Command(
        "create", usage="<volume name>", short="Create a new volume for an app.",
        args=exact_args(1), run=cmd_volumes_create,
        flags=[app_flag(), config_flag(), Flag("region", "r", "string"),
               Flag("size", "s", "int", default=1), Flag("snapshot-retention", None, "int",
                                                          default=5),
               Flag("scheduled-snapshots", default=True), Flag("no-encryption"),
               Flag("require-unique-zone", default=True), Flag("unique-zone-app-wide"),
               Flag("snapshot-id", None, "string"),
               Flag("fs-type", None, "string", default="ext4", hidden=True),
               Flag("yes", "y", aliases=("auto-confirm",)), Flag("count", "n", "int", default=1),
               *vm_flags(), json_flag()])


def volumes_group() -> Command:
    return Command("volumes", aliases=("volume", "vol", "v"), short="Manage Fly Volumes.",
                   children=[
        Command("list", aliases=("ls",), short="List the volumes associated with an app.",
                flags=[app_flag(), config_flag(),
                       Flag("all", help="Show all volumes including those in "
                            "destroyed states"), json_flag()],
                run=cmd_volumes_list, args=NO_ARGS),
        snapshots_group(), _create_cmd(), not_emulated("show"), not_emulated("update"),
        not_emulated("destroy", "delete", "rm"), not_emulated("extend"), not_emulated("fork"),
    ])
