"""``fly auth whoami`` (internal/command/auth/whoami.go)."""

from __future__ import annotations

from .flags import json_flag
from .output import go_json, out
from .parser import NO_ARGS, Command, not_emulated
from .session import Ctx, api_auth, require_session

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


def cmd_whoami(ctx: Ctx) -> int:
    require_session(ctx)
    api_auth(ctx)
    email = (ctx.state.get("account") or {}).get("email", "")
    out(go_json({"email": email}) if ctx.json_on() else f"{email}\n")
    return 0


def auth_group() -> Command:
    return Command("auth", short="Manage authentication", children=[
        Command("whoami", short="Displays the users email address/service identity "
                "currently authenticated and in use.", flags=[json_flag()],
                run=cmd_whoami, args=NO_ARGS),
        *(not_emulated(name) for name in ("login", "logout", "token", "docker", "signup")),
    ])
