"""Scripts for the production machine, and how to read what they print.

flyctl runs ``-C`` without a shell and collapses every remote failure to exit 1,
so each script is wrapped as ``sh -c '<script>'`` (built with ``shlex``) and ends
by printing a sentinel with its real status; results come back as one
``__OPS_RESULT__ {json}`` line (the same line the engine prints). Builders here
are pure: they return strings that the tests read as data.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from ops.engine import RESULT_MARK, check_name
from ops.errors import ExitCode, OpsError

SENTINEL = "__OPS_EXIT__"
STRATEGY_MARK = "__OPS_STRATEGY__"
ENTRY_MARK = "__OPS_ENTRY__"
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+@-]*")

NEEDS = (
    "the production machine has neither python3 (>= 3.8) nor the sqlite3 CLI, and "
    "backup.remote_command is not set: install sqlite3 in the app's image, or set "
    "backup.remote_command to the app's own backup script "
    "(e.g. `node /app/src/scripts/backup.js --production`)"
)


def remote_path(path: str, key: str) -> str:
    """Remote paths are spliced into shell and JSON: allow only plain absolute paths."""
    if not SAFE_PATH.fullmatch(path) or "/../" in f"{path}/":
        raise OpsError(f"config {key} must be a plain absolute path, got {path!r}", ExitCode.USAGE)
    return path.rstrip("/") or "/"


def wrap(script: str) -> str:
    """The ``-C`` value: a shell for the script, and the real exit status at the end."""
    body = f"(\n{script}\n)\nrc=$?\nprintf '\\n{SENTINEL}=%s\\n' \"$rc\""
    return shlex.join(["sh", "-c", body])


# shell helpers every script starts with
PRELUDE = f"""fail() {{ kind=$1; shift; printf '{RESULT_MARK} {{"ok": false, "kind": "%s", "error": "%s"}}\\n' "$kind" "$*"; exit 1; }}
has_python() {{ command -v python3 >/dev/null 2>&1 && python3 -c 'import sqlite3, sys; sys.exit(sys.version_info < (3, 8))' </dev/null >/dev/null 2>&1; }}
has_sqlite() {{ command -v sqlite3 >/dev/null 2>&1; }}"""


def _choose(python: str, sqlite: str, other: str) -> str:
    return f"""{PRELUDE}
if has_python; then
echo {STRATEGY_MARK}=python3
{python}
elif has_sqlite; then
echo {STRATEGY_MARK}=sqlite3
{sqlite}
else
{other}
fi"""


def _engine(*args: str) -> str:
    """Run the engine, whose source comes on stdin."""
    return shlex.join(["python3", "-", *args])


def list_script(directory: str) -> str:
    """Backups in ``directory`` as entry lines; plain sh, works on any image."""
    d = shlex.quote(directory)
    return f"""[ -d {d} ] || exit 0
cd {d} || exit 1
for f in steps-*.db; do
  [ -f "$f" ] || continue
  size=$(wc -c < "$f")
  sum=-; [ -f "$f.sha256" ] && sum=$(head -c 64 "$f.sha256")
  manifest=0; [ -f "$f.json" ] && manifest=1
  printf '{ENTRY_MARK} %s %s %s %s\\n' "$f" $size "$sum" $manifest
done"""


def delete_script(directory: str, names: list[str]) -> str:
    files = []
    for name in names:
        check_name(name)
        files += [name, f"{name}.sha256", f"{name}.json"]
    return f"cd {shlex.quote(directory)} && rm -f -- {shlex.join(files)}"


def backup_script(db: str, directory: str, *, check: str, remote_command: str = "",
                  timeout: float = 0, lock_wait: float = 0) -> str:
    """Back up on the machine with the best tool it has (python3, sqlite3, the app's own)."""
    engine_args = ["backup", "--db", db, "--dir", directory, "--check", check,
                   "--lock-wait", f"{lock_wait:g}"]
    if timeout:
        engine_args += ["--timeout", f"{timeout:g}"]
    if remote_command:
        other = f"echo {STRATEGY_MARK}=remote_command\n" + _app_command(directory, remote_command)
    else:
        other = f"echo {STRATEGY_MARK}=none"
    return _choose(_engine(*engine_args), _sqlite_backup(db, directory, check, lock_wait), other)


def _sqlite_backup(db: str, directory: str, check: str, lock_wait: float = 0) -> str:
    """The engine's procedure with the sqlite3 CLI.

    ``BEGIN`` plus a read holds one read transaction across the CLI's 100-page
    ``.backup`` steps, so the app's writes cannot restart it (measured: 0.9 s with
    the transaction, 11.4 s of restarts without, for 100 MB under a writer). The
    lock is a directory holding the holder's pid; a dead holder's lock is taken over.
    """
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    db_q, dir_q = shlex.quote(db), shlex.quote(directory)
    return f"""db={db_q}; dir={dir_q}
[ -e "$db" ] || fail not_found "database not found: $db"
[ -d "$db" ] && fail usage "database is a directory: $db"
mkdir -p "$dir" || fail usage "cannot create backup folder $dir"
lock="$dir/.backup.lock.d"; waited=0
until mkdir "$lock" 2>/dev/null; do
  holder=$(cat "$lock/pid" 2>/dev/null)
  if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then rm -rf "$lock"; continue; fi
  [ "$waited" -ge {int(lock_wait * 5)} ] && fail locked "another backup (pid ${{holder:-?}}) holds $lock"
  sleep 0.2; waited=$((waited + 1))
done
echo $$ > "$lock/pid"
tmp=""
trap 'rm -rf "$lock"; [ -n "$tmp" ] && rm -f "$tmp" "$tmp-wal" "$tmp-shm"' EXIT
rm -f "$dir"/.tmp-*
name=$(date -u +steps-%Y-%m-%dT%H-%M-%S.db)
[ -e "$dir/$name" ] && sleep 1 && name=$(date -u +steps-%Y-%m-%dT%H-%M-%S.db)
[ -e "$dir/$name" ] && fail exists "backup $name already exists"
tmp="$dir/.tmp-$name.$$"
umask 077
sqlite3 -readonly "$db" ".timeout 5000" "BEGIN" "SELECT count(*) FROM sqlite_master" \\
  ".backup '$tmp'" "COMMIT" >/dev/null || fail error "sqlite3 .backup of $db failed"
res=$(sqlite3 "$tmp" "PRAGMA {pragma}" 2>&1)
[ "$res" = ok ] || fail verify_failed "the new backup failed {pragma}: $(echo "$res" | head -n 1)"
command -v sha256sum >/dev/null 2>&1 || fail error "the machine has no sha256sum"
set -- $(sha256sum "$tmp"); sum=$1
size=$(( $(wc -c < "$tmp") ))
created=$(echo "$name" | sed 's/steps-\\(.*\\)T\\(..\\)-\\(..\\)-\\(..\\)\\.db/\\1T\\2:\\3:\\4Z/')
meta=$(printf '"name": "%s", "path": "%s", "created": "%s", "size": %s, "sha256": "%s", "check": "{check}"' "$name" "$dir/$name" "$created" "$size" "$sum")
printf '%s  %s\\n' "$sum" "$name" > "$dir/$name.sha256"
printf '{{%s, "strategy": "sqlite3"}}\\n' "$meta" > "$dir/$name.json"
ln "$tmp" "$dir/$name" || fail exists "backup $name already exists"
printf '{RESULT_MARK} {{"ok": true, "data": {{%s}}}}\\n' "$meta\""""


def _app_command(directory: str, command: str) -> str:
    """Run the app's own backup command; report the backups before and after it."""
    d = shlex.quote(directory)
    listing = f"""for f in {d}/steps-*.db; do [ -f "$f" ] && echo "{ENTRY_MARK} %s ${{f##*/}}"; done"""
    return "\n".join([
        listing.replace("%s", "before"),
        f"sh -c {shlex.quote(command)} </dev/null || fail error \"backup.remote_command failed "
        "with status $?\"",
        listing.replace("%s", "after"),
    ])


def verify_script(directory: str, names: list[str], check: str) -> str:
    for name in names:
        check_name(name)
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    dir_q = shlex.quote(directory)
    sqlite = f"""cd {dir_q} || fail not_found "no backup folder {directory}"
command -v sha256sum >/dev/null 2>&1 || fail error "the machine has no sha256sum"
for f in {shlex.join(names)}; do
  [ -f "$f" ] || fail not_found "no backup named $f"
  set -- $(sha256sum "$f"); sum=$1
  rec=""; [ -f "$f.sha256" ] && rec=$(head -c 64 "$f.sha256")
  res=$(sqlite3 -readonly "file:$f?immutable=1" "PRAGMA {pragma}" 2>&1 | head -n 1)
  printf '{ENTRY_MARK} %s %s %s %s %s\\n' "$f" $(( $(wc -c < "$f") )) "$sum" "${{rec:--}}" "$res"
done"""
    return _choose(
        _engine("verify", "--dir", directory, "--check", check, *names),
        sqlite,
        f"echo {STRATEGY_MARK}=none",
    )


DEPLOY_LOCK = ".ops-deploy.lock"


def deploy_lock_script(path: str, holder: str, wait: float) -> str:
    """Take the deploy lock on the volume: a directory, made atomically, naming its holder.

    It lives on the machine because that is the one thing a laptop and a CI job share.
    Exit 4 with an ``held`` entry naming the holder when it stays taken for ``wait`` s.
    Taking a lock this holder already holds succeeds, so a lock step whose answer was
    lost can simply be asked again.
    """
    q, mine = shlex.quote(path), shlex.quote(one_line(holder))
    return f"""waited=0
until mkdir {q} 2>/dev/null; do
  [ "$(head -n 1 {q}/holder 2>/dev/null)" = {mine} ] && break
  if [ "$waited" -ge {int(wait * 5)} ]; then
    printf '{ENTRY_MARK} held %s\n' "$(head -n 1 {q}/holder 2>/dev/null)"; exit 4
  fi
  [ "$waited" -eq 0 ] && printf '{ENTRY_MARK} waiting %s\n' "$(head -n 1 {q}/holder 2>/dev/null)"
  sleep 0.2; waited=$((waited + 1))
done
printf '%s\n' {mine} > {q}/holder
printf '{ENTRY_MARK} acquired %s\n' $waited"""


def deploy_unlock_script(path: str, *, remove: bool = True, holder: str | None = None) -> str:
    """Name the deploy lock's holder (exit 3 if there is no lock), and remove it.

    With ``holder``, only that holder's lock is removed (exit 5 names the other one):
    a deploy never removes a lock an operator handed to the next deploy.
    """
    q = shlex.quote(path)
    show = f"printf '{ENTRY_MARK} holder %s\\n' \"$(head -n 1 {q}/holder 2>/dev/null)\""
    check = ""
    if holder is not None:
        check = (f"""[ "$(head -n 1 {q}/holder 2>/dev/null)" = {shlex.quote(one_line(holder))} ]"""
                 f" || {{ {show}; exit 5; }}\n")
    return f"[ -d {q} ] || exit 3\n{check}{show}\n" + (f"rm -rf {q}" if remove else "")


def one_line(text: str) -> str:
    """A holder as it is written in the lock file: one line, single spaces."""
    return " ".join(str(text).split())


def sha256_script(path: str) -> str:
    q = shlex.quote(path)
    return f"""[ -f {q} ] || exit 3
set -- $(sha256sum {q}) && printf '{ENTRY_MARK} %s %s\\n' "$1" $(( $(wc -c < {q}) ))"""


# ------------------------------------------------------------------ output


@dataclass
class RemoteOutput:
    status: int | None  # the script's real exit status; None if it never reported one
    strategy: str | None
    result: dict | None  # the __OPS_RESULT__ document
    entries: list[list[str]]  # the __OPS_ENTRY__ lines, split
    stdout: str

    def data(self, what: str):
        """The result's data, or an OpsError carrying the remote failure."""
        from ops.errors import ENGINE_KINDS

        if self.result is None:
            raise OpsError(f"{what}: the machine printed no result (exit {self.status})")
        if not self.result.get("ok"):
            kind = self.result.get("kind", "error")
            raise OpsError(f"{what} on the machine: {self.result.get('error')}",
                           ENGINE_KINDS.get(kind, ExitCode.ERROR))
        return self.result.get("data")


def parse_output(stdout: str) -> RemoteOutput:
    """The marked lines of a script's output; anything else (or malformed) is ignored,
    so a sentinel that is not a number counts as no sentinel."""
    status = strategy = result = None
    entries = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith(f"{SENTINEL}="):
            value = line.split("=", 1)[1]
            status = int(value) if re.fullmatch(r"[0-9]{1,3}", value) else None
        elif line.startswith(f"{STRATEGY_MARK}="):
            strategy = line.split("=", 1)[1]
        elif line.startswith(RESULT_MARK + " "):
            try:
                result = json.loads(line[len(RESULT_MARK) + 1:])
            except ValueError:
                result = None
            if not isinstance(result, dict):
                result = {"ok": False, "error": f"unreadable result line: {line[:80]!r}"}
        elif line.startswith(ENTRY_MARK + " "):
            entries.append(line.split()[1:])
    return RemoteOutput(status, strategy, result, entries, stdout)
