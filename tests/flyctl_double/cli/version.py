"""``fly version`` (internal/command/version/version.go, internal/buildinfo/buildinfo.go)."""

from __future__ import annotations

from .flags import json_flag
from .output import go_json_compact, out
from .parser import Command, Flag, not_emulated
from .session import Ctx

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


FLYCTL_VERSION = "0.4.87"


FLYCTL_COMMIT = "ad0172face303b77584eea95b46fa3ddc61d5ddd"


FLYCTL_BUILD_DATE = "2026-08-20T17:03:41Z"


def cmd_version(ctx: Ctx) -> int:
    """internal/command/version/version.go: ``json.NewEncoder(out).Encode(info)`` (one
    compact line) or ``info.String()`` (internal/buildinfo/buildinfo.go)."""
    version = str((ctx.state.get("features") or {}).get("version") or FLYCTL_VERSION)
    if ctx.json_on():
        info = {
            "Name": ctx.prog,
            "Version": version,
            "Commit": FLYCTL_COMMIT,
            "BranchName": "master",
            "BuildDate": FLYCTL_BUILD_DATE,
            "OS": "linux",
            "Architecture": "amd64",
            "Environment": "production",
        }
        out(go_json_compact(info) + "\n")
    else:
        out(
            f"{ctx.prog} v{version} linux/amd64 Commit: {FLYCTL_COMMIT} "
            f"BuildDate: {FLYCTL_BUILD_DATE} BranchName: master\n"
        )
    return 0


def version_cmd() -> Command:
    return Command("version", short="Show version information for the flyctl command",
                   flags=[json_flag(), Flag("saveinstall", "s", "string", hidden=True)],
                   run=cmd_version, children=[not_emulated("upgrade")])
