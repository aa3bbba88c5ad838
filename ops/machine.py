"""What a machine can run: ``invoke machine.check`` (issue 17).

``probe_script`` asks the machine what it has (python3, node and the app's SQLite binding,
the sqlite3 CLI, flock, sha256sum, litestream, free space beside the database, memory);
``plan`` decides, as data, which engine each task will use there, which tasks cannot run,
and the Dockerfile lines that close each gap. Deploy preflight and ``backup.drill
--production`` read the same plan.
"""

from __future__ import annotations

import shlex

from ops import digits, node, remote
from ops import engine as engine_module

ENTRY = remote.ENTRY_MARK
# python3 must be >= 3.8 with its sqlite3 module, as ``remote.PRELUDE``'s has_python asks
PY_VERSION = ("import sqlite3, sys; v = sys.version_info; "
              "print('%d.%d.%d' % v[:3], sqlite3.sqlite_version, int(v >= (3, 8)))")
BINDING_JS = node.PROBE_JS.replace("console.log(n)",
                                   "console.log(n + ' ' + process.versions.node)")


def probe_script(db: str, directory: str, app_dir: str) -> str:
    """Print one ``ENTRY key value...`` line per fact; changes nothing on the machine. A
    fact is one line whatever it holds (a file name's newline could add entries)."""
    q = shlex.quote
    return node.with_app_dir(app_dir, f"""# ops: machine.check
fact() {{ printf '{ENTRY} %s\\n' "$(printf '%s' "$*" | tr -c ' -~' '?')"; }}
set -- $({engine_module.PYTHON3} -c {q(PY_VERSION)} </dev/null 2>/dev/null) - - -
fact python3 "$1" "$2" "$3"
if [ "$1" = - ] && command -v python3 >/dev/null 2>&1; then  # there, but not usable isolated
  set -- $(python3 --version 2>&1 </dev/null) - -; fact python3_isolated_fails "$2"; fi
out=$(node -e {q(BINDING_JS)} </dev/null 2>/dev/null); rc=$?; set -- $out -
case $rc:$1 in 0:better-sqlite3|0:node:sqlite) fact node "$2" "$1";;
  *) v=$(node --version 2>/dev/null | tr -d v); fact node "${{v:--}}" "-$rc"
     [ "$rc" = 6 ] && fact binding_error "$out";; esac
set -- $(sqlite3 --version 2>/dev/null) -; fact sqlite3 "$1"
command -v flock >/dev/null 2>&1 && fact flock yes || fact flock no
command -v sha256sum >/dev/null 2>&1 && fact sha256sum yes || fact sha256sum no
set -- $(litestream version 2>/dev/null) -; fact litestream "$1"
os=other; [ -f /etc/alpine-release ] && os=alpine; [ -f /etc/debian_version ] && os=debian
fact os "$os"
size=0; for f in {q(db)} {q(db + "-wal")}; do [ -f "$f" ] && size=$((size + $(wc -c < "$f"))); done
{remote.REFUSE_OTHER_NAMES}
( fail() {{ shift; fact other_names "$*"; exit 0; }}; refuse_other_names {q(db)} )
fact db_size "$size"
d={q(directory)}; [ -d "$d" ] || d=$(dirname {q(db)})
free=$(free_kb "$d"); fact free_kb "${{free:--}}"
mem() {{ sed -n "s/^$1: *\\([0-9]*\\).*/\\1/p" /proc/meminfo 2>/dev/null; }}
set -- $(mem MemTotal) -; fact mem_total_kb "$1"
set -- $(mem MemAvailable) -; fact mem_available_kb "$1"
""")


def _number(value: str | None) -> int | None:
    return digits.whole(value)


def parse(entries: list[list[str]]) -> dict:
    """The probe's lines as facts; anything missing or malformed is "none"."""
    raw = {e[0]: e[1:] for e in entries if e}

    def first(key: str) -> str | None:
        value = (raw.get(key) or ["-"])[0]
        return None if value in ("-", "") else value

    python = raw.get("python3") or ["-"]
    node_fact = raw.get("node") or ["-", "-"]
    binding = node_fact[1] if len(node_fact) > 1 else "-"
    unusable = (first("python3_isolated_fails") or "")[:40]  # what `python3 --version` said
    return {
        "python3": python[0] if python[0] != "-" and python[2:3] == ["1"] else None,
        "python3_problem": (
            f"python3 {python[0]} is older than 3.8" if python[2:3] == ["0"] else
            f"python3 {unusable or '(version unknown)'} is here, but `python3 -I -S` cannot "
            "import its sqlite3 module (the engine runs isolated from the image's PYTHON* "
            "variables and site-packages)" if "python3_isolated_fails" in raw else None),
        "python3_sqlite": python[1] if len(python) > 1 and python[1] != "-" else None,
        "python3_own": False,  # a machine's python3; this computer's is own_python()
        "node": first("node"),
        "binding": binding if binding in ("better-sqlite3", "node:sqlite") else None,
        "binding_problem": {"-3": "no better-sqlite3 in machine.app_dir and no node:sqlite",
                            "-4": "the binding cannot open SQLite URIs",
                            "-5": "node:sqlite here has no user functions (Node 22.13+), "
                                  "which the content hash needs",
                            "-6": "better-sqlite3 in machine.app_dir does not load (built for "
                                  f"another Node?): {' '.join(raw.get('binding_error') or [])}"
                                  [:400],
                            "-7": "node:sqlite here has no backup() (Node 22.16+), which every "
                                  "backup and restore uses"}.get(binding),
        "sqlite3": first("sqlite3"),
        "flock": first("flock") == "yes",
        "sha256sum": first("sha256sum") == "yes",
        "litestream": first("litestream"),
        "os": first("os") or "other",
        "db_size": _number(first("db_size")),
        "free": None if _number(first("free_kb")) is None else _number(first("free_kb")) * 1024,
        "mem_total": (_number(first("mem_total_kb")) or 0) * 1024 or None,
        "mem_available": (_number(first("mem_available_kb")) or 0) * 1024 or None,
        # the live database's other names (engine.refuse_other_names): its refusal, or None
        "other_names": " ".join(raw.get("other_names") or []) or None,
    }


def own_python() -> dict:
    """The python3 facts of this computer: local tasks run in this toolkit's own Python
    (in-process), not in whatever python3 the PATH has, so that is the one to report."""
    import platform
    import sqlite3

    return {"python3": platform.python_version(), "python3_sqlite": sqlite3.sqlite_version,
            "python3_problem": None, "python3_own": True}


TASKS = ("backup", "verify", "restore", "drill", "counts", "adopt")


def plan(facts: dict, *, remote_command: bool = False) -> dict:
    """Which engine each task uses on a machine with ``facts``, what cannot run, and why.

    The order is the scripts' own (``remote._choose``): python3, node with a binding,
    the sqlite3 CLI; then per task what is left (the app's own backup command; verify and
    drill download the backup and check it here; a restore has nothing left)."""
    engines = [name for name, there in (("python3", facts["python3"]),
                                        ("node", facts["node"] and facts["binding"]),
                                        ("sqlite3", facts["sqlite3"])) if there]
    best = engines[0] if engines else None
    lock = facts["flock"] or facts["python3"]
    chosen = {
        "backup": best or ("remote_command" if remote_command else None),
        "verify": best or "download",
        "restore": best,
        "drill": next((e for e in engines if e in node.ENGINES), "download"),
        "counts": best,
        # backup.adopt writes the records a drill compares: only an engine computes them
        "adopt": next((e for e in engines if e in node.ENGINES), None),
    }
    problems: dict[str, str] = {}
    if not chosen["adopt"]:
        problems["adopt"] = "needs python3 or node with the app's SQLite binding"
    if not best:
        problems["restore"] = "no engine: neither python3, node with the app's SQLite binding, " \
                              "nor the sqlite3 CLI"
        if not remote_command:
            problems["backup"] = "no engine, and backup.remote_command is not set"
    if best and not lock:
        for what in ("backup", "restore", "adopt"):
            problems[what] = "no flock(1) (and no python3) to take the backup lock"
    if best == "sqlite3" and not facts["sha256sum"]:
        for what in ("backup", "restore"):
            problems.setdefault(what, "the sqlite3 CLI path needs sha256sum")
    size, free = facts.get("db_size"), facts.get("free")
    if size and free is not None and free < size:
        for what in ("backup", "restore"):  # a restore makes its safety backup first
            problems.setdefault(what, f"{free} bytes free beside the backups, the database "
                                      f"needs {size}")
    if facts.get("other_names"):  # every engine refuses it, whatever the machine has
        for what in ("backup", "restore"):
            problems[what] = facts["other_names"]
    # a task that cannot run has no engine it will use (a script reading `engines` alone
    # must not be told otherwise)
    chosen = {what: None if what in problems else engine for what, engine in chosen.items()}
    return {"engines": chosen, "cannot": problems, "fixes": fixes(facts, problems)}


def fixes(facts: dict, problems: dict) -> list[str]:
    """The Dockerfile lines that close each gap, for the image's own package manager."""
    alpine = facts.get("os") == "alpine"
    install = ("RUN apk add --no-cache {}" if alpine else
               "RUN apt-get update && apt-get install -y --no-install-recommends {} "
               "&& rm -rf /var/lib/apt/lists/*")
    lines = []
    needs_engine = "restore" in problems and "no engine" in problems["restore"]
    if needs_engine and facts.get("node") and facts.get("binding_problem", "").startswith(
            "better-sqlite3 in machine.app_dir does not load"):
        lines.append("RUN npm rebuild better-sqlite3  # in the app's folder (machine.app_dir), "
                     "after the image's Node version is set (FROM node:...): it was built for "
                     "another Node")
    elif needs_engine and facts.get("node"):
        lines.append("RUN npm install better-sqlite3@12  # in the app's folder "
                     "(machine.app_dir): the Node engine's binding")
    if needs_engine:
        lines.append(install.format("sqlite3"))
    if any("flock" in p for p in problems.values()):
        lines.append(install.format("util-linux" if not alpine else "util-linux-misc"))
    if any("sha256sum" in p for p in problems.values()):
        lines.append(install.format("coreutils"))
    return lines


def render(facts: dict, decided: dict) -> list[str]:
    """The report as lines, for people."""
    def have(value) -> str:
        return value or "no"

    mib = 1024 * 1024
    own = ", this toolkit's own: local tasks run in it" if facts.get("python3_own") else ""
    python = (facts["python3"] and f"{facts['python3']} (SQLite {facts['python3_sqlite']}{own})"
              or facts.get("python3_problem") and f"no: {facts['python3_problem']}")
    binding = (f", binding {facts['binding']}" if facts["binding"] else
               f", {facts['binding_problem'] or 'no binding'}" if facts["node"] else "")
    yes = {True: "yes", False: "no"}
    lines = [
        f"python3      {have(python)}",
        f"node         {have(facts['node'])}{binding}",
        f"sqlite3 CLI  {have(facts['sqlite3'])}",
        f"flock        {yes[facts['flock']]}   sha256sum {yes[facts['sha256sum']]}"
        f"   litestream {have(facts['litestream'])}",
    ]
    if facts["free"] is not None:
        lines.append(f"space        {engine_module.human_size(facts['free'])} free beside the "
                     f"backups, database {engine_module.human_size(facts['db_size'] or 0)}")
    if facts["mem_total"]:
        lines.append(f"memory       {facts['mem_total'] // mib} MiB"
                     + (f", {facts['mem_available'] // mib} MiB available"
                        if facts["mem_available"] else ""))
    for what in TASKS:
        engine = decided["engines"][what]
        problem = decided["cannot"].get(what)
        lines.append(f"{what:<12} " + (f"CANNOT RUN: {problem}" if problem else engine or
                                        "no engine: the restore plan shows no row counts"))
    lines += [f"fix          {line}" for line in decided["fixes"]]
    return lines
