"""A restore on the machine retried twice still finds the data from before the restores
(issue 21): safety backups' records hold no content hash, so the machine is asked which
earlier safety backup holds the restored backup's content (the retries' own) and which
does not (the data from before). Real WAL files, the flyctl double, each engine."""

from __future__ import annotations

import pytest

from ops import engine
from tests.fake_production import use_engine
from tests.helpers import change, content

pytestmark = pytest.mark.cli_in_process


@pytest.mark.parametrize("tools", ["python3", "sqlite3", "node"])
def test_a_production_restore_retried_twice_undoes_to_the_data_from_before(
        slow_health_prod, tools):
    prod = slow_health_prod
    use_engine(prod, tools)
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    before = content(prod.db)
    first = prod.run("restore", "--production", "--yes", "--json")
    assert first.returncode == 14, first  # restored; /health was slow
    first_safety = first.json()["safety_backup"]["name"]
    assert engine.read_manifest(prod.remote_dir / first_safety)["content_sha256"] is None
    for _ in range(2):  # a retry, and one more: the newest earlier safety is a retry's
        retried = prod.run("restore", "--production", "--yes", "--json")
        assert retried.returncode == 14, retried
        assert f"already held {made.name}'s content" in retried.stderr, retried.stderr
        assert retried.json()["undo"] == first_safety, retried.stderr
    assert engine.describe_file(prod.remote_dir / first_safety)[1] == before
