"""An SSH host names itself in every message: the SSH path never says "the machine" where it
means the host (issue 20 #8), through the real CLI against a real OpenSSH server."""

from __future__ import annotations

import re
import shutil

import pytest

from ops import remote
from ops.errors import ExitCode, OpsError
from tests import helpers

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

MACHINE = re.compile(r"\bthe machine\b|\bmachine's\b")


def test_an_ssh_hosts_failures_and_warnings_name_the_host_not_a_machine(host, run_invoke):
    env, addr = host["env"], host["addr"]
    made = run_invoke("backup", "--host", addr, "--json", env=env)
    assert made.returncode == 0, made.stderr
    old = "steps-2020-01-01T00-00-00.db"  # an old-script backup: no SHA-256 recorded
    shutil.copy(host["dir"] / made.json()["backup"]["name"], host["dir"] / old)

    missing, fetched, *others = helpers.run_parallel([
        lambda: run_invoke("backup.verify", "steps-2021-01-01T00-00-00.db", "--host", addr,
                           env=env),  # the engine's failure, as the host's output says it
        lambda: run_invoke("backup.download", old, "--host", addr, env=env),
        lambda: run_invoke("backup.list", "--host", addr, env=env),
        lambda: run_invoke("backup.status", "--host", addr, env=env),
        lambda: run_invoke("backup.drill", "--host", addr, env=env),
        lambda: run_invoke("backup.cleanup", "--keep", "1", "--dry-run", "--host", addr, env=env),
        lambda: run_invoke("machine.check", "--host", addr, env=env),
    ])
    assert missing.returncode == ExitCode.NOT_FOUND, missing.stderr
    assert f"verify on {addr}: " in missing.error_lines[0], missing.stderr
    assert fetched.returncode == 0, fetched.stderr
    assert f"{old} has no SHA-256 recorded on {addr}" in fetched.stderr
    assert [r.returncode for r in others] == [0, 0, 0, 0, 0], [r.stderr for r in others]
    for result in (made, missing, fetched, *others):
        assert not MACHINE.search(result.stderr), result.stderr


def test_a_hosts_unexpected_output_names_that_host():
    stray = f"{remote.RESULT_MARK}garbage"
    with pytest.raises(OpsError, match=r"^deploy@box:22's output has a line"):
        remote.parse_output(stray, host="deploy@box:22")
    with pytest.raises(OpsError, match=r"^the machine's output has a line"):
        remote.parse_output(stray)  # the Fly machine's session keeps its word
    failed = remote.parse_output(f'{remote.RESULT_MARK} {{"ok": false, "kind": "not_found", '
                                 '"error": "gone"}\n', host="deploy@box:22")
    with pytest.raises(OpsError, match=r"^verify on deploy@box:22: gone$"):
        failed.data("verify")
