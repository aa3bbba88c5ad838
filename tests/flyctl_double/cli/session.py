"""What every app command does first: the token, the session, fly.toml and the app's name.

Token: ``-t`` > ``FLY_ACCESS_TOKEN`` > ``FLY_API_TOKEN`` > the logged-in config token
(internal/config/config.go).  App: ``-a`` > ``FLY_APP`` > fly.toml's ``app``
(internal/appconfig, internal/command/command.go ``RequireAppName``)."""

from __future__ import annotations

import contextlib
import json
import os
import re

from .output import FlyError, go_errno_text, go_quote, truthy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import App, World
    from .parser import Invocation
    from .store import Store


NO_TOKEN_MSG = "No access token available. Please login with 'flyctl auth login'"


# Guess (documented in README): what the API answers for a token it rejects.
UNAUTHENTICATED_MSG = "You must be authenticated to view this."


MISSING_APP_MSG = (
    "the config for your app is missing an app name, add an app field to the fly.toml "
    "file or specify with the -a flag"
)


class Ctx:
    def __init__(
        self,
        prog: str,
        inv: Invocation,
        store: Store,
        state: World,
        token: str | None,
        token_source: str | None,
        environ: dict[str, str],
    ) -> None:
        self.prog = prog
        self.inv = inv
        self.store = store
        self.state = state
        self.token = token
        self.token_source = token_source
        self.environ = environ
        self.cwd = os.getcwd()

    def flag(self, name: str) -> Any:
        return self.inv.flags.get(name)

    @property
    def args(self) -> list[str]:
        return self.inv.positionals

    @property
    def path(self) -> str:
        assert self.inv.cmd is not None
        return self.inv.cmd.path(self.prog)

    def json_on(self) -> bool:
        return bool(self.flag("json")) or truthy(self.environ.get("FLY_JSON"))

    def reload(self) -> World:
        self.state = self.store.load()
        return self.state


def resolve_token(
    flag_token: str | None, environ: dict[str, str], state: World | None
) -> tuple[str | None, str | None]:
    """-t, then env.First(FLY_ACCESS_TOKEN, FLY_API_TOKEN) (set-but-empty shadows), config."""
    if flag_token:
        return flag_token, "flag"
    for key in ("FLY_ACCESS_TOKEN", "FLY_API_TOKEN"):
        if key in environ:
            if environ[key]:
                return environ[key], "env"
            break
    if state:
        tok = (state.get("auth") or {}).get("config_token")
        if tok:
            return tok, "config"
    return None, None


def require_session(ctx: Ctx) -> None:
    if not ctx.token:
        raise FlyError(NO_TOKEN_MSG)
    if ctx.token_source == "config" and (ctx.state.get("auth") or {}).get("config_token_expired"):
        raise FlyError(NO_TOKEN_MSG)


def api_auth(ctx: Ctx) -> None:
    """The first API call: a token the platform does not know is rejected."""
    if ctx.token not in (ctx.state.get("auth") or {}).get("valid_tokens", []):
        raise FlyError(UNAUTHENTICATED_MSG)


TOML_CACHE: list[str] = []  # path of the parse cache, set by main() next to the state file


def _parse_toml(text: str) -> dict[str, Any]:
    """tomllib.loads, memoised by file content across invocations (tomllib costs ~13 ms)."""
    cache: dict[str, Any] = {}
    if TOML_CACHE:
        with contextlib.suppress(OSError, ValueError), open(TOML_CACHE[0], encoding="utf-8") as fh:
            cache = json.load(fh)
        if text in cache:
            return cache[text]
    import tomllib

    data = tomllib.loads(text)
    if TOML_CACHE:
        with contextlib.suppress(OSError, TypeError, ValueError):
            cache = dict(list(cache.items())[-20:])
            cache[text] = data
            tmp = f"{TOML_CACHE[0]}.tmp.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(cache))  # (json.dump: the pure-Python encoder)
            os.replace(tmp, TOML_CACHE[0])
    return data


def _read_app_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise FlyError(
            f"failed loading app config from {path}: open {path}: {go_errno_text(exc)}"
        ) from None
    try:
        if path.endswith(".json"):
            data = json.loads(raw)
        elif path.endswith((".yaml", ".yml")):
            m = re.search(r"^app\s*:\s*[\"']?([^\"'\s#]+)", raw.decode(), re.MULTILINE)
            data = {"app": m.group(1)} if m else {}
        else:
            data = _parse_toml(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlyError(f"failed loading app config from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise FlyError(f"failed loading app config from {path}: not a table")
    data["__path__"] = path
    return data


def load_app_config(ctx: Ctx, base_dir: str | None = None) -> dict[str, Any] | None:
    """fly.toml from -c (file, or dir containing fly.toml), else ./fly.{toml,json,yaml}."""
    base = base_dir or ctx.cwd
    cflag = ctx.flag("config") if "config" in ctx.inv.flags else ""
    if cflag:
        p = cflag if os.path.isabs(cflag) else os.path.join(base, cflag)
        if os.path.isfile(p):
            return _read_app_config(p)
        inner = os.path.join(p, "fly.toml")
        if os.path.isdir(p) and os.path.isfile(inner):
            return _read_app_config(inner)
        raise FlyError(f"config file not found at specified path: {cflag}")
    for name in ("fly.toml", "fly.json", "fly.yaml"):
        p = os.path.join(base, name)
        if os.path.isfile(p):
            return _read_app_config(p)
    return None


def resolve_app_name(ctx: Ctx, cfg: dict[str, Any] | None) -> str:
    name = ctx.flag("app") or ""
    if not name:
        name = ctx.environ.get("FLY_APP", "")
        if not name and cfg is not None:
            name = str(cfg.get("app") or "")
    return name


def require_app_name(ctx: Ctx, base_dir: str | None = None) -> tuple[str, dict[str, Any] | None]:
    cfg = load_app_config(ctx, base_dir)
    name = resolve_app_name(ctx, cfg)
    if not name:
        raise FlyError(MISSING_APP_MSG)
    return name, cfg


def authenticated_app(ctx: Ctx) -> tuple[str, App]:
    """What most app commands do first: a session, the app's name, the token, the app."""
    require_session(ctx)
    name, _ = require_app_name(ctx)
    api_auth(ctx)
    return name, get_app(ctx, name)


def get_app(ctx: Ctx, name: str, prefix: str = "") -> App:
    app = (ctx.state.get("apps") or {}).get(name)
    if app is None:
        raise FlyError(f"{prefix}Could not find App {go_quote(name)}")
    return app
