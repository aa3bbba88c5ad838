"""--lock-wait (and backup.lock_wait, deploy.lock_wait) take the duration forms
--busy-timeout and --max-age take (s21 review-op #9: `--lock-wait 5m` was refused as
"must be a number"); a plain number stays seconds, and the limits and the refusal of
other digits are as before."""

from __future__ import annotations

import pytest

from ops import config
from ops.errors import OpsError


@pytest.mark.parametrize("typed, seconds", [("5m", 300.0), ("1h30m", 5400.0), ("90s", 90.0),
                                            ("90", 90.0), ("1e3", 1000.0), (" 12 ", 12.0)])
def test_a_lock_wait_takes_a_duration(typed, seconds):
    assert config.load({}, lock_wait=typed).lock_wait == seconds
    assert config.load({}, deploy_lock_wait=typed).deploy_lock_wait == seconds
    assert config.load({"backup": {"lock_wait": typed}}).lock_wait == seconds


@pytest.mark.parametrize("typed, said", [("2d", "--lock-wait must be at most 86400, got '2d'"),
                                         ("5x", "--lock-wait must be a number, got '5x'"),
                                         ("١٢m", "--lock-wait must be a duration like")])
def test_a_bad_duration_is_one_usage_line(typed, said):
    with pytest.raises(OpsError) as refused:
        config.load({}, lock_wait=typed)
    assert str(refused.value).startswith(said) and refused.value.code == 2


def test_the_cli_takes_a_lock_wait_duration(wal_db, run_invoke):
    made = run_invoke.here("backup", "--lock-wait", "5m")
    assert made.returncode == 0, made  # was: exit 2, "--lock-wait must be a number"
