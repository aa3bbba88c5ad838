"""Settings: Invoke config (defaults < invoke.yaml < INVOKE_* env) < flags, plus fly.toml.

Every key is declared in ``DEFAULTS`` so ``INVOKE_<SECTION>_<KEY>`` can override it.
Numbers are declared as strings: Invoke casts an environment value to the
default's type, and ``int("abc")`` would end in a traceback before any task
runs; as strings they reach ``load`` and fail there with the key's name.
Relative paths are relative to the directory invoke runs in, as flyctl's are.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ops.errors import ExitCode, OpsError
from ops.retention import validate_keep
from ops.ssh.address import parse_address

DEFAULTS = {
    "fly": {"bin": "", "app": "", "config": "fly.toml"},
    "db": {"path": "data/steps.db", "remote_path": "/data/steps.db"},
    "backup": {
        "dir": "data/backups",
        "remote_dir": "/data/backups",
        "keep": "10",
        "remote_command": "",
        "check": "integrity",  # or "quick"
        "lock_wait": "0",  # seconds to wait for another backup's lock
        "timeout": "0",  # seconds a backup may take; 0 = no limit
        "snapshot_timeout": "600",  # seconds to wait for a volume snapshot
    },
    "health": {"url": "", "timeout": "300", "interval": "5"},
    "deploy": {"audit_log": "data/deploys.jsonl", "lock_wait": "0"},
    "ssh": {
        "host": "",  # [user@]host[:port] of an SSH host (--host)
        "known_hosts": "",  # a known_hosts file read besides ~/.ssh/known_hosts
        "connect_timeout": "15",  # seconds for TCP connect, the SSH banner and the login
        "timeout": "600",  # seconds one remote command may take (and a transfer may stall)
    },
}


@dataclass(frozen=True)
class FlyToml:
    app: str
    mount_source: str
    mount_destination: str
    health_path: str


@dataclass(frozen=True)
class Settings:
    fly_bin: str
    fly_app: str
    fly_config: Path
    db_path: Path
    db_remote_path: str
    backup_dir: Path
    backup_remote_dir: str
    keep: int
    remote_command: str
    check: str
    lock_wait: float
    backup_timeout: float
    snapshot_timeout: float
    health_url: str
    health_timeout: float
    health_interval: float
    audit_log: Path
    deploy_lock_wait: float
    ssh_host: str = ""
    ssh_known_hosts: str = ""
    ssh_connect_timeout: float = 15.0
    ssh_timeout: float = 600.0
    _fly_toml: list = field(default_factory=list, repr=False, compare=False)

    def fly_toml(self) -> FlyToml:
        """fly.toml, read and validated on first use (local work never needs it)."""
        if not self._fly_toml:
            self._fly_toml.append(read_fly_toml(self.fly_config))
        return self._fly_toml[0]

    @property
    def app(self) -> str:
        """``fly.app``, else ``FLY_APP``, else ``app`` in fly.toml (flyctl's own order)."""
        return self.fly_app or os.environ.get("FLY_APP", "") or self.fly_toml().app

    @property
    def health(self) -> str:
        if self.health_url:
            return self.health_url
        return f"https://{self.app}.fly.dev{self.fly_toml().health_path}"

    def flyctl(self) -> str:
        """The flyctl binary: ``fly.bin``, else ``fly`` then ``flyctl`` on PATH."""
        if self.fly_bin:
            found = shutil.which(self.fly_bin)
            if not found:
                raise OpsError(f"flyctl not found at fly.bin={self.fly_bin!r}", ExitCode.FLY)
            return found
        for name in ("fly", "flyctl"):
            found = shutil.which(name)
            if found:
                return found
        raise OpsError(
            "flyctl is not installed: get it with `curl -L https://fly.io/install.sh | sh` "
            "(or set fly.bin)",
            ExitCode.FLY,
        )


def read_fly_toml(path: Path) -> FlyToml:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise OpsError(f"fly.toml not found: {path} (set fly.config)", ExitCode.USAGE) from None
    except IsADirectoryError:
        raise OpsError(f"fly.config is a directory, not a file: {path}", ExitCode.USAGE) from None
    except tomllib.TOMLDecodeError as exc:
        raise OpsError(f"{path} is not valid TOML: {exc}", ExitCode.USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}", ExitCode.USAGE) from None
    app = data.get("app", "")
    if not isinstance(app, str):
        raise OpsError(f"{path}: `app` must be a string", ExitCode.USAGE)
    mounts = data.get("mounts", data.get("mount", {}))
    if isinstance(mounts, list):
        mounts = mounts[0] if mounts else {}
    if not isinstance(mounts, dict):
        raise OpsError(f"{path}: [mounts] must be a table", ExitCode.USAGE)
    return FlyToml(
        app=app,
        mount_source=str(mounts.get("source", "")),
        mount_destination=str(mounts.get("destination", "")),
        health_path=_health_path(data),
    )


def _health_path(data: dict) -> str:
    """The first HTTP check's path in fly.toml, else ``/health``."""
    checks = list((data.get("checks") or {}).values())
    service = data.get("http_service") or {}
    checks += service.get("checks", []) if isinstance(service, dict) else []
    for check in checks:
        if isinstance(check, dict) and check.get("path"):
            return str(check["path"])
    return "/health"


def _number(value, key: str, *, minimum: float = 0.0) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise OpsError(f"config {key} must be a number, got {value!r}", ExitCode.USAGE) from None
    if number < minimum:
        raise OpsError(f"config {key} must be at least {minimum:g}, got {value!r}", ExitCode.USAGE)
    return number


DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str = "duration") -> float:
    """``90``, ``45s``, ``90m``, ``36h``, ``2d`` or ``1h30m`` as seconds."""
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise OpsError(
            f"{what} must be a duration like 90s, 30m, 36h or 2d, got {text!r}", ExitCode.USAGE
        )
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


def _section(config, name: str) -> dict:
    section = config.get(name) or {}
    return {**DEFAULTS[name], **dict(section)}


def load(config, **flags) -> Settings:
    """Settings from an Invoke config, flags (not None) winning; validated once."""
    fly, db, backup = _section(config, "fly"), _section(config, "db"), _section(config, "backup")
    health, deploy = _section(config, "health"), _section(config, "deploy")

    def pick(flag: str, value):
        return flags[flag] if flags.get(flag) is not None else value

    try:
        keep = validate_keep(pick("keep", backup["keep"]))
    except ValueError as exc:
        raise OpsError(f"{exc} (backup.keep)", ExitCode.USAGE) from None
    check = "quick" if flags.get("quick") else str(backup["check"])
    if check not in ("integrity", "quick"):
        raise OpsError(f"config backup.check must be integrity or quick, got {check!r}",
                       ExitCode.USAGE)
    for key, value in (("db.path", db["path"]), ("backup.dir", backup["dir"])):
        if not str(value).strip():
            raise OpsError(f"config {key} is empty", ExitCode.USAGE)
    ssh = _section(config, "ssh")
    ssh_host = str(pick("host", ssh["host"]) or "").strip()
    if ssh_host:  # validated once, like every other key
        parse_address(ssh_host, "--host" if flags.get("host") else "config ssh.host")
    return Settings(
        fly_bin=str(fly["bin"]),
        fly_app=str(fly["app"]),
        fly_config=Path(str(fly["config"])),
        db_path=Path(str(pick("db", db["path"]))),
        db_remote_path=str(db["remote_path"]),
        backup_dir=Path(str(pick("dir", backup["dir"]))),
        backup_remote_dir=str(backup["remote_dir"]),
        keep=keep,
        remote_command=str(backup["remote_command"] or ""),
        check=check,
        lock_wait=_number(pick("lock_wait", backup["lock_wait"]), "backup.lock_wait"),
        backup_timeout=_number(pick("timeout", backup["timeout"]), "backup.timeout"),
        snapshot_timeout=_number(
            pick("snapshot_timeout", backup["snapshot_timeout"]), "backup.snapshot_timeout"
        ),
        health_url=str(health["url"] or ""),
        health_timeout=_number(pick("health_timeout", health["timeout"]), "health.timeout"),
        health_interval=_number(health["interval"], "health.interval", minimum=0.05),
        audit_log=Path(str(deploy["audit_log"])),
        deploy_lock_wait=_number(pick("deploy_lock_wait", deploy["lock_wait"]), "deploy.lock_wait"),
        ssh_host=ssh_host,
        ssh_known_hosts=os.path.expanduser(str(ssh["known_hosts"] or "")),
        ssh_connect_timeout=_seconds(ssh["connect_timeout"], "ssh.connect_timeout", 0.1),
        ssh_timeout=_seconds(ssh["timeout"], "ssh.timeout", 0.0),
    )


def _seconds(value, key: str, minimum: float) -> float:
    """A finite number of seconds (``nan`` and ``inf`` would make every wait wrong)."""
    number = _number(value, key, minimum=minimum)
    if number != number or number == float("inf"):
        raise OpsError(f"config {key} must be a finite number, got {value!r}", ExitCode.USAGE)
    return number
