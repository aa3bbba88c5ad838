"""Which backups to keep: a pure policy over a list of backups, like restic's ``forget``.

The same plan serves local and remote folders, ``--dry-run`` prints it, and the
tests check it as data. Only files named like backups ever reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
        try:
            keep = int(str(keep).strip())
        except ValueError:
            raise ValueError(f"--keep must be a whole number, got {keep!r}") from None
    if keep < 1:
        raise ValueError(f"--keep must be at least 1, got {keep} (it would delete every backup)")
    return keep


def plan_retention(backups: list[Backup], keep: int) -> list[Decision]:
    """Keep the newest ``keep`` backups and always the newest verified one; newest first."""
    keep = validate_keep(keep)
    newest_first = sorted(backups, key=lambda item: (item.created, item.name), reverse=True)
    newest_verified = next((item.name for item in newest_first if item.verified), None)
    decisions = []
    for position, item in enumerate(newest_first, start=1):
        if position <= keep:
            decisions.append(Decision(item.name, True, f"newest {keep}"))
        elif item.name == newest_verified:
            decisions.append(Decision(item.name, True, "newest verified backup"))
        else:
            decisions.append(Decision(item.name, False, f"older than the newest {keep}"))
    return decisions


def to_remove(decisions: list[Decision]) -> list[str]:
    return [decision.name for decision in decisions if not decision.keep]
