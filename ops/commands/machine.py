"""What a machine can run (issue 17): `invoke machine.check`."""

from __future__ import annotations

import subprocess

from ops import signals
from ops.cli import guarded, task
from ops.commands.backup import HOST, JSON, PRODUCTION, closes_targets, open_target
from ops.errors import ExitCode, OpsError


def facts_of(target, settings, litestream: str = "") -> dict:
    """The facts of the target's machine; this computer's when it is local, where the
    replica tasks run ``litestream`` (``replica.litestream``: ``own_litestream``)."""
    from ops import machine, remote

    if hasattr(target, "machine_facts"):
        return target.machine_facts()
    script = machine.probe_script(str(settings.db_path.resolve()),
                                  str(settings.backup_dir.resolve()), settings.machine_app_dir)
    done = signals.run_child(["sh", "-c", script], timeout=60)
    facts = machine.parse(remote.parse_output(done.stdout, host="this computer").entries)
    return facts | machine.own_python() | own_litestream(litestream)


def own_litestream(setting: str) -> dict:
    """The litestream this computer's replica tasks would run (``find_litestream``: the
    setting, else PATH's, else the one pip put beside this Python), not only PATH's:
    the probe said "no" for a venv's litestream run as .venv/bin/invoke."""
    from ops import replica

    try:
        done = signals.run_child([replica.find_litestream(setting), "version"], timeout=30)
    except (OpsError, OSError, subprocess.TimeoutExpired):
        return {"litestream": None}
    words = done.stdout.split() if done.returncode == 0 else []
    return {"litestream": words[0][:40] if words and words[0][:40].isprintable() else None}


def litestream_setting(config) -> str:
    """``replica.litestream`` as the replica tasks read it (``load_replica``); "" where they
    would refuse the replica section: their own error says why, not this check."""
    from ops.config import load_replica

    try:
        return load_replica(config).litestream
    except OpsError:
        return ""


def checked(target, settings, litestream: str = "") -> tuple[dict, dict]:
    from ops import machine

    facts = facts_of(target, settings, litestream)
    return facts, machine.plan(facts, remote_command=bool(settings.remote_command))


@task(help={"production": PRODUCTION, "host": HOST, "json": JSON})
@guarded
@closes_targets
def check(c, production=False, host=None, json=False):
    """Which engine each task will use on the machine, and what cannot run there.

    Also the Dockerfile lines that fix it. Exit 1 when a restore cannot run there."""
    from ops import machine

    settings, target, ui = open_target(c, production=production, host=host, json=json)
    with ui.step(f"check {target.describe()}") as step:
        facts, decided = checked(target, settings, litestream_setting(c.config))
        step.detail = f"restore: {decided['engines']['restore'] or 'CANNOT RUN'}"
        if "restore" in decided["cannot"]:  # this check exits 1: its line says so, not ✓
            step.outcome, step.reason = "failed", "restore cannot run"
    for line in machine.render(facts, decided):
        ui.info(line)
    if json:
        ui.emit({"facts": facts} | decided)
    if "restore" in decided["cannot"]:
        raise OpsError(f"restore cannot run on {target.describe()}: "
                       f"{decided['cannot']['restore']}"
                       + (f"; fix: {decided['fixes'][0]}" if decided["fixes"] else ""),
                       ExitCode.ERROR)

