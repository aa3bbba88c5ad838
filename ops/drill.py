"""backup.drill as a plan (issue 22): a pure function returning runbook ``Step``s.

The drill never changes the data: it finds a backup, restores it into a scratch copy
(a temporary ``.drill-*`` folder beside the backups, removed afterwards, or on a
machine without python3 and node a private temporary folder here after a download),
checks it and compares it with what was recorded when the backup was made. Only the
scratch copy is written, so the reading steps (which machine, which backup) run in a
``--dry-run`` and the drill itself is shown. On Fly every flyctl call the run makes is
a command of the plan, in its order (tests/test_flow_plans_drill.py); a machine's
scripts are shown by their purpose (``<script: drill>``).
"""

from __future__ import annotations

from dataclasses import replace

from ops import emergency, runbook
from ops.runbook import Step

MACHINE = "<machine>"  # filled with the machine the run resolved
BACKUP = "<backup>"  # filled with the backup the run found
MACHINE_CHECK = "check that a restore can run there"  # the machine step's line
LOCAL, FLY, SSH = "local", "fly", "ssh"  # where the backups are: the task's flags say it


def where_of(production: bool, ssh_host: str) -> str:
    """Which kind of place a drill reads, from the flags (as ``open_target`` chooses)."""
    return FLY if production else SSH if ssh_host else LOCAL


def plan(which: str, *, where: str, folder: str, directory: str, check: str,
         app: str = "", host: str = "") -> list[Step]:
    """The ordered steps of ``backup.drill WHICH``: ``folder`` names the backups' folder as
    messages do (``DIR on the machine``), ``directory`` is its path there, ``check`` the
    SQLite check (``integrity`` or ``quick``), ``app`` the Fly app, ``host`` the SSH host."""
    ssh = (lambda purpose: emergency.ssh_shown(app, MACHINE, purpose)) \
        if where == FLY else (lambda purpose: None)
    steps = []
    if where == FLY:  # every Fly flow reads the same first (its machine resolved once)
        steps += [replace(step, rerun=True) for step in emergency.plan_resolve(app)]
    elif where == SSH:
        steps.append(Step("connect", f"connect to {host} (its host key must be known)",
                          reads_only=True, running=f"connect to {host}", rerun=True))
    there = "" if where == LOCAL else " (listing it there)"
    steps.append(Step("find", f"find backup {which} in {folder}{there}",
                      commands=_some(ssh("list")), reads_only=True,
                      running=f"find backup {which}", rerun=True))
    scratch = (f"into a scratch copy in {directory} (a .drill-* folder, removed afterwards)"
               if where == LOCAL else
               f"on {'the machine' if where == FLY else host} (python3, else node) into a "
               f"scratch copy beside it in {directory}, removed afterwards; with neither, "
               "download it into a private temporary folder here and drill it there")
    steps.append(Step("drill", f"drill {BACKUP}: restore it {scratch}; {check}_check; compare "
                       "its row counts with its record and its content hash with the "
                       "backup file's. The backup is only read: the scratch copy is the one "
                       "thing written",
                       commands=_some(ssh("drill")),
                       running=f"drill {which} in {folder}", rerun=True))
    if where != LOCAL:
        steps.append(Step("machine", f"ask {'the machine' if where == FLY else host} whether "
                          "a restore could run there (machine.check): a backup that cannot "
                          "be restored in place is a failed drill",
                          commands=_some(ssh("machine.check")), reads_only=True,
                          running=MACHINE_CHECK, rerun=True))
    return steps


def _some(argv: tuple[str, ...] | None) -> tuple[tuple[str, ...], ...]:
    return (argv,) if argv else ()


def render(steps: list[Step], width: int | None = None) -> list[str]:
    title = runbook.dry_run_title("Drill plan", also="a run makes and removes a scratch "
                                  "copy, nothing else")
    return runbook.render(title, steps, width=width)
