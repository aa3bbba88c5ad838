"""The production machine of the flyctl double with Litestream (for the deploy and
restore.volume tests of issue 18 item 5): the venv's real litestream on the machine's PATH,
the bucket's settings in its environment, a real moto S3 (``tests.replica_world``)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from ops import poll
from ops import replica as rp
from ops import replica_hooks as rh
from ops.config import load_replica
from tests.fake_production import MID, concurrent_verify_first, label
from tests.replica_world import LITESTREAM


def labels(site) -> list[str]:
    """The flyctl calls by name, the replica's two scripts by what they run."""
    named = []
    for argv in site.world.calls():
        script = argv[argv.index("-C") + 1] if argv[:2] == ["ssh", "console"] else ""
        if rh.MARK in script:
            named.append("ssh replica sync" if "litestream sync" in script
                         else "ssh replica lag")
        else:
            named.append(label(argv))
    return [n for n in concurrent_verify_first(named) if n not in ("ssh lock", "ssh unlock")]


class Replicated:
    """The site's machine with litestream: its PATH has the real binary, its environment
    the bucket's; ``start()`` runs `litestream replicate` on the volume's database."""

    def __init__(self, site, endpoint: str, bucket: str):
        self.site, self.proc = site, None
        self.folder = Path(tempfile.mkdtemp(prefix="rh-", dir="/tmp"))  # a short socket path
        self.bucket_env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "secret",
                           "BUCKET_NAME": bucket, "AWS_ENDPOINT_URL_S3": endpoint,
                           "AWS_REGION": "us-east-1"}
        self.settings = {"INVOKE_REPLICA_SOCKET": str(self.folder / "ls.sock")}
        site.world.add_machine_tool("litestream", LITESTREAM)
        runtime_env = site.world.raw_state_machine(MID)["_runtime"].get("env") or {}
        site.world.set_remote_env(MID, {**runtime_env, **self.bucket_env})
        settings = load_replica({"replica": {"sync_interval": "0.5s",
                                             "socket": self.settings["INVOKE_REPLICA_SOCKET"]}})
        self.config = self.folder / "litestream.yml"
        self.config.write_text(rp.render(settings, str(site.db)))
        (site.cwd / "litestream.yml").write_text(self.config.read_text())  # "configured"

    def start(self) -> None:
        env = {**os.environ, **self.bucket_env}
        env.pop("AWS_CA_BUNDLE", None)
        log = open(self.folder / "litestream.log", "ab")  # noqa: SIM115 (kept with the process)
        self.proc = subprocess.Popen([LITESTREAM, "replicate", "-config", str(self.config)],
                                     env=env, stdout=log, stderr=log)

        def answering():
            assert self.proc.poll() is None, (self.folder / "litestream.log").read_text()
            done = subprocess.run([LITESTREAM, "sync", "-wait", "-json", "-socket",
                                   self.settings["INVOKE_REPLICA_SOCKET"], str(self.site.db)],
                                  env=env, capture_output=True, timeout=30)
            return done.returncode == 0 or None

        poll.until(answering, timeout=30, interval=0.1,
                   expired=lambda p, w: AssertionError(f"litestream not syncing after {w}s"))

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def replicated(site, moto_endpoint):  # noqa: F811
    bucket = f"deploy-replica-{os.getpid()}-{abs(hash(str(site.root))) % 10**8}"
    request = urllib.request.Request(f"{moto_endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    made = Replicated(site, moto_endpoint, bucket)
    try:
        yield made
    finally:
        made.close()
