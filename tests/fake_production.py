"""The one fake production every Fly test runs against, and how its flyctl calls are read.

A ``Site`` is the flyctl double's world (``tests/flyctl_double``), the app's checkout (cwd,
with fly.toml and a Dockerfile), the volume's files (``vol/steps.db``, a real WAL database,
and ``vol/backups``: the machine's ``/data``, reached by the double's ``fly ssh console``) and
the app's ``/health`` on 127.0.0.1 (``HealthApp``, computed from the volume's backups).
``Prod`` is the same production seen by the backup and restore tests: its cwd, volume and
env, with /health down (``prod``), answering (``served_prod``) or slow
(``slow_health_prod``). Its fixtures are registered suite-wide by ``conftest.py``.

A ``fly ssh console`` call is recognised in one place, ``ssh_purpose``, by the ``# ops:``
line its script starts with; ``label`` (deploy's names), ``flow`` (the backup tasks', each
argv checked exactly) and ``restore_label`` (restore's) name the other calls.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import json
import re
import shlex
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ops import engine
from tests import helpers, node_env
from tests.flyctl_double import (
    DEFAULT_APP,
    DEFAULT_MACHINE_ID,
    DEFAULT_VOLUME_ID,
    FlyWorld,
    default_world,
)
from tests.helpers import BACKUP_RE, assert_one_line_error

# ---------------------------------------------------------------- the deploy's site and its /health


APP = DEFAULT_APP
MID = DEFAULT_MACHINE_ID
VOL = DEFAULT_VOLUME_ID
USER = "alice"
NEW_IMAGE = "registry.fly.io/step-app-4x-yhw:deployment-01TESTIMAGE000000000000000"
# What each phase of a deploy asks flyctl, in order (see ``label``).
PREFLIGHT = ["version", "auth whoami", "volumes list", "machine list", "releases"]
# backup (published after quick_check), retention's list, then the list that finds it
BACKUP = ["ssh backup", "ssh list", "ssh list"]
# the list before `create` is what tells the new snapshot apart; then the backup's full
# check (`ssh verify`, beside the polls: see ``Site.labels``) and polls until created
SNAPSHOT = (["volumes snapshots list", "volumes snapshots create", "ssh verify"]
            + ["volumes snapshots list"] * 3)
# after `fly deploy` the machine is looked up again for the unlock (it may have been replaced)
DEPLOYED = ["deploy", "releases", "volumes list", "machine list"]
# ... then, when the deploy made a backup, the data guard compares the live database with it
GUARDED = [*DEPLOYED, "ssh shape"]
# the only calls a dry run makes: preflight's reads, never one that changes anything
DEPLOY_READS = [["version", "--json"], ["auth", "whoami"],
                ["volumes", "list", "-a", APP, "--json"],
                ["machine", "list", "-a", APP, "--json"], ["releases", "-a", APP, "--json"]]


class HealthApp:
    """``GET /health`` as the app answers it, computed from the volume's backup folder.

    ``mode``: ``ok`` (200, the newest backup), ``503`` (unhealthy), ``stale`` (200 but
    the app still reports the backup before the newest, as if it had not seen it),
    ``newer`` (another backup finished a minute after the newest), ``future`` (the
    latest is dated 2099), ``body`` (200 with ``body`` as it is). ``unhealthy_first``:
    that many requests answer 503 before the mode applies. Without a backup folder it
    answers ``body`` (``{"status": "ok"}`` until a test sets another). ``requests``
    counts the requests, ``paths`` keeps what each asked for.
    """

    def __init__(self, backups: Path | None = None):
        self.backups = backups
        self.mode = "ok" if backups else "body"
        self.body: object = None if backups else {"status": "ok"}
        self.unhealthy_first = 0
        self.requests = 0
        self.paths: list[str] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a stuck client cannot hold a server thread forever

            def do_GET(self):  # noqa: N802 (http.server's name)
                app.requests += 1
                app.paths.append(self.path)
                if self.path != "/health":
                    return self._send(404, {"error": "not found"})
                if app.unhealthy_first > 0:
                    app.unhealthy_first -= 1
                    return self._send(503, {"status": "error", "error": "starting"})
                if app.mode == "body":
                    return self._send(200, app.body)
                if app.mode == "503":
                    return self._send(503, {"status": "error", "error": "database locked"})
                return self._send(200, {"status": "ok", "backup": app.report()})

            def _send(self, status: int, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def report(self) -> dict:
        found = self.backups.glob("steps-*.db") if self.backups.is_dir() else []
        names = sorted(path.name for path in found if BACKUP_RE.match(path.name))
        if self.mode == "stale":
            names = names[:-1]
        if not names:
            return {"hasBackups": False, "count": 0, "latest": None}
        newest = names[-1]
        created = dt.datetime.strptime(newest, "steps-%Y-%m-%dT%H-%M-%S.db").replace(tzinfo=dt.UTC)
        if self.mode in ("newer", "future"):  # a backup the deploy did not make
            created = (created + dt.timedelta(minutes=1) if self.mode == "newer"
                       else dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
            return {"hasBackups": True, "count": len(names) + 1, "latest": {
                "name": created.strftime("steps-%Y-%m-%dT%H-%M-%S.db"),
                "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "age": 0, "size": 4096}}
        age = int((dt.datetime.now(dt.UTC) - created).total_seconds() * 1000)
        return {
            "hasBackups": True,
            "count": len(names),
            "latest": {
                "name": newest,
                "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "age": age,
                "size": (self.backups / newest).stat().st_size,
            },
        }

    def __enter__(self) -> HealthApp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclasses.dataclass
class Production:
    """The production both views share: a flyctl world and, under ``root``, the machine's
    ``/data`` (``vol/``: the live database and its backup folder)."""

    root: Path
    world: FlyWorld

    @property
    def db(self) -> Path:
        return self.root / "vol" / "steps.db"

    @property
    def backups(self) -> Path:
        return self.root / "vol" / "backups"

    remote_dir = backups  # the backup tasks' name for it (``backup.remote_dir``)

    def calls(self) -> list[list[str]]:
        return self.world.calls()

    def audit(self) -> list[dict]:
        """The audit log's entries (each view says where its log is: ``audit_log``)."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines()]


@dataclasses.dataclass
class Site(Production):
    """The deploy's view: the app's checkout (cwd, with a Dockerfile), its /health, the
    audit log; runs as user alice outside CI."""

    health: HealthApp | None = None
    token: str = "test-token"

    @property
    def cwd(self) -> Path:
        return self.root / "app"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit" / "deploys.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.audit_log.parent / f".deploy-{APP}.lock"

    def env(self, extra: dict | None = None) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            **self.world.env(self.token),
            "INVOKE_DB_REMOTE_PATH": str(self.db),
            "INVOKE_BACKUP_REMOTE_DIR": str(self.backups),
            "INVOKE_BACKUP_DIR": str(self.root / "local"),
            "INVOKE_HEALTH_URL": self.health.url,
            "INVOKE_HEALTH_INTERVAL": "0.05",
            "INVOKE_HEALTH_TIMEOUT": "2",
            "INVOKE_DEPLOY_AUDIT_LOG": str(self.audit_log),
            "USER": USER,
            # the suite may itself run in CI: nothing of it may reach the runs
            "CI": None,
            "GITHUB_ACTIONS": None,
            "GITHUB_ACTOR": None,
            "GITHUB_RUN_ID": None,
        }
        env.update(extra or {})
        return env

    def run(self, *args: str, env: dict | None = None, timeout: float = 30):
        return helpers.run_invoke(*args, cwd=self.cwd, env=self.env(env), timeout=timeout)

    def here(self, *args: str, env: dict | None = None,
             timeout: float = 30) -> helpers.InvokeResult:
        """``run`` in this process (``helpers.run_here``): for refusals and other cases
        whose point is the task's answer, not the process; one at a time."""
        return helpers.run_here(*args, cwd=self.cwd, env=self.env(env), timeout=timeout)

    def start(self, *args: str, env: dict | None = None) -> helpers.Background:
        return helpers.start_invoke(*args, cwd=self.cwd, env=self.env(env))

    def labels(self, *, locks: bool = False) -> list[str]:
        """The calls by name; the machine lock's own two calls only when asked for
        (``test_the_machine_lock_is_taken_after_preflight_and_always_released``)."""
        named = [label(argv) for argv in self.world.calls()]
        named = concurrent_verify_first(named)
        return named if locks else [n for n in named if n not in ("ssh lock", "ssh unlock")]

    @property
    def machine_lock(self) -> Path:
        return self.db.parent / ".ops-deploy.lock"

    def backup_names(self) -> list[str]:
        return [path.name for path in helpers.backup_files(self.backups) if path.suffix == ".db"]


def make_site(root: Path, world: FlyWorld | None = None) -> Site:
    """The default world, a checkout with fly.toml and a Dockerfile, a live WAL database on
    the volume and one backup left there two days ago by the old npm script."""
    world = world or default_world(root)
    world.snapshot_behavior("progress", lists_before_created=2)
    site = Site(root, world, HealthApp(root / "vol" / "backups"))
    site.cwd.mkdir(parents=True)
    world.write_fly_toml(site.cwd)
    (site.cwd / "Dockerfile").write_text("FROM node:20-slim\nCOPY . /app\n")
    helpers.make_wal_db(site.db)
    two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    helpers.old_script_backup(site.backups, two_days_ago, site.db)
    return site


@pytest.fixture
def sites(tmp_path):
    """``sites(name)``: independent sites under ``tmp_path/name`` (for parallel runs)."""
    made: list[Site] = []

    def make(name: str) -> Site:
        made.append(make_site(tmp_path / name))
        return made[-1]

    yield make
    for site in made:
        site.health.close()


@pytest.fixture
def site(tmp_path, fly_world):
    made = make_site(tmp_path, fly_world)
    yield made
    made.health.close()


def run_cases(cases) -> list[helpers.InvokeResult]:
    """A matrix of CLI cases, each ``(site_or_prod, args)`` or ``(site_or_prod, args, env)``,
    run by ``helpers.run_mixed``: the first by a real process, the rest in this process."""
    return helpers.run_mixed(functools.partial(one.run, *args, env=env[0] if env else None)
                             for one, args, *env in cases)


run_deferred = helpers.run_mixed  # for Prod.later's cases, as run_parallel takes them


def concurrent_verify_first(named: list[str]) -> list[str]:
    """The full check runs in its own flyctl process beside the snapshot polls, so its
    place among them varies: an ``ssh verify`` after a ``volumes snapshots create`` is
    moved to right after it (one before any create stays where it was)."""
    out: list[str] = []
    after_create = None
    for name in named:
        if name == "volumes snapshots create":
            after_create = len(out) + 1
        if name == "ssh verify" and after_create is not None:
            out.insert(after_create, name)
            after_create = None
            continue
        out.append(name)
    return out


# ---------------------------------------------------------------- which script an ssh call runs


# What a ``sh -c`` script sent over ``fly ssh console -C`` is for: the ``# ops: NAME`` line
# every script ops/remote.py builds starts with (``remote.purpose``; ``machine.check`` and
# the sftp helpers' mkdir/rm carry one too). Each family of tests names a few calls its own
# way (the names its assertions were written with); any other call is named by its mark.
MARK = re.compile(r"^# ops: ([\w.-]+)$", re.M)
DEPLOY_SCRIPTS = {"deploy-lock": "lock", "deploy-unlock": "unlock"}
BACKUP_SCRIPTS = {"record": "sha256"}
RESTORE_SCRIPTS = {"record": "sha256", "holds": "adopt", "adopt-upload": "adopt",
                   "machine.check": "check"}
# ops/emergency.py's scripts carry no mark yet (another branch rewrites that file this
# session): they alone are told apart by what they contain, first match wins.
EMERGENCY_SCRIPTS = (
    ("__OPS_EMERGENCY__", "read marker"),
    ("/proc/[0-9]*/fd", "open handles"),
    ("> ", "write marker"),
    ("rm -f", "remove marker"),
)


def ssh_purpose(script: str, names: dict[str, str] | None = None) -> str:
    """The script's mark, as ``names`` calls it; an unmarked script by EMERGENCY_SCRIPTS."""
    found = MARK.search(script)
    if found:
        return (names or {}).get(found.group(1), found.group(1))
    return next((name for needle, name in EMERGENCY_SCRIPTS if needle in script), "?")


@functools.lru_cache(maxsize=2048)
def command_words(command: str) -> tuple[str, ...]:
    """``shlex.split`` of an ssh call's ``-C`` value, kept: a script is kilobytes of
    pure-Python splitting, and a wait re-labels every call on each poll."""
    return tuple(shlex.split(command))


def label(argv: list[str]) -> str:
    """A flyctl call as a short name; ``fly ssh console`` by the script it runs."""
    if argv[:2] == ["ssh", "console"]:
        command = command_words(argv[argv.index("-C") + 1])
        assert command[:2] == ("sh", "-c") and len(command) == 3, argv
        return f"ssh {ssh_purpose(command[2], DEPLOY_SCRIPTS)}"
    return " ".join(itertools.takewhile(lambda word: re.fullmatch(r"[a-z]+", word), argv))


def deploy_argv(site: Site) -> list[str]:
    (argv,) = [argv for argv in site.world.calls() if argv[0] == "deploy"]
    return argv


def error_line(result, *, last: bool = True) -> str:
    """The one ``Error:`` line; ``last``: it ends stderr (the message is one line)."""
    assert "Traceback" not in result.stderr, result
    assert len(result.error_lines) == 1, result
    if last:
        assert result.stderr.rstrip().splitlines()[-1].startswith("Error:"), result
    return result.error_lines[0]


# ---------------------------------------------------------------- the backup and restore production


MACHINE = DEFAULT_MACHINE_ID
VOLUME = DEFAULT_VOLUME_ID
SSH_PREFIX = ["ssh", "console", "-a", APP, "--machine", MACHINE, "-q", "-C"]
VOLUMES_LIST = ["volumes", "list", "-a", APP, "--json"]
MACHINE_LIST = ["machine", "list", "-a", APP, "--json"]
SNAPSHOTS_LIST = ["volumes", "snapshots", "list", VOLUME, "-a", APP, "--json"]
SNAPSHOTS_CREATE = ["volumes", "snapshots", "create", VOLUME, "-a", APP]
RESOLVE = ["version", "volumes list", "machine list"]  # flyctl's version: once per run


def days_ago(days: float) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).replace(microsecond=0)


@dataclasses.dataclass
class Prod(Production):
    """The backup and restore tasks' view: a cwd with fly.toml and the env of every run
    (/health down unless a fixture serves it)."""

    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    @property
    def audit_log(self) -> Path:
        set_here = self.env.get("INVOKE_DEPLOY_AUDIT_LOG")  # a served production's
        return Path(set_here) if set_here else self.cwd / "data" / "deploys.jsonl"

    @property
    def local_dir(self) -> Path:
        """Where downloads from the machine land: their own folder in backup.dir."""
        return self.root / "local" / "backups" / f"fly-{APP}"

    def run(self, *args: str, env: dict[str, str | None] | None = None,
            timeout: float = 60) -> helpers.InvokeResult:
        return helpers.run_invoke(*args, cwd=self.cwd, env={**self.env, **(env or {})},
                                  timeout=timeout)

    def here(self, *args: str, env: dict[str, str | None] | None = None,
             timeout: float = 60) -> helpers.InvokeResult:
        """``run`` in this process (``helpers.run_here``): for refusals and other cases
        whose point is the task's answer, not the process; one at a time."""
        return helpers.run_here(*args, cwd=self.cwd, env={**self.env, **(env or {})},
                                timeout=timeout)

    def later(self, *args: str, **kwargs):
        """A deferred ``run`` for ``run_parallel``."""
        return functools.partial(self.run, *args, **kwargs)

    def flow(self) -> list[str]:
        return flow(self.calls())

    def remote_backups(self) -> list[str]:
        return [item.name for item in engine.list_backups(self.remote_dir)]

    def local_files(self) -> list[str]:
        """What is in the local backup folder, but for its (empty) lock file."""
        if not self.local_dir.exists():
            return []
        return sorted(p.name for p in self.local_dir.iterdir() if p.name != engine.LOCK_NAME)

    def seed(self, *ages_in_days: float, sidecars: bool = True) -> list[str]:
        """Old backups of the real database on the fake volume, oldest first."""
        made = []
        for age in sorted(ages_in_days, reverse=True):
            path = helpers.old_script_backup(self.remote_dir, days_ago(age), self.db)
            if sidecars:
                digest = helpers.sha256(path)
                Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
                Path(f"{path}.json").write_text(json.dumps(
                    {"name": path.name, "size": path.stat().st_size, "sha256": digest,
                     "check": "integrity"}) + "\n")
            made.append(path.name)
        return made


def make_prod(root: Path, world: FlyWorld | None = None) -> Prod:
    """A default flyctl world plus a real WAL database as the machine's ``/data/steps.db``."""
    root.mkdir(parents=True, exist_ok=True)
    world = world or default_world(root)
    prod = Prod(root, world)
    prod.cwd.mkdir()
    FlyWorld.write_fly_toml(prod.cwd)
    helpers.make_wal_db(prod.db)
    prod.env = {
        **world.env(),
        "INVOKE_DB_REMOTE_PATH": str(prod.db),
        "INVOKE_BACKUP_REMOTE_DIR": str(prod.remote_dir),
        "INVOKE_BACKUP_DIR": str(prod.local_dir.parent),
        "INVOKE_HEALTH_URL": f"http://127.0.0.1:{free_port()}/health",  # the app is down
        "INVOKE_HEALTH_INTERVAL": "0.05",
    }
    return prod


@pytest.fixture
def prod(fly_world, tmp_path) -> Prod:
    return make_prod(tmp_path, fly_world)


def free_port() -> int:
    """A port nothing listens on (for "the app's /health is down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def health() -> Iterator[HealthApp]:
    with HealthApp() as server:
        yield server


def flow(calls: list[list[str]]) -> list[str]:
    """The calls as labels, checking each argv exactly on the way."""
    labels = []
    for argv in calls:
        if argv[:2] == ["ssh", "console"]:
            assert argv[:8] == SSH_PREFIX and len(argv) == 9, argv
            assert argv[8].startswith("sh -c "), argv[8][:80]
            words = command_words(argv[8])
            assert len(words) == 3 and words[:2] == ("sh", "-c"), argv[8][:200]
            labels.append(f"ssh {ssh_purpose(words[2], BACKUP_SCRIPTS)}")
        elif argv[:3] == ["ssh", "sftp", "get"]:
            assert len(argv) == 10 and argv[5:] == ["-a", APP, "--machine", MACHINE, "-q"], argv
            labels.append("sftp get")
        elif argv == ["version", "--json"]:
            labels.append("version")
        elif argv == VOLUMES_LIST:
            labels.append("volumes list")
        elif argv == MACHINE_LIST:
            labels.append("machine list")
        elif argv == SNAPSHOTS_LIST:
            labels.append("snapshots list")
        elif argv == SNAPSHOTS_CREATE:
            labels.append("snapshots create")
        else:
            raise AssertionError(f"unexpected flyctl call: {argv}")
    return labels


def assert_error(result: helpers.InvokeResult, code: int, *, contains: str = "") -> str:
    """One ``Error:`` line last, no traceback; before it only step, detail and warning lines."""
    line = assert_one_line_error(result, code, contains=contains, strict=False)
    others = [ln for ln in result.stderr.splitlines() if ln.strip()][:-1]
    assert all(ln.startswith(("✓ ", "✗ ", "▸ ", "WARNING:", "  ")) for ln in others), str(result)
    return line


def sftp_calls(calls: list[list[str]]) -> list[list[str]]:
    return [argv for argv in calls if argv[:3] == ["ssh", "sftp", "get"]]


def flip_bytes(path: Path, offset: int, count: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        data = handle.read(count)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in data))


def remove_tools(prod: Prod, tools: str) -> None:
    """``python3``: the default machine; ``sqlite3``: only the CLI; ``none``: the Node image."""
    drop = {"python3": (), "sqlite3": ("python3",), "none": ("python3", "sqlite3")}[tools]
    if drop:
        prod.world.remove_machine_tools(*drop)


RESTORE_RESOLVE = ["version --json", "volumes list", "machine list"]  # once per run
STOPPED: list[str] = []  # whether it is emergency-stopped: read from that machine list


def restore_label(argv: list[str]) -> str:
    if argv[:2] == ["ssh", "console"]:
        assert argv[:8] == ["ssh", "console", "-a", APP, "--machine", MACHINE, "-q", "-C"], argv
        script = command_words(argv[8])[2]
        return f"ssh {ssh_purpose(script, RESTORE_SCRIPTS)}"
    if argv[:3] == ["ssh", "sftp", "put"]:
        assert argv[5:] == ["-a", APP, "--machine", MACHINE, "-q", "--mode", "0600"], argv
        return "sftp put"
    if argv[:3] == ["ssh", "sftp", "get"]:
        return "sftp get"
    if argv[:2] == ["machine", "restart"]:
        assert argv == ["machine", "restart", MACHINE, "-a", APP], argv
        return "machine restart"
    return " ".join(argv[:2])


@pytest.fixture
def served_prod(fly_world, tmp_path):
    made = make_prod(tmp_path, fly_world)
    with HealthApp() as server:
        server.body = {"status": "ok", "backup": {"hasBackups": True, "count": 1, "latest": {
            "name": "steps-2026-01-01T00-00-00.db", "created": "2026-01-01T00:00:00Z",
            "age": 1000}}}
        made.env.update({"INVOKE_HEALTH_URL": server.url, "INVOKE_HEALTH_TIMEOUT": "5",
                         "INVOKE_DEPLOY_AUDIT_LOG": str(tmp_path / "audit.jsonl")})
        made.health_server = server
        yield made


def changed_after_backup(prod) -> engine.BackupResult:
    made = engine.create_backup(prod.db, prod.remote_dir)
    conn = sqlite3.connect(prod.db)
    conn.execute("DELETE FROM steps WHERE id > 1000")
    conn.commit()
    conn.close()
    return made


@pytest.fixture
def slow_health_prod(fly_world, tmp_path):
    """Production whose /health never shows a backup block in time: a restore exits 14."""
    made = make_prod(tmp_path, fly_world)
    with HealthApp() as server:
        server.body = {"status": "starting"}
        made.env.update({"INVOKE_HEALTH_URL": server.url, "INVOKE_HEALTH_TIMEOUT": "0.3",
                         "INVOKE_HEALTH_INTERVAL": "0.1",
                         "INVOKE_DEPLOY_AUDIT_LOG": str(tmp_path / "audit.jsonl")})
        yield made


def near_names(seconds: int = 20) -> list[str]:
    """The backup names a run started in the next ``seconds`` can choose."""
    now = days_ago(0)
    return [engine.backup_name(now + dt.timedelta(seconds=s)) for s in range(-2, seconds)]


# ---------------------------------------------------------------- the double as flyctl, by hand


def autostarts(machine: dict) -> list:
    return [service.get("autostart") for service in machine["config"]["services"]]


def fly(site, *args: str, env: dict | None = None):
    return subprocess.run(["fly", *args], cwd=site.cwd,
                          env=site.world.subprocess_env(**(env or {})),
                          capture_output=True, text=True, timeout=30)


def started(site) -> list[str]:
    return [m["id"] for m in site.world.machines() if m["state"] == "started"]


def look(site, times: int = 3) -> None:
    """Requests keep arriving while someone looks: ``fly machine list`` a few times."""
    for _ in range(times):
        assert fly(site, "machine", "list", "-a", APP, "--json").returncode == 0


def kill_orphaned_doubles(site) -> None:
    """The flyctl double processes of this site's world that outlived a killed invoke
    (flyctl runs in its own session), found by their FLY_DOUBLE_STATE, killed by pid."""
    import os
    import signal
    from pathlib import Path

    wanted = f"FLY_DOUBLE_STATE={site.world.state_path}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in env:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def signal_while_hung(site, tmp_path, hung: list[str], *args: str, sig=None):
    """Run ``invoke ARGS`` until the flyctl call ``hung`` (which hangs) is made, send
    ``sig`` (default SIGTERM) to invoke, and return how it ended (orphans killed)."""
    import signal

    site.world.hang(hung, seconds=60, until=tmp_path / "never")
    run = site.start(*args)
    try:
        helpers.wait_for(lambda: any(argv[:2] == hung for argv in site.world.calls()),
                         timeout=30, what=f"the {hung} call")
        run.proc.send_signal(sig or signal.SIGTERM)
        return run.finish(timeout=40)
    finally:
        kill_orphaned_doubles(site)


def use_engine(site: Site | Prod, name: str) -> None:
    """The machine set up so its scripts pick engine ``name`` (python3, sqlite3 or node):
    for node, the app's image (node and its binding, neither python3 nor sqlite3) and, in
    every run, where its node_modules is (a ``Site``'s env is a method, a ``Prod``'s a dict)."""
    if name == "sqlite3":
        site.world.remove_machine_tools("python3")
    elif name == "node":
        site.world.set_machine_image("node")
        app_dir = str(node_env.app_dir())
        if isinstance(site.env, dict):
            site.env["INVOKE_MACHINE_APP_DIR"] = app_dir
        else:
            base = site.env
            site.env = lambda extra=None: base({"INVOKE_MACHINE_APP_DIR": app_dir,
                                                **(extra or {})})
