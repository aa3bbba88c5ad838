"""The command tree: which flyctl commands exist, which ones the double emulates, ``help``."""

from __future__ import annotations

from .apps import apps_group, releases_cmd, status_cmd
from .auth import auth_group
from .deploy import deploy_cmd
from .machines import machine_group
from .output import go_quote, out
from .parser import Command, help_text, not_emulated
from .sftp import sftp_group
from .ssh import console_cmd
from .version import version_cmd
from .volumes import volumes_group

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .session import Ctx


def cmd_help(ctx: Ctx) -> int:
    node = ROOT
    for word in ctx.args:
        nxt = node.child(word)
        if nxt is None:
            out(f"Unknown help topic {go_quote(' '.join(ctx.args))}\n")
            node = ROOT
            break
        node = nxt
    out(help_text(node, ctx.prog))
    return 0


def build_root() -> Command:
    """flyctl's root command, its children in flyctl's order (help and typo suggestions)."""
    return Command(
        "fly",
        short="This is flyctl, the Fly.io command line interface.",
        children=[
            version_cmd(), auth_group(), volumes_group(), machine_group(), releases_cmd(),
            apps_group(), status_cmd(),
            Command("ssh", short="Use SSH to log into or run commands on Machines", children=[
                console_cmd(), sftp_group(), not_emulated("issue"), not_emulated("log"),
            ]),
            sftp_group(), deploy_cmd(),
            Command("help", usage="[command]", short="Help about any command", run=cmd_help),
            *(not_emulated(name, *aliases) for name, *aliases in (
                ("scale",), ("secrets",), ("logs",), ("console",), ("launch",), ("config",),
                ("ips",), ("certs",), ("image",), ("platform",), ("postgres", "pg"),
                ("proxy",), ("regions",), ("wireguard", "wg"), ("tokens",), ("orgs",),
                ("agent",), ("doctor",), ("checks",))),
        ],
    )


ROOT = build_root()
