"""Deploy preflight: `fly deploy` must have something to build (issue 19, also).

Without a Dockerfile in the build context, an image, or a [build] section that names one,
`fly deploy` fails at its build, after the backup and the snapshot (exit 13). The preflight
now refuses first (exit 10), with nothing backed up, snapshotted or deployed.
"""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import NEW_IMAGE

pytestmark = pytest.mark.cli_in_process(per="module")


def changing_calls(site) -> list[list[str]]:
    return [argv for argv in site.world.calls()
            if argv[:2] in (["ssh", "console"], ["volumes", "snapshots"], ["deploy"])]


def test_no_dockerfile_and_no_image_stops_at_preflight(site):
    (site.cwd / "Dockerfile").unlink()

    result = site.run("deploy")

    line = helpers.assert_one_line_error(result, ExitCode.DEPLOY_ABORTED_PREFLIGHT, strict=False)
    assert "would have nothing to build: no Dockerfile in" in line
    assert changing_calls(site) == []  # no backup, no snapshot, no deploy
    assert site.audit()[-1]["outcome"] == "preflight failed"

    planned = site.run("deploy", "--dry-run")
    assert planned.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT  # as the run
    assert "nothing to build" in planned.stderr


@pytest.mark.parametrize("setup", ["image_flag", "build_image", "build_dockerfile",
                                   "lowercase"])
def test_what_fly_deploy_can_build_from_passes_preflight(site, setup):
    (site.cwd / "Dockerfile").unlink()
    args = ["deploy", "--dry-run"]
    if setup == "image_flag":
        args += ["--image", NEW_IMAGE]
    elif setup == "build_image":
        with (site.cwd / "fly.toml").open("a") as fh:
            fh.write(f'\n[build]\n  image = "{NEW_IMAGE}"\n')
    elif setup == "build_dockerfile":
        (site.cwd / "docker").mkdir()
        (site.cwd / "docker" / "app.Dockerfile").write_text("FROM node:20-slim\n")
        with (site.cwd / "fly.toml").open("a") as fh:
            fh.write('\n[build]\n  dockerfile = "docker/app.Dockerfile"\n')
    else:
        (site.cwd / "dockerfile").write_text("FROM node:20-slim\n")

    result = site.run(*args)

    assert result.returncode == 0, result
    assert "nothing to build" not in result.stderr


def test_a_build_dockerfile_that_names_no_file_stops_at_preflight(site):
    with (site.cwd / "fly.toml").open("a") as fh:
        fh.write('\n[build]\n  dockerfile = "Dockerfile.prod"\n')

    result = site.run("deploy")

    line = helpers.assert_one_line_error(result, ExitCode.DEPLOY_ABORTED_PREFLIGHT, strict=False)
    assert "[build] dockerfile = 'Dockerfile.prod'" in line
    assert changing_calls(site) == []
