"""After a restore, the target settles the app (issue 22 item 3): the restore flow asks
the target (``settle``) instead of knowing what Fly needs. The Fly machine restarts and
waits for /health; this computer's folder and an SSH host have nothing to do.

The whole runs (restart and /health recorded as steps, none elsewhere) are the contract
test's (tests/test_restore_contract.py); here the targets' own answers, as data.
"""

from __future__ import annotations

import pytest

from ops import config, restore
from ops.errors import OpsError
from ops.targets.chosen import target_for
from tests.fake_production import HealthApp

HEALTHY = {"status": "ok", "backup": {"hasBackups": True, "count": 1, "latest": {
    "name": "steps-2026-01-01T00-00-00.db", "created": "2026-01-01T00:00:00Z", "age": 1000}}}


class Heard:
    """A reporter that keeps the waiting lines."""

    def __init__(self):
        self.waits: list[str] = []

    def waiting(self, message: str) -> None:
        self.waits.append(message)

    def warn(self, message: str) -> None:
        raise AssertionError(message)


def settings(tmp_path, **sections):
    return config.load({"db": {"path": str(tmp_path / "steps.db")},
                        "backup": {"dir": str(tmp_path / "backups")}, **sections})


def test_a_local_folder_and_an_ssh_host_have_nothing_to_settle(tmp_path):
    local = target_for(settings(tmp_path), Heard())
    host = target_for(settings(tmp_path, ssh={"host": "ops@127.0.0.1:2222"}), Heard())
    assert (type(local).__name__, local.settle()) == ("LocalTarget", [])
    assert (type(host).__name__, host.settle()) == ("SshTarget", [])


def test_fly_restarts_then_waits_for_health(tmp_path):
    with HealthApp() as server:
        server.body = HEALTHY
        server.unhealthy_first = 1  # the restarted app answers 503 once: the wait goes on
        heard = Heard()
        fly = target_for(settings(tmp_path, fly={"app": "steps-app"}, health={
            "url": server.url, "timeout": "5", "interval": "0.05"}), heard, production=True)
        phases = fly.settle()
        assert [key for key, _ in phases] == ["restart", "health"]
        detail = dict(phases)["health"]()  # the target's own wait, not the flow's
        assert server.requests == 2 and heard.waits  # it waited, and said why
        assert detail == "200 with a backup block after 2 poll(s)", detail


class Unsettled:
    """A production target that forgets to say how it settles the app."""

    flag = " --production"

    def restore_actions(self, flow) -> dict:  # its restore runs there, as on any host
        return flow.there(self)

    def settle(self) -> list:
        return []


def test_a_plan_step_no_target_does_is_refused_never_passed_as_done(tmp_path):
    run = restore.Restore(restore.RestoreOptions(production=True),
                          settings(tmp_path, fly={"app": "steps-app"}), ui=None,
                          target=Unsettled())
    with pytest.raises(OpsError, match=r"without an action: \['restart', 'health'\]"):
        run._steps()
