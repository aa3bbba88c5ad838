"""Settings: Invoke config (defaults < invoke.yaml < INVOKE_* env) < flags, plus fly.toml.

Every key is declared in ``DEFAULTS`` so ``INVOKE_<SECTION>_<KEY>`` can override it.
Numbers are declared as strings: Invoke casts an environment value to the
default's type, and ``int("abc")`` would end in a traceback before any task
runs; as strings they reach ``load`` and fail there with the key's name.
Relative paths in configuration resolve from the project root (``project.root``,
set by tasks.py to its own folder, as npm scripts resolve from package.json), so
``cd tests && invoke backup.list`` looks where ``invoke backup.list`` does; a path
given as a flag resolves from the current folder, as any command's argument does.
Every number has a ceiling: ``inf``, ``nan`` or a year would otherwise mean an
endless wait or an overflow deep inside a step.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
import shutil
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from invoke.config import merge_dicts
from invoke.util import yaml

from ops import data_guard, digits
from ops.errors import ExitCode, OpsError
from ops.retention import validate_keep
from ops.ssh.address import parse_address

DEFAULTS = {
    "project": {"root": ""},  # tasks.py sets it to its folder; "" = the current folder
    "fly": {
        "bin": "", "app": "", "config": "fly.toml",
        "timeout": "300",  # seconds one ordinary flyctl call may take
        "min_rate": "1048576",  # bytes/s a copy, verify or download must at least reach
        "deploy_timeout": "3600",  # seconds `fly deploy` may take (build included)
    },
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
        "mmap_size": "0",  # bytes this computer's checks may map (0 = none; never the machine)
        "content_hash": "true",  # record a content hash for drills (false: row counts only)
    },
    "health": {"url": "", "timeout": "300", "interval": "5"},
    "deploy": {
        "audit_log": "data/deploys.jsonl",
        "lock_wait": "0",
        # the data guard (docs/deploy.md): a table fails the deploy when it lost more than
        # `fraction` of its rows AND at least `rows` rows; a table gone or emptied always does
        "max_row_loss": {"fraction": "0.2", "rows": "10"},
        # tables whose loss the data guard always lets through: a YAML list, or names
        # separated by commas (as INVOKE_DEPLOY_ALLOW_DATA_LOSS gives them)
        "allow_data_loss": "",
    },
    "ssh": {
        "host": "",  # [user@]host[:port] of an SSH host (--host)
        "known_hosts": "",  # a known_hosts file read besides ~/.ssh/known_hosts
        "connect_timeout": "15",  # seconds for TCP connect, the SSH banner and the login
        "timeout": "600",  # seconds one remote command may take (and a transfer may stall)
    },
    "machine": {"app_dir": "/app"},  # where the app's node_modules is (the Node engine's binding)
    "replica": {  # Litestream (docs/replica.md); $VARS are litestream's to expand at its start
        "bucket": "$BUCKET_NAME",  # set by `fly storage create`
        "path": "",  # the key prefix in the bucket; "" = the database's file name
        "endpoint": "$AWS_ENDPOINT_URL_S3",
        "region": "$AWS_REGION",
        "sync_interval": "1s",  # how often litestream ships new WAL frames
        "retention": "72h",  # how far back a point-in-time restore can reach (snapshot.retention)
        "max_lag": "60s",  # replica.status exits 7 past this (--max-lag)
        "litestream": "",  # the binary: "" = litestream on PATH, else the one beside our python
        "socket": "",  # litestream's control socket; "" = .<db name>-litestream.sock beside it
        "remote_litestream": "litestream",  # the binary on the machine / an SSH host
        "deploy_gate": "warn",  # deploy with a replica behind max_lag: warn, fail or off
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
    root: Path = Path()
    fly_timeout: float = 300.0
    fly_min_rate: float = 1048576.0
    fly_deploy_timeout: float = 3600.0
    ssh_host: str = ""
    ssh_known_hosts: str = ""
    ssh_connect_timeout: float = 15.0
    ssh_timeout: float = 600.0
    mmap_size: int = 0
    content_hash: bool = True
    machine_app_dir: str = "/app"
    max_row_loss: data_guard.RowLossLimit = data_guard.RowLossLimit()
    allow_data_loss: tuple[str, ...] = ()
    _fly_toml: list = field(default_factory=list, repr=False, compare=False)

    def fly_toml(self) -> FlyToml:
        """fly.toml, read and validated on first use (local work never needs it)."""
        if not self._fly_toml:
            self._fly_toml.append(read_fly_toml(self.fly_config))
        return self._fly_toml[0]

    @property
    def app(self) -> str:
        """``fly.app``, else ``FLY_APP``, else ``app`` in fly.toml (flyctl's own order).

        Never empty: flyctl given ``-a ""`` falls back to whatever ./fly.toml it finds."""
        for where, name in (("fly.app", self.fly_app), ("FLY_APP", os.environ.get("FLY_APP"))):
            if name:
                return check_app_name(name, where)
        name = self.fly_toml().app
        if not name:
            raise OpsError(
                "no Fly app name: set fly.app (INVOKE_FLY_APP), FLY_APP, or `app` in "
                f"{self.fly_config}", ExitCode.USAGE)
        return check_app_name(name, f"`app` in {self.fly_config}")

    @property
    def health(self) -> str:
        """The /health URL, built and checked in ops.health: its host can never change."""
        from ops import health  # urllib.request: imported by the tasks that need the URL

        if self.health_url:
            return health.check_url(self.health_url)
        return health.url_for(self.app, self.fly_toml().health_path)

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


# flyctl's own rule (internal/command/launch/plan_builder.go, validateAppName): lowercase
# letters, digits and dashes; as a DNS label (<app>.fly.dev) it neither starts with a dash
# (which flyctl would read as a flag) nor is longer than 63.
APP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def check_app_name(name: str, where: str) -> str:
    """The name, if Fly could have made it; it ends up in argv, URLs and a lock's path."""
    if not APP_NAME.fullmatch(name):
        raise OpsError(f"{where} is not a Fly app name (lowercase letters, digits and dashes, "
                       f"at most 63): {name!r}", ExitCode.USAGE)
    return name


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
        mount_source=_toml_string(mounts, "source", f"{path}: [mounts] source"),
        mount_destination=_toml_string(mounts, "destination", f"{path}: [mounts] destination"),
        health_path=_health_path(data, path),
    )


def _toml_string(table: dict, key: str, what: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise OpsError(f"{what} must be a string, got {value!r}", ExitCode.USAGE)
    return value


def _health_path(data: dict, path: Path) -> str:
    """The first HTTP check's path in fly.toml, else ``/health``."""
    checks = data.get("checks") or {}
    if not isinstance(checks, dict) or not all(isinstance(c, dict) for c in checks.values()):
        raise OpsError(f"{path}: [checks] must be a table of named checks ([checks.NAME])",
                       ExitCode.USAGE)
    found = list(checks.values())
    service = data.get("http_service") or {}
    if not isinstance(service, dict):
        raise OpsError(f"{path}: [http_service] must be a table", ExitCode.USAGE)
    service_checks = service.get("checks") or []
    if not isinstance(service_checks, list) or not all(
            isinstance(c, dict) for c in service_checks):
        raise OpsError(f"{path}: http_service.checks must be an array of tables "
                       "([[http_service.checks]])", ExitCode.USAGE)
    for check in found + service_checks:
        if check.get("path"):
            return _toml_string(check, "path", f"{path}: a check's path")
    return "/health"


DAY = 86400.0


def _number(value, key: str, *, minimum: float = 0.0, maximum: float = DAY) -> float:
    """A finite number of seconds (or a count) within [minimum, maximum], else one line."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise OpsError(f"{key} must be a number, got {_shown(value)}", ExitCode.USAGE)
    try:  # a string in ASCII digits only (ops.digits): "١٢", "1_000" are no number here
        number = digits.decimal(value) if isinstance(value, str) else float(value)
    except OverflowError:  # a YAML integer with hundreds of digits
        number = math.inf
    if number is None:
        raise OpsError(f"{key} must be a number, got {value!r}", ExitCode.USAGE)
    if not math.isfinite(number):
        raise OpsError(f"{key} must be a finite number, got {value!r}", ExitCode.USAGE)
    if number < minimum:
        raise OpsError(f"{key} must be at least {minimum:g}, got {value!r}", ExitCode.USAGE)
    if number > maximum:
        raise OpsError(f"{key} must be at most {maximum:g}, got {value!r}", ExitCode.USAGE)
    return number


def _span(value, key: str, **limits) -> float:
    """A lock wait: seconds as ``_number`` reads them, or a duration as --busy-timeout and
    --max-age take one (``5m``, ``1h30m``: ``parse_duration``; review-op s21 #9), then
    within the same limits."""
    if isinstance(value, str) and re.search(r"[smhdwSMHDW]", value) and \
            not re.search(r"[eE]", value):  # 1e3 stays a number
        seconds = parse_duration(value, key)
        if seconds > limits.get("maximum", DAY):  # said as typed, as _number says it
            raise OpsError(f"{key} must be at most {limits.get('maximum', DAY):g}, got "
                           f"{value!r}", ExitCode.USAGE)
        value = seconds
    return _number(value, key, **limits)


def _shown(value) -> str:
    """A config value as a user wrote it in YAML."""
    if value is None:
        return "null"
    kind = {list: "a list", dict: "a mapping", bool: "a boolean"}.get(type(value))
    return f"{kind} {value!r}" if kind else repr(value)


DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")  # ASCII digits (ops.digits)
MAX_DURATION = 366 * DAY  # a year: more is a typo, and more still overflows datetime
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str = "duration") -> float:
    """``90``, ``45s``, ``90m``, ``36h``, ``2d`` or ``1h30m`` as seconds."""
    value = str(text).strip(digits.BLANK).lower()  # ASCII blanks only (ops.digits)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        seconds = float(value)
    else:
        parts = DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise OpsError(
                f"{what} must be a duration like 90s, 30m, 36h or 2d, got {text!r}",
                ExitCode.USAGE,
            )
        seconds = sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)
    if seconds > MAX_DURATION:
        raise OpsError(f"{what} must be at most 366d, got {text!r}", ExitCode.USAGE)
    return seconds


def _section(config, name: str) -> dict:
    section = config.get(name)
    if section is None:
        section = {}
    if not hasattr(section, "keys"):
        raise OpsError(f"config section {name} must be a mapping, got {_shown(section)}",
                       ExitCode.USAGE)
    return {**DEFAULTS[name], **dict(section)}


def project_root(config) -> Path:
    """Where relative config paths start: ``project.root`` (tasks.py's folder)."""
    return Path(_string(_section(config, "project")["root"], "project.root", optional=True))


def from_root(root: Path, value: str) -> Path:
    """``value`` from the project root, shown from the current folder when it lies inside
    it (``data/steps.db`` when run from the root), else absolute."""
    path = Path(value)
    if path.is_absolute():
        return path
    full = (root / path).absolute()
    try:
        return full.relative_to(Path.cwd())
    except ValueError:
        return full


def _string(value, key: str, *, optional: bool = False) -> str:
    """A string setting; null is "not set" only where the default is empty."""
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise OpsError(f"config {key} must be a string, got {_shown(value)}", ExitCode.USAGE)
    return value


BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
            "false": False, "no": False, "off": False, "0": False}


def _boolean(value, key: str) -> bool:
    """true/false from YAML, or as an environment variable spells it (INVOKE_...=false)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOLEANS:
        return BOOLEANS[value.strip().lower()]
    raise OpsError(f"config {key} must be true or false, got {_shown(value)}", ExitCode.USAGE)


MAX_KEEP = 1000
# load()'s flag keywords whose command-line spelling differs
FLAG_NAMES = {"snapshot_timeout": "--timeout", "deploy_lock_wait": "--lock-wait"}


# ~64 lines: most of it is the one Settings(...) call naming every field once.
# long only for its one ``Settings`` field per line: each key's reading stays in one list
def load(config, **flags) -> Settings:
    """Settings from an Invoke config, flags (not None) winning; validated once."""
    fly, db, backup = _section(config, "fly"), _section(config, "db"), _section(config, "backup")
    health, deploy = _section(config, "health"), _section(config, "deploy")
    ssh = _section(config, "ssh")
    root = project_root(config)

    def given(flag: str) -> bool:
        return flags.get(flag) is not None

    def number(flag: str | None, section: str, key: str, *, span: bool = False,
               **limits) -> float:
        """A flag (named as typed) or its config key (named as section.key); ``span``: a
        wait that also takes a duration's form (``_span``)."""
        read = _span if span else _number
        if flag and given(flag):
            typed = FLAG_NAMES.get(flag, "--" + flag.replace("_", "-"))
            return read(flags[flag], typed, **limits)
        values = {"fly": fly, "backup": backup, "health": health, "deploy": deploy,
                  "ssh": ssh}[section]
        return read(values[key], f"config {section}.{key}", **limits)

    def path(flag: str | None, section: dict, key: str, name: str) -> Path:
        """A flag's path as typed (from the current folder); config's from the root."""
        if flag and given(flag):
            if not str(flags[flag]).strip():  # Path("") is the current folder
                shown = {"dir": "backup-dir"}.get(flag, flag)
                raise OpsError(f"--{shown} is empty", ExitCode.USAGE)
            return Path(str(flags[flag]))
        value = _string(section[key], name)
        if not value.strip():
            raise OpsError(f"config {name} is empty", ExitCode.USAGE)
        return from_root(root, value)

    keep, check, ssh_host = _keep(flags, backup), _check(flags, backup), _ssh_host(flags, ssh)
    return Settings(
        fly_bin=_string(fly["bin"], "fly.bin", optional=True),
        fly_app=_string(fly["app"], "fly.app", optional=True),
        fly_config=path(None, fly, "config", "fly.config"),
        db_path=path("db", db, "path", "db.path"),
        db_remote_path=_string(db["remote_path"], "db.remote_path"),
        backup_dir=path("dir", backup, "dir", "backup.dir"),
        backup_remote_dir=_string(backup["remote_dir"], "backup.remote_dir"),
        keep=keep,
        remote_command=_string(backup["remote_command"], "backup.remote_command", optional=True),
        check=check,
        lock_wait=number("lock_wait", "backup", "lock_wait", span=True),
        backup_timeout=number("timeout", "backup", "timeout"),
        snapshot_timeout=number("snapshot_timeout", "backup", "snapshot_timeout"),
        health_url=_string(health["url"], "health.url", optional=True),
        health_timeout=number("health_timeout", "health", "timeout"),
        health_interval=number("health_interval", "health", "interval", minimum=0.05,
                               maximum=3600.0),
        audit_log=path(None, deploy, "audit_log", "deploy.audit_log"),
        deploy_lock_wait=number("deploy_lock_wait", "deploy", "lock_wait", span=True),
        root=root,
        mmap_size=int(number(None, "backup", "mmap_size", maximum=float(1 << 40))),
        content_hash=_boolean(backup["content_hash"], "backup.content_hash"),
        fly_timeout=number(None, "fly", "timeout", minimum=0.1),
        fly_min_rate=number(None, "fly", "min_rate", minimum=1, maximum=float(1 << 40)),
        fly_deploy_timeout=number(None, "fly", "deploy_timeout", minimum=1),
        ssh_host=ssh_host,
        ssh_known_hosts=os.path.expanduser(_string(ssh["known_hosts"], "ssh.known_hosts",
                                                   optional=True)),
        ssh_connect_timeout=number(None, "ssh", "connect_timeout", minimum=0.1),
        ssh_timeout=number(None, "ssh", "timeout"),
        machine_app_dir=_string(_section(config, "machine")["app_dir"], "machine.app_dir"),
        max_row_loss=_row_loss(deploy["max_row_loss"]),
        allow_data_loss=_tables(flags.get("allow_data_loss"), deploy["allow_data_loss"]),
    )


def _row_loss(value) -> data_guard.RowLossLimit:
    try:
        return data_guard.row_loss_limit(value)
    except ValueError as exc:
        raise OpsError(str(exc), ExitCode.USAGE) from None


def _tables(flag, setting) -> tuple[str, ...]:
    """deploy.allow_data_loss (a list, or names separated by commas) and ``--allow-data-loss
    TABLE`` (repeatable), in that order, each once."""
    if isinstance(setting, str):
        setting = [t.strip() for t in setting.split(",") if t.strip()]
    if not isinstance(setting, list | tuple) or not all(isinstance(t, str) for t in setting):
        raise OpsError("config deploy.allow_data_loss must be a list of table names, got "
                       f"{_shown(setting)}", ExitCode.USAGE)
    given = [str(t) for t in flag or ()]
    for table in [*setting, *given]:
        if not table.strip() or not table.isprintable():
            raise OpsError(f"--allow-data-loss must name a table, got {table!r}",
                           ExitCode.USAGE)
    return tuple(dict.fromkeys([*setting, *given]))


def _keep(flags: dict, backup: dict) -> int:
    """``--keep`` (else backup.keep): a whole number from 1 to ``MAX_KEEP``. A refusal
    names where the value came from: the flag, or the config key (an env value too, as
    the lock wait's does; review-op s21 #10: a restore, which has no --keep, said
    "--keep"). Every task refuses a bad key, as every other key is checked when the
    config loads: the scheduled backup must not be the first to find it."""
    flagged = flags.get("keep") is not None

    def refused(text: str) -> OpsError:
        return OpsError(f"{text} (backup.keep)" if flagged else
                        "config backup.keep" + text.removeprefix("--keep"), ExitCode.USAGE)

    try:
        keep = validate_keep(flags["keep"] if flagged else backup["keep"])
    except ValueError as exc:
        raise refused(str(exc)) from None
    if keep > MAX_KEEP:
        raise refused(f"--keep must be at most {MAX_KEEP}, got {keep}")
    return keep


def _check(flags: dict, backup: dict) -> str:
    """``--quick``, else backup.check: integrity or quick."""
    check = "quick" if flags.get("quick") else _string(backup["check"], "backup.check")
    if check not in ("integrity", "quick"):
        raise OpsError(f"config backup.check must be integrity or quick, got {check!r}",
                       ExitCode.USAGE)
    return check


def _ssh_host(flags: dict, ssh: dict) -> str:
    """``--host``, else ssh.host (empty: none), validated once like every other key."""
    given = flags.get("host") is not None
    host = _string(flags["host"] if given else ssh["host"], "ssh.host", optional=True).strip()
    if host:
        parse_address(host, "--host" if given else "config ssh.host")
    return host


# ---------------------------------------------------------------- invoke.yaml

CONFIG_SUFFIXES = ("yaml", "yml", "json", "py")  # Invoke's Config._file_suffixes, in order


def first_config_file(prefix: str) -> Path | None:
    """The file Invoke reads for a level: ``prefix`` + the first suffix found
    (``/etc/invoke.`` → /etc/invoke.yaml, ``~/.invoke.`` → ~/.invoke.yaml)."""
    for suffix in CONFIG_SUFFIXES:
        path = Path(os.path.expanduser(prefix + suffix))
        if path.exists():  # a dangling symlink is skipped, as Invoke skips it
            return path
    return None


def config_files(system_prefix: str, user_prefix: str, project: Path,
                 runtime: str | None) -> list[tuple[Path, str]]:
    """Every Invoke config file this run reads, lowest level first, with how it was named:
    /etc/invoke.*, ~/.invoke.*, the project's invoke.*, and ``invoke -f FILE`` (else
    INVOKE_RUNTIME_CONFIG), which must exist (Invoke would silently skip it)."""
    found = [(first_config_file(system_prefix + "invoke."), "system"),
             (first_config_file(user_prefix + "invoke."), "user"),
             (first_config_file(str(project) + "/invoke."), "project")]
    files = [(path, level) for path, level in found if path is not None]
    if runtime:
        path = Path(os.path.expanduser(runtime))
        if not path.is_file():
            raise OpsError(f"the config file given with -f (or INVOKE_RUNTIME_CONFIG) is not "
                           f"a file: {path}", ExitCode.USAGE)
        if path.suffix.lstrip(".") not in CONFIG_SUFFIXES:
            raise OpsError(f"{path}: Invoke reads only .yaml, .yml, .json or .py config files",
                           ExitCode.USAGE)
        files.append((path, "runtime"))
    return files


def check_config_files(files: list[Path], expected: dict,
                       shared: Collection[Path] = ()) -> None:
    """Refuse, with one line naming the file, a config file Invoke itself would choke on.

    Invoke 2.2 reads /etc/invoke.* and ~/.invoke.* when it starts, the project's invoke.*
    in ``Program.load_collection`` right after importing tasks.py, and the runtime file
    (``-f``) after parsing; it merges them over our defaults in ``Config.merge``. Broken
    YAML raises from ``yaml.safe_load``, a section of the wrong type (``backup: 5``) raises
    ``AmbiguousMergeError`` from ``merge_dicts``, both as tracebacks. ``files`` is lowest
    level first; ``expected`` is the configuration the first merges onto. A .py file is
    only compiled (running it twice could do anything it does). ``shared`` files (the
    system-wide one) are checked as ``unknown_section`` says.
    """
    check_config_data([(path, read_config_file(path)) for path in files], expected, shared)


def check_config_data(loaded: list[tuple[Path, object]], expected: dict,
                      shared: Collection[Path] = ()) -> None:
    """``check_config_files`` for data already read: (file, its data), lowest level first."""
    base = copy.deepcopy(expected)
    for path, data in loaded:
        if data is None:
            continue
        if not isinstance(data, dict):
            raise OpsError(f"{path} must be a mapping of sections (backup:, db:, ...), "
                           f"got {_shown(data)}", ExitCode.USAGE)
        problem = (_mismatch(base, data, "") or unknown_section(data, expected, path in shared)
                   or unknown_key(data))
        if problem:
            raise OpsError(f"{path}: {problem}", ExitCode.USAGE)
        merge_dicts(base, copy.deepcopy(data))


def read_config_file(path: Path):
    """A config file's data as Invoke reads it (None for .py files and empty ones)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}", ExitCode.USAGE) from None
    kind = path.suffix.lstrip(".")
    if kind == "py":
        try:
            compile(text, str(path), "exec")
        except (SyntaxError, ValueError) as exc:
            line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            raise OpsError(f"{path} is not valid Python{line}: {getattr(exc, 'msg', exc)}",
                           ExitCode.USAGE) from None
        return None
    try:
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OpsError(f"{path} is not valid {'JSON' if kind == 'json' else 'YAML'}"
                       f"{line}: {problem}", ExitCode.USAGE) from None


def unknown_section(data: dict, expected: dict, shared: bool = False) -> str | None:
    """A top-level section neither ours nor Invoke's (``bakcup:`` left retention at its
    default in silence, review-op P6): the first one, with the closest real section.

    ``expected`` holds every known section (``DEFAULTS`` and Invoke's own: run, tasks,
    sudo, runners, timeouts). A ``shared`` file (/etc/invoke.*, read by every Invoke
    project on the machine) may hold other projects' sections: there only a near miss of
    one of ours is refused. A name starting with ``_`` is never a misspelling (a YAML
    anchor's holder ``_defaults: &d``, a helper in a .py config file) and passes."""
    for section in data:
        if section in expected or str(section).startswith("_"):
            continue
        close = difflib.get_close_matches(str(section), sorted(DEFAULTS), n=1)
        if shared and not difflib.get_close_matches(str(section), close, cutoff=0.8):
            continue  # `otherproject:` is someone's; `bakup:` is a typo of ours
        hint = f"did you mean {close[0]}? " if close else ""
        invokes = sorted(set(expected) - set(DEFAULTS))
        return (f"unknown section {section}: ({hint}the sections are "
                f"{', '.join(sorted(DEFAULTS))}; Invoke's: {', '.join(invokes)})")
    return None


def unknown_key(data: dict) -> str | None:
    """A key under one of our own sections that no code reads (``backup: {kep: 3}`` left
    retention at 10 in silence, review-ox 5): the first one, with the closest real key.
    ``DEFAULTS`` lists every key the tasks read; other sections are Invoke's or the user's."""
    for section, keys in data.items():
        if section not in DEFAULTS or not isinstance(keys, dict):
            continue
        for key in keys:
            if key not in DEFAULTS[section]:
                known = sorted(DEFAULTS[section])
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {section}.{close[0]}? " if close else ""
                return (f"unknown key {section}.{key} ({hint}{section}: has "
                        f"{', '.join(known)})")
    return None


def _mismatch(base: dict, new: dict, prefix: str) -> str | None:
    """Where ``new`` has a mapping for a value or a value for a mapping (Invoke can't merge)."""
    for key, value in new.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str):
            return f"{name!r} is not a key name"
        if key not in base:
            continue
        if isinstance(base[key], dict) and not isinstance(value, dict):
            keys = ", ".join(f"{name}.{k}" for k in list(base[key])[:3])
            return f"{name} must be a mapping of keys ({keys}, ...), got {_shown(value)}"
        if isinstance(value, dict) and not isinstance(base[key], dict):
            return f"{name} must be a single value, got {_shown(value)}"
        if isinstance(value, dict):
            deeper = _mismatch(base[key], value, f"{name}.")
            if deeper:
                return deeper
    return None


# ---------------------------------------------------------------- replica (Litestream)

@dataclass(frozen=True)
class ReplicaSettings:
    """``replica.*``, checked once; values may hold ``$VARS`` that litestream expands."""
    bucket: str
    path: str
    endpoint: str
    region: str
    sync_interval: float
    retention: float
    max_lag: float
    litestream: str
    socket: str
    remote_litestream: str = "litestream"
    deploy_gate: str = "warn"  # ops/replica_hooks.py: deploy's preflight over max_lag


BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
ENV_REFERENCE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#]*@", re.IGNORECASE)  # scheme://user:pw@host
DEPLOY_GATES = ("warn", "fail", "off")


def load_replica(config, *, max_lag=None) -> ReplicaSettings:
    """``replica.*`` from an Invoke config (``--max-lag`` wins), each refused in one line."""
    section = _section(config, "replica")

    def text(key: str) -> str:
        value = _string(section[key], f"replica.{key}", optional=True).strip()
        if any(ch in value for ch in "\n\r\t\0"):  # an endpoint may hold a secret: not shown
            raise OpsError(f"config replica.{key} must be one line" + (
                "" if key == "endpoint" else f", got {value!r}"), ExitCode.USAGE)
        return value

    def duration(key: str, value, name: str, minimum: float, maximum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise OpsError(f"{name} must be a duration like 1s or 72h, got {_shown(value)}",
                           ExitCode.USAGE)
        try:
            seconds = parse_duration(str(value), name)
        except OpsError as exc:  # parse_duration's own cap (366d) is not this key's range
            if "at most" not in str(exc):
                raise
            seconds = float("inf")
        if not minimum <= seconds <= maximum:
            top = "366d" if maximum == MAX_DURATION else f"{maximum:g}s"
            raise OpsError(f"{name} must be from {minimum:g}s to {top}, got {value!r}",
                           ExitCode.USAGE)
        return seconds

    bucket, endpoint = text("bucket"), text("endpoint")
    if bucket and not ENV_REFERENCE.search(bucket) and not BUCKET_NAME.fullmatch(bucket):
        raise OpsError(f"config replica.bucket is not a bucket name (3-63 lowercase letters, "
                       f"digits, dots and dashes): {bucket!r}", ExitCode.USAGE)
    from ops.replica_checks import endpoint_problem, path_problem  # (it imports this module)
    problem = endpoint_problem(endpoint)  # never echoes a value that may hold a secret
    if problem:
        raise OpsError(f"config {problem}", ExitCode.USAGE)
    if section["deploy_gate"] is False:  # YAML 1.1 reads a bare `off` as false
        section["deploy_gate"] = "off"
    gate = text("deploy_gate").lower()
    if gate not in DEPLOY_GATES:
        raise OpsError(f"config replica.deploy_gate must be one of {', '.join(DEPLOY_GATES)}, "
                       f"got {gate!r}", ExitCode.USAGE)
    path = text("path")
    problem = path_problem(path)
    if problem:
        raise OpsError(f"config {problem}", ExitCode.USAGE)
    return ReplicaSettings(
        bucket=bucket, path=path, endpoint=endpoint, region=text("region"),
        sync_interval=duration("sync_interval", section["sync_interval"],
                               "config replica.sync_interval", 0.1, 3600.0),
        retention=duration("retention", section["retention"], "config replica.retention",
                           3600.0, MAX_DURATION),
        max_lag=duration("max_lag", max_lag if max_lag is not None else section["max_lag"],
                         "--max-lag" if max_lag is not None else "config replica.max_lag",
                         0.0, MAX_DURATION),
        litestream=text("litestream"), socket=text("socket"),
        remote_litestream=text("remote_litestream") or "litestream", deploy_gate=gate)
