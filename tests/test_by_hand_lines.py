"""What a stopped run prints to finish by hand can be pasted into a shell (review-break
#8): values the run learnt fill the placeholders, a script shown only by its purpose is
never offered as a command, and a question is a comment, not shell syntax."""

from __future__ import annotations

import subprocess

from ops import deploy, runbook


def bash_parses(line: str) -> bool:
    return subprocess.run(["bash", "-n", "-c", line], capture_output=True).returncode == 0


def test_every_by_hand_line_of_a_deploy_and_a_rollback_is_shell():
    for rollback in (None, 0):
        options = deploy.DeployOptions(app="app", config="fly.toml",
                                       health_url="https://app.fly.dev/health",
                                       rollback_to=rollback)
        lines = runbook.by_hand_lines(deploy.plan(options))
        assert any("release out?" in line for line in lines)  # the question is still asked
        for line in lines:
            assert bash_parses(line), line


def test_restore_volume_go_back_names_the_volume_it_created(site):
    site.world.fail(["machine", "clone"])
    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode != 0, result
    created = result.json()["new"]["new_volume"]
    assert created.startswith("vol_")
    back = result.stderr[result.stderr.index("To go back to the old machine"):]
    assert f"a machine with {created} is the clone" in back, back
    assert "<new_volume>" not in back


def test_emergency_stop_by_hand_lines_hold_no_script_placeholder(site):
    site.world.fail(["machine", "update"])
    result = site.run("emergency.stop", "--yes", "--json")

    assert result.returncode != 0, result
    manual = result.json()["manual"]
    assert [line.rsplit("# ", 1)[-1] for line in manual] == ["update", "record", "verify",
                                                             "quiet"]
    assert not any("<script" in line for line in manual), manual
    assert "<script" not in result.stderr[result.stderr.index("To finish by hand"):]
    for line in manual:
        assert bash_parses(line), line
