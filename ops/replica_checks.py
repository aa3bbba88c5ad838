"""More of ``replica.config --check`` (docs/replica.md), pure: the value types litestream
would choke on at start, credentials hidden in a URL, and the Dockerfile's CMD form and
checksum. Kept apart from ``ops.replica`` (which calls these) so the two grow separately.

Litestream expands ``$VARS`` before it parses the YAML, so a value that is one ``$VAR``
may stand for any type and is never refused here.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from invoke.util import yaml

from ops.config import ENV_REFERENCE, USERINFO
from ops.errors import ExitCode, OpsError

# Go's time.ParseDuration: "1s", "1h30m", "250ms", "0"
GO_DURATION = re.compile(r"([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+|0")
SHA256 = re.compile(r"\b[0-9a-fA-F]{64}\b")
# Where each key sits, and its type: litestream 0.5.17's config structs (cmd/litestream/main.go)
DURATIONS = {
    "top": ("l0-retention", "l0-retention-check-interval", "heartbeat-interval",
            "shutdown-sync-timeout", "shutdown-sync-interval"),
    "snapshot": ("interval", "retention"), "validation": ("interval",),
    "db": ("monitor-interval", "checkpoint-interval", "busy-timeout"),
    "replica": ("sync-interval",),
}
BOOLEANS = {
    "socket": ("enabled",), "retention": ("enabled",),
    "db": ("recursive", "watch", "restore-if-db-not-exists"),
    "replica": ("force-path-style", "sign-payload", "sign-accept-encoding",
                "require-content-md5", "skip-verify", "auto-recover"),
}
INTEGERS = {"db": ("min-checkpoint-page-count", "truncate-page-n", "max-sync-wal-bytes"),
            "replica": ("part-size", "concurrency", "concurrent-writes")}
STRINGS = {"db": ("path", "dir", "pattern", "meta-path"),
           "replica": ("type", "url", "bucket", "path", "endpoint", "region", "name")}


def _is_var(value) -> bool:
    return isinstance(value, str) and ENV_REFERENCE.fullmatch(value.strip()) is not None


def _wrong(value, kind: str) -> bool:
    if _is_var(value):
        return False
    if kind == "duration":
        return not (isinstance(value, str) and GO_DURATION.fullmatch(value.strip()))
    if kind == "bool":
        return not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, bool) or not isinstance(value, int)
    return not isinstance(value, str)


EXPECTED = {"duration": "a duration like 1s or 24h", "bool": "true or false",
            "int": "a whole number", "str": "text"}


def _types(section: dict, where: str, place: str) -> list[str]:
    problems = []
    for kind, table in (("duration", DURATIONS), ("bool", BOOLEANS), ("int", INTEGERS),
                        ("str", STRINGS)):
        for key in table.get(place, ()):
            if key in section and _wrong(section[key], kind):
                shown = repr(section[key])[:40]
                problems.append(f"{where}: {key} must be {EXPECTED[kind]}, got {shown} "
                                "(litestream refuses to start)")
    return problems


def _userinfo(replica: dict, where: str) -> list[str]:
    """The replica's URLs and key prefix as ``load_replica`` judges replica.endpoint and
    replica.path (credentials, a query string, a path that climbs out)."""
    problems = [f"{where}: {problem}" for key in ("endpoint", "url")
                if isinstance(replica.get(key), str)
                and (problem := endpoint_problem(replica[key].strip(), key))]
    if isinstance(replica.get("path"), str):
        problem = path_problem(replica["path"], "path")
        problems += [f"{where}: {problem}"] if problem else []
    return problems


CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def endpoint_problem(endpoint: str, name: str = "replica.endpoint") -> str | None:
    """Why an endpoint URL is refused (None: fine, or empty), never showing a value that
    may hold a secret: credentials (``user:password@``), a query string or fragment (a
    presigned URL's ``?X-Amz-Credential=…&X-Amz-Signature=…`` is one), control characters
    or spaces, not http(s), no host. A whole ``$VAR`` is litestream's to expand."""
    if not endpoint or ENV_REFERENCE.fullmatch(endpoint):
        return None
    if USERINFO.match(endpoint):
        return (f"{name} holds credentials (user:password@): keep them in "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if "?" in endpoint or "#" in endpoint:  # a host never holds either
        return (f"{name} must be a plain URL, without a query string or fragment (a "
                "presigned URL's X-Amz-* values are credentials: the value is not shown)")
    if CONTROL.search(endpoint) or " " in endpoint:
        return f"{name} must be one URL without spaces or control characters"
    if ENV_REFERENCE.match(endpoint):  # $VAR/more: the rest is litestream's to judge
        return None
    found = re.match(r"https?://([^/]*)", endpoint, re.IGNORECASE)
    if not found:
        return f"{name} must be an http:// or https:// URL, got {endpoint[:80]!r}"
    if not found[1] or found[1].startswith(":"):
        return f"{name} has no host: {endpoint[:80]!r}"
    return address_problem(endpoint, name)


def address_problem(endpoint: str, name: str = "replica.endpoint") -> str | None:
    """Why an http(s) endpoint's host or port cannot be connected to (None: fine): a port
    not from 1 to 65535 (``:0`` was probed as 80), a host name with an empty label
    (``a..b``), a label over 63 characters, or characters no host name holds (a zero-width
    space): the probe's connect raised a traceback on them (review-break s19 #4)."""
    try:
        url = urllib.parse.urlsplit(endpoint)
        port = url.port
    except ValueError:  # a port out of range or not a number, an unclosed [
        port = 0
    if port == 0:
        return (f"{name} has no host and port to connect to (a port is a number from 1 to "
                f"65535, an IPv6 address is in [ ]): {endpoint[:80]!r}")
    host = url.hostname or ""
    if ":" in host:  # an IPv6 address in brackets: urlsplit judged it
        return None
    try:
        host.encode("idna")
    except UnicodeError:
        return (f"{name} has no valid host name (an empty label, a label over 63 "
                f"characters, or characters no host name holds): {endpoint[:80]!r}")
    return None


S3_KEY_BYTES = 1024  # S3's limit on an object key


def path_problem(path: str, name: str = "replica.path") -> str | None:
    """Why a replica key prefix is refused (None: fine, or empty: the database's name):
    absolute, a backslash (``a\\..\\b`` is ``..`` to a tool that reads it as a
    separator), an empty, ``.`` or ``..`` segment, a control character, longer than an
    S3 key may be."""
    if not path:
        return None
    shown = repr(path[:80]) if CONTROL.search(path) else path[:80]  # plain, unless unseen
    if CONTROL.search(path):
        return f"{name} must not hold control characters, got {shown}"
    if path.startswith("/"):
        return f"{name} must be a relative key prefix, not an absolute path: {shown}"
    if "\\" in path:
        return f"{name} must use / between its parts, never a backslash: {shown}"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return (f"{name} must be a relative key prefix without '..', '.' or empty parts "
                f"(//, a trailing /): {shown}")
    if len(path.encode("utf-8", "surrogatepass")) > S3_KEY_BYTES - 64:
        return f"{name} is longer than an S3 key may be ({S3_KEY_BYTES} bytes): {shown}"
    return None


def config_values(data) -> list[str]:
    """Problems of type and hidden credentials in a litestream.yml's data (``check_config``
    reports its shape: unknown keys, missing parts)."""
    if not isinstance(data, dict):
        return []
    problems = _types(data, "litestream.yml", "top")
    for name in ("snapshot", "validation", "socket", "retention"):
        if isinstance(data.get(name), dict):
            problems += _types(data[name], name, name)
    for index, db in enumerate(data.get("dbs") if isinstance(data.get("dbs"), list) else []):
        if not isinstance(db, dict):
            continue
        where = f"dbs[{index}]"
        problems += _types(db, where, "db")
        replicas = [db.get("replica")] + list(db.get("replicas") or [])
        for replica in (r for r in replicas if isinstance(r, dict)):
            problems += _types(replica, f"{where}.replica", "replica")
            problems += _userinfo(replica, f"{where}.replica")
    return problems


def dockerfile_cmd(instructions: list[tuple[str, str]], installs: str) -> list[str]:
    """The CMD's form and flags, and a real checksum. Shell form (``CMD litestream …``) runs
    under ``/bin/sh -c``, which does not pass Fly's SIGINT on: litestream's final sync never
    happens. Without ``-restore-if-db-not-exists`` a lost volume starts an empty database
    (and litestream replicates that). A checksum that is not 64 hex digits is a placeholder
    (the docs' example line copied as it is)."""
    problems = []
    if re.search(r"sha256sum|--checksum=sha256:|@sha256:", installs) and not SHA256.search(
            installs):
        problems.append("Dockerfile: the litestream checksum is not a SHA-256 (64 hex "
                        "digits): a placeholder? put the release tarball's real sum")
    cmds = [rest for word, rest in instructions if word == "CMD"]
    if not cmds or "litestream" not in cmds[-1]:
        return problems
    cmd = cmds[-1].strip()
    if not cmd.startswith("["):
        problems.append('Dockerfile: CMD is in shell form: /bin/sh -c gets Fly\'s SIGINT, '
                        'not litestream, so its final sync is lost; use the exec form '
                        'CMD ["litestream", "replicate", ...]')
    if "-restore-if-db-not-exists" not in cmd:
        problems.append("Dockerfile: CMD lacks -restore-if-db-not-exists (a lost volume would "
                        "start an empty database instead of restoring from the bucket)")
    return problems


def expand(text: str, env: dict) -> str:
    """``$VAR``/``${VAR}`` from ``env`` (litestream's environment), others left as they are."""
    return ENV_REFERENCE.sub(lambda m: env.get(m[0].strip("${}"), m[0]), text)


def destination(argv: list[str], env: dict) -> str:
    """"endpoint E, bucket B" from the ``-config`` file in a litestream ``argv`` (empty
    when there is none or it cannot be read): what an unreachable-bucket error names.
    Credentials in a URL (user:password@, a query string) are cut out."""
    found = destination_parts(argv, env)
    return ", ".join(f"{key} {found[key]}" for key in ("endpoint", "url", "bucket")
                     if key in found)


def destination_parts(argv: list[str], env: dict) -> dict:
    """``destination``'s parts as a dict (endpoint, url, bucket, path: those set), values
    expanded and with credentials cut out; {} when the config cannot be read."""
    if "-config" not in argv[:-1]:
        return {}
    try:
        with open(argv[argv.index("-config") + 1]) as handle:
            data = yaml.safe_load(handle)
        replica = data["dbs"][0].get("replica") or data["dbs"][0]["replicas"][0]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
        return {}
    parts = {}
    for key in ("endpoint", "url", "bucket", "path"):
        value = replica.get(key)
        if isinstance(value, str) and value:
            value = expand(value, env)
            value = re.sub(r"[?#].*", "", value)  # a presigned query holds credentials
            # userinfo ends at the authority's last `@`, as Go's url.Parse reads it: cut at
            # the first, a password's tail was shown (s28 review-break2 #3)
            parts[key] = re.sub(r"//[^/]*@", "//", value)
    return parts


def output_problem(path) -> tuple[str, int] | None:
    """Why ``replica.config --output path`` cannot be written, as (message, exit code),
    naming the path given: a missing folder (exit 3, as ``replica.restore``'s), a
    directory (exit 2, with or without --force: --force replaces a file only)."""
    if os.path.isdir(path):
        return (f"{path} is a directory: give a file name (--force replaces a file only)",
                ExitCode.USAGE)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"no folder {folder} for {os.path.basename(path)}", ExitCode.NOT_FOUND
    return None


def socket_of(data, db: str) -> str:
    """The control socket of a running litestream's config ``data`` for ``db``, refusing
    one that does not replicate ``db`` or has no socket (status asks through it)."""
    dbs = data.get("dbs") if isinstance(data, dict) else None
    paths = [str(d.get("path")) for d in dbs or [] if isinstance(d, dict)]
    if not any(os.path.realpath(os.path.expandvars(p)) == os.path.realpath(db)
               for p in paths):
        raise OpsError(f"that litestream.yml does not replicate {db} (its dbs: "
                       f"{', '.join(paths) or 'none'})", ExitCode.USAGE)
    socket = data.get("socket")
    if not isinstance(socket, dict) or socket.get("enabled") is not True:
        raise OpsError("that litestream.yml has no control socket: replica.status asks "
                       "litestream through it (socket: {enabled: true, path: ...})",
                       ExitCode.USAGE)
    return str(socket.get("path") or "/var/run/litestream.sock")  # litestream's default


def running_socket(path, db) -> str:
    """``socket_of`` the litestream.yml at ``path`` (exit 3 when missing, 2 when not YAML)."""
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise OpsError(f"litestream.yml not found: {path}", ExitCode.NOT_FOUND) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OpsError(f"cannot read {path} as litestream.yml: "
                       f"{str(exc).splitlines()[0] if str(exc) else exc}",
                       ExitCode.USAGE) from None
    return socket_of(data, str(db))
