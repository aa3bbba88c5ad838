"""What a deploy stopped by a signal leaves: an honest audit line and, once `fly deploy`
has started, what to finish by hand (issue 22: one runner for every mutating task).

A real SIGTERM to the real process while the double's `fly deploy` (or the backup on
the machine) hangs. Before `fly deploy` nothing is half done: no by-hand lines, the
error says nothing was deployed (``test_deploy_refusals`` checks the locks and the rest
of the audit line for both cases).
"""

from __future__ import annotations

import signal

from ops import health, remote
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import APP, NEW_IMAGE, label
from tests.flyctl_double import IMAGE_V11

BY_HAND = "To finish by hand, run from the failed step on:"


def stopped_during(one, call: str, *args: str):
    run = one.start(*args)
    helpers.wait_for(lambda: call in [label(argv) for argv in one.world.calls()],
                     timeout=60, what=f"flyctl call {call!r}")
    run.proc.send_signal(signal.SIGTERM)
    return run.finish(timeout=40)


def test_sigterm_during_fly_deploy_leaves_the_lines_to_finish_by_hand(site):
    site.world.hang(["deploy"], seconds=60)
    result = stopped_during(site, "deploy", "deploy", "--json", "--skip-backup",
                            "--image", NEW_IMAGE)

    assert result.returncode == ExitCode.TERMINATED, result
    (entry,) = site.audit()
    assert entry["outcome"] == "terminated by SIGTERM during deploy"
    fly_deploy = f"fly deploy -a {APP} -c fly.toml --image {NEW_IMAGE}"
    assert entry["manual"] == [
        f"  fly releases -a {APP}   # is the deploy's release out? if not:",
        f"  {fly_deploy}   # deploy",
        f"  {health.by_hand(site.health.url)}   # health",
    ]
    shown = result.stderr.splitlines()
    at = shown.index(BY_HAND)
    assert shown[at + 1:at + 4] == entry["manual"], result.stderr
    assert "the release may be out" in result.error_lines[0]


def test_sigterm_during_a_rollbacks_deploy_leaves_the_lines_to_finish_by_hand(site):
    # issue 22: every mutating flow, the rollback too (its by-hand line quotes the image)
    site.world.hang(["deploy"], seconds=60)
    result = stopped_during(site, "deploy", "deploy.rollback", "--json")

    assert result.returncode == ExitCode.TERMINATED, result
    (entry,) = site.audit()
    assert entry["kind"] == "rollback"
    assert entry["outcome"] == "terminated by SIGTERM during deploy"
    assert entry["manual"] == [
        f"  fly releases -a {APP}   # is the rollback's release out? if not:",
        f"  fly deploy -a {APP} -c fly.toml --image '{IMAGE_V11}'   # deploy",
        f"  {health.by_hand(site.health.url)}   # health",
    ]
    shown = result.stderr.splitlines()
    at = shown.index(BY_HAND)
    assert shown[at + 1:at + 4] == entry["manual"], result.stderr


def test_sigterm_before_fly_deploy_leaves_nothing_to_finish_by_hand(site):
    backup = remote.wrap(remote.backup_script(str(site.db), str(site.backups),
                                              check="integrity"))
    site.world.hang(["ssh", "console", "-C", backup], seconds=60)
    result = stopped_during(site, "ssh backup", "deploy", "--json")

    assert result.returncode == ExitCode.TERMINATED, result
    (entry,) = site.audit()
    assert entry["outcome"] == "terminated by SIGTERM during backup"
    assert "manual" not in entry and BY_HAND not in result.stderr, result.stderr
    assert "nothing was deployed" in result.error_lines[0]
