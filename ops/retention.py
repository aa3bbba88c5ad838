"""Which backups to keep: a pure policy over a list of backups, like restic's ``forget``.

The same plan serves local and remote folders, ``--dry-run`` prints it, and the
tests check it as data. Only files named like backups ever reach it.

What it trusts: the time in a name only when it is not ahead of ``now`` (a clock
that ran ahead, or junk, must not push real backups out), and a backup as "good"
only when the caller proved it (``good``: it passed a full verification). The
backup a run just made (``protect``) is never removed by that run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from ops import digits

FUTURE = "dated in the future: not counted, never removed automatically"
SAFETY = "a restore's safety backup: not counted, never removed automatically"
UPLOAD_GRACE = 3600  # seconds: an upload is kept this long from its upload for its restore
UPLOAD = ("uploaded by restore --from, its restore not begun yet: not counted, kept for 1h "
          "from its upload")
UPLOAD_EXPIRED = ("uploaded by restore --from over 1h ago (or at no readable time) and no "
                  "restore of it began (no safety backup names it): removed")
HELD = ("held by a restore there (it waits for its locks, or runs): kept; a later cleanup "
        "removes it if still due")


class Backup(Protocol):
    name: str
    created: str
    verified: bool


@dataclass(frozen=True)
class Decision:
    name: str
    keep: bool
    reason: str

    @property
    def action(self) -> str:
        return "keep" if self.keep else "remove"


def validate_keep(keep: object) -> int:
    """``keep`` as a positive int, or a ValueError that says why."""
    if isinstance(keep, bool) or not isinstance(keep, int):
        given, keep = keep, digits.whole_setting(str(keep))  # ASCII digits (ops.digits)
        if keep is None:
            raise ValueError(f"--keep must be a whole number, got {given!r}")
    if keep < 1:
        raise ValueError(f"--keep must be at least 1, got {keep} (it would delete every backup)")
    return keep


def _newest_first(backups: list[Backup]) -> list[Backup]:
    return sorted(backups, key=lambda item: (item.created, item.name), reverse=True)


def plan_retention(backups: list[Backup], keep: int, *, now: dt.datetime | None = None,
                   protect: tuple[str, ...] = (), good: str | None = None) -> list[Decision]:
    """Keep the newest ``keep`` backups not dated in the future, every one dated in the
    future, every restore's safety backup (it may hold the only copy of the data a restore
    replaced: only a person removes it), an upload whose restore may still begin
    (``upload_pending``; after that grace one that no restore began is removed), the
    ``protect``ed ones and the proven ``good`` one; newest first."""
    from ops.engine import in_future  # here: ops.config reads this module at every start

    keep = validate_keep(keep)
    decisions = []
    counted = 0
    restored = restores_begun(backups)
    for item in _newest_first(backups):
        if now is not None and in_future(item.created, now):
            decisions.append(Decision(item.name, True, FUTURE))
            continue
        if getattr(item, "kind", "backup") == "safety":
            decisions.append(Decision(item.name, True, SAFETY))
            continue
        if getattr(item, "kind", "backup") == "upload" and item.name not in restored:
            pending = now is None or upload_pending(item, now)
            decisions.append(Decision(item.name, True, UPLOAD) if pending or
                             item.name in protect else Decision(item.name, False,
                                                                UPLOAD_EXPIRED))
            continue
        counted += 1
        if counted <= keep:
            decisions.append(Decision(item.name, True, f"newest {keep}"))
        elif item.name in protect:
            decisions.append(Decision(item.name, True, "made by this run"))
        elif item.name == good:
            decisions.append(Decision(item.name, True, "newest backup that passed verification"))
        else:
            decisions.append(Decision(item.name, False, f"older than the newest {keep}"))
    return decisions


def upload_pending(item, now: dt.datetime) -> bool:
    """Whether an upload (kind ``upload``) may still see its restore begin: within
    ``UPLOAD_GRACE`` of the time its record says it was published (``uploaded``). No
    readable time, or one dated ahead of ``now``, gets no grace: a record that claims
    kind ``upload`` by hand (review-break s20 #5) keeps a file no longer than that."""
    from ops.engine import in_future, parse_iso

    stamp = getattr(item, "uploaded", None)
    try:
        when = parse_iso(stamp) if stamp else None
        if when is not None and when.tzinfo is None:
            when = None
    except ValueError:
        when = None
    if when is None or in_future(stamp, now):
        return False
    return (now - when).total_seconds() < UPLOAD_GRACE


def restores_begun(backups: list[Backup]) -> set[str]:
    """The backups a restore has put back (or begun to): those a safety backup's record
    names. A restore makes its safety backup under its own locks, after its verify, so an
    upload of ``restore --from`` (kind ``upload``) is protected from its publish (under the
    folder's backup lock) until its restore holds the locks; then it counts as any backup
    (the server-side cleanup window of issue 18)."""
    return {str((getattr(item, "restore", None) or {}).get("backup")) for item in backups
            if getattr(item, "kind", "backup") == "safety"}


def good_candidates(backups: list[Backup], now: dt.datetime) -> list[str]:
    """Backups worth verifying as the one retention stands on, newest first: those whose
    manifest agrees with the file (cheap evidence) and that ``latest`` may name (not dated
    in the future, not a restore's safety backup)."""
    from ops.engine import latest_reason

    return [item.name for item in _newest_first(backups)
            if item.verified and latest_reason(item, now) is None]


def to_remove(decisions: list[Decision]) -> list[str]:
    return [decision.name for decision in decisions if not decision.keep]


def kept_held(decisions: list[Decision], removed: list[str]) -> list[Decision]:
    """The plan as it went: a backup it would remove that the delete kept (a restore there
    holds it) is a ``keep`` for ``HELD`` (review-break #4: the JSON and table said remove)."""
    return [d if d.keep or d.name in removed else Decision(d.name, True, HELD)
            for d in decisions]


def freed_by(backups, keep: int, now: dt.datetime) -> int:
    """Bytes ``keep`` would free (backups only; sidecars are a few hundred bytes)."""
    doomed = set(to_remove(plan_retention(backups, keep, now=now)))
    return sum(item.size for item in backups if item.name in doomed)
