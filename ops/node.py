"""The Node engine's shipping: ``ops/engine.js`` rides on stdin after ``ops/engine.py``.

A script chooses its engine on the machine (``remote._choose``: python3, then node with
the app's SQLite binding, then the sqlite3 CLI), so stdin carries both engines, python's
first: the python3 branch reads exactly ``engine.py``'s bytes (``head -c``), the node
branch everything after them (``tail -c +``). One round trip, whichever engine runs.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ops import engine

ENGINE_PY = Path(engine.__file__)
ENGINE_JS = Path(__file__).with_name("engine.js")
ENGINES = ("python3", "node")  # the engines that answer with the engine's JSON result
DEFAULT_APP_DIR = "/app"  # machine.app_dir: the WORKDIR of Fly's Node images

# Is there a usable binding? better-sqlite3 from the app's folder, else node:sqlite, and it
# must open SQLite URIs (every read of a backup is ``file:...?mode=ro&immutable=1``); the
# probe path is in a folder that does not exist, so a binding without URIs creates nothing.
# node:sqlite must also take user functions (Node 22.13+): json-2 needs ieee754_to_blob.
# Exit codes (``ops.machine.parse`` words them): 3 no binding at all; 4 no URIs; 5 node:sqlite
# without user functions; 6 better-sqlite3 is installed but does not load (built for another
# Node: its error, whitespace folded and escaped to one bounded ASCII line, on stdout);
# 7 node:sqlite without backup().
PROBE_JS = (
    "process.env.SQLITE_USE_URI='1';const p=require('path');let D=null,n=null,b=null,x=0;"
    "try{const r=require('module').createRequire(p.join(p.resolve(process.env.OPS_APP_DIR||"
    "'/app'),'package.json'));let f=null;try{f=r.resolve('better-sqlite3')}catch(e){}"
    "if(f){try{D=r('better-sqlite3');n='better-sqlite3'}catch(e){b=String(e&&e.message)}}}"
    "catch(e){}"
    "if(!D){try{const s=require('node:sqlite');"
    "if(typeof s.DatabaseSync.prototype.function!=='function')x=5;"
    "else if(typeof s.backup!=='function')x=7;"
    "else{D=function(f){return new s.DatabaseSync(f)};n='node:sqlite'}}catch(e){}}"
    "if(!D&&b!==null){console.log(JSON.stringify(b.replace(/\\s+/g,' ').slice(0,300))"
    ".replace(/[^ -~]/g,function(c){return '\\\\u'+"
    "('000'+c.charCodeAt(0).toString(16)).slice(-4)}));"
    "process.exit(6)}"
    "if(!D)process.exit(x||3);"
    "try{const d=n==='node:sqlite'?D('file:/nonexistent-ops-probe/x.db?mode=memory'):"
    "new D('file:/nonexistent-ops-probe/x.db?mode=memory');d.close()}catch(e){process.exit(4)}"
    "console.log(n)"
)


def js_source() -> bytes:
    """engine.js as shipped: json-2's SQL from ops/engine.py in front of it, so both engines
    run the very same statements (one definition of the content hash)."""
    hash_sql = json.dumps({"head": list(engine.HASH_HEAD_SQL), "plan": engine.HASH_PLAN_SQL,
                           "probe": engine.IEEE754_PROBE_SQL})
    return f"'use strict';const OPS_HASH_SQL = {hash_sql};\n".encode() + ENGINE_JS.read_bytes()


def engine_stdin() -> bytes:
    """What a script that runs an engine reads on stdin: engine.py, then engine.js."""
    return ENGINE_PY.read_bytes() + js_source()


def engine_run() -> str:
    """The shell function both engine branches call: ``engine_run python3 - ARGS...``
    runs the engine ``$OPS_ENGINE`` names (python3 unless node), reading its own part of
    stdin; the first two words keep the call reading as python3's in logs and tests."""
    size = ENGINE_PY.stat().st_size
    return (f'engine_run() {{ shift 2; if [ "${{OPS_ENGINE:-}}" = node ]; then '
            f'tail -c +{size + 1} | node - "$@"; '
            f'else head -c {size} | {engine.PYTHON3} - "$@"; fi; }}')


# asked once per script, and emptied first, as has_python (remote.PRELUDE)
HAS_NODE = ('ops_has_node=\n'
            'has_node() { [ -n "${ops_has_node-}" ] || { command -v node >/dev/null 2>&1 '
            "&& node -e " + shlex.quote(PROBE_JS) + " </dev/null >/dev/null 2>&1 "
            '&& ops_has_node=yes || ops_has_node=no; }; [ "$ops_has_node" = yes ]; }')


def app_dir_line(app_dir: str) -> str:
    """Where the app's ``node_modules`` is, as a first line for a script: none for the
    default (the engine and the probe look in /app), so default scripts stay as built."""
    if app_dir.rstrip("/") == DEFAULT_APP_DIR:
        return ""
    return f"OPS_APP_DIR={shlex.quote(app_dir)}; export OPS_APP_DIR"


def with_app_dir(app_dir: str, script: str) -> str:
    line = app_dir_line(app_dir)
    return f"{line}\n{script}" if line else script
