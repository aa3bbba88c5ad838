"""What a machine can run (issue 17): `invoke machine.check`."""

from __future__ import annotations

from ops import signals
from ops.cli import guarded, task
from ops.commands.backup import HOST, JSON, PRODUCTION, closes_targets, open_target
from ops.errors import ExitCode, OpsError


def facts_of(target, settings) -> dict:
    """The facts of the target's machine; this computer's when it is local."""
    from ops import machine, remote

    if hasattr(target, "machine_facts"):
        return target.machine_facts()
    script = machine.probe_script(str(settings.db_path.resolve()),
                                  str(settings.backup_dir.resolve()), settings.machine_app_dir)
    done = signals.run_child(["sh", "-c", script], timeout=60)
    facts = machine.parse(remote.parse_output(done.stdout, host="this computer").entries)
    return facts | machine.own_python()


def checked(target, settings) -> tuple[dict, dict]:
    from ops import machine

    facts = facts_of(target, settings)
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
        facts, decided = checked(target, settings)
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

