"""``fly volumes snapshots create|list`` (internal/command/volumes/snapshots/).

A new snapshot is ``waiting`` -> ``running`` -> ``created`` (or ``failed``), one step per
``snapshots list`` of its volume, as ``FlyWorld.snapshot_behavior`` plans it."""

from __future__ import annotations

import contextlib
import os

from .clock import ZERO_TIME, now_rfc3339
from .flags import app_flag, json_flag
from .ids import new_snapshot_id
from .output import (
    FlyError,
    err,
    go_json,
    go_quote,
    humanize_ibytes,
    humanize_time,
    out,
    render_table,
)
from .parser import Command, exact_args
from .records import GIB, render_snapshot, sorted_snapshots
from .session import Ctx, api_auth, get_app, load_app_config, require_session, resolve_app_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..state import Snapshot, SnapshotPlan, Volume, World


def _find_volume_app(ctx: Ctx, vol_id: str) -> str | None:
    for app_name, app in (ctx.state.get("apps") or {}).items():
        if any(v.get("id") == vol_id for v in app.get("volumes", [])):
            return app_name
    return None


def _snapshot_app(ctx: Ctx, vol_id: str, lookup_prefix: str) -> str:
    """LoadAppNameIfPresent (-a, FLY_APP, ./fly.toml), else look the app up from the volume."""
    cfg = load_app_config(ctx)
    name = resolve_app_name(ctx, cfg)
    api_auth(ctx)
    if not name:
        found = _find_volume_app(ctx, vol_id)
        if found is None:
            # Guess: the GraphQL error for an unknown volume id.
            raise FlyError(f"{lookup_prefix}Could not find Volume {go_quote(vol_id)}")
        name = found
    get_app(ctx, name)
    return name


def _volume_in(ctx: Ctx, app_name: str, vol_id: str) -> Volume | None:
    app = (ctx.state.get("apps") or {}).get(app_name) or {}
    for v in app.get("volumes", []):
        if v.get("id") == vol_id:
            return v
    return None


def snapshot_plan(state: World, vol_id: str) -> SnapshotPlan:
    plans = state.get("snapshot_plan") or {}
    plan = dict(plans.get("default") or {})
    plan.update((plans.get("volumes") or {}).get(vol_id) or {})
    plan.setdefault("mode", "progress")
    plan.setdefault("lists_before_created", 2)
    return plan


@contextlib.contextmanager
def _locked_volume(ctx: Ctx, lookup_prefix: str, not_found: str) -> Iterator[tuple[World, Volume]]:
    """The session, the volume's app, then the state under its lock with the volume in it."""
    require_session(ctx)
    vol_id = ctx.args[0]
    app_name = _snapshot_app(ctx, vol_id, lookup_prefix)
    with ctx.store.mutate() as state:
        ctx.state = state
        vol = _volume_in(ctx, app_name, vol_id)
        if vol is None:
            raise FlyError(not_found)
        yield state, vol


def cmd_snapshots_create(ctx: Ctx) -> int:
    vol_id = ctx.args[0]
    # Guess: flaps 404 body for a volume that is not in this app.
    with _locked_volume(ctx, "", f"failed to snapshot {vol_id}: volume not found") as (state, vol):
        plan = snapshot_plan(state, vol_id)
        size = plan.get("size")
        if size is None:
            size = 196083712
        record = pending_snapshot(vol, plan, int(size))
        state.setdefault("snapshots", {}).setdefault(vol_id, []).append(record)
    out(f"Scheduled to snapshot volume {vol_id}\n")
    return 0


def pending_snapshot(vol: Volume, plan: SnapshotPlan, size: int) -> Snapshot:
    """A snapshot as the Machines API lists it while it runs: its id already, a zero
    ``created_at`` (fly-go volume_types.go ``CreatedAt time.Time``; flyctl's
    volumes/snapshots/list.go shows it as blank through ``IsZero``), status ``waiting``."""
    return {
        "id": new_snapshot_id(),
        "size": 0,
        "volume_size": int(vol.get("size_gb") or 0) * GIB,
        "digest": "",
        "created_at": ZERO_TIME,
        "status": "waiting",
        "retention_days": vol.get("snapshot_retention"),
        "_sim": {
            "mode": plan["mode"],
            "lists_before_created": int(plan["lists_before_created"]),
            "seen": 0,
            "final_size": int(size),
            "final_digest": os.urandom(16).hex(),
        },
    }


def _advance_snapshot(rec: Snapshot) -> None:
    sim = rec.get("_sim")
    if not sim or sim.get("done"):
        return
    k = int(sim.get("seen", 0))
    n = int(sim.get("lists_before_created", 2))
    mode = sim.get("mode", "progress")
    if mode in ("progress", "fail") and k >= n:
        if mode == "progress":
            rec["created_at"] = now_rfc3339()
            rec["size"] = sim["final_size"]
            rec["digest"] = sim["final_digest"]
            rec["status"] = "created"
        else:
            rec["status"] = "failed"
        sim["done"] = True
    else:
        rec["status"] = "waiting" if k == 0 else "running"
    sim["seen"] = k + 1


def cmd_snapshots_list(ctx: Ctx) -> int:
    vol_id = ctx.args[0]
    with _locked_volume(ctx, "failed getting app name from volume: ",
                        f"failed retrieving snapshots: failed to get volume {vol_id} snapshots: "
                        "volume not found") as (state, _vol):
        records = state.setdefault("snapshots", {}).setdefault(vol_id, [])
        for rec in records:
            _advance_snapshot(rec)
        snaps = [render_snapshot(r) for r in sorted_snapshots(records)]
    if ctx.json_on():
        out(go_json(snaps))
        return 0
    if not snaps:
        err(f"No snapshots available for volume {vol_id}\n")
        return 0
    rows = []
    total = 0
    for s in snaps:
        total += int(s.get("size") or 0)
        rows.append(
            [
                s["id"] or "(pending)",
                str(s.get("status", "")),
                humanize_ibytes(int(s.get("size") or 0)),
                humanize_ibytes(int(s.get("volume_size") or 0)),
                humanize_time(str(s.get("created_at") or "")),
                "" if s.get("retention_days") is None else str(s["retention_days"]),
            ]
        )
    out(
        render_table(
            rows,
            ["ID", "Status", "Stored Size", "Vol Size", "Created At", "Retention Days"],
            title="Snapshots",
        )
        + f"\nTotal stored size: {humanize_ibytes(total)}\n"
    )
    return 0


def snapshots_group() -> Command:
    return Command("snapshots", aliases=("snapshot", "snaps"),
                   short="Manage volume snapshots.", children=[
        Command("create", usage="<volume id>", short="Create a volume snapshot.",
                flags=[app_flag(), json_flag()], run=cmd_snapshots_create,
                args=exact_args(1)),
        Command("list", aliases=("ls",), usage="<volume id>",
                short="List snapshots.", flags=[app_flag(), json_flag()],
                run=cmd_snapshots_list, args=exact_args(1)),
    ])
