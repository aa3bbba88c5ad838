"""ops.retention.plan_retention as data: examples first, then properties (hypothesis)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.engine import BackupFile, backup_name, iso
from ops.retention import Decision, plan_retention, to_remove, validate_keep

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def backup(day: float, verified: bool = True) -> BackupFile:
    """A backup as list_backups reports it, created ``day`` days after BASE."""
    when = BASE + dt.timedelta(days=day)
    name = backup_name(when)
    return BackupFile(name=name, path=f"/data/backups/{name}", created=iso(when), size=4096,
                      sha256="0" * 64 if verified else None, verified=verified)  # fmt: skip


def kept(decisions: list[Decision]) -> list[str]:
    return [d.name for d in decisions if d.keep]


# ---------------------------------------------------------------- examples


def test_keeps_the_newest_n_and_says_why():
    items = [backup(day) for day in range(5)]
    decisions = plan_retention(items, 2)
    assert [d.name for d in decisions] == [b.name for b in reversed(items)]  # newest first
    assert [(d.keep, d.reason, d.action) for d in decisions] == [
        (True, "newest 2", "keep"),
        (True, "newest 2", "keep"),
        (False, "older than the newest 2", "remove"),
        (False, "older than the newest 2", "remove"),
        (False, "older than the newest 2", "remove"),
    ]
    assert to_remove(decisions) == [items[2].name, items[1].name, items[0].name]


def test_order_comes_from_created_not_from_the_list():
    items = [backup(day) for day in (3, 0, 4, 1, 2)]
    decisions = plan_retention(items, 3)
    assert kept(decisions) == [backup(4).name, backup(3).name, backup(2).name]
    assert sorted(to_remove(decisions)) == sorted([backup(0).name, backup(1).name])


def test_fewer_backups_than_keep_removes_nothing():
    items = [backup(day) for day in range(3)]
    assert to_remove(plan_retention(items, 10)) == []
    assert plan_retention([], 10) == []


def test_never_removes_the_newest_verified_backup():
    # the newest 3 are old-script files (no manifest); the last good one we made is older
    verified_old = backup(0, verified=True)
    older_verified = backup(-1, verified=True)
    unverified = [backup(day, verified=False) for day in (1, 2, 3, 4)]
    decisions = plan_retention([older_verified, verified_old, *unverified], 3)
    by_name = {d.name: d for d in decisions}
    assert by_name[verified_old.name].keep
    assert by_name[verified_old.name].reason == "newest verified backup"
    assert not by_name[older_verified.name].keep
    assert sorted(to_remove(decisions)) == sorted([older_verified.name, unverified[0].name])
    assert len(kept(decisions)) == 4


def test_nothing_verified_means_plain_keep_n():
    items = [backup(day, verified=False) for day in range(4)]
    assert kept(plan_retention(items, 2)) == [items[3].name, items[2].name]


@pytest.mark.parametrize(
    "keep, message",
    [
        (0, "--keep must be at least 1, got 0 (it would delete every backup)"),
        (-1, "--keep must be at least 1, got -1"),
        ("0", "--keep must be at least 1, got 0"),
        ("abc", "--keep must be a whole number, got 'abc'"),
        ("", "--keep must be a whole number, got ''"),
        ("2.5", "--keep must be a whole number, got '2.5'"),
        (2.5, "--keep must be a whole number, got 2.5"),
        (True, "--keep must be a whole number, got True"),
        (None, "--keep must be a whole number, got None"),
    ],
)
def test_bad_keep_is_a_clear_value_error(keep, message):
    with pytest.raises(ValueError) as info:
        plan_retention([backup(0)], keep)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("keep, expected", [(1, 1), ("3", 3), (" 7 ", 7), ("10", 10)])
def test_keep_accepts_whole_numbers_and_their_strings(keep, expected):
    assert validate_keep(keep) == expected


# ---------------------------------------------------------------- properties

backup_lists = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**7), st.booleans()),
    max_size=30,
    unique_by=lambda pair: pair[0],
).map(
    lambda pairs: [
        backup(seconds / 86400, verified) for seconds, verified in pairs
    ]
)


@settings(max_examples=200, deadline=None)
@given(items=backup_lists, keep=st.integers(min_value=1, max_value=40), seed=st.randoms())
def test_retention_properties(items, keep, seed: random.Random):
    shuffled = list(items)
    seed.shuffle(shuffled)
    decisions = plan_retention(shuffled, keep)

    newest_first = sorted(items, key=lambda b: b.created, reverse=True)
    by_count = {b.name for b in newest_first[:keep]}
    newest_verified = next((b.name for b in newest_first if b.verified), None)
    kept_names = {d.name for d in decisions if d.keep}
    removed = {d.name for d in decisions if not d.keep}
    created = {b.name: b.created for b in items}

    # one decision per backup, newest first, nothing invented
    assert [d.name for d in decisions] == [b.name for b in newest_first]
    # kept count: min(len, N), plus one when the newest verified is older than the N newest
    extra = 1 if newest_verified is not None and newest_verified not in by_count else 0
    assert len(kept_names) == min(len(items), keep) + extra
    assert kept_names.isdisjoint(removed)
    assert kept_names | removed == set(created)
    assert by_count <= kept_names
    # every removed backup is older than every backup kept by count
    if removed and by_count:
        assert max(created[n] for n in removed) < min(created[n] for n in by_count)
    # the newest verified backup always survives
    if newest_verified is not None:
        assert newest_verified in kept_names
    # the plan is a pure function of the set, not of the list's order
    assert plan_retention(items, keep) == decisions
    assert to_remove(decisions) == [d.name for d in decisions if not d.keep]


@settings(max_examples=60, deadline=None)
@given(items=backup_lists, keep=st.one_of(st.integers(max_value=0), st.text(max_size=5)))
def test_bad_keep_never_plans_anything(items, keep):
    try:
        if int(str(keep).strip()) >= 1:
            return  # a valid number written as text ("5", " +3 ", "1_0")
    except ValueError:
        pass
    with pytest.raises(ValueError, match="--keep must be"):
        plan_retention(items, keep)
