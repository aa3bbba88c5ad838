"""Scripts for the production machine, and how to read what they print.

flyctl runs ``-C`` without a shell and collapses every remote failure to exit 1,
so each script is wrapped as ``sh -c '<script>'`` (built with ``shlex``) and ends
by printing a sentinel with its real status; results come back as one
``__OPS_RESULT__ {json}`` line (the same line the engine prints). Builders here
are pure: they return strings that the tests read as data.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
from dataclasses import dataclass

from ops import digits, engine, node
from ops.engine import RECORD_LIMIT, RESULT_MARK, SIDECAR_LIMIT, check_name, checked_manifest
from ops.errors import ENGINE_KINDS, ExitCode, OpsError
from ops.text import text_lines

SENTINEL = "__OPS_EXIT__"
STRATEGY_MARK = "__OPS_STRATEGY__"
ENTRY_MARK = "__OPS_ENTRY__"
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+@-]*")


def needs(place: str) -> str:
    """What to do when ``place`` (the production machine, an SSH host) has no engine."""
    return (f"{place} has neither python3 (>= 3.8) nor the sqlite3 CLI (nor node with the "
            "app's SQLite binding in machine.app_dir), and backup.remote_command is not set: "
            "add better-sqlite3 to the app, or install sqlite3 in the app's image, or set "
            "backup.remote_command to the app's own backup script "
            "(e.g. `node /app/src/scripts/backup.js --production`); see invoke machine.check")


def remote_path(path: str, key: str) -> str:
    """Remote paths are spliced into shell and JSON: allow only plain absolute paths."""
    if not SAFE_PATH.fullmatch(path) or "/../" in f"{path}/":
        raise OpsError(f"config {key} must be a plain absolute path, got {path!r}", ExitCode.USAGE)
    return path.rstrip("/") or "/"


def purpose(name: str):
    """The script names what it is for in its first line (``# ops: list``): a reader of
    the machine's process list sees it, and the tests tell the calls apart by it."""

    def mark(build):
        @functools.wraps(build)
        def built(*args, **kwargs) -> str:
            return f"# ops: {name}\n" + build(*args, **kwargs)

        return built

    return mark


def wrap(script: str) -> str:
    """The ``-C`` value: a shell for the script, and the real exit status at the end."""
    body = f"(\n{script}\n)\nrc=$?\nprintf '\\n{SENTINEL}=%s\\n' \"$rc\""
    return shlex.join(["sh", "-c", body])


# Every byte that reaches the caller is checked here first: names only in the exact
# backup pattern (so no name can carry a newline, a space or a mark), digests only as
# 64 lowercase hex digits (else ``-``), messages only as printable ASCII without quotes.
NAME_GLOB = "steps-" + "[0-9]" * 4 + "-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]-[0-9][0-9]-[0-9][0-9].db"
HEX64_GLOB = "[0-9a-f]" * 64
ENTRY_NAME = re.compile(r"steps-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}\.db",
                        re.ASCII)
HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
LOCK_NAME = ".backup.lock"  # the engine's lock file: one protocol, flock(2) on it
RESTORE_ROLE = "a restore"  # how the engine's restore names itself in a lock (its RESTORE_ROLE)

# engine.check_could_not_run's words as a case pattern (lower case)
CHECK_NOT_RUN_GLOB = "|".join(f"*{shlex.quote(word)}*" for word in engine.CHECK_NOT_RUN_WORDS)
# shell helpers every script starts with
PRELUDE = f"""fail() {{ kind=$1; shift; msg=$(printf '%s' "$*" | tr -cd ' !\\043-\\133\\135-\\176' | head -c 1000); printf '\\n{RESULT_MARK} {{"ok": false, "kind": "%s", "error": "%s"}}\\n' "$kind" "$msg"; exit 1; }}
# (asked once per script: a script may ask again, and the answer cannot change meanwhile;
# emptied first: a variable of that name inherited from the machine answers nothing)
ops_has_py=
has_python() {{ [ -n "${{ops_has_py-}}" ] || {{ command -v python3 >/dev/null 2>&1 && {engine.PYTHON3} -c 'import sqlite3, sys; sys.exit(sys.version_info < (3, 8))' </dev/null >/dev/null 2>&1 && ops_has_py=yes || ops_has_py=no; }}; [ "$ops_has_py" = yes ]; }}
has_sqlite() {{ command -v sqlite3 >/dev/null 2>&1; }}
is_name() {{ case $1 in {NAME_GLOB}) return 0;; esac; return 1; }}
recorded() {{ s=; [ -f "$1" ] && s=$(head -c 65 "$1" 2>/dev/null | tr '\\011\\012\\013\\014\\015' '     '); case $s in {HEX64_GLOB}|{HEX64_GLOB}' ') printf '%s' "${{s%' '}}";; *) printf '%s' -;; esac; }}
is_sqlite() {{ [ "$(head -c 16 "$1" 2>/dev/null | tr '\\000@' '@#')" = 'SQLite format 3@' ]; }}
sqlite_check() {{
  # sqlite_check FILE PRAGMA [NAME]: res is the first line of the check; a check that could not run
  # (sqlite3 killed, out of memory, an I/O error, a full disk: engine.check_could_not_run)
  # fails "check_failed", never as a verdict on the file
  ck=$(sqlite3 -readonly "$1" "PRAGMA $2" 2>&1 </dev/null); ckrc=$?
  res=$(printf '%s\\n' "$ck" | sed '/^\\*\\*\\* in database/d' | head -n 1 | tr -cd ' -~')
  cant=0; [ "$ckrc" -gt 128 ] && cant=1
  case $(printf '%s' "$res" | tr 'A-Z' 'a-z') in ''|{CHECK_NOT_RUN_GLOB}) cant=1;; esac
  [ "$res" = ok ] || [ $cant = 0 ] || fail check_failed "the $2 of ${{3:-${{1##*/}}}} could not run (${{res:-no answer}}, sqlite3 exit $ckrc): the file was not judged, nothing was changed; this says nothing about the file: look at the memory and disk where it ran, then run again"
}}
holder() {{
  # holder LOCK WHAT: who holds LOCK, by its record ("unknown" for none), and what it is: a
  # restore when its record says so, else WHAT (as file_lock says it in the engines)
  who=$(head -c 200 "$1" 2>/dev/null | head -n 1); [ -n "$who" ] || who=unknown
  what=$2; case $who in "{RESTORE_ROLE} "*) what="{RESTORE_ROLE}";; esac
}}
take_lock() {{
  # flock(2) on $1/{LOCK_NAME}, the lock the engine takes, held on fd 9 until the script ends.
  # The file is only ever created with O_EXCL (set -C) and opened read-only: nothing is
  # written through a symlink planted under its name, and such a lock is refused.
  lock="$1/{LOCK_NAME}"
  [ -e "$lock" ] || [ -h "$lock" ] || (set -C; : > "$lock") 2>/dev/null
  if [ -h "$lock" ] || [ ! -f "$lock" ]; then fail error "refusing the lock $lock: it is not a regular file (a symlink or something else has its name)"; fi
  exec 9< "$lock" || fail error "cannot open the lock $lock"
  command -v flock >/dev/null 2>&1 || has_python || fail error "this host has neither flock(1) nor python3, so the backup lock $lock cannot be taken: install util-linux or busybox"
  waited=0
  until if command -v flock >/dev/null 2>&1; then flock -n 9; else {engine.PYTHON3} -c 'import fcntl; fcntl.flock(9, fcntl.LOCK_EX | fcntl.LOCK_NB)' 2>/dev/null; fi; do
    if [ "$waited" -ge "$2" ]; then
      hint=""; [ "$2" -eq 0 ] && hint=" (use --lock-wait SECONDS to wait for it)"
      holder "$lock" "another backup"; fail locked "$what holds the lock $lock: $who$hint"
    fi
    sleep 0.2; waited=$((waited + 1))
  done
}}
place() {{
  # place TEXT PATH: write a fresh temporary (mktemp, same folder) and hard-link it to PATH;
  # ln fails rather than replace or follow anything already there under that name.
  if [ -e "$2" ] || [ -h "$2" ]; then fail exists "${{2##*/}} already exists; not overwritten"; fi
  st=$(mktemp "${{2%/*}}/.tmp-sidecar.XXXXXX") || fail error "cannot create a temporary file beside $2"
  if ! printf '%s\\n' "$1" > "$st"; then rm -f "$st"; fail no_space "cannot write ${{2##*/}} (is the folder full?)"; fi
  if ! ln -n "$st" "$2" 2>/dev/null; then rm -f "$st"; fail exists "${{2##*/}} already exists; not overwritten"; fi
  rm -f "$st"
  placed="$placed $2"
}}"""


def _choose(python: str, sqlite: str, other: str, first: str = "") -> str:
    """python3, then node with the app's SQLite binding (the same engine call: see
    ``ops.node``), then the sqlite3 CLI, then ``other``; ``first`` runs before any of
    them, after the prelude (a dry run's look at the locks)."""
    node_branch = (f"""elif has_node; then
OPS_ENGINE=node; echo {STRATEGY_MARK}=node
{python}
""" if python.startswith("engine_run ") else "")
    return f"""{PRELUDE}
{first}
{node.HAS_NODE}
{node.engine_run()}
if has_python; then
echo {STRATEGY_MARK}=python3
{python}
{node_branch}elif has_sqlite; then
echo {STRATEGY_MARK}=sqlite3
{sqlite}
else
{other}
fi"""


def _engine(*args: str) -> str:
    """Run the engine, whose source comes on stdin (python3's or node's: ``ops.node``);
    the call reads as python3's (``engine_run`` drops those two words)."""
    return "engine_run " + shlex.join(["python3", "-", *args])


def _tries(wait: float) -> int:
    """Lock attempts, one every 0.2 s, for ``wait`` seconds (a day at most; nan: none):
    any wait gets one at least, as the engines wait for any (a dry run says so too)."""
    return math.ceil(min(wait, 86400) * 5) if wait > 0 else 0


@purpose("list")
def list_script(directory: str) -> str:
    """Backups in ``directory`` as entry lines; plain sh, works on any image. A name in
    the pattern that is not a regular file (a symlink: ``[ -f ]`` follows it) is no
    backup: it is printed as an ``odd NAME`` line instead.

    Only names in the exact backup pattern are printed and a recorded digest only as
    64 hex digits, so no file name or sidecar content can add, hide or change a line.
    """
    d = shlex.quote(directory)
    return f"""{PRELUDE}
{IDENTITY_READERS}
[ -d {d} ] || exit 0
cd {d} || exit 1
for f in steps-*.db; do
  is_name "$f" || continue
  # a symlink, FIFO or folder named like a backup is not one (the engines refuse it too)
  if [ -h "$f" ] || [ ! -f "$f" ]; then
    [ -h "$f" ] || [ -e "$f" ] && printf '{ENTRY_MARK} odd %s\\n' "$f"; continue
  fi
  size=$(( $(wc -c < "$f") ))
  manifest=0; [ -f "$f.json" ] && manifest=1
  kind=$(record_field kind "$f.json")
  readable_record "$f.json" || kind={engine.UNRECORDED}
  printf '{ENTRY_MARK} %s %s %s %s %s %s %s %s\\n' "$f" "$size" "$(recorded "$f.sha256")" "$manifest" \\
    "$kind" "$(record_field source "$f.json")" "$(record_restore "$f.json")" \\
    "$(record_field uploaded "$f.json")"
done
{STALE_STAGED}
for f in .upload-*; do  # backup.cleanup removes these (remove_staged_script)
  stale_staged "$f" && printf '{ENTRY_MARK} staged %s %s\\n' "$f" "$(( $(wc -c < "$f") ))"
done
exit 0"""


# restore --from's staged uploads (``upload_staging``) a stopped run left (kill -9, a lost
# connection): written with no lock, so one is stale only when unwritten for
# ``engine.STAGED_AGE``; and only a regular file of this user with our exact name: never a
# symlink, another user's file or a name this tool did not make (nothing else is printed)
STAGED_NAME = engine.STAGED_NAME
STALE_STAGED = f"""stale_staged() {{
  case $1 in .upload-*.*) ;; *) return 1;; esac
  n=${{1#.upload-}}; p=${{n##*.}}; n=${{n%.*}}
  is_name "$n" || return 1
  case $p in ''|*[!0-9]*|???????????*) return 1;; esac
  [ -f "$1" ] && [ ! -h "$1" ] && [ -O "$1" ] || return 1
  [ -n "$(find "./$1" -prune -type f -mmin +{engine.STAGED_AGE // 60} 2>/dev/null)" ]
}}"""


@purpose("cleanup-staged")
def remove_staged_script(directory: str, names: list[str], lock_wait: float = 0) -> str:
    """Remove stale staged uploads the listing named (``STALE_STAGED``), under the folder's
    backup lock, each judged again there; prints ``removed NAME`` for each removed."""
    for name in names:
        if not STAGED_NAME.fullmatch(name):
            raise OpsError(f"not a staged upload's name: {name!r}")
    d = shlex.quote(directory)
    return f"""{PRELUDE}
{STALE_STAGED}
[ -d {d} ] || exit 0
take_lock {d} {_tries(lock_wait)}
cd {d} || exit 1
for f in {shlex.join(names)}; do
  stale_staged "$f" && rm -f -- "$f" && printf '{ENTRY_MARK} removed %s\\n' "$f"
done
exit 0"""


# (issue 16 #2-3) What NAME.json says a backup is (``kind``) and which database it copies
# (``source``), read in plain sh for the listing: one token each, ``-`` when not recorded,
# ``?`` for a source that is not a plain path (never the configured database's). A
# backup whose record is missing or unreadable is ``engine.UNRECORDED`` (never `latest`).
IDENTITY_READERS = r"""readable_record() { [ -f "$1" ] && [ ! -h "$1" ] && [ "$(wc -c < "$1")" -le RECORD_LIMIT ]; }
record_field() {
  v=-
  if [ -f "$2" ] && [ ! -h "$2" ]; then
    v=$(head -c RECORD_LIMIT "$2" 2>/dev/null | tr -d '\n\r' | sed -n "s/.*\"$1\": *\"\([^\"\\]*\)\".*/\1/p")
    case $1:$v in
      *:) v=-;;
      kind:*[!a-z]*) v=unknown;;
      source:*[!A-Za-z0-9._/+@:-]*) v='?';;
      uploaded:*[!0-9TZ:.+-]*|uploaded:?????????????????????????????????????????*) v=-;;  # engine.UPLOADED_TIME
    esac
  fi
  printf '%s' "$v"
}
record_restore() {
  v=
  if [ -f "$1" ] && [ ! -h "$1" ]; then
    v=$(head -c RECORD_LIMIT "$1" 2>/dev/null | tr -d '\n\r' | sed -n 's/.*"restore": *{ *"when": *"\([0-9TZ:.+-]\{1,40\}\)", *"backup": *"\(steps-[A-Za-z0-9TZ:._-]\{1,200\}\)" *}.*/\1,\2/p')
  fi
  printf '%s' "${v:--}"
}""".replace("RECORD_LIMIT", str(RECORD_LIMIT))


# Whether a file is flock(2)ed by some process, taking nothing (a dry run's look): /proc/locks
# lists its inode. Outside the machine's top pid namespace (a container: docker, LXC, a pod)
# /proc/locks hides a lock whose taker has exited, and flock(1) always has (the lock stays
# on the shell's open file), so where the kernel's own threads are not seen (/proc/2 is not
# kthreadd) the "lock:" lines of every readable /proc/PID/fdinfo are read too: the kernel
# shows a flock there for each process holding the locked open file, whoever took it.
# Without /proc nothing is held.
IS_HELD = """is_held() {
  [ -f "$1" ] || return 1
  ino=$(stat -c %i "$1" 2>/dev/null | tr -cd 0-9); dev=$(stat -c %d "$1" 2>/dev/null | tr -cd 0-9)
  [ -n "$ino" ] && [ -n "$dev" ] || return 1
  maj=$(( (dev >> 8) & 4095 )); min=$(( (dev & 255) | ((dev >> 12) & 1048320) ))
  # the device and inode as /proc/locks names them; an anonymous device (overlayfs, major
  # 0) is named there by the file system below it: the inode alone
  key=" $(printf '%02x:%02x' "$maj" "$min"):$ino "; [ "$maj" = 0 ] && key=":$ino "
  grep -qF -e "$key" /proc/locks 2>/dev/null && return 0
  [ "$(cat /proc/2/comm 2>/dev/null)" = kthreadd ] && return 1
  cat /proc/[0-9]*/fdinfo/* 2>/dev/null | grep '^lock:' | grep -qF -e "$key"
}"""

# An exclusive flock(2) tried on FILE (never waited for) on fd 6, kept until the script
# closes fd 6: 1 when FILE is held (a restore's ``hold_backup``), 2 when it is not a
# plain file this user can open (dash ends a script at a failed `exec 6<`: tried first)
TRY_EXCLUSIVE = """try_exclusive() {
  [ -f "$1" ] && [ ! -h "$1" ] && ( exec 6< "$1" ) 2>/dev/null && exec 6< "$1" || return 2
  if command -v flock >/dev/null 2>&1; then flock -x -n 6 || return 1
  else """ + engine.PYTHON3 + """ -c 'import fcntl; fcntl.flock(6, fcntl.LOCK_EX | fcntl.LOCK_NB)' 2>/dev/null || return 1; fi
}"""


@purpose("delete")
def delete_script(directory: str, names: list[str], lock_wait: float = 0) -> str:
    """Remove backups and their sidecars, under the folder's backup lock (like the engine).
    A backup a restore holds (``hold_backup``: one waiting for its locks, a ``restore
    --from`` upload past its grace among them) is kept, with a ``held NAME`` entry: an
    exclusive flock is tried on each file and kept until it is gone (in any pid namespace,
    unlike /proc/locks: review-break #1). A file this user cannot open is removed as before
    (no restore of this user holds it)."""
    d = shlex.quote(directory)
    removals = []
    for name in names:
        check_name(name)
        q = shlex.quote(name)
        removals.append(f"try_exclusive {q}\nif [ $? = 1 ]; "
                        f"then printf '{ENTRY_MARK} held %s\\n' {q}\nelse "
                        f"rm -f -- {shlex.join([name, f'{name}.sha256', f'{name}.json'])}\nfi"
                        "\nexec 6<&-")
    return f"""{PRELUDE}
{TRY_EXCLUSIVE}
[ -d {d} ] || exit 0
take_lock {d} {_tries(lock_wait)}
cd {d} || exit 1
""" + "\n".join(removals)


@purpose("backup")
def backup_script(db: str, directory: str, *, check: str, remote_command: str = "",
                  timeout: float = 0, lock_wait: float = 0, content_hash: bool = True) -> str:
    """Back up on the machine with the best tool it has (python3, sqlite3, the app's own)."""
    engine_args = ["backup", "--db", db, "--dir", directory, "--check", check,
                   "--lock-wait", f"{lock_wait:g}"]
    if timeout:
        engine_args += ["--timeout", f"{timeout:g}"]
    if not content_hash:
        engine_args.append("--no-content-hash")
    if remote_command:
        other = f"echo {STRATEGY_MARK}=remote_command\n" + _app_command(directory, remote_command)
    else:
        other = f"echo {STRATEGY_MARK}=none"
    return _choose(_engine(*engine_args),
                   _sqlite_backup(db, directory, check, lock_wait, content_hash), other)


STAMP_GLOB = "[0-9]" * 4 + "-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]-[0-9][0-9]-[0-9][0-9]Z"
STAMP_ANY = "????-??-??T??-??-??Z"  # as long as a stamp: what ``${u#…}`` takes off one
# engine.refuse_other_names with the sqlite3 CLI: a live database with another name (a hard
# link) is refused, except a restore's own crash leftovers beside it (engine.own_names), in
# engine.other_names_said's words (a name in single quotes as it stands, else counted)
REFUSE_OTHER_NAMES = f"""digits() {{ case $1 in ''|*[!0-9]*) return 1;; esac; }}
free_kb() {{  # df -P's available KiB for a path (empty: unknown), read as the field before
  # the capacity ("NN%"): a device name with spaces (a CIFS share, FUSE) shifts the columns
  set -f; set -- $(df -Pk "$1" 2>/dev/null | tail -n 1); set +f; p=
  while [ $# -gt 0 ]; do
    case $1 in *%) digits "${{1%?}}" && digits "$p" && {{ p=${{p#"${{p%%[!0]*}}"}}; echo "${{p:-0}}"; return 0; }};; esac
    p=$1; shift
  done
}}
refuse_other_names() (  # a subshell: none of its names reach the script; call it with || exit 1
  [ -f "$1" ] || return 0
  set -- "$1" $(ls -dLn -- "$1" 2>/dev/null)
  digits "${{3-}}" && [ "$3" -gt 1 ] || return 0
  n=$3; db1=$1; real=$1
  if [ -h "$1" ] && command -v readlink >/dev/null 2>&1; then  # SQLite opens the file it
    real=$(readlink -f -- "$1") || real=$1  # leads to, and names its -wal after that one
  else  # no readlink: follow the links as ls shows them
    i=0; while [ -h "$real" ] && [ "$i" -lt 40 ]; do
      t=$(ls -ld -- "$real"); t=${{t#* -> }}; i=$((i + 1))
      case $t in /*) real=$t;; *) case $real in */*) real=${{real%/*}}/$t;; *) real=$t;; esac;; esac
    done
  fi
  case $real in */*) d=${{real%/*}}; [ -n "$d" ] || d=/;; *) d=.;; esac
  b=${{real##*/}}; found=0; nf=0; hidden=0; listed=
  for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
    [ "$f" != "$d/$b" ] && [ -f "$f" ] && [ ! -h "$f" ] && [ "$f" -ef "$db1" ] || continue
    found=$((found + 1)); t=${{f##*/}}
    case $t in ".tmp-restore-$b".*) digits "${{t#".tmp-restore-$b".}}" && continue;; esac
    case $t in "$b".corrupt-*) u=${{t#"$b".corrupt-}};; "$b".stale-*) u=${{t#"$b".stale-}};; *) u=;; esac
    case $u in {STAMP_GLOB}) continue;; {STAMP_GLOB}-*) digits "${{u#{STAMP_ANY}-}}" && continue;; esac
    # shown in single quotes only as it stands (fail() keeps no ", a backtick pairs with the
    # find's own); one with a byte outside printable ASCII, a quote or a backslash, or too long
    # for the line, is counted, not shown (the find lists it)
    nf=$((nf + 1)); shown=$(printf '%s' "$f" | tr -c ' !\\043-\\046\\050-\\133\\135-\\137\\141-\\176' '?')
    if [ "$nf" -le 3 ] && [ ${{#t}} -le 100 ] && [ "$shown" = "$f" ]; then listed="${{listed:+$listed, }}'$f'"; else hidden=$((hidden + 1)); fi
  done
  outside=$((n - 1 - found)); [ "$outside" -gt 0 ] || outside=0
  [ "$nf" -gt 0 ] || [ "$outside" -gt 0 ] || return 0
  count=$((nf + outside)); names="$count other names (hard links)"; s=s
  [ "$count" -gt 1 ] || {{ names="another name (a hard link)"; s=; }}
  said="database $db1 has $names: remove every name but the one the app opens (if that is not this one, set db.path or db.remote_path to it first): SQLite keeps a -wal per name, so through another name a backup misses the app's writes and its -wal can undo a restore. Nothing was changed."
  [ "$hidden" -gt 0 ] || [ "$outside" -gt 0 ] || fail linked "$said The other name$s: $listed"
  set -- $(df -P "$db1" 2>/dev/null | tail -n 1); top=/; [ $# -ge 6 ] && eval "top=\\${{$#}}"
  parts=; [ "$nf" -gt 0 ] && parts="$nf beside it ($listed$( [ "$hidden" -gt 0 ] && printf '%snot shown' "${{listed:+, and $hidden }}"))"
  [ "$outside" -gt 0 ] && parts="${{parts:+$parts and }}$outside outside its folder"
  fail linked "$said The other name$s, which \\`find $top -xdev -samefile $real 2>/dev/null\\` lists: $parts"
)"""


# Long on purpose (~67 lines, most of it the sh script): the backup as the machine runs it,
# read top to bottom (lock, copy in one read transaction, check, hash, publish).
def _sqlite_backup(db: str, directory: str, check: str, lock_wait: float = 0,
                   content_hash: bool = True, marks: str = "") -> str:
    """The engine's procedure with the sqlite3 CLI: the same checks, lock and verdicts.

    ``BEGIN`` plus a read holds one read transaction across the CLI's 100-page
    ``.backup`` steps, so the app's writes cannot restart it (measured: 0.9 s with
    the transaction, 11.4 s of restarts without, for 100 MB under a writer). The copy
    is checked read-only (``mode=ro``: a vanished file is an error, never a new empty
    database) and must hold at least one page, exactly its pages and the SQLite header.
    Sidecars and the backup are hard links of fresh temporaries: nothing is overwritten.

    Long on purpose: one shell script, one template, read top to bottom as the host runs it
    (split, its steps and their ``fail`` exits would no longer read in order).
    """
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    db_q, dir_q = shlex.quote(db), shlex.quote(directory)
    return f"""db={db_q}; dir={dir_q}
[ -e "$db" ] || fail not_found "database not found: $db"
[ -d "$db" ] && fail usage "database is a directory, not a database file: $db"
[ -f "$db" ] || fail usage "database is not a regular file: $db"
[ -r "$db" ] || fail error "cannot read database $db: permission denied"
{REFUSE_OTHER_NAMES}
refuse_other_names "$db" || exit 1
is_sqlite "$db" || fail corrupt "database is not a SQLite database: $db"
mkdir -p "$dir" 2>/dev/null
[ -d "$dir" ] || fail usage "backup folder is not a folder: $dir"
[ -w "$dir" ] && [ -x "$dir" ] || fail usage "backup folder is not writable: $dir"
take_lock "$dir" {_tries(lock_wait)}
tmp=""; sums=""; placed=""; published=""; name=""
# the publish is complete once the file's link exists (engine.publish): then it keeps its records
trap '[ -n "$tmp" ] && [ -n "$name" ] && [ "$dir/$name" -ef "$tmp" ] && published=1; [ -n "$tmp" ] && rm -f "$tmp" "$tmp-wal" "$tmp-shm" "$tmp-journal" ${{sums:+"$sums"}}; [ -z "$published" ] && [ -n "$placed" ] && rm -f $placed' EXIT
rm -f "$dir"/.tmp-* 2>/dev/null
{STALE_STAGED}
( cd "$dir" && for f in .upload-*; do stale_staged "$f" && rm -f -- "$f"; done ) 2>/dev/null || :
need=$(( $(wc -c < "$db") + $( [ -f "$db-wal" ] && wc -c < "$db-wal" || echo 0) ))
free=$(free_kb "$dir")  # compared in KiB, and only when it cannot overflow the shell's numbers
digits "$free" && [ ${{#free}} -le 15 ] && [ "$free" -lt $(( (need + 1023) / 1024 )) ] && fail no_space "not enough free space in $dir: $(( free * 1024 )) bytes free, the backup needs about $need"
name=$(date -u +steps-%Y-%m-%dT%H-%M-%S.db)
[ -e "$dir/$name" ] && sleep 1 && name=$(date -u +steps-%Y-%m-%dT%H-%M-%S.db)
[ -e "$dir/$name" ] && fail exists "backup $name already exists in $dir"
umask 077
tmp=$(mktemp "$dir/.tmp-$name.XXXXXX") || fail error "cannot create a temporary file in $dir"
if ! out=$(sqlite3 -readonly "$db" ".timeout 5000" "BEGIN" "SELECT count(*) FROM sqlite_master" \\
  ".backup '$tmp'" "COMMIT" 2>&1 >/dev/null); then
  case $out in *full*) fail no_space "backup folder is full: $dir";; esac
  fail corrupt "cannot read database $db: $(printf '%s' "$out" | head -n 1)"
fi
ro="file:$tmp?mode=ro&immutable=1"
set -- $(sqlite3 -readonly "$ro" "PRAGMA page_size" "PRAGMA page_count" 2>/dev/null) x x
size=$(( $(wc -c < "$tmp" 2>/dev/null || echo 0) ))
case "$1$2" in *[!0-9]*) fail verify_failed "the new backup cannot be read back: $tmp";; esac
[ "$2" -ge 1 ] && [ $(( $1 * $2 )) -eq "$size" ] && is_sqlite "$tmp" || \\
  fail verify_failed "the new backup is not a whole SQLite database ($size bytes, $2 pages of $1)"
command -v sha256sum >/dev/null 2>&1 || fail error "this host has no sha256sum"
sums=$(mktemp "$tmp.sum.XXXXXX") || fail error "cannot create a temporary file in $dir"
sha256sum < "$tmp" > "$sums" & hashing=$!  # beside the check: both read the fresh copy once
sqlite_check "$ro" {pragma} "the new backup"
if [ "$res" != ok ]; then
  kill "$hashing" 2>/dev/null; fail verify_failed "the new backup failed {check}_check: $res"
fi
wait "$hashing" || fail error "sha256sum of the new backup failed"
set -- $(cat "$sums") x; sum=$1
case $sum in *[!0-9a-f]*|"") fail error "sha256sum of the new backup printed no checksum";; esac
[ ${{#sum}} -eq 64 ] || fail error "sha256sum of the new backup printed no checksum"
{_sqlite_record(content_hash)}
created=$(echo "$name" | sed 's/steps-\\(.*\\)T\\(..\\)-\\(..\\)-\\(..\\)\\.db/\\1T\\2:\\3:\\4Z/')
meta=$(printf '"name": "%s", "path": "%s", "created": "%s", "size": %s, "sha256": "%s", "check": "{check}"%s' "$name" "$dir/$name" "$created" "$size" "$sum" "$content")
place "$sum  $name" "$dir/$name.sha256"
place "{{$meta, \\"strategy\\": \\"sqlite3\\"{marks}}}" "$dir/$name.json"
ln -n "$tmp" "$dir/$name" 2>/dev/null || fail exists "backup $name already exists in $dir"
published=1
printf '{RESULT_MARK} {{"ok": true, "data": {{%s}}}}\\n' "$meta\""""


# one statement that counts each user table's rows, as a JSON object (engine._user_tables)
COUNTS_SQL = ("SELECT 'SELECT json_object(' || group_concat(quote(name) || ', (SELECT count(*) "
              "FROM \"' || replace(name, '\"', '\"\"') || '\")', ', ') || ');' FROM sqlite_master "
              "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
              "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%'")


def _sqlite_record(content_hash: bool = False) -> str:
    """What a sqlite3 backup records beside its checksum, like the engine's: row counts per
    table, with ``"content_sha256": null`` (issue 21: a backup records no content hash;
    the drill and the restore's proof hash the verified file; ``content_hash`` is
    ignored). Sets ``$content`` (empty when the counts cannot be read: then nothing is
    recorded)."""
    return f"""content=
q=$(sqlite3 -readonly -batch "$ro" {shlex.quote(COUNTS_SQL)} </dev/null 2>/dev/null) || q=-
tables=
case $q in -) ;; "") tables="{{}}";; *) tables=$(printf '%s\n' "$q" | sqlite3 -readonly -batch "$ro" 2>/dev/null);; esac
case $tables in "{{"*"}}")
  content=$(printf ', "tables": %s, "content_sha256": null, "content_format": null' "$tables");;
esac"""


def _app_command(directory: str, command: str) -> str:
    """Run the app's own backup command; report the backups before and after it.

    Its stdout goes to stderr: nothing it prints can reach the protocol.
    """
    d = shlex.quote(directory)
    listing = (f"""for f in {d}/steps-*.db; do n=${{f##*/}}; """
               f"""is_name "$n" && [ -f "$f" ] && echo "{ENTRY_MARK} %s $n"; done; :""")
    return "\n".join([
        listing.replace("%s", "before"),
        f"sh -c {shlex.quote(command)} </dev/null >&2 || fail error \"backup.remote_command "
        "failed with status $?\"",
        listing.replace("%s", "after"),
    ])


@purpose("sidecars")
def sidecar_script(directory: str, name: str, sha256: str, manifest: str,
                   lock_wait: float = 0) -> str:
    """Record a checked backup's sidecars beside it; never over or through an existing file.

    Under the folder's lock, so no backup's sweep removes the temporaries meanwhile.
    """
    check_name(name)
    if not HEX64.fullmatch(sha256):
        raise OpsError(f"not a SHA-256: {sha256!r}")
    base = shlex.quote(f"{directory}/{name}")
    return f"""{PRELUDE}
take_lock {shlex.quote(directory)} {_tries(lock_wait)}
placed=""; published=""
trap '[ -z "$published" ] && [ -n "$placed" ] && rm -f $placed' EXIT
place {shlex.quote(f"{sha256}  {name}")} {base}.sha256
place {shlex.quote(manifest)} {base}.json
published=1"""


@purpose("verify")
def verify_script(directory: str, names: list[str], check: str) -> str:
    """Verify backups on the machine; the sqlite3 branch applies the engine's rules.

    Each verdict comes back as ``name size sha256 sidecar manifest problem...``: the
    file's SHA-256, the one in ``NAME.sha256`` and the one in ``NAME.json``, each read as
    the engine reads them (``read_recorded_sha256``, ``read_manifest``: a regular file,
    not a symlink, at most ``SIDECAR_LIMIT`` bytes, in the exact form; 64 hex digits or
    ``-``), and SQLite's answer reduced to printable ASCII so it can never start a line.
    The caller judges the records with ``engine.checksum_problems``.
    """
    for name in names:
        check_name(name)
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    dir_q = shlex.quote(directory)
    sqlite = f"""cd {dir_q} || fail not_found "no backups in {directory}"
command -v sha256sum >/dev/null 2>&1 || fail error "this host has no sha256sum"
{RECORD_READERS}
for f in {shlex.join(names)}; do
  [ -f "$f" ] && [ ! -h "$f" ] || fail not_found "no backup named $f in {directory}"
done
for f in {shlex.join(names)}; do
  size=$(( $(wc -c < "$f") ))
  if ! is_sqlite "$f"; then
    printf '{ENTRY_MARK} %s %s - - - %s\\n' "$f" "$size" "backup is not a SQLite database: {directory}/$f"
    continue
  fi
  set -- $(sha256sum "$f"); sum=$1
  res=$(sqlite3 -readonly "file:$f?mode=ro&immutable=1" "PRAGMA {pragma}" 2>&1 | sed '/^\\*\\*\\* in database/d' | head -n 1 | tr -cd ' -~')
  printf '{ENTRY_MARK} %s %s %s %s %s %s\\n' "$f" "$size" "$sum" "$(sidecar_sha256 "$f")" "$(manifest_sha256 "$f")" "${{res:-no answer from sqlite3}}"
done"""
    return _choose(
        _engine("verify", "--dir", directory, "--check", check, *names),
        sqlite,
        f"echo {STRATEGY_MARK}=none",
    )


# The engine's sidecar readers in sh (the sqlite3 CLI reads the JSON: its JSON functions
# and the shell's readfile()). Each prints 64 hex digits or ``-``; $1 is a backup name.
RECORD_READERS = f"""small() {{ [ -f "$1" ] && [ ! -h "$1" ] && [ "$(wc -c < "$1")" -le {SIDECAR_LIMIT} ]; }}
sidecar_sha256() {{
  n=$1; s=-
  if small "$n.sha256" && [ "$(tr -d '\\000-\\177' < "$n.sha256" | wc -c)" -eq 0 ]; then
    set -f; set -- $(tr '\\000\\011-\\015\\034-\\037' '?         ' < "$n.sha256"); set +f
    named=${{2-}}; named=${{named#"${{named%%[!*]*}}"}}
    case $# in 2) case $1 in {HEX64_GLOB}) [ "$named" = "$n" ] && s=$1;; esac;; esac
  fi
  printf '%s' "$s"
}}
manifest_sha256() {{
  s=-
  if [ -f "$1.json" ] && [ ! -h "$1.json" ] && [ "$(wc -c < "$1.json")" -le {RECORD_LIMIT} ]; then
    s=$(sqlite3 :memory: "SELECT json_extract(j, '\\$.sha256') FROM (SELECT CAST(readfile('$1.json') AS TEXT) AS j) WHERE json_valid(j) AND json_type(j) = 'object' AND json_type(j, '\\$.name') = 'text' AND json_extract(j, '\\$.name') = '$1' AND json_type(j, '\\$.size') = 'integer' AND json_type(j, '\\$.sha256') = 'text'" 2>/dev/null | head -n 1)
    case $s in {HEX64_GLOB}) ;; *) s=-;; esac
  fi
  printf '%s' "$s"
}}"""


# content_hash DB: the engine's json-2 content hash (``engine.HASH_PLAN_SQL``), with the
# sqlite3 CLI: one sqlite3 writes the statements, a second runs them in one read
# transaction, sha256sum hashes what it prints. Prints the hash, or nothing (status 2)
# when this sqlite3 lacks the JSON functions or the shell's ieee754_to_blob that
# json-2 needs, 1 when it failed.
CONTENT_HASH = f"""content_hash() {{
  sqlite3 -batch :memory: "SELECT json_array(1), hex(ieee754_to_blob(0.5))" >/dev/null 2>&1 </dev/null || return 2
  esc=; sqlite3 -escape off -batch :memory: "SELECT 1" >/dev/null 2>&1 </dev/null && esc="-escape off"
  plan=$(sqlite3 $esc -readonly -batch "$1" {shlex.quote(engine.HASH_STATEMENTS_SQL)} </dev/null) || return 1
  hs=$(mktemp) || return 1
  set -- $( {{ {{ printf '%s\\n' 'BEGIN;' {shlex.join(s + ';' for s in engine.HASH_HEAD_SQL)} \\
      "$plan" 'COMMIT;' | sqlite3 $esc -readonly -batch -bail "$1" || echo failed > "$hs"; }} \\
      | sha256sum; }} 2>/dev/null )
  if [ -s "$hs" ] || [ ${{#1}} -ne 64 ]; then rm -f "$hs"; return 1; fi
  rm -f "$hs"; printf '%s' "$1"
}}"""


DEPLOY_LOCK = ".ops-deploy.lock"


@purpose("deploy-lock")
def deploy_lock_script(path: str, holder: str, wait: float) -> str:
    """Take the deploy lock on the volume: a directory, made atomically, naming its holder.

    It lives on the machine because that is the one thing a laptop and a CI job share.
    Exit 4 with an ``held`` entry naming the holder when it stays taken for ``wait`` s.
    Taking a lock this holder already holds succeeds, so a lock step whose answer was
    lost can simply be asked again.
    """
    q, mine = shlex.quote(path), shlex.quote(one_line(holder))
    return f"""{_not_a_lock(q)}
waited=0
until mkdir {q} 2>/dev/null; do
  not_a_lock
  [ "$(head -n 1 {q}/holder 2>/dev/null)" = {mine} ] && break
  if [ "$waited" -ge {int(wait * 5)} ]; then
    printf '{ENTRY_MARK} held %s\n' "$(head -n 1 {q}/holder 2>/dev/null)"; exit 4
  fi
  [ "$waited" -eq 0 ] && printf '{ENTRY_MARK} waiting %s\n' "$(head -n 1 {q}/holder 2>/dev/null)"
  sleep 0.2; waited=$((waited + 1))
done
printf '%s\n' {mine} > {q}/holder
printf '{ENTRY_MARK} acquired %s\n' $waited"""


@purpose("deploy-unlock")
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
    gone = remove and holder is None  # deploy.unlock --yes: only it removes a non-lock
    return (f"{_not_a_lock(q, remove=gone)}\nnot_a_lock\n[ -d {q} ] || exit 3\n{check}{show}\n"
            + (f"rm -rf {q}" if remove else ""))


NOT_A_LOCK = 6  # the deploy lock's name holds something a deploy never makes


def _not_a_lock(q: str, *, remove: bool = False) -> str:
    """sh ``not_a_lock``: anything at the lock's name but a directory (a file, a FIFO, a
    socket, any symlink, dangling or not) is no deploy's lock, and no deploy can take the
    lock past it: a ``notlock KIND [BYTES]`` entry and exit 6. With ``remove`` that one
    entry is removed first (``rm -f``, never ``-r``: a symlink loses only the link, and a
    directory made meanwhile stays), and a ``removed`` entry says so."""
    gone = (f"rm -f {q} 2>/dev/null && [ ! -h {q} ] && [ ! -e {q} ] && "
            f"printf '{ENTRY_MARK} removed\\n'\n  " if remove else "")
    return f"""not_a_lock() {{
  [ -h {q} ] || {{ [ -e {q} ] && [ ! -d {q} ]; }} || return 0
  if [ -h {q} ]; then k=symlink; [ -e {q} ] || k=dangling
  elif [ -p {q} ]; then k=fifo
  elif [ -S {q} ]; then k=socket
  elif [ -f {q} ]; then k="file $(wc -c < {q} 2>/dev/null | tr -cd 0-9)"
  else k=other; fi
  printf '{ENTRY_MARK} notlock %s\\n' "$k"
  {gone}exit {NOT_A_LOCK}
}}"""


def one_line(text: str) -> str:
    """A holder as it is written in the lock file: one line, single spaces."""
    return " ".join(str(text).split())


@purpose("record")
def record_script(directory: str, name: str) -> str:
    """A backup's SHA-256 now, its size, and the SHA-256 recorded when it was made.

    Prints ``sha256 size recorded manifest``: ``recorded`` from ``NAME.sha256`` and
    ``manifest`` from the ``"sha256"`` of ``NAME.json``, each 64 hex digits or ``-``;
    then ``NAME.json`` itself on a ``MANIFEST_MARK`` line (a download keeps its row counts
    and content hash). Exit 3 if there is no such backup.
    """
    check_name(name)
    base = shlex.quote(f"{directory}/{name}")
    return f"""{PRELUDE}
f={base}
[ -f "$f" ] || exit 3
command -v sha256sum >/dev/null 2>&1 || fail error "this host has no sha256sum"
set -- $(sha256sum "$f")
m=; [ -f "$f.json" ] && m=$(sed -n 's/.*"sha256"[[:space:]]*:[[:space:]]*"\\([0-9a-f]*\\)".*/\\1/p' "$f.json" 2>/dev/null | head -n 1)
case $m in {HEX64_GLOB}) ;; *) m=-;; esac
printf '{ENTRY_MARK} %s %s %s %s\\n' "$1" "$(( $(wc -c < "$f") ))" "$(recorded "$f.sha256")" "$m"
( {_print_manifest(f"{directory}/{name}.json")} ) || :
"""


# ------------------------------------------------------------------ output


@dataclass
class RemoteOutput:
    status: int | None  # the script's real exit status; None if it never reported one
    strategy: str | None
    result: dict | None  # the __OPS_RESULT__ document
    entries: list[list[str]]  # the __OPS_ENTRY__ lines, split
    stdout: str
    host: str = "the machine"  # how its messages name where it ran (an SSH host: its address)
    there: str = ""  # the command that opens a shell there (``fly ssh console …``, ``ssh …``)

    def data(self, what: str):
        """The result's data, or an OpsError carrying the remote failure."""

        if self.result is None:
            engine = f", engine {self.strategy}" if self.strategy else ""
            raise OpsError(f"{what}: {self.host} printed no result (exit {self.status}{engine})")
        if not self.result.get("ok"):
            kind = self.result.get("kind", "error")
            # the other names are to be removed there, not here: say how to get there
            there = (f" (the names are on {self.host}: open a shell there with `{self.there}`)"
                     if kind == "linked" and self.there else "")
            raise answered(f"{what} on {self.host}: {self.result.get('error')}{there}",
                           ENGINE_KINDS.get(kind, ExitCode.ERROR))
        return self.result.get("data")


def answered(message: str, code: ExitCode) -> OpsError:
    """A failure the machine itself reported (its result came back): never a lost answer,
    even when its kind is a timeout there (the app's lock held past --busy-timeout)."""
    error = OpsError(message, code)
    error.answered = True
    return error


STRATEGIES = ("python3", "node", "sqlite3", "remote_command", "none")


def parse_output(stdout: str, host: str = "the machine", there: str = "") -> RemoteOutput:
    """Read the marks; a marked line of any other shape is refused, never guessed at.

    Scripts print one sentinel, at most one strategy and one result; anything else
    carrying a mark did not come from them (or was cut), so the whole output is refused.
    ``host`` names where the script ran, in every message (the Fly machine's session
    keeps the default; an SSH session gives its address).
    """
    status = strategy = result = None
    entries = []
    # sh ends its lines with \n alone: splitlines() also split inside a printed value (a
    # lock record's \x1e or U+2028 forged an entry line or cut one: review-break s21 #7);
    # such characters stay in their entry, for printable to show escaped
    for line in text_lines(stdout):
        if line.startswith(SENTINEL):
            value = line[len(SENTINEL) + 1:]
            if status is not None or line[len(SENTINEL):][:1] != "=" or not _digits(value):
                raise _unexpected(line, host)
            status = int(value)
        elif line.startswith(STRATEGY_MARK):
            value = line[len(STRATEGY_MARK) + 1:]
            if strategy is not None or line != f"{STRATEGY_MARK}={value}" \
                    or value not in STRATEGIES:
                raise _unexpected(line, host)
            strategy = value
        elif line.startswith(RESULT_MARK):
            if result is not None or not line.startswith(RESULT_MARK + " "):
                raise _unexpected(line, host)
            try:
                result = json.loads(line[len(RESULT_MARK) + 1:], parse_constant=engine.no_constant)
            except ValueError:  # not JSON, or NaN/Infinity in it
                raise _unexpected(line, host) from None
            if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
                raise _unexpected(line, host)
        elif line.startswith(ENTRY_MARK):
            if not line.startswith(ENTRY_MARK + " "):
                raise _unexpected(line, host)
            entries.append(re.split("[ \t]+", line)[1:])  # ASCII blanks, as sh printed
    return RemoteOutput(status, strategy, result, entries, stdout, host, there)


def _digits(text: str) -> bool:
    """An exit status as sh prints it: 0 to 255."""
    return digits.is_whole(text) and len(text) <= 3 and int(text) <= 255


def _unexpected(line: str, host: str) -> OpsError:
    return OpsError(f"{host}'s output has a line this tool did not print: "
                    f"{ascii(line)[:100]}", ExitCode.ERROR)


# ------------------------------------------------------------------ restore and drill

MANIFEST_MARK = "__OPS_MANIFEST__"


@purpose("restore")
def restore_script(db: str, directory: str, name: str, *, check: str,
                   busy_timeout: float = 10, lock_wait: float = 0,
                   content_hash: bool = True, app_stopped: bool = False) -> str:
    """Restore backup ``name`` into the live database on the machine, with its best engine.

    python3 runs ``engine.restore_database``; the sqlite3 CLI does the same steps
    (verify, safety backup, ``.restore`` through the backup API, check, row counts);
    with neither it only reports ``none`` and changes nothing.
    """
    check_name(name)
    engine_args = ["restore", "--db", db, "--dir", directory, "--which", name, "--check", check,
                   "--busy-timeout", f"{busy_timeout:g}", "--lock-wait", f"{lock_wait:g}"]
    if not content_hash:  # the safety backup records what a backup would (backup.content_hash)
        engine_args.append("--no-content-hash")
    if app_stopped:  # a corrupt or missing live database may be replaced
        engine_args.append("--app-stopped")
    return _choose(_engine(*engine_args),
                   _sqlite_restore(db, directory, name, check, busy_timeout, lock_wait,
                                   app_stopped),
                   f"echo {STRATEGY_MARK}=none", first=hold_backup(directory, name))


def hold_backup(directory: str, name: str) -> str:
    """The restore's hold on its backup: a shared flock(2) on the file, on fd 7, from
    before it waits for its locks to the end of the script (an engine it starts inherits
    the descriptor). Released by the kernel however the script ends (kill -9 too), so it
    is never stale; a cleanup (``delete_script``) keeps a held backup. An upload whose
    restore waits past its hour's grace (``retention.UPLOAD_GRACE``) is kept so."""
    path = shlex.quote(f"{directory}/{name}")
    # dash ends the script at an `exec 7<` that fails (a backup this user cannot read):
    # tried in a subshell first, the engine then says what is wrong in its one line
    return (f"if [ -f {path} ] && [ ! -h {path} ] && ( exec 7< {path} ) 2>/dev/null "
            f"&& exec 7< {path}; then\n"
            "  if command -v flock >/dev/null 2>&1; then flock -s -n 7\n"
            f"  elif has_python; then {engine.PYTHON3} -c 'import fcntl; fcntl.flock(7, fcntl.LOCK_SH "
            "| fcntl.LOCK_NB)'\n  fi\nfi")


# (issue 16 #2) the record of a restore's safety backup, as ``engine.safety_marks``
# writes it: never `latest`. $restoring/$restore_when are set by ``_sqlite_restore``.
SAFETY_MARKS = (', \\"kind\\": \\"safety\\", \\"restore\\": {\\"when\\": '
                '\\"$restore_when\\", \\"backup\\": \\"$restoring\\"}')

RESTORE_LOCK = ".restore.lock"  # the engine's (``engine.RESTORE_LOCK``): flock(2) on it
BROKEN_HOW = engine.REMOTE_HOW


def _sqlite_replace_broken(busy_timeout: float) -> str:
    """``engine.replace_broken_live`` with the sqlite3 CLI: a corrupt live database and
    its -wal/-shm/-journal (a missing one's leftover side files: ``NAME.stale-STAMP``)
    are hard-linked to ``NAME.corrupt-STAMP`` names and unlinked
    (side files first, never deleted or overwritten), then the backup is ``.restore``d
    into a fresh file beside it, put in WAL mode, and linked to the free live name."""
    return f"""label=corrupt; [ "$state" = corrupt ] || label=stale  # engine.aside_label
aside="$db.$label-$(date -u +%Y-%m-%dT%H-%M-%SZ)"
for sfx in -wal -shm -journal ""; do
  if [ -e "$db$sfx" ] || [ -h "$db$sfx" ]; then
    ln "$db$sfx" "$aside$sfx" 2>/dev/null && rm -f "$db$sfx" || fail error "cannot move $db$sfx aside to $aside$sfx"
    printf '{ENTRY_MARK} aside %s\n' "$aside$sfx"
  fi
done
for sfx in -wal -shm -journal ""; do
  if [ -e "$db$sfx" ] || [ -h "$db$sfx" ]; then fail error "$db$sfx appeared meanwhile: is the app still running? Nothing was restored"; fi
done
# engine.place_restored's name (engine.own_names: a kill -9 between ln and rm leaves it as a
# second name of the live database, which the next restore lets through); one of a dead run
# of this pid is removed first (this run holds the restore lock)
new="${{db%/*}}/.tmp-restore-${{db##*/}}.$$"; rm -f "$new" "$new-wal" "$new-shm"
(umask 077; set -C; : > "$new") 2>/dev/null || fail error "cannot create a temporary file beside $db"
if ! sqlite3 -batch -bail "$new" ".timeout {int(busy_timeout * 1000)}" ".restore '$backup'" "PRAGMA journal_mode = wal;" </dev/null >/dev/null 2>"$st.err"; then
  rm -f "$new" "$new-wal" "$new-shm"; fail verify_failed "sqlite3 .restore into a new file failed: $(head -n 1 "$st.err" | tr -cd ' -~')"
fi
if ! ln "$new" "$db" 2>/dev/null; then rm -f "$new"; fail error "$db appeared meanwhile: is the app still running? Nothing was replaced"; fi
rm -f "$new" "$new-wal" "$new-shm"
printf '{ENTRY_MARK} state %s\n' "$state"
lh=$(content_hash "$db") || lh=-"""


# flock on $1/.restore.lock on fd 8, exactly as take_lock does on fd 9 (never written
# through, refused when not a regular file, released by the kernel when the script dies)
TAKE_RESTORE_LOCK = PRELUDE[PRELUDE.index("take_lock() {"):PRELUDE.index("place() {")] \
    .replace("take_lock() {", "take_restore_lock() {").replace(LOCK_NAME, RESTORE_LOCK) \
    .replace("exec 9<", "exec 8<").replace("flock -n 9", "flock -n 8") \
    .replace("fcntl.flock(9,", "fcntl.flock(8,").replace('"another backup"', '"another restore"') \
    .replace("the backup lock $lock", "the restore lock $lock").replace("on fd 9", "on fd 8")


# the live database: ok, missing or corrupt (engine.live_state), as the sqlite3 restore and
# its dry run read it; the restore refuses the last two unless the app is stopped
_SQLITE_LIVE_STATE = f"""{REFUSE_OTHER_NAMES}
refuse_other_names "$db" || exit 1  # a corrupt one too: moved aside, the app's name would keep it
state=ok; why=
if [ ! -e "$db" ] && [ ! -h "$db" ]; then state=missing; why="{engine.MISSING_WHY}"
elif [ -h "$db" ] && [ ! -e "$db" ]; then fail usage "database $db is a symlink to nothing; nothing was changed"
elif [ -d "$db" ]; then fail usage "database is a directory, not a database file: $db"
elif [ ! -f "$db" ]; then fail usage "database is not a regular file: $db"
elif ! is_sqlite "$db"; then state=corrupt; why="{engine.NOT_SQLITE_WHY}"
else
  res=$(sqlite3 -readonly "$db" "PRAGMA quick_check" 2>&1 </dev/null | sed '/^\\*\\*\\* in database/d' | head -n 1 | tr -cd ' -~')
  [ "$res" = ok ] || {{ state=corrupt; why="quick_check: ${{res:-no answer from sqlite3}}"; }}
fi"""


def _sqlite_verified(pragma: str) -> str:
    """The restore's ``verified`` phase with the sqlite3 CLI (``engine._verified``), the
    run's (under its locks) and its dry run's (none): backup ``$name`` in ``$dir``, both
    records by the engine's rule, SQLite's check, and its page size the live one's (a WAL
    database takes no backup of another page size: ``engine.check_page_sizes``). Reads
    only; sets ``$backup`` and ``$sum``."""
    return f"""cd "$dir" || fail not_found "no backup named $name in $dir"
[ -f "$name" ] && [ ! -h "$name" ] || fail not_found "no backup named $name in $dir"
backup="$dir/$name"
refuse() {{ fail verify_failed "backup $name failed verification, nothing was changed: $*"; }}
is_sqlite "$name" || refuse "backup is not a SQLite database: $backup"
command -v sha256sum >/dev/null 2>&1 || fail error "this host has no sha256sum"
set -- $(sha256sum "$name"); sum=$1
rs=$(sidecar_sha256 "$name"); rj=$(manifest_sha256 "$name")
if [ "$rs" != - ] && [ "$rj" != - ] && [ "$rs" != "$rj" ]; then
  refuse "SHA-256 mismatch: the records disagree ($name.sha256 $rs, $name.json $rj), file has $sum"
fi
rec=$rs; [ "$rec" = - ] && rec=$rj
[ "$rec" = - ] || [ "$rec" = "$sum" ] || refuse "SHA-256 mismatch: recorded $rec, file has $sum"
sqlite_check "file:$backup?mode=ro&immutable=1" {pragma} "$name"
[ "$res" = ok ] || refuse "$res"
[ "$rec" != - ] || refuse "unverifiable: no usable checksum record beside it (its .sha256 and .json are missing or unreadable)"
if [ "$state" = ok ]; then
  lp=$(sqlite3 -readonly "$db" "PRAGMA page_size" 2>/dev/null </dev/null | tr -cd 0-9)
  jm=$(sqlite3 -readonly "$db" "PRAGMA journal_mode" 2>/dev/null </dev/null | tr -cd a-z)
  bp=$(sqlite3 -readonly "file:$backup?mode=ro&immutable=1" "PRAGMA page_size" 2>/dev/null </dev/null | tr -cd 0-9)
  if [ "$jm" = wal ] && [ -n "$lp" ] && [ -n "$bp" ] && [ "$bp" != "$lp" ]; then
    fail usage "the backup's page size ($bp) differs from the live database's ($lp); SQLite cannot restore it into a WAL database. Nothing was changed"
  fi
fi"""


# A dry run's look at a flock(2) lock the run takes, taking nothing: held when a process
# holds it (``is_held``); a lock name that is not a regular file (a symlink, a FIFO, a
# directory) is refused with take_lock's words, as the run refuses it. Held, with no lock wait: the run's own refusal (take_lock's words, exit 4); with
# one, a `waits` entry saying for how long the run would wait.
LOOK_LOCK = f"""{IS_HELD}
look_lock() {{
  if {{ [ -h "$1" ] || {{ [ -e "$1" ] && [ ! -f "$1" ]; }}; }} && [ -z "${{py_looks:-}}" ]; then fail error "refusing the lock $1: it is not a regular file (a symlink or something else has its name)"; fi
  is_held "$1" || return 0
  holder "$1" "$2"
  [ "$3" = 0 ] && fail locked "$what holds the lock $1: $who (use --lock-wait SECONDS to wait for it)"
  printf '{ENTRY_MARK} waits %s holds the lock %s: %s; the run would wait up to %ss for it, then stop with exit 4 if it is still held\\n' "$what" "$1" "$who" "$3"
}}"""


def look_locks(directory: str, lock_wait: float, restore: bool = True) -> str:
    """The restore's two locks, in the order it takes them (a backup's one: ``restore``
    False), looked at (``LOOK_LOCK``)."""
    q, wait = shlex.quote(directory), f"{lock_wait:g}" if lock_wait > 0 else "0"
    first = f"look_lock {q}/{RESTORE_LOCK} 'another restore' {wait}\n" if restore else ""
    return f"{LOOK_LOCK}\n{first}look_lock {q}/{LOCK_NAME} 'another backup' {wait}"


@purpose("look-locks")
def look_locks_script(directory: str, lock_wait: float, restore: bool = True,
                      db: str = "") -> str:
    """A dry run's look at the locks a restore (or a backup) takes there, alone: the run's
    refusal (exit 4), or a ``waits`` entry each; nothing is taken or created. With ``db``
    (a backup's), first the refusal of a live database with another name, as in its run."""
    linked = (f"[ -e {shlex.quote(db)} ] || fail not_found {shlex.quote(f'database not found: {db}')}"
              f"\n{REFUSE_OTHER_NAMES}\nrefuse_other_names {shlex.quote(db)} || exit 1\n"
              if db else "")  # the backup's first refusals, as its run meets them
    return (f"{PRELUDE}\n{linked}{look_locks(directory, lock_wait, restore)}\n"
            f"printf '{RESULT_MARK} {{\"ok\": true, \"data\": {{}}}}\\n'")


@purpose("restore.verify")
def restore_verify_script(db: str, directory: str, name: str, *, check: str,
                          lock_wait: float = 0) -> str:
    """A restore's dry run on the machine, with its best engine: the restore's
    ``verified`` phase alone (python3 and node: ``restore --dry-run``, the engines'
    ``restore_verified``; sqlite3: ``_sqlite_verified``), so a backup the run would
    refuse fails it the same way. No lock is taken and nothing is written; the locks the
    run takes first are looked at (``look_locks``)."""
    check_name(name)
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    sqlite = f"""db={shlex.quote(db)}; dir={shlex.quote(directory)}; name={shlex.quote(name)}
{_SQLITE_LIVE_STATE}
[ -d "$dir" ] || fail not_found "no backup named $name in $dir"
{RECORD_READERS}
{_sqlite_verified(pragma)}
printf '{RESULT_MARK} {{"ok": true, "data": {{"backup": "%s", "backup_sha256": "%s", "check": "{check}", "live_state": "%s"}}}}\\n' "$name" "$sum" "$state\""""
    return _choose(_engine("restore", "--db", db, "--dir", directory, "--which", name,
                           "--check", check, "--lock-wait", f"{max(lock_wait, 0):g}",
                           "--dry-run"),
                   sqlite, f"echo {STRATEGY_MARK}=none",
                   # python3's dry run refuses a lock of the wrong kind itself, in its run's words
                   first=f"py_looks=; has_python && py_looks=1\n{look_locks(directory, lock_wait)}")


# Long on purpose: one sh script read top to bottom (locks, checks, safety backup,
# .restore, proof), as the machine runs it; split, it would be pieces of one string whose
# locks, traps and exit codes only make sense together.
def _sqlite_restore(db: str, directory: str, name: str, check: str, busy_timeout: float,
                    lock_wait: float, app_stopped: bool = False) -> str:
    """The engine's restore with the sqlite3 CLI (its ``.restore`` is the backup API).

    Locks as the engine does, flock(2) on ``.restore.lock``, and it also holds the
    folder's backup lock from the verification to the end, with the safety backup made
    under it: ``.restore`` of a missing file empties the database without a word, so no
    retention (``backup --production``, ``backup.cleanup``) may remove the chosen backup
    between its check and the restore. The backup is checked like ``verify_script``
    checks it (both records, the engine's rule; no usable record is refused).
    """
    pragma = "integrity_check" if check == "integrity" else "quick_check"
    safety = _sqlite_backup(db, directory, check, lock_wait, marks=SAFETY_MARKS)
    tries = _tries(lock_wait)
    return f"""db={shlex.quote(db)}; dir={shlex.quote(directory)}; name={shlex.quote(name)}
{_SQLITE_LIVE_STATE}
if [ "$state" != ok ] && [ {int(app_stopped)} != 1 ]; then
  fail usage "the live database $db is $state ($why): restoring it needs the app stopped, so nothing writes while the file is replaced; {BROKEN_HOW}. Nothing was changed"
fi
[ -d "$dir" ] || fail not_found "no backup named $name in $dir"
{TAKE_RESTORE_LOCK}
{RECORD_READERS}
take_restore_lock "$dir" {tries}
take_lock "$dir" {tries}
{_sqlite_verified(pragma)}
counts() {{
  for t in $(sqlite3 -readonly "$1" "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"); do
    printf '{ENTRY_MARK} %s %s %s\\n' "$2" "$t" "$(sqlite3 -readonly "$1" "SELECT count(*) FROM \\"$t\\"")"
  done
}}
restoring=$name; restore_when=$(date -u +%Y-%m-%dT%H:%M:%SZ)  # for the safety's record
{CONTENT_HASH}
ro="file:$backup?mode=ro&immutable=1"
bh=$(content_hash "$ro") || bh=-
st=$(mktemp) || fail error "cannot create a temporary file"
trap 'rm -f "$st" "$st.err"' EXIT
if [ "$state" = ok ]; then
out=$( (
take_lock() {{ :; }}  # this script holds the folder's backup lock (fd 9) already
{safety}
) ) || {{
  # engine.live_failed_check: quick_check passed, the safety backup's full check did not
  res=$(sqlite3 -readonly "$db" "PRAGMA {pragma}" 2>&1 </dev/null | sed '/^\\*\\*\\* in database/d' | head -n 1 | tr -cd ' -~')
  case $out in *'"kind": "verify_failed"'*) ;; *) res=ok;; esac
  [ "$res" != ok ] || {{ printf '%s\\n' "$out"; exit 1; }}
  state=corrupt; why="{pragma}: $res"
  [ {int(app_stopped)} = 1 ] || fail usage "the live database $db is corrupt ($why): restoring it needs the app stopped, so nothing writes while the file is replaced; {BROKEN_HOW}. Nothing was changed"
}}
fi
if [ "$state" != ok ]; then
{_sqlite_replace_broken(busy_timeout)}
else
safety=$(printf '%s\\n' "$out" | sed -n 's/.*"name": "\\([^"]*\\)".*/\\1/p' | head -n 1)
is_name "$safety" || fail error "the safety backup printed no name"
printf '{ENTRY_MARK} safety %s\\n' "$safety"
counts "file:$dir/$safety?immutable=1" before
[ -f "$name" ] && [ ! -h "$name" ] || fail error "backup $name vanished before the restore; nothing was changed"
# the proof: the backup hashed now; the live database hashed by the very sqlite3 that
# restores it, in the same read right after .restore commits (json-2, engine.HASH_PLAN_SQL)
if [ "$bh" != - ]; then
  plan=$(sqlite3 $esc -readonly -batch "$ro" {shlex.quote(engine.HASH_STATEMENTS_SQL)} </dev/null)
  set -- $( {{ {{ printf '%s\\n' ".timeout {int(busy_timeout * 1000)}" ".restore '$backup'" 'BEGIN;' \\
      {shlex.join(s + ';' for s in engine.HASH_HEAD_SQL)} "$plan" 'COMMIT;' \\
      | sqlite3 $esc -batch -bail "$db" 2>"$st.err" || echo "$?" > "$st"; }} | sha256sum; }} )
  lh=$1
else
  sqlite3 -batch -bail "$db" ".timeout {int(busy_timeout * 1000)}" ".restore '$backup'" \\
    </dev/null >/dev/null 2>"$st.err" || echo "$?" > "$st"
  lh=-
fi
if [ -s "$st" ]; then  # killed (kill -9, the OOM killer: no message) or refused
  rc=$(head -c 8 "$st" | tr -cd 0-9); err=$(head -n 1 "$st.err" | tr -cd ' -~' | head -c 200)
  printf '{ENTRY_MARK} hash backup %s\\n' "$bh"
  printf '{ENTRY_MARK} hash now %s\\n' "$(content_hash "$db" || echo -)"
  printf '{ENTRY_MARK} hash safety %s\\n' "$(content_hash "file:$dir/$safety?mode=ro&immutable=1" || echo -)"
  case $err in *locked*|*busy*) kind=timeout;; *) kind=verify_failed;; esac
  fail "$kind" "sqlite3 .restore failed with exit status $rc${{err:+: $err}}${{err:- (killed? it printed nothing)}}"
fi
fi
counts "$ro" backup
res=$(sqlite3 -readonly "$db" "PRAGMA {pragma}" 2>&1 | sed '/^\\*\\*\\* in database/d' | head -n 1 | tr -cd ' -~')
printf '{ENTRY_MARK} check %s\\n' "${{res:-no answer from sqlite3}}"
counts "$db" after
printf '{ENTRY_MARK} hash backup %s\\n' "$bh"
printf '{ENTRY_MARK} hash live %s\\n' "$lh"
# the safety backup's hash too: it says which content the live database held before
# (the backup's own: a retried restore, whose safety backup is no undo; review-op #1)
if [ "$bh" != - ]; then
  printf '{ENTRY_MARK} hash safety %s\\n' "$(content_hash "file:$dir/$safety?mode=ro&immutable=1" || echo -)"
fi
printf '{RESULT_MARK} {{"ok": true, "data": {{"backup": "%s", "backup_sha256": "%s", "check": "{check}"}}}}\\n' "$name" "$sum\""""


@purpose("holds")
def holds_script(db: str, directory: str, name: str, safety: str = "") -> str:
    """After a restore on the machine ended without a result (its engine was killed):
    which content the live database holds, against backup ``name`` and ``safety``
    (python3: ``engine.live_holds``; sqlite3: ``hash`` entries, as the restore prints)."""
    check_name(name)
    args = ["holds", "--db", db, "--dir", directory, "--which", name]
    files = {"backup": f"file:{directory}/{name}?mode=ro&immutable=1", "now": db}
    if safety:
        args += ["--safety", check_name(safety)]
        files["safety"] = f"file:{directory}/{safety}?mode=ro&immutable=1"
    return _engine_or_hashes(args, files)


def _engine_or_hashes(args: list[str], files: dict) -> str:
    """The engine's ``args``; with only the sqlite3 CLI, a ``hash WHICH`` entry per file."""
    lines = [f"printf '{ENTRY_MARK} hash {which} %s\\n' \"$(content_hash {shlex.quote(path)} "
             "|| echo -)\"" for which, path in files.items()]
    return _choose(_engine(*args), "\n".join([CONTENT_HASH, *lines]),
                   f"echo {STRATEGY_MARK}=none")


@purpose("same")
def same_script(directory: str, name: str, safety: str) -> str:
    """Whether safety backup ``safety`` holds backup ``name``'s content: the two files'
    content hashes only (python3/node: ``engine.same_content``; sqlite3: ``hash``
    entries), never the live database nor an integrity check."""
    args = ["same", "--dir", directory, "--which", check_name(name), "--safety",
            check_name(safety)]
    files = {"backup": f"file:{directory}/{name}?mode=ro&immutable=1",
             "safety": f"file:{directory}/{safety}?mode=ro&immutable=1"}
    return _engine_or_hashes(args, files)


@purpose("drill")
def drill_script(directory: str, name: str, check: str) -> str:
    """Drill on the machine when it has python3; otherwise say so (the caller downloads)."""
    check_name(name)
    return _choose(_engine("drill", "--dir", directory, "--which", name, "--check", check),
                   "true", f"echo {STRATEGY_MARK}=none")


def _print_manifest(path: str) -> str:
    """Print ``NAME.json`` as one ``MANIFEST_MARK`` line, read like the engine's sidecars:
    a symlink, FIFO, directory or file over ``RECORD_LIMIT`` is none (status 3). Only
    printable ASCII is kept (the tool writes ASCII JSON; newlines are only whitespace
    there), so nothing in the file can start a line of the protocol."""
    q = shlex.quote(path)
    return (f"[ -f {q} ] && [ ! -h {q} ] && [ \"$(wc -c < {q})\" -le {RECORD_LIMIT} ] "
            f"|| exit 3\nprintf '{MANIFEST_MARK} '; tr -cd ' -~' < {q}; echo")


@purpose("manifest")
def manifest_script(directory: str, name: str) -> str:
    """Print ``NAME.json`` on one marked line (exit 3 when there is no usable one)."""
    return _print_manifest(f"{directory}/{check_name(name)}.json")


def manifest_text(stdout: str) -> str:
    """What ``manifest_script`` printed ("" when it printed nothing)."""
    for line in stdout.splitlines():
        if line.startswith(MANIFEST_MARK + " "):
            return line[len(MANIFEST_MARK) + 1:].strip()
    return ""


def recorded_content(text: str, name: str, sha256: str) -> dict:
    """The row counts and content hash that ``text`` (``NAME.json``) recorded for the file whose SHA-256
    is ``sha256``, checked (``engine.checked_manifest``); {} when there are none, or the
    manifest names another file or checksum. Raises EngineError for malformed ones."""
    try:
        raw = engine.parse_record(text or "null")
    except ValueError:
        return {}
    if not isinstance(raw, dict) or raw.get("name") != name or raw.get("sha256") != sha256:
        return {}
    return checked_manifest(raw, f"{name}.json")


@purpose("adopt-upload")
def adopt_upload_script(directory: str, upload: str, name: str, sha256: str,
                        manifest: str, lock_wait: float = 0, stamped: bool = False) -> str:
    """Make an uploaded file the backup ``name``: only if its SHA-256 is the one sent.

    Exit 5 on a mismatch (the upload is removed), 6 when a different backup already has
    the name; the same file under the name is fine. Under the folder's backup lock, the
    sidecars are written like a backup's (``place``: fresh temporaries hard-linked to
    their names, never over or through anything) and the backup appears last, by ``ln -n``.
    Prints ``present`` (the file was there) or ``adopted TIME``. ``stamped``: the record
    (a JSON object) gets ``"uploaded": TIME``, the machine's clock under the lock, so an
    upload's grace never depends on the uploader's clock (review-break2 s20 #3).
    """
    check_name(name)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise OpsError(f"not a SHA-256: {sha256!r}")
    d, up = shlex.quote(directory), shlex.quote(upload)
    final = shlex.quote(f"{directory}/{name}")
    record = shlex.quote(manifest)
    if stamped:
        if not manifest.endswith("}"):
            raise OpsError("an upload's record must be a JSON object")
        record = shlex.quote(manifest[:-1]) + '", \\"uploaded\\": \\"$now\\"}"'
    return f"""{PRELUDE}
{IDENTITY_READERS}
cd {d} || exit 3
[ -f {up} ] && [ ! -h {up} ] || fail error "the upload is not a regular file"
take_lock {d} {_tries(lock_wait)}
placed=""; published=""
# the publish is complete once the file's link exists (engine.publish): then it keeps its records
trap '[ {final} -ef {up} ] && published=1; rm -f {up}; [ -z "$published" ] && [ -n "$placed" ] && rm -f $placed' EXIT
set -- $(sha256sum {up}) || exit 1
if [ "$1" != {sha256} ]; then printf '{ENTRY_MARK} arrived %s\\n' "$1"; exit 5; fi
if [ -e {final} ] || [ -h {final} ]; then
  [ -f {final} ] && [ ! -h {final} ] || exit 6
  set -- $(sha256sum {final})
  [ "$1" = {sha256} ] && {{ printf '{ENTRY_MARK} present\\n'; exit 0; }}
  printf '{ENTRY_MARK} kind %s\\n' "$(record_field kind {final}.json)"  # an upload left?
  exit 6
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)  # engine.iso's form
place {shlex.quote(f"{sha256}  {name}")} {final}.sha256
place {record} {final}.json
ln -n {up} {final} 2>/dev/null || fail exists "{name} already exists; not overwritten"
published=1
printf '{ENTRY_MARK} adopted %s\\n' $now"""


def upload_staging(name: str) -> str:
    """The hidden file restore --from's upload of ``name`` is sent to before its adopt:
    this process's own (not ``.tmp-``: a backup's sweep removes those under its lock, and
    the transfer holds no lock)."""
    check_name(name)
    return f".upload-{name}.{os.getpid()}"


@purpose("discard-upload")
def discard_upload_script(directory: str, name: str, sha256: str, lock_wait: float = 0,
                          staged: str | None = None, adopted: bool = False) -> str:
    """Remove restore --from's upload ``name`` whose restore never began (review-break s20
    #1), under the folder's backup lock: only if it is still the file that was sent (kind
    ``upload`` and SHA-256 ``sha256``) and no safety backup's record names it (a restore of
    it began: ``retention.restores_begun``). Prints ``removed``, ``gone``, ``begun`` or
    ``other`` (a backup that is no upload has the name: the same file was there already);
    exit 7 when the upload there changed since it was sent (then nothing is removed).
    ``staged``: this run's own file the upload was sent to (``upload_staging``), removed
    first, lock or not: a stop between the transfer and the adopt left it (review-break2 #1).
    ``adopted``: this run published the file (its adopt said ``adopted``, not ``present``),
    so a sent-back safety backup (kind ``safety``) is removed under the same checks
    (review-break2 #2); one that was there already is ``other``."""
    check_name(name)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise OpsError(f"not a SHA-256: {sha256!r}")
    d, q = shlex.quote(directory), shlex.quote(name)
    unstage = f"rm -f -- {shlex.quote(f'{directory}/{staged}')}\n" if staged else ""
    return f"""{PRELUDE}
{IDENTITY_READERS}
{unstage}[ -d {d} ] || {{ printf '{ENTRY_MARK} gone\\n'; exit 0; }}
take_lock {d} {_tries(lock_wait)}
cd {d} || exit 1
[ -e {q} ] || [ -h {q} ] || {{ printf '{ENTRY_MARK} gone\\n'; exit 0; }}
[ -f {q} ] && [ ! -h {q} ] && case "$(record_field kind {q}.json)" in {'upload|safety' if adopted else 'upload'}) ;; *) false;; esac || {{ printf '{ENTRY_MARK} other\\n'; exit 0; }}
set -- $(sha256sum {q}) || exit 1
[ "$1" = {sha256} ] || exit 7
for j in steps-*.db.json; do
  [ "$(record_field kind "$j")" = safety ] || continue
  case $(record_restore "$j") in *,{q}) printf '{ENTRY_MARK} begun\\n'; exit 0;; esac
done
rm -f -- {shlex.join([name, f"{name}.sha256", f"{name}.json"])}
printf '{ENTRY_MARK} removed\\n'"""


@purpose("counts")
def counts_script(db: str, directory: str, name: str) -> str:
    """Rows per table of the live database, and the counts recorded for backup ``name``."""
    check_name(name)
    db_q = shlex.quote(db)
    # a missing or non-SQLite live database is named (engine.live_state), so the restore
    # refuses it before asking, as locally
    sqlite = f"""{REFUSE_OTHER_NAMES}
refuse_other_names {db_q} || exit 1
if [ ! -e {db_q} ] && [ ! -h {db_q} ]; then printf '{ENTRY_MARK} state missing\\n'
elif [ -f {db_q} ] && ! is_sqlite {db_q}; then printf '{ENTRY_MARK} state corrupt\\n'
else for t in $(sqlite3 -readonly {db_q} "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"); do
  printf '{ENTRY_MARK} live %s %s\\n' "$t" "$(sqlite3 -readonly {db_q} "SELECT count(*) FROM \\"$t\\"")"
done
printf '{ENTRY_MARK} pages %s %s\\n' "$(sqlite3 -readonly {db_q} "PRAGMA page_size" </dev/null 2>/dev/null | tr -cd 0-9)" \\
  "$(sqlite3 -readonly {db_q} "PRAGMA journal_mode" </dev/null 2>/dev/null | tr -cd a-z)"; fi
( {manifest_script(directory, name)} )"""
    return _choose(_engine("counts", "--db", db, "--dir", directory, "--which", name), sqlite,
                   f"echo {STRATEGY_MARK}=none")


# the schema (engine.SCHEMA_SQL) and the counts (COUNTS_SQL's statement) as hex-encoded
# JSON, so no table name can break a line; hex() is SQLite's: no od or xxd needed there
SCHEMA_HEX_SQL = f"SELECT hex(json_group_array(entry)) FROM ({engine.SCHEMA_SQL})"
COUNTS_HEX_SQL = COUNTS_SQL.replace("'SELECT json_object('", "'SELECT hex(json_object('"
                                    ).replace("|| ');'", "|| '));'")
assert COUNTS_HEX_SQL.count("hex(") == 1 and "'));'" in COUNTS_HEX_SQL


@purpose("shape")
def shape_script(db: str, directory: str, name: str) -> str:
    """The data guard's two sides (the engine's ``shape``). With only the sqlite3 CLI:
    rows per table and the schema of the live database and of the backup file, as
    hex-encoded JSON entry lines, the backup's record and its checksums (used when that
    record holds no counts: then the counts are the file's, vouched for by its SHA-256)."""
    backup = f"{directory}/{check_name(name)}"
    sqlite = f"""side() {{
  q=$(sqlite3 -readonly -batch "$2" {shlex.quote(COUNTS_HEX_SQL)} </dev/null 2>/dev/null) || fail corrupt "cannot read the $1 database"
  rows=7B7D; [ -n "$q" ] && {{ rows=$(printf '%s\\n' "$q" | sqlite3 -readonly -batch "$2" 2>/dev/null) || fail corrupt "cannot count the $1 database's rows"; }}
  printf '{ENTRY_MARK} %s_rows %s\\n' "$1" "$rows"
  s=$(sqlite3 -readonly -batch "$2" {shlex.quote(SCHEMA_HEX_SQL)} </dev/null 2>/dev/null) || fail corrupt "cannot read the $1 database's schema"
  printf '{ENTRY_MARK} %s_schema %s\\n' "$1" "$s"
}}
f={shlex.quote(backup)}
is_sqlite "$f" || fail not_found "backup not found: $f"
side live {shlex.quote(db)}
side backup "file:$f?mode=ro&immutable=1"
( {_print_manifest(backup + ".json")} ) || :
printf '{ENTRY_MARK} sha256 %s %s\\n' "$(recorded "$f.sha256")" "$(sha256sum "$f" | cut -c1-64)"
"""
    return _choose(_engine("shape", "--db", db, "--dir", directory, "--which", name), sqlite,
                   f"echo {STRATEGY_MARK}=none")


@purpose("adopt")
def adopt_script(directory: str, which: str, by: str, *, dry_run: bool = False,
                 lock_wait: float = 0) -> str:
    """``backup.adopt`` on the machine: the engine's ``adopt_backups`` (python3's, or
    engine.js's ``adoptBackups`` under node; with neither it changes nothing). Like a
    backup's, the records hold the row counts and no content hash (issue 21)."""
    if which != "all":
        check_name(which)
    args = ["adopt", "--dir", directory, "--which", which, "--by", by,
            "--lock-wait", f"{lock_wait:g}"] + (["--dry-run"] if dry_run else [])
    refuse = ("fail usage 'backup.adopt needs python3 or node with a SQLite binding (machine.check) "
              "on the machine; download the backup "
              "(invoke backup.download NAME), check it and restore it with --from instead'")
    return _choose(_engine(*args), refuse, refuse)
