"""Deploy preflight reads machine.check (issue 17 #3): on the app's own image without an
engine a restore could not run, which is said before the deploy, and recorded."""

from __future__ import annotations

from tests import node_env


def test_a_machine_where_restore_cannot_run_is_a_deploy_warning(site):  # noqa: F811
    site.world.set_machine_image("node")  # no binding in machine.app_dir (/app here)
    command = (f"mkdir -p {site.backups} && cp {site.db} "
               f"{site.backups}/steps-$(date -u +%Y-%m-%dT%H-%M-%S).db")
    result = site.run("deploy", "--json", env={"INVOKE_BACKUP_REMOTE_COMMAND": command})
    assert result.returncode == 0, result
    assert "a restore cannot run on the production machine: no engine" in result.stderr
    assert "fix: RUN npm install better-sqlite3" in result.stderr
    record = site.audit()[-1]
    assert record["outcome"] == "ok"
    assert record["machine_check"]["engines"]["backup"] == "remote_command"
    assert "restore" in record["machine_check"]["cannot"]


def test_the_apps_image_with_its_binding_deploys_with_the_node_engine_and_no_warning(
        site):  # noqa: F811
    site.world.set_machine_image("node")
    result = site.run("deploy", "--json",
                      env={"INVOKE_MACHINE_APP_DIR": str(node_env.app_dir())})
    assert result.returncode == 0, result
    assert "cannot run" not in result.stderr and "WARNING" not in result.stderr
    record = site.audit()[-1]
    assert record["backup"]["strategy"] == "node"
    assert record["machine_check"]["engines"]["restore"] == "node"
    assert record["machine_check"]["cannot"] == {}


def test_the_warning_stays_when_it_carries_the_dockerfile_line_the_backup_error_lacks(site):  # noqa: F811
    """The restore warning is left to the backup's step when that step meets the same
    reason (s26), but not when it names a Dockerfile fix the backup's error does not
    (s26 review-break): a sqlite3-only image without sha256sum."""
    site.world.remove_machine_tools("python3", "sha256sum")
    result = site.run("deploy", "--json")
    assert result.returncode == 11, result  # the backup cannot run either: no deploy
    warning = [line for line in result.stderr.splitlines() if "a restore cannot run" in line]
    assert len(warning) == 1 and "fix: RUN apt-get" in warning[0] and "coreutils" in warning[0], \
        result.stderr
    record = site.audit()[-1]
    assert record["machine_check"]["cannot"]["backup"] == record["machine_check"]["cannot"][
        "restore"]
