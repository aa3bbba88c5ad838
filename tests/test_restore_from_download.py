"""The README's flow: `backup.download` a production backup, later put it back with
`restore --production --from FILE` (s21 review-op #1). The upload's record keeps the
download's source (``APP:/path``), which the machine's listing (plain sh on every
image) prints; every later production listing read it as "an entry this tool did not
print" and failed, so `backup.list`, the scheduled `backup` and `backup.cleanup` all
exited 1. Every source form this tool writes is one the listing reads, on each engine;
a source no reader takes is shown as not known for that one backup, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.targets import scripted
from tests.fake_production import use_engine


@pytest.mark.parametrize("machine_engine", ["python3", "sqlite3", "node"])
def test_download_then_restore_from_it_leaves_production_listable(served_prod,
                                                                  machine_engine):
    prod = served_prod
    use_engine(prod, machine_engine)
    assert prod.run("backup", "--production").returncode == 0
    download = prod.run("backup.download", "latest")
    assert download.returncode == 0, download
    (copy,) = [prod.local_dir / name for name in prod.local_files() if name.endswith(".db")]
    source = json.loads(Path(f"{copy}.json").read_text())["source"]
    assert ":/" in source and not source.startswith("/"), source  # APP:/path
    for made in prod.remote_dir.glob(f"{copy.name}*"):  # retention removed it there
        made.unlink()
    restored = prod.run("restore", "--production", "--from", str(copy), "--yes")
    assert restored.returncode == 0, restored
    assert "could not be told" not in restored.stderr + restored.stdout, restored
    listed = prod.run("backup.list", "--production")
    assert listed.returncode == 0, listed  # was: exit 1, "an entry this tool did not print"
    assert copy.name in listed.stdout + listed.stderr, listed
    assert prod.run("backup", "--production").returncode == 0
    cleanup = prod.run("backup.cleanup", "--production")
    assert cleanup.returncode == 0, cleanup


@pytest.mark.parametrize("source", [
    "/data/steps.db", "step-app:/data/steps.db", "deploy@host.example:/srv/steps.db",
    "host:relative/steps.db", "s3://bucket/steps@x", "-", "?"])
def test_every_source_form_this_tool_writes_is_read_from_a_listing(source):
    entry = ["steps-2026-01-01T00-00-00.db", "10", "-", "1", "upload", source, "-", "-"]
    assert scripted.listing_problem(entry) is None


def test_a_source_no_reader_takes_is_not_known_for_that_backup_alone():
    too_long = "/" + "a" * 5000
    entry = ["steps-2026-01-01T00-00-00.db", "10", "-", "1", "backup", too_long, "-", "-"]
    assert scripted.listing_problem(entry) is None
    assert scripted.listed_source(too_long) == "?"


def test_a_refused_entry_says_which_field_within_the_line():
    entry = ["steps-2026-01-01T00-00-00.db", "ten", "-", "1", "backup", "x" * 300, "-", "-"]
    problem = scripted.listing_problem(entry)
    assert problem == "its size field"
