"""Backup orchestration: backup then retention, cleanup, status; the same for any target.

Decisions (what retention removes, what the status says) are pure functions here
or in ``ops.retention``; the functions that act take a target and a UI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path

from ops import retention
from ops.engine import EngineError, in_future, same_source, source_folder
from ops.errors import ExitCode, OpsError
from ops.ui import UI, backup_phases, human_age, human_bytes, over_limit


def other_database_folder(base: Path, db: Path) -> Path:
    """Where backups of a database other than ``db.path`` go
    (``invoke backup --db OTHER``): a folder of their own in ``backup.dir``, named after
    the file and a hash of its full path, so their retention and ``latest`` never touch
    the app's backups (issue 16 #3)."""
    full = os.path.realpath(db)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(full).stem)[:40] or "db"
    return source_folder(
        Path(base) / f"db-{stem}-{hashlib.sha256(full.encode()).hexdigest()[:8]}")


def same_database(one, other) -> bool:
    """Whether two paths name the same database file (resolved; both may be missing)."""
    return os.path.realpath(one) == os.path.realpath(other)


def make_backup(target, ui: UI, keep: int | None = None, *, check: str | None = None) -> dict:
    """One verified backup on ``target``; raises before anything looks like a backup.

    A full folder also says how much ``backup.cleanup --keep N`` would free (``keep``
    is the configured retention), since retention only runs after a backup.
    """
    with ui.step(f"backup {target.describe()}") as step:
        try:
            with backup_phases(ui) as phases:  # ``check``: a deploy publishes with quick
                result = target.backup(progress=phases.transfer, on_phase=phases.phase,
                                       check=check)
        except (EngineError, OpsError) as exc:
            error = exc if isinstance(exc, OpsError) else OpsError.from_engine(exc)
            if error.code != ExitCode.NO_SPACE:
                raise
            hint = space_hint(target, getattr(exc, "needed", 0) - getattr(exc, "free", 0),
                              keep)
            raise OpsError(f"{error}; {hint}", ExitCode.NO_SPACE) from None
        # a log line, most important first (a narrow terminal drops parts from the end)
        step.label = f"backup {result['name']}"
        step.detail = (
            f"{human_bytes(result['size'])}  sha256 {result['sha256'][:12]}  "
            f"{result['check']}_check ok  [{result.get('strategy', 'engine')}]  "
            f"from {target.describe()}"
        )
    return result


def space_hint(target, shortfall: int, keep: int | None) -> str:
    """The next step out of a full folder, computed from the listing: the largest
    ``--keep N`` that frees at least ``shortfall`` bytes (a backup's size if unknown)."""
    try:
        found = own_backups(target)[0]
    except (EngineError, OpsError):
        found = []
    now = dt.datetime.now(dt.UTC)
    flag = target.flag
    counted = [item for item in found if not in_future(item.created, now)]
    if len(counted) < 2:
        return "no older backup to remove here: free space on that disk"
    if shortfall <= 0:
        shortfall = max(item.size for item in counted)
    upper = min(len(counted) - 1, keep or len(counted) - 1)
    for n in range(upper, 0, -1):
        freed = retention.freed_by(found, n, now)
        if freed >= shortfall:
            return f"`invoke backup.cleanup --keep {n}{flag}` would free {human_bytes(freed)}"
    return (f"`invoke backup.cleanup --keep 1{flag}` would free only "
            f"{human_bytes(retention.freed_by(found, 1, now))}: free space on that disk too")


def cleanup(target, ui: UI, keep: int, *, dry_run: bool = False,
            made: str | None = None) -> list[retention.Decision]:
    """Apply retention on ``target``; with ``dry_run`` only say what would go.

    ``made`` is the backup this run just made and verified: it is never removed and
    is the good backup retention stands on. Without it, before anything is deleted the
    newest backup whose manifest agrees with it is verified in full through
    ``target.verify`` (the next if it fails); if none passes, nothing is deleted.
    """
    label = f"retention keep {keep}" + (" (dry run)" if dry_run else "")
    with ui.step(label) as step:
        now = dt.datetime.now(dt.UTC)
        found, others = own_backups(target)
        protect = (made,) if made else ()
        decisions = retention.plan_retention(found, keep, now=now, protect=protect)
        if retention.to_remove(decisions):
            good = made or newest_good(target, found, now, ui)
            decisions = retention.plan_retention(found, keep, now=now, protect=protect,
                                                 good=good)
        doomed = retention.to_remove(decisions)
        if doomed and not dry_run:  # what a restore holds there is kept (and said)
            doomed = target.delete(doomed)
            decisions = retention.kept_held(decisions, doomed)
        verb = "would remove" if dry_run else "removed"
        step.detail = f"{verb} {len(doomed)}, kept {len(decisions) - len(doomed)}"
        future = sum(1 for d in decisions if d.reason == retention.FUTURE)
        if future:
            step.detail += f" ({future} dated in the future, left alone)"
        safety = sum(1 for d in decisions if d.reason == retention.SAFETY)
        if safety:
            step.detail += f" ({safety} safety backups of restores, left alone)"
        if others:
            step.detail += f" ({len(others)} of another database, left alone)"
    return decisions


def own_backups(target) -> tuple[list, list]:
    """(this target's database's backups, other databases' backups) in its folder:
    retention counts and removes only the first (issue 16 #3). An upload (kind ``upload``)
    is this folder's own whatever its recorded source: retention bounds it
    (``retention.upload_pending``) even when it is a copy of another database."""
    source = getattr(target, "source", None)
    found = target.list()
    ours = [item.kind == "upload" or same_source(item.source, source) for item in found]
    return ([item for item, own in zip(found, ours, strict=True) if own],
            [item for item, own in zip(found, ours, strict=True) if not own])


def newest_good(target, found, now: dt.datetime, ui: UI) -> str:
    """The newest backup that passes a full verification with a recorded checksum."""
    tried = []
    for name in retention.good_candidates(found, now):
        results = target.verify(name)
        result = results[0] if results else {"ok": False, "problems": ["no answer"]}
        if result.get("ok") and result.get("recorded_sha256"):
            return name
        problem = (result.get("problems") or ["no recorded checksum"])[0]
        ui.warn(f"{name} failed verification ({problem}); retention will not stand on it")
        tried.append(name)
    what = f"none of {len(tried)} candidates passed verification" if tried else (
        "none has a manifest and checksum that agree with it")
    raise OpsError(f"retention removed nothing: no backup it can stand on ({what}); "
                   "make a verified one first with `invoke backup`", ExitCode.VERIFY_FAILED)


def staleness(report: dict, max_age_seconds: float | None,
              typed: str | None = None) -> str | None:
    """Why ``report`` should alert, or None; used for ``--max-age`` (``typed``: the limit as
    the operator wrote it, shown back so)."""
    if max_age_seconds is None:
        return None
    if not report.get("hasBackups") or not report.get("latest"):
        future = report.get("futureDated") or []
        return "there are no backups" + (
            f" ({len(future)} dated in the future, not trusted)" if future else "")
    age = report["latest"]["age"] / 1000
    if age > max_age_seconds:
        return (f"the newest backup is {human_age(age)} old "
                f"{over_limit(age, max_age_seconds, typed)}")
    return None


def require_ok(results: list[dict], flag: str = "") -> None:
    """Fail (exit 5) if any backup failed, naming the worst: the last line is often the only
    one a CI annotation shows, so a damaged backup comes before one merely unverifiable."""
    from ops.restore import DAMAGED, damaged  # not at the top: a backup's start needs neither

    bad = worst_first([item for item in results if not item["ok"]])
    if bad:
        first = bad[0]
        problems = [p for p in first["problems"] if not p.startswith("unverifiable")]
        unrecorded = [item for item in bad
                      if any(str(p).startswith("unverifiable") for p in item["problems"])]
        adoptable = [item["name"] for item in unrecorded if not damaged(item["problems"])]
        hint = ""
        if adoptable:  # the old npm scripts' backups: one documented way out (issue 16 #14)
            which = adoptable[0] if len(adoptable) == 1 else "all"
            hint = (f"; {len(adoptable)} without records (the old npm scripts'?): check and "
                    f"adopt with `invoke backup.adopt {which}{flag}`")
        broken = [item["name"] for item in unrecorded if damaged(item["problems"])]
        if broken:  # adopt refuses these: never send anyone there (review-op #9b)
            hint += "; " + DAMAGED.format(name=broken[0]) + (
                f" ({len(broken) - 1} more like it)" if len(broken) > 1 else "")
        raise OpsError(
            f"{len(bad)} of {len(results)} backups failed verification; "
            f"{first['name']}: {(problems or first['problems'])[0]}{hint}",
            ExitCode.VERIFY_FAILED,
        )


def worst_first(bad: list[dict]) -> list[dict]:
    """Failed verdicts, those with a real problem (checksum, integrity, not a database)
    before those whose only problem is that nothing records their checksum."""
    return sorted(bad, key=lambda item: all(p.startswith("unverifiable")
                                            for p in item["problems"]))
