"""A rollback stopped by a signal (a cancelled CI job) leaves an honest audit line and,
once its `fly deploy --image` has started, the lines to finish by hand (issue 22: SIGTERM
during any mutating task). A real SIGTERM to the real process while the double's
`fly deploy` hangs.
"""

from __future__ import annotations

import signal

from ops import health
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import APP, label
from tests.flyctl_double import IMAGE_V11

BY_HAND = "To finish by hand, run from the failed step on:"


def test_sigterm_during_a_rollbacks_deploy_leaves_the_lines_to_finish_by_hand(site):
    site.world.hang(["deploy"], seconds=60)
    run = site.start("deploy.rollback", "--json")
    helpers.wait_for(lambda: "deploy" in [label(argv) for argv in site.world.calls()],
                     timeout=60, what="flyctl deploy")
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(timeout=40)

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
