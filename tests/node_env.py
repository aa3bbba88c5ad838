"""Where the tests find Node 20 and better-sqlite3 (issue 17's Node engine).

``.ci/run`` installs better-sqlite3 12.11.1 with npm into a cache folder outside the work
tree and exports its path as ``OPS_TEST_NODE_APP``; without it the same default path is
looked in, and the tests install it there themselves once (a few minutes: npm builds it)
when node and npm are on PATH, so the README's test command alone runs them. That folder
stands for the app's folder on the machine (``machine.app_dir``,
``/app`` on Fly): it holds ``node_modules/better-sqlite3``. Under ``CI=true`` a missing
Node or binding fails the test; elsewhere it skips with the command that installs it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BINDING = "better-sqlite3"
VERSION = "12.11.1"  # 13.x needs Node 22


def default_app_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "step-ops" / "node"


DEFAULT = default_app_dir()  # read at import: the tests give each test its own HOME


def app_dir() -> Path:
    """The folder with ``node_modules/better-sqlite3``; fails under CI, skips elsewhere."""
    folder = Path(os.environ.get("OPS_TEST_NODE_APP") or DEFAULT)
    install(folder)
    missing = []
    if not shutil.which("node"):
        missing.append("node (apt-get install nodejs)")
    if not (folder / "node_modules" / BINDING / "package.json").is_file():
        missing.append(f"{BINDING} in {folder} (npm install --prefix {folder} "
                       f"{BINDING}@{VERSION}, as .ci/run does)")
    if missing:
        reason = "the Node engine tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


def install(folder: Path) -> None:
    """The README's test command alone must run these tests on a machine with Node 20 and
    npm: the binding is installed once into the cache (as .ci/run does), under a lock."""
    marker = folder / "node_modules" / BINDING / "package.json"
    if marker.is_file() or not (shutil.which("node") and shutil.which("npm")):
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return
        subprocess.run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                        "--silent", f"{BINDING}@{VERSION}"], check=False, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def node_path(directory: Path, tools: list[str]) -> str:
    """A PATH folder with these host tools and node, but neither python3 nor sqlite3."""
    directory.mkdir(exist_ok=True)
    for tool in [*tools, "node", "tail"]:
        found = shutil.which(tool)
        if found and not (directory / tool).exists():
            (directory / tool).symlink_to(found)
    return str(directory)


def app_committing(folder: Path, real_app: str, live: Path, when: str | None) -> Path:
    """An app folder whose better-sqlite3 is the real one (from ``real_app``), its
    ``backup()`` wrapped so that the app commits a row into ``live`` on a connection of its
    own just ``before`` or ``after`` the engine's copy into it: the race a busy machine
    makes now and then, every time."""
    binding = folder / "node_modules" / BINDING
    binding.mkdir(parents=True)
    (binding / "package.json").write_text(json.dumps(
        {"name": BINDING, "version": VERSION, "main": "index.js"}))
    real, target = json.dumps(str(Path(real_app) / "node_modules" / BINDING)), json.dumps(str(live))
    (binding / "index.js").write_text(f"""
const Real = require({real});
const backup = Real.prototype.backup;
const commit = (file) => {{
  const db = new Real(file);
  db.exec("INSERT INTO steps (user_id, date, count, updated_at) VALUES (1, '2099-01-01', 7, 'x')");
  db.close();
}};
Real.prototype.backup = async function wrapped(dest, options) {{
  if (dest === {target} && {json.dumps(when)} === 'before') commit(dest);
  const done = await backup.call(this, dest, options);
  if (dest === {target} && {json.dumps(when)} === 'after') commit(dest);
  return done;
}};
module.exports = Real;
""")
    return folder
