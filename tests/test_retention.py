"""ops.retention.plan_retention as data: examples first, then properties (hypothesis)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ops.engine import BackupFile, backup_name, iso
from ops.retention import (
    FUTURE,
    Decision,
    freed_by,
    good_candidates,
    plan_retention,
    to_remove,
    validate_keep,
)

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOW = BASE + dt.timedelta(days=100)  # "now" for plans that look at the clock


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


def test_never_removes_the_backup_proven_good():
    # the newest 3 are old-script files (no manifest); the last good one we made is older
    verified_old = backup(0, verified=True)
    older_verified = backup(-1, verified=True)
    unverified = [backup(day, verified=False) for day in (1, 2, 3, 4)]
    items = [older_verified, verified_old, *unverified]
    assert good_candidates(items, NOW) == [verified_old.name, older_verified.name]
    decisions = plan_retention(items, 3, good=verified_old.name)
    by_name = {d.name: d for d in decisions}
    assert by_name[verified_old.name].keep
    assert by_name[verified_old.name].reason == "newest backup that passed verification"
    assert not by_name[older_verified.name].keep
    assert sorted(to_remove(decisions)) == sorted([older_verified.name, unverified[0].name])
    assert len(kept(decisions)) == 4


def test_a_manifest_alone_is_not_trusted():
    # without proof (good=...), a manifest keeps nothing beyond the newest N
    items = [backup(day, verified=day == 0) for day in range(4)]
    assert kept(plan_retention(items, 2)) == [items[3].name, items[2].name]


def test_future_dated_names_neither_count_nor_go_and_the_run_keeps_its_own():
    future = [BackupFile(name=backup_name(when), path="", created=iso(when), size=10,
                         verified=True)
              for when in (NOW + dt.timedelta(days=3650), NOW + dt.timedelta(hours=1))]
    olds = [backup(day) for day in (97, 98, 99)]
    mine = BackupFile(name=backup_name(NOW), path="", created=iso(NOW), size=10, verified=True)
    decisions = plan_retention([*future, *olds, mine], 1, now=NOW, protect=(mine.name,))
    assert [(d.name, d.keep, d.reason) for d in decisions] == [
        (future[0].name, True, FUTURE),
        (future[1].name, True, FUTURE),
        (mine.name, True, "newest 1"),
        (olds[2].name, False, "older than the newest 1"),
        (olds[1].name, False, "older than the newest 1"),
        (olds[0].name, False, "older than the newest 1"),
    ]
    assert good_candidates([*future, *olds, mine], NOW)[0] == mine.name  # never a future one
    assert freed_by([*future, *olds, mine], 1, NOW) == 3 * 4096
    # a clock that ran ahead within the slack (10 minutes) is still counted
    near = NOW + dt.timedelta(minutes=5)
    soon = BackupFile(name=backup_name(near), path="", created=iso(near), size=1)
    assert plan_retention([soon, mine], 1, now=NOW)[0].reason == "newest 1"


def test_protected_backup_is_kept_even_when_it_is_not_among_the_newest():
    items = [backup(day) for day in range(4)]
    decisions = plan_retention(items, 1, protect=(items[0].name,))
    assert kept(decisions) == [items[3].name, items[0].name]
    assert decisions[-1].reason == "made by this run"


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
@given(items=backup_lists, keep=st.integers(min_value=1, max_value=40), seed=st.randoms(),
       pick=st.integers(min_value=0))
def test_retention_properties(items, keep, seed: random.Random, pick: int):
    shuffled = list(items)
    seed.shuffle(shuffled)
    candidates = good_candidates(items, NOW)
    newest_verified = candidates[0] if candidates else None  # the one proven good
    decisions = plan_retention(shuffled, keep, good=newest_verified)
    # the run's own backup survives whatever else is planned
    mine = items[pick % len(items)].name if items else None
    assert items == [] or mine in kept(plan_retention(items, keep, protect=(mine,)))

    newest_first = sorted(items, key=lambda b: b.created, reverse=True)
    by_count = {b.name for b in newest_first[:keep]}
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
    assert plan_retention(items, keep, good=newest_verified) == decisions
    assert to_remove(decisions) == [d.name for d in decisions if not d.keep]


def valid_keep(keep) -> bool:
    try:
        return int(str(keep).strip()) >= 1
    except ValueError:
        return False


@settings(max_examples=60, deadline=None)
@given(items=backup_lists, keep=st.one_of(st.integers(max_value=0), st.text(max_size=5)))
def test_bad_keep_never_plans_anything(items, keep):
    assume(not valid_keep(keep))  # not a valid number written as text ("5", " +3 ", "1_0")
    with pytest.raises(ValueError, match="--keep must be"):
        plan_retention(items, keep)
