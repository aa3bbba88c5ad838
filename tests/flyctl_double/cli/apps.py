"""``fly releases`` / ``fly apps releases`` and ``fly status`` (internal/command/apps/releases.go,
internal/command/status/)."""

from __future__ import annotations

from .flags import app_flag, config_flag, json_flag
from .output import FlyError, go_json, humanize_time, out, render_table
from .parser import NO_ARGS, Command, Flag, not_emulated
from .records import (
    active_machines,
    machine_image,
    process_group,
    render_machine,
    render_release,
    sorted_releases,
)
from .session import Ctx, authenticated_app

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


def cmd_releases(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    releases = sorted_releases(app)[:25]
    if ctx.json_on():
        out(go_json([render_release(r) for r in releases]))
        return 0
    headers = ["Version", "Status", "Description", "User", "Date"]
    if ctx.flag("image"):
        headers.append("Docker Image")
    rows = []
    for r in releases:
        row = [
            f"v{r.get('Version')}",
            str(r.get("Status", "")),
            str(r.get("Description", "")),
            str((r.get("User") or {}).get("Email", "")),
            humanize_time(str(r.get("CreatedAt") or "")),
        ]
        if ctx.flag("image"):
            row.append(str(r.get("ImageRef", "")))
        rows.append(row)
    out(render_table(rows, headers))
    return 0


def cmd_status(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    if ctx.flag("watch") and ctx.json_on():
        raise FlyError("--watch and --json are not supported together")
    current = next((r for r in sorted_releases(app) if r.get("Status") == "complete"), None)
    machines = sorted(active_machines(app), key=lambda m: m["id"], reverse=True)
    org = app.get("org") or {}
    if ctx.json_on():
        out(
            go_json(
                {
                    "ID": name,
                    "Name": name,
                    "Deployed": bool(app.get("releases")),
                    "Status": "deployed" if app.get("releases") else "pending",
                    "Hostname": f"{name}.fly.dev",
                    "Version": int(current["Version"]) if current else 0,
                    "AppURL": "",
                    "Organization": {
                        "ID": org.get("id", ""),
                        "InternalNumericID": org.get("internal_numeric_id", ""),
                        "Name": org.get("name", ""),
                        "Slug": org.get("slug", ""),
                        "RawSlug": org.get("slug", ""),
                        "PaidPlan": bool(org.get("paid_plan", True)),
                    },
                    "PlatformVersion": "machines",
                    "Machines": [render_machine(m) for m in machines],
                }
            )
        )
        return 0
    image = machine_image(machines[0]) if machines else ""
    text = (
        f"App\n  Name     = {name}\n  Owner    = {org.get('slug', '')}\n"
        f"  Hostname = {name}.fly.dev\n  Image    = {image.removeprefix('registry.fly.io/')}\n\n"
    )
    rows = [
        [
            process_group(m),
            m["id"],
            f"{(m.get('image_ref') or {}).get('tag', '')}",
            str(m.get("region", "")),
            str(m.get("state", "")),
            "",
            "",
            str(m.get("updated_at", "")),
        ]
        for m in machines
    ]
    text += render_table(
        rows,
        ["Process", "ID", "Version", "Region", "State", "Role", "Checks", "Last Updated"],
        title="Machines",
    )
    out(text)
    return 0


def releases_cmd() -> Command:
    return Command(
        "releases",
        short="List app releases",
        flags=[app_flag(), config_flag(), json_flag(), Flag("image", help="Display image")],
        run=cmd_releases,
        args=NO_ARGS,
    )


def apps_group() -> Command:
    return Command("apps", aliases=("app",), short="Manage apps.", children=[
        releases_cmd(),
        *(not_emulated(name, *aliases) for name, *aliases in (
            ("list", "ls"), ("create",), ("destroy",), ("restart",), ("open",))),
    ])


def status_cmd() -> Command:
    return Command("status", short="Show app status",
                   flags=[app_flag(), config_flag(), json_flag(), Flag("all"),
                          Flag("watch"), Flag("rate", None, "int", default=5)],
                   run=cmd_status, args=NO_ARGS)
