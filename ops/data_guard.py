"""The data guard: after `fly deploy`, is the pre-deploy backup's data still there?

A migration that drops a table or deletes rows without a WHERE passes /health. The guard
compares the live database with the backup the deploy made just before (rows per table and
the schema) and judges the difference here, as data: ``compare`` is pure, so the deploy's
summary, its audit line and the tests all read the same ``Comparison``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ops import digits

# A schema entry is "KIND NAME" (``table steps``, ``index steps_by_day``) or
# ``column TABLE.NAME``; litestream's own tables come and go with litestream, not the app.
IGNORED_PREFIXES = ("_litestream_",)


@dataclass(frozen=True)
class RowLossLimit:
    """How many rows a table may lose between the pre-deploy backup and the guard.

    Both must be passed to fail: more than ``fraction`` of the table's rows AND at least
    ``rows`` rows. The defaults never fire on a normal day of a small app (a few rows
    deleted by users in the minutes a deploy takes) and always fire on a `DELETE` without
    `WHERE` of a table of 10 rows or more. A table that disappeared, or had rows and has
    none, is lost whatever its size."""

    fraction: float = 0.2
    rows: int = 10

    def exceeded(self, before: int, after: int) -> bool:
        lost = before - after
        return lost > 0 and (after == 0 or (lost >= self.rows
                                            and lost > self.fraction * before))


def row_loss_limit(value, name: str = "deploy.max_row_loss") -> RowLossLimit:
    """``{fraction: 0.2, rows: 10}`` from config (numbers, or strings as an environment
    variable gives them), checked: a fraction from 0 to 1, whole rows from 0. ValueError
    says what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"config {name} must be a mapping like {{fraction: 0.2, rows: 10}}, "
                         f"got {value!r}")
    unknown = sorted(set(map(str, value)) - {"fraction", "rows"})
    if unknown:
        raise ValueError(f"config {name} has unknown key {unknown[0]!r} (fraction, rows)")
    default = RowLossLimit()
    fraction = _number(value.get("fraction", default.fraction))
    rows = _number(value.get("rows", default.rows))
    if fraction is None or not 0 <= fraction <= 1:
        raise ValueError(f"config {name}.fraction must be a number from 0 to 1, "
                         f"got {value.get('fraction')!r}")
    if rows is None or rows < 0 or rows != int(rows):
        raise ValueError(f"config {name}.rows must be a whole number from 0, "
                         f"got {value.get('rows')!r}")
    return RowLossLimit(fraction, int(rows))


def _number(value) -> float | None:
    """A finite number, or a string spelling one; None otherwise (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    try:  # a string in ASCII digits only (ops.digits)
        number = digits.decimal(value) if isinstance(value, str) else \
            float(value) if isinstance(value, int | float) else None
    except OverflowError:  # an int with hundreds of digits
        return None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class Comparison:
    """What changed between the backup (``before``) and the live database (``after``)."""

    against: str  # the backup's name
    tables: dict[str, tuple[int | None, int | None]]  # name: (rows before, rows after)
    added: tuple[str, ...] = ()  # schema entries only the live database has
    dropped: tuple[str, ...] = ()  # schema entries only the backup has
    lost: tuple[str, ...] = ()  # why the gate fails: one line per table
    allowed: tuple[str, ...] = ()  # tables whose loss --allow-data-loss let through
    source: str = "recorded"  # where the backup's counts came from: recorded or computed
    limit: RowLossLimit = field(default_factory=RowLossLimit)

    @property
    def ok(self) -> bool:
        return not self.lost

    def as_record(self) -> dict:
        return {"against": self.against, "ok": self.ok, "source": self.source,
                "tables": {t: list(pair) for t, pair in self.tables.items()},
                "added": list(self.added), "dropped": list(self.dropped),
                "lost": list(self.lost), "allowed": list(self.allowed),
                "max_row_loss": {"fraction": self.limit.fraction, "rows": self.limit.rows}}


def _kept(entries) -> set[str]:
    return {e for e in entries if not any(e.split(" ", 1)[-1].startswith(p)
                                          for p in IGNORED_PREFIXES)}


def _table_of(entry: str, tables=()) -> str:
    """The table an entry belongs to: ``column steps.note`` → steps, ``table x`` → x. A
    table's name may hold a dot (``column a.b.note``): the longest known table name the
    column's entry starts with wins, else the part before the first dot."""
    kind, _, name = entry.partition(" ")
    if kind != "column":
        return name
    known = [t for t in tables if name.startswith(t + ".")]
    return max(known, key=len) if known else name.split(".", 1)[0]


def _shown(entry: str, whole: set[str], tables) -> bool:
    """A column of a table that came or went is said by its table's line."""
    return not (entry.startswith("column ") and _table_of(entry, tables) in whole)


def compare(against: str, before: dict[str, int], after: dict[str, int], *,
            schema_before=(), schema_after=(), limit: RowLossLimit = RowLossLimit(),
            allow=(), source: str = "recorded") -> Comparison:
    """Judge the live database (``after``) against the pre-deploy backup (``before``).

    Lost: a table gone, a table emptied, rows lost over ``limit``, a column gone (its
    values are gone with it). A table in ``allow`` is reported, never lost."""
    names = sorted((set(before) | set(after)) - {t for t in set(before) | set(after)
                                                 if t.startswith(IGNORED_PREFIXES)})
    tables = {t: (before.get(t), after.get(t)) for t in names}
    old, new = _kept(schema_before), _kept(schema_after)
    known = set(before) | set(after) | {_table_of(e) for e in old | new
                                        if e.startswith("table ")}
    whole = {_table_of(e) for e in old ^ new if e.startswith("table ")}  # came or went
    added = tuple(sorted(e for e in new - old if _shown(e, whole, known)))
    dropped = tuple(sorted(e for e in old - new if _shown(e, whole, known)))
    reasons: dict[str, str] = {}
    for table, (rows_before, rows_after) in tables.items():
        if rows_before is None:
            continue
        if rows_after is None:
            reasons[table] = f"table {table} is gone (it had {rows_before:,} rows)"
        elif limit.exceeded(rows_before, rows_after):
            reasons[table] = (f"table {table} lost {rows_before - rows_after:,} of "
                              f"{rows_before:,} rows ({rows_before:,} → {rows_after:,})")
    for entry in dropped:
        table = _table_of(entry, known)
        if entry.startswith("column ") and table in after and table not in reasons:
            reasons[table] = f"{entry} is gone, and its values with it"
    allowed = {t for t in allow if t in reasons}
    return Comparison(against, tables, added, dropped,
                      lost=tuple(reasons[t] for t in sorted(reasons) if t not in allowed),
                      allowed=tuple(sorted(allowed)), source=source, limit=limit)


def unseen_allowed(comparison: Comparison, allow) -> list[str]:
    """Tables ``allow`` names that neither the backup nor the live database has (a typo?):
    they excuse nothing, so the operator is told."""
    return [t for t in dict.fromkeys(allow) if t not in comparison.tables]


def headline(comparison: Comparison) -> str:
    """The step's line: what was compared and what changed, in a few words."""
    changed = sum(1 for before, after in comparison.tables.values() if before != after)
    schema = len(comparison.added) + len(comparison.dropped)
    allowed = f"; loss allowed in {', '.join(comparison.allowed)}" if comparison.allowed else ""
    return (f"{len(comparison.tables)} tables against {comparison.against}: {changed} "
            f"changed, {schema} schema change{'s' if schema != 1 else ''}{allowed}")


def record_lines(record: dict, limit: int = 8) -> list[str]:
    """The deploy summary's "data" section, from the audit record's ``data``: tables whose
    rows changed, schema changes, then what was lost or let through. Unchanged tables are
    counted, not listed (the record has them all)."""
    if record.get("ok") is None:
        return [f"NOT compared: {record.get('error')}"]
    tables = record.get("tables") or {}
    changed = [(t, b, a) for t, (b, a) in tables.items() if b != a]
    out = [f"{t} {_rows(b)} → {_rows(a)}{_delta(b, a)}" for t, b, a in changed[:limit]]
    if len(changed) > limit:
        out.append(f"… and {len(changed) - limit} more changed tables (see --json)")
    # a table whose columns came or went is not "unchanged" (its +/- lines follow)
    reshaped = {_table_of(e) for e in [*(record.get("added") or []),
                                       *(record.get("dropped") or [])]}
    same = sum(1 for t, (b, a) in tables.items() if b == a and t not in reshaped)
    if same:
        out.append(f"{same} table{'s' if same != 1 else ''} unchanged")
    out += [f"+ {e}" for e in record.get("added") or []]
    out += [f"- {e}" for e in record.get("dropped") or []]
    out += [f"LOST: {reason}" for reason in record.get("lost") or []]
    out += [f"allowed (--allow-data-loss): {t}" for t in record.get("allowed") or []]
    return out


def _rows(n: int | None) -> str:
    return "none" if n is None else f"{n:,}"


def _delta(before: int | None, after: int | None) -> str:
    if before is None:
        return " (new table)"
    if after is None:
        return " (gone)"
    return f" ({after - before:+,})"


def failure(comparison: Comparison, undo: str) -> str:
    """The gate's one-line error: the first table and its numbers, and the way back."""
    more = len(comparison.lost) - 1
    also = f" (and {more} more: see the summary)" if more > 0 else ""
    return (f"{comparison.lost[0]}{also} since backup {comparison.against}; "
            f"to put the data back: `{undo}`; if the migration meant it, deploy with "
            "--allow-data-loss TABLE next time (recorded in the audit log)")
