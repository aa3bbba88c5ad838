"""``fly machine list|stop|start|restart|update|clone`` (internal/command/machine/).

Also internal/machine/{config,update,restart}.go and internal/watch/watch.go (health checks)."""

from __future__ import annotations

import copy
import os
import time

from . import platform
from .clock import now_rfc3339
from .flags import app_flag, config_flag, json_flag, vm_flags
from .ids import rand_str, ulid
from .output import FlyError, err, go_json, go_quote, out, render_table
from .parser import NO_ARGS, Command, Flag, not_emulated, range_args
from .records import (
    active_machines,
    machine_image,
    machine_runtime,
    process_group,
    render_machine,
    sync_image_bin,
)
from .session import (
    Ctx,
    api_auth,
    authenticated_app,
    get_app,
    load_app_config,
    require_app_name,
    require_session,
    resolve_app_name,
)
from .volumes import new_volume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import Machine, MachineConfig, Runtime


def cmd_machine_list(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    if any(m.get("_pending") for m in app.get("machines", [])):
        with ctx.store.mutate() as state:  # each look brings a stopping machine closer
            ctx.state = state
            app = get_app(ctx, name)
            platform.settle_pending(app)
            app = copy.deepcopy(app)
    machines = active_machines(app)
    if ctx.json_on():
        out(go_json([render_machine(m) for m in machines]))
        return 0
    if ctx.flag("quiet"):
        out("".join(f"{m['id']}\n" for m in machines))
        return 0
    if not machines:
        out(f"No machines are available on this app {name}\n")
        return 0
    rows = []
    for m in machines:
        checks = m.get("checks") or []
        passing = sum(1 for c in checks if c.get("status") == "passing")
        cfg = m.get("config") or {}
        guest = cfg.get("guest") or {}
        vols = ",".join(x.get("volume", "") for x in cfg.get("mounts") or [])
        rows.append(
            [
                m["id"],
                str(m.get("name", "")),
                str(m.get("state", "")),
                f"{passing}/{len(checks)}" if checks else "",
                str(m.get("region", "")),
                "",
                machine_image(m).removeprefix("registry.fly.io/"),
                str(m.get("private_ip", "")),
                vols,
                str(m.get("created_at", "")),
                str(m.get("updated_at", "")),
                process_group(m),
                f"{guest.get('cpu_kind', 'shared')}-cpu-{guest.get('cpus', 1)}x:"
                f"{guest.get('memory_mb', 256)}MB",
            ]
        )
    out(
        f"{len(machines)} machines have been retrieved from app {name}.\n"
        f"View them in the UI here (https://fly.io/apps/{name}/machines/)\n\n"
        + render_table(
            rows,
            [
                "ID",
                "Name",
                "State",
                "Checks",
                "Region",
                "Role",
                "Image",
                "IP Address",
                "Volume",
                "Created",
                "Last Updated",
                "Process Group",
                "Size",
            ],
            title=name,
        )
    )
    return 0


def _machine_app_name(ctx: Ctx) -> str:
    """LoadAppNameIfPresent: -a, FLY_APP, fly.toml; may be empty."""
    return resolve_app_name(ctx, load_app_config(ctx))


def _select_machines(ctx: Ctx, app_name: str, ids: list[str]) -> tuple[str, list[Machine]]:
    """select.go: checkSelectConditions, the app (from a machine id via GraphQL), flaps Get."""
    select = bool(ctx.flag("select"))
    if select and ids:
        raise FlyError("machine IDs can't be used with --select")
    if select and not app_name:
        raise FlyError("an app name must be specified to use --select")
    if not ids and not app_name:
        raise FlyError("a machine ID or an app name is required")
    if select or not ids:
        raise FlyError("a machine ID must be specified when not running interactively")
    if not app_name:
        for name, app in (ctx.state.get("apps") or {}).items():
            if any(m["id"] == ids[0] for m in active_machines(app)):
                app_name = name
                break
        else:
            # Guess: the GraphQL error text for an unknown machine id.
            raise FlyError("could not get machine from GraphQL to determine app name: "
                           f"Could not find Machine {go_quote(ids[0])}")
    app = get_app(ctx, app_name)
    found = []
    for mid in ids:
        machine = next((m for m in active_machines(app) if m["id"] == mid), None)
        if machine is None:
            raise FlyError(f"machine {mid} was not found in app '{app_name}'")
        found.append(machine)
    return app_name, found


def machine_serves(machine: Machine) -> bool:
    """The double's model of the app: it answers its checks unless the machine was told to
    run ``sleep`` instead (``config.init`` exec or cmd whose first word is sleep)."""
    init = (machine.get("config") or {}).get("init") or {}
    words = init.get("exec") or init.get("cmd") or []
    return not (words and os.path.basename(str(words[0])) == "sleep")


def _set_checks(machine: Machine) -> None:
    status = "passing" if machine.get("state") == "started" and machine_serves(machine) \
        and not machine.get("_unhealthy") else "critical"
    for check in machine.get("checks") or []:
        check["status"] = status
        check["updated_at"] = now_rfc3339()


def _health_deadline(prefix: str) -> FlyError:
    return FlyError(f"{prefix}: context deadline exceeded", exit_code=126)


def _set_state(ctx: Ctx, action: str, before: str, after: str) -> int:
    """stop.go / start.go: each machine named, under a lease, with flyctl's lines
    (``{id}`` is the machine's id) before and after.  Both return once the API took the
    request: the machine is ``stopping``/``starting`` until a later look (``--wait-timeout``,
    stop only, waits at most 60 s: fly-go's clamp)."""
    require_session(ctx)
    app_name = _machine_app_name(ctx)
    api_auth(ctx)
    wait = 0.0
    if action == "stop":
        try:
            wait = platform.parse_go_duration(str(ctx.flag("wait-timeout") or "0s"))
        except ValueError as exc:
            raise FlyError(f'invalid argument {go_quote(str(ctx.flag("wait-timeout")))} for '
                           f'"-w, --wait-timeout" flag: {exc}') from None
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, found = _select_machines(ctx, app_name, ctx.args)
        for machine in found:
            platform.acquire_lease(machine)
        for machine in found:
            mid = machine["id"]
            if before:
                out(before.format(id=mid))
            if action == "start":
                if machine.get("state") != "started" and platform.no_capacity(
                        state, str(machine.get("region"))):
                    raise FlyError("could not start machine due to lack of capacity. Try "
                                   f"'flyctl machine clone {mid} -a {app_name}'")
                if machine.get("state") != "started":
                    platform.begin(machine, "starting", "started", state)
                machine.pop("_started_by_proxy", None)
            else:
                if machine.get("state") not in ("stopped", "suspended"):  # guess: accepted
                    platform.begin(machine, "stopping", "stopped", state)
                if wait:
                    try:
                        platform.wait_for(machine, "stopped", wait)
                    except TimeoutError as exc:
                        machine["updated_at"] = now_rfc3339()
                        _set_checks(machine)
                        ctx.store.write(state)
                        raise FlyError(f"machine {mid} did not stop within the wait timeout: "
                                       f"{exc}") from None
            machine["updated_at"] = now_rfc3339()
            _set_checks(machine)
            out(after.format(id=mid))
    return 0


def cmd_machine_stop(ctx: Ctx) -> int:
    return _set_state(ctx, "stop", "Sending kill signal to machine {id}...\n",
                      "{id} has been successfully stopped\n")


def cmd_machine_start(ctx: Ctx) -> int:
    return _set_state(ctx, "start", "", "{id} has been started\n")


def _kv_flag(ctx: Ctx, name: str, initial: dict[str, str]) -> dict[str, str]:
    """parseKVFlag: NAME=VALUE pairs merged over the current map."""
    parsed = dict(initial or {})
    for item in ctx.flag(name) or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise FlyError(f"invalid key/value pairs specified for flag {name}")
        parsed[key] = value
    return parsed


def _autostop_value(raw: str) -> Any:
    """run.go: strconv.ParseBool first, then MachineAutostop.UnmarshalText; JSON as fly-go
    marshals it (off/stop as booleans, suspend as a string)."""
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    words = {"off": False, "stop": True, "suspend": "suspend"}
    if raw not in words:
        raise FlyError(f"invalid autostop value {go_quote(raw)}")  # guess: UnmarshalText's
    return words[raw]


def _updated_config(ctx: Ctx, machine: Machine) -> MachineConfig:
    """determineMachineConfig(updating=true) for the flags the double emulates."""
    config = copy.deepcopy(machine.get("config") or {})
    init = config.setdefault("init", {})
    if "command" in ctx.inv.specified:
        command = (ctx.flag("command") or "").strip()
        if command:
            try:
                init["cmd"] = platform.go_shlex_split(command)
            except ValueError as exc:
                raise FlyError(f"invalid command: {exc}") from None
        else:
            init.pop("cmd", None)
    restart = ctx.flag("restart") or ""
    policies = {"no": "no", "on-fail": "on-failure", "on-failure": "on-failure",
                "always": "always"}
    if restart and restart not in policies:
        raise FlyError("invalid restart provided")  # run.go determineMachineConfig
    if restart:
        config["restart"] = {"policy": policies[restart]}
    elif "restart" in ctx.inv.specified:
        config.pop("restart", None)
    config["env"] = dict(sorted(_kv_flag(ctx, "env", config.get("env") or {}).items()))
    config["metadata"] = dict(sorted(_kv_flag(ctx, "metadata", config.get("metadata") or {})
                                     .items()))
    entrypoint = ctx.flag("entrypoint") or ""
    if entrypoint:
        init["entrypoint"] = platform.go_shlex_split(entrypoint)
    for service in config.get("services") or []:
        if "autostop" in ctx.inv.specified:
            service["autostop"] = _autostop_value(ctx.flag("autostop"))
        if "autostart" in ctx.inv.specified:
            service["autostart"] = bool(ctx.flag("autostart"))
    if ctx.flag("image"):
        config["image"] = ctx.flag("image")
    mount_point = ctx.flag("mount-point") or ""
    if mount_point:
        if len(config.get("mounts") or []) != 1:
            raise FlyError("Machine doesn't have a volume attached")
        config["mounts"][0]["path"] = mount_point
    return config


def _config_diff(old: MachineConfig, new: MachineConfig) -> str:
    """Approximates configCompare: changed JSON lines with -/+ markers."""
    before = go_json(old).splitlines()
    after = go_json(new).splitlines()
    removed = [f"-  {line.strip()}" for line in before if line not in after]
    added = [f"+  {line.strip()}" for line in after if line not in before]
    return "\n".join(removed + added)


def _command_runs(machine: Machine) -> bool:
    """The double's model of the machine's main process: the image's CMD runs; a command
    (``init.exec``/``init.cmd``) runs only when its program is one of the image's tools
    (``_runtime.tools``), else it exits at once and the machine ends ``failed``."""
    init = (machine.get("config") or {}).get("init") or {}
    words = init.get("exec") or init.get("cmd") or []
    if not words:
        return True
    rt = machine.get("_runtime") or {}
    if rt.get("tools") is None:
        return True
    return os.path.basename(str(words[0])) in {*rt["tools"], *(rt.get("image_only") or [])}


def cmd_machine_update(ctx: Ctx) -> int:
    """update.go + internal/machine/update.go: lease, config, ``Update``, then wait until
    the machine settles (``--wait-timeout`` seconds, default 300: ``WaitTimeoutErr``), a
    ``failed`` machine is an error, then health checks unless ``--skip-health-checks``."""
    require_session(ctx)
    app_name = _machine_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, (machine,) = _select_machines(ctx, app_name, ctx.args)
        if machine.get("host_status", "ok") != "ok":
            raise FlyError("the machine is on an unreachable host, try again later")
        platform.acquire_lease(machine)
        config = _updated_config(ctx, machine)
        if not ctx.flag("yes"):
            diff = _config_diff(machine.get("config") or {}, config)
            if not diff:
                raise FlyError("no config changes found")
            out(f"Configuration changes to be applied to machine: {machine['id']} "
                f"({machine.get('name', '')})\n\n{diff}\n")
            raise FlyError("yes flag must be specified when not running interactively")
        out(f"Updating machine {machine['id']}\n")
        machine["config"] = config
        machine["instance_id"] = ulid()
        machine["updated_at"] = now_rfc3339()
        machine.pop("_pending", None)
        machine["state"] = "stopped" if ctx.flag("skip-start") else "started"
        if machine["state"] == "started" and not _command_runs(machine):
            machine["state"] = "failed"
        _set_checks(machine)
        snapshot = copy.deepcopy(machine)
    wait = int(ctx.flag("wait-timeout") or 0) or 300
    if snapshot.get("_never_settles") or wait < 0:
        raise FlyError(
            "timeout reached waiting for machine's state to change",
            suffix=f"The machine {snapshot['id']} took more than "
                   f"{platform.go_duration_string(wait)} to reach \"settled\"\n\n"
                   "Try increasing the --wait-timeout\n\n")
    if snapshot["state"] == "failed":
        raise FlyError(f"machine {snapshot['id']} update failed: machine entered "
                       '"failed" state')
    if snapshot["state"] == "started" and not ctx.flag("skip-health-checks"):
        _report_checks(snapshot, "failed to wait for health checks to pass")
    out(f"Machine {snapshot['id']} updated successfully!\n")
    out(f"\nMonitor machine status here:\nhttps://fly.io/apps/{app_name}/machines/"
        f"{snapshot['id']}\n")
    return 0


def _report_checks(machine: Machine, prefix: str) -> None:
    checks = machine.get("checks") or []
    if not checks:
        out("No health checks found\n")
        return
    passing = sum(1 for c in checks if c.get("status") == "passing")
    err(f"  Waiting for {machine['id']} to become healthy ({machine.get('state')}, "
        f"{passing}/{len(checks)})\n")
    if passing != len(checks):
        raise _health_deadline(prefix)


def _new_machine_id() -> str:
    return rand_str(14, "0123456789abcdef")


def _clone_runtime(source: Machine, new_id: str) -> Runtime:
    """The clone's own PATH folder and HOME beside the source's; the same image, so the
    same tools (``fly machine clone`` copies the source's config, image included)."""
    rt = machine_runtime(source)
    machines_dir = os.path.dirname(os.path.dirname(rt["bin"]))
    bin_dir = os.path.join(machines_dir, new_id, "bin")
    home = os.path.join(machines_dir, new_id, "root")
    os.makedirs(home, exist_ok=True)
    clone: Runtime = {"bin": bin_dir, "home": home, "cwd": home,
                      "env": dict(rt.get("env") or {}), "image": rt.get("image", "default"),
                      "tools": dict(rt.get("tools") or {}),
                      "image_only": list(rt.get("image_only") or [])}
    sync_image_bin(clone)
    return clone


def cmd_machine_clone(ctx: Ctx) -> int:
    require_session(ctx)
    app_name, _ = require_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, (source,) = _select_machines(ctx, app_name, ctx.args[:1])
        app = get_app(ctx, app_name)
        if source.get("host_status", "ok") != "ok":
            raise FlyError("the machine is on an unreachable host, try again later")
        volumes = {v["id"]: v for v in app.get("volumes", [])}
        attach = ctx.flag("attach-volume") or ""
        parts = attach.split(":")  # clone.go: strings.Split; a path only when exactly 2 parts
        vol_id = parts[0]
        mount_path = parts[1] if len(parts) == 2 else ""
        vol = None
        if attach:
            vol = volumes.get(vol_id)
            if vol is None:  # guess: the flaps error text for an unknown volume
                raise FlyError("could not get existing volume: volume not found")
        region = ctx.flag("region") or ""
        if vol is not None and region and vol["region"] != region:
            raise FlyError(f"specified region {region} but volume is in region {vol['region']}, "
                           "use the same region as the volume")
        region = vol["region"] if vol is not None and not region else (
            region or source.get("region", ""))
        out(f"Cloning Machine {source['id']} into region {region}\n")
        config = copy.deepcopy(source.get("config") or {})
        init = config.setdefault("init", {})
        if ctx.flag("clear-cmd"):
            init.pop("cmd", None)  # an empty list, dropped by omitempty
        elif ctx.flag("override-cmd"):
            try:
                init["cmd"] = platform.go_shlex_split(ctx.flag("override-cmd"))
            except ValueError as exc:
                raise FlyError(f"error splitting cmd: {exc}") from None
        mounts = copy.deepcopy(config.get("mounts") or [])
        if attach:
            if len(mounts) > 1:
                raise FlyError("Can't use --attach-volume for Machines with more than 1 volume.")
            if not mounts and not mount_path:
                raise FlyError(f"Please specify a mount path on '{attach}' using "
                               "<volume_id>:/path/inside/machine")
            if mount_path:
                if not mounts:
                    mounts = [{"path": mount_path}]
                else:
                    out(f"Info: --attach-volume is overriding previous mount point from "
                        f"`{mounts[0].get('path')}` to `{mount_path}`.\n")
                    mounts[0]["path"] = mount_path
        new_mounts = []
        for mount in mounts:
            if attach:
                out(f"Attaching existing volume {vol_id}\n")
                if vol.get("attached_machine_id"):
                    raise FlyError(f"volume {vol_id} is already attached to a machine")
                if vol.get("state") != "created":  # guess: the Machines API's refusal
                    raise FlyError(f"failed to launch VM: volume {vol_id} is not ready to be "
                                   f"attached (state: {vol.get('state')})")
                target = vol
            else:
                snap = ctx.flag("from-snapshot") or ""
                if snap:
                    out(f"Creating new volume from snapshot: {snap}\n")
                else:
                    out(f"Volume '{mount.get('name', '')}' will start empty\n")
                target = new_volume(app, str(mount.get("name") or ""), region,
                                     int(mount.get("size_gb") or 1),
                                     bool(mount.get("encrypted", True)), 5, bool(snap),
                                     state)
            # clone.go sends only these mount fields (fly-go MachineMount, omitempty)
            sent = {"path": mount.get("path", ""), "volume": target["id"]}
            for key in ("extend_threshold_percent", "add_size_gb", "size_gb_limit"):
                if mount.get(key):
                    sent[key] = mount[key]
            new_mounts.append(dict(sorted(sent.items())))
            guest_mb = int((config.get("guest") or {}).get("memory_mb") or
                           platform.DEFAULT_GUEST_MB)
            room = target.get("_host_room_mb")
            if room is not None and guest_mb > int(room):  # guess: the API's text
                raise FlyError("failed to launch VM: insufficient memory available to "
                               f"fulfill request (the host of {target['id']} has room for "
                               f"{room} MB, the machine needs {guest_mb} MB)")
        config["mounts"] = new_mounts
        out(f"Provisioning a new Machine with image {machine_image(source)}...\n")
        if platform.no_capacity(state, region):  # guess: the API's text
            raise FlyError("failed to launch VM: insufficient resources available to fulfill "
                           "request")
        new_id = _new_machine_id()
        machine = copy.deepcopy(source)
        now = now_rfc3339()
        machine.update({
            "id": new_id,
            "name": ctx.flag("name") or f"{rand_str(5, 'abcdefghijklmnopqrstuvwxyz')}-clone-"
                                        f"{rand_str(4, '0123456789')}",
            "state": "started", "region": region, "instance_id": ulid(),
            "private_ip": f"fdaa:9:1c2d:a7b:1f0:{rand_str(4, '0123456789abcdef')}:"
                          f"{rand_str(4, '0123456789abcdef')}:2",
            "created_at": now, "updated_at": now, "config": config,
            "_runtime": _clone_runtime(source, new_id),
        })
        machine.pop("_lease", None)
        if (state.get("features") or {}).get("clones_unhealthy"):
            machine["_unhealthy"] = True  # e.g. the app cannot use the restored database
        _set_checks(machine)
        app["machines"].append(machine)
        attached = {mount["volume"] for mount in new_mounts}
        for v in app["volumes"]:
            if v["id"] in attached:
                v["attached_machine_id"] = new_id
        snapshot = copy.deepcopy(machine)
    out(f"  Machine {new_id} has been created...\n")
    if ctx.flag("detach"):
        return 0
    out(f"  Waiting for Machine {new_id} to start...\n")
    _report_checks(snapshot, "error while watching health checks")
    out("Machine has been successfully cloned!\n")
    return 0


def _machine_flags() -> list[Flag]:
    return [app_flag(), config_flag(), Flag("select", hidden=True)]


def _stop_cmd() -> Command:
    return Command("stop", usage="[<id>...]", short="Stop one or more Fly machines",
                   flags=[*_machine_flags(), Flag("signal", "s", "string"),
                          Flag("timeout", None, "int"),
                          Flag("wait-timeout", "w", "duration", default="0s")],
                   run=cmd_machine_stop)


def _start_cmd() -> Command:
    return Command("start", usage="[<id>...]", short="Start one or more Fly machines",
                   flags=_machine_flags(), run=cmd_machine_start)


def _update_cmd() -> Command:
    return Command(
        "update", usage="[machine_id]", short="Update a machine", args=range_args(0, 1),
        run=cmd_machine_update,
        flags=[*_machine_flags(), Flag("image", "i", "string"), Flag("detach"),
               Flag("port", "p", "slice"), Flag("env", "e", "array"),
               Flag("entrypoint", None, "string"), Flag("metadata", "m", "array"),
               Flag("autostart", default=True),
               Flag("autostop", None, "string", default="off", no_opt="stop"),
               Flag("restart", None, "string"), Flag("yes", "y", aliases=("auto-confirm",)),
               Flag("skip-start"), Flag("skip-health-checks"),
               Flag("command", "C", "string"), Flag("mount-point", None, "string"),
               Flag("wait-timeout", None, "int", default=300),
               Flag("container", None, "string"), *vm_flags()])


def _clone_cmd() -> Command:
    return Command(
        "clone", usage="[machine_id]", short="Clone a Fly Machine", args=range_args(0, 1),
        run=cmd_machine_clone,
        flags=[*_machine_flags(), Flag("region", "r", "string"), Flag("name", None, "string"),
               Flag("from-snapshot", None, "string"), Flag("attach-volume", None, "string"),
               Flag("override-cmd", None, "string"), Flag("clear-cmd"),
               Flag("clear-auto-destroy"), Flag("standby-for", None, "slice"),
               Flag("volume-requires-unique-zone", default=True), Flag("detach"),
               *vm_flags()])


def cmd_machine_restart(ctx: Ctx) -> int:
    """Restart each machine named; flyctl waits for it to start and for its checks."""
    require_session(ctx)
    if ctx.flag("select") and ctx.args:
        raise FlyError("machine IDs can't be used with --select")
    if not ctx.args:
        raise FlyError("a machine ID must be specified when not running interactively")
    name, _ = require_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        machines = []
        for machine_id in ctx.args:
            found = next((m for m in active_machines(app) if m["id"] == machine_id), None)
            if found is None:
                raise FlyError(f"machine {machine_id} was not found in app '{name}'")
            machines.append(found)
        for m in machines:
            platform.acquire_lease(m)
        restarted = []
        for m in machines:
            out(f"Restarting machine {m['id']}\n")
            if m.get("state") != "started":  # Guess: flaps refuses to restart a stopped VM
                raise FlyError(
                    f"failed to restart machine {m['id']}: could not stop machine {m['id']}: "
                    f"failed to restart VM {m['id']}: failed_precondition: unable to restart "
                    "machine, not currently started")
            m["instance_id"] = ulid()
            m["updated_at"] = now_rfc3339()
            m.setdefault("events", []).insert(0, {
                "type": "restart", "status": "started", "source": "user",
                "timestamp": int(time.time() * 1000)})
            _set_checks(m)
            restarted.append(copy.deepcopy(m))
    for m in restarted:  # internal/machine/restart.go: the start, then watch.MachinesChecks
        if not ctx.flag("skip-health-checks"):
            _report_checks(m, f"failed to restart machine {m['id']}: failed to wait for "
                              "health checks to pass")
        out(f"Machine {m['id']} restarted successfully!\n")
    return 0


def _restart_cmd() -> Command:
    return Command(
        "restart", usage="[<id>...]", short="Restart one or more Fly machines",
        flags=[app_flag(), config_flag(), Flag("select", help="Select from a list of machines"),
               Flag("signal", "s", "string", help="Signal to stop the machine with"),
               Flag("time", None, "int", help="Seconds to wait before killing the machine"),
               Flag("force", help="Force stop the machine(s)"),
               Flag("skip-health-checks", help="Restarts app without waiting for health "
                    "checks.")],
        run=cmd_machine_restart)


def machine_group() -> Command:
    return Command("machine", aliases=("machines", "m"), short="Manage Fly Machines.",
                   children=[
        Command("list", aliases=("ls",), short="List Fly machines",
                flags=[app_flag(), config_flag(), json_flag(),
                       Flag("quiet", "q", help="Only list machine ids")],
                run=cmd_machine_list, args=NO_ARGS),
        not_emulated("status"), _start_cmd(), _stop_cmd(), _restart_cmd(), _clone_cmd(),
        not_emulated("destroy", "remove", "rm"), not_emulated("exec"), _update_cmd(),
        *(not_emulated(name) for name in ("run", "create", "kill", "leases", "cordon",
                                          "uncordon", "suspend", "proxy")),
    ])
