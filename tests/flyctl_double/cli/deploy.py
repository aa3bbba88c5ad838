"""``fly deploy`` (internal/command/deploy/): validation, image, release, machine updates."""

from __future__ import annotations

import contextlib
import copy
import os
import re

from .clock import now_rfc3339, now_seconds
from .flags import app_flag, config_flag
from .ids import new_release_id, rand_str, ulid
from .output import FlyError, err, go_json_compact, out
from .parser import Command, Flag, max_args
from .platform import go_shlex_split
from .records import active_machines, image_ref_object, process_group
from .session import Ctx, api_auth, get_app, require_app_name, require_session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import App, DeployFault, Machine, World


DEPLOY_STRATEGIES = ("canary", "rolling", "immediate", "bluegreen")


def _cfg_mounts(cfg: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not cfg:
        return []
    raw = cfg.get("mounts", cfg.get("mount"))
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, list):
        return [x for x in raw if isinstance(x, dict)]
    return []


def _filter_csv(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()] if value else []


def _set_init_cmd(machine_config: dict[str, Any], cfg: dict[str, Any] | None,
                  group: str) -> None:
    """A deploy rebuilds the machine's command from fly.toml (``[processes]`` for its
    group, else the image's CMD): a ``machine update --command`` override, such as
    emergency.stop's ``sleep``, does not survive it (internal/appconfig/machines.go
    ``updateMachineConfig``: ``mConfig.Init.Cmd = cmd`` from ``c.InitCmd(processGroup)``;
    the metadata is merged, so ours stays)."""
    init = machine_config.setdefault("init", {})
    processes = (cfg or {}).get("processes")
    command = processes.get(group) if isinstance(processes, dict) else None
    if isinstance(command, str) and command.strip():
        init["cmd"] = go_shlex_split(command)
    else:
        init.pop("cmd", None)


def _run_migration(state: World) -> None:
    """The new release starts and runs its migrations, as the app's do at boot: the next
    SQL a test gave (``FlyWorld.deploy_migrates``) runs against the machine's database."""
    import sqlite3

    pending = state.get("migrations") or []
    if not pending:
        return
    migration = pending.pop(0)
    conn = sqlite3.connect(migration["db"], timeout=10.0)
    try:
        conn.executescript(migration["sql"])
        conn.commit()
    finally:
        conn.close()


def _take_deploy_fault(state: World) -> DeployFault | None:
    for fault in state.get("deploy_faults", []):
        if fault.get("times") is not None and fault["times"] <= 0:
            continue
        if fault.get("times") is not None:
            fault["times"] -= 1
        return dict(fault)
    return None


def _parse_wait_flag(ctx: Ctx, flag: str) -> float | None:
    """Seconds, as flyctl's parseDurationFlag reads a timeout (None: not given)."""
    if flag not in ctx.inv.specified:  # flag.IsSpecified: the default is never parsed
        return None
    raw = str(ctx.flag(flag))
    if raw == "none":
        return 0.0
    body, sign = (raw[1:], -1 if raw[0] == "-" else 1) if raw[:1] in "+-" else (raw, 1)
    if body == "0":
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)", body)
    if body and "".join(n + u for n, u in parts) == body:
        return sign * sum(float(n) * units[u] for n, u in parts)
    if re.fullmatch(r"[+-]?[0-9]+", raw):  # "missing unit in duration": strconv.Atoi
        return float(int(raw))
    raise FlyError(
        f"invalid duration value {raw} used for --{flag} flag: valid options are a number of "
        "seconds, number with time unit (i.e.: 5m, 180s) or 'none'"
    )


def _second_machine_failure(ctx: Ctx, app: App, cfg: dict[str, Any] | None,
                            strategy: str, targets: list[Machine],
                            name: str) -> FlyError | None:
    """Why bluegreen/canary cannot start the extra machine they need beside a volume."""
    mounted = [m for m in targets if (m.get("config") or {}).get("mounts")]
    if not mounted:
        return None
    if strategy == "bluegreen":
        m = mounted[0]
        vol = m["config"]["mounts"][0].get("volume", "")
        return FlyError(
            f"failed to launch VM: volume {vol} is already attached to machine {m['id']}\n"
            "failed to create green machines"
        )
    if strategy == "canary":
        mounts = _cfg_mounts(cfg)
        vol_name = str((mounts[0] if mounts else {}).get("source") or "")
        region = str((cfg or {}).get("primary_region") or mounted[0].get("region") or "")
        free = [v for v in app.get("volumes", [])
                if v.get("name") == vol_name and v.get("region") == region
                and not v.get("attached_machine_id")]
        if not free:
            group = process_group(mounted[0])
            return FlyError(
                f"error creating machine configuration: New machine in group '{group}' needs "
                f"an unattached volume named '{vol_name}' in region '{region}'"
            )
    return None


def _replace_machine(app: App, m: Machine, fault: DeployFault) -> None:
    """deploy/machines_deploymachinesapp.go ``updateMachineByReplace``: the machine is
    destroyed and a new one (new id) launched with its volumes; it may fail to start."""
    old = m["id"]
    new = str(fault.get("new_id") or rand_str(14, "0123456789abcdef"))
    m["id"] = new
    m["state"] = str(fault.get("state") or "started")
    for vol in app.get("volumes", []):
        if vol.get("attached_machine_id") == old:
            vol["attached_machine_id"] = new
    rt = m.get("_runtime") or {}
    if rt.get("bin"):  # the same files: the new machine mounts the same volume
        machines = os.path.dirname(os.path.dirname(rt["bin"]))
        with contextlib.suppress(OSError):
            os.symlink(os.path.join(machines, old), os.path.join(machines, new))


def cmd_deploy(ctx: Ctx) -> int:
    require_session(ctx)
    workdir = ctx.cwd
    if ctx.args:
        wd = ctx.args[0]
        workdir = wd if os.path.isabs(wd) else os.path.abspath(os.path.join(ctx.cwd, wd))
        if not os.path.isdir(workdir):
            raise FlyError(
                f"failed changing working directory: chdir {workdir}: no such file or directory"
            )
    name, cfg = require_app_name(ctx, base_dir=workdir)
    api_auth(ctx)
    app = get_app(ctx, name)
    lines: list[str] = ["==> Verifying app config"]
    # flyctl validates only fly.toml's strategy (appconfig/validation.go); the --strategy
    # flag replaces it afterwards, unchecked (deploy/machines.go determineAppConfigForMachines)
    toml_strategy = str(((cfg or {}).get("deploy") or {}).get("strategy") or "")
    problems = []
    if toml_strategy and toml_strategy not in DEPLOY_STRATEGIES:
        problems.append(
            f"unsupported deployment strategy '{toml_strategy}'; Apps v2 supports the following "
            f"strategies: {', '.join(DEPLOY_STRATEGIES)}"
        )
    if toml_strategy == "canary" and _cfg_mounts(cfg):
        problems.append(
            "error canary deployment strategy is not supported when using mounted volumes"
        )
    strategy = ctx.flag("strategy") or toml_strategy
    if cfg is not None:
        lines.append(f"Validating {cfg['__path__']}")
    if problems:
        out("\n".join(lines) + "\n")
        extra = "".join(problems) + "\n\n   \u2718invalid app configuration\n"
        err(extra)
        raise FlyError("App configuration is not valid")
    lines += ["\u2713 Configuration is valid", "--> Verified app config"]
    strategy = strategy or "rolling"

    # ---- image
    build = (cfg or {}).get("build") or {}
    image = ctx.flag("image") or str(build.get("image") or "")
    lines.append("==> Building image")
    if image:
        lines += [
            f"Searching for image '{image}' remotely...",
            f"image found: img_{rand_str(14, '0123456789abcdefghijklmnopqrstuvwxyz')}",
        ]
    else:
        dockerfile = ctx.flag("dockerfile") or ""
        if dockerfile:
            dockerfile = os.path.join(workdir, dockerfile)
        elif build.get("dockerfile"):
            base = os.path.dirname((cfg or {}).get("__path__", workdir))
            dockerfile = os.path.join(base, str(build["dockerfile"]))
        else:
            # the build context is the working directory, never fly.toml's folder
            # (deploy/deploy_build.go: imgsrc.ResolveDockerfile(state.WorkingDirectory))
            dockerfile = os.path.join(workdir, "Dockerfile")
        has_builder = bool(build.get("builder") or build.get("buildpacks"))
        if not has_builder and not os.path.isfile(dockerfile):
            out("\n".join(lines) + "\n")
            raise FlyError(
                "failed to fetch an image or build from source: app does not have a Dockerfile "
                "or buildpacks configured. See "
                "https://fly.io/docs/reference/configuration/#the-build-section"
            )
        if ctx.flag("local-only") and not (ctx.state.get("features") or {}).get("local_docker"):
            out("\n".join(lines) + "\n")
            raise FlyError(
                "failed to fetch an image or build from source: Cannot connect to the Docker "
                "daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
            )
        label = ctx.flag("image-label") or f"deployment-{ulid()}"
        image = f"registry.fly.io/{name}:{label}"
        lines += [
            "==> Building image with Depot" if not ctx.flag("local-only") else "==> Building image",
            f"image: {image}",
            "image size: 74 MB",
        ]
    if ctx.flag("build-only"):
        out("\n".join(lines) + "\n")
        return 0

    # ---- timeouts: plain strings parsed only now, after the build (deploy.go parseDurationFlag)
    try:
        wait = _parse_wait_flag(ctx, "wait-timeout")
        for other in ("release-command-timeout", "lease-timeout"):
            _parse_wait_flag(ctx, other)
    except FlyError:
        out("\n".join(lines) + "\n")
        raise

    # ---- release
    emit = bool(ctx.environ.get("FLY_EMIT_RELEASE_JSON"))
    skip_health = bool(ctx.flag("detach")) or strategy == "immediate"
    failure: FlyError | None = None
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        account = state.get("account") or {}
        versions = [int(r.get("Version", 0)) for r in app.get("releases", [])]
        version = max(versions, default=0) + 1
        release = {
            "ID": new_release_id(),
            "Version": version,
            "Stable": True,
            "InProgress": False,
            "Reason": "deploy",
            "Description": "Deploy image",
            "Status": "complete",
            "DeploymentStrategy": "",
            "Metadata": None,
            "User": {
                "ID": account.get("user_id", "Usr_p8d2w6k0"),
                "Name": account.get("name", ""),
                "Email": account.get("email", ""),
                "EnablePaidHobby": False,
            },
            "EvaluationID": "",
            "CreatedAt": now_seconds(),
            "ImageRef": image,
        }
        targets = active_machines(app)
        only = _filter_csv(ctx.flag("only-machines") or "")
        exclude = _filter_csv(ctx.flag("exclude-machines") or "")
        regions = _filter_csv(ctx.flag("regions") or "")
        xregions = _filter_csv(ctx.flag("exclude-regions") or "")
        groups = _filter_csv(ctx.flag("process-groups") or "")
        targets = [
            m
            for m in targets
            if (not only or m["id"] in only)
            and m["id"] not in exclude
            and (not regions or m.get("region") in regions)
            and m.get("region") not in xregions
            and (not groups or process_group(m) in groups)
        ]
        lines += [f"Watch your deployment at https://fly.io/apps/{name}/monitoring", ""]
        release_cmd = str(((cfg or {}).get("deploy") or {}).get("release_command") or "")
        if release_cmd and not ctx.flag("skip-release-command"):
            lines.append(f"Running {name} release_command: {release_cmd}")
            lines.append("  release_command completed successfully")
        fault = _take_deploy_fault(state)
        before = {m["id"]: copy.deepcopy(m) for m in targets}
        # a second machine for the volume: canary spawns one first (needs an unattached
        # volume of that name: deploy/machines_launchinput.go), bluegreen launches green
        # machines that keep blue's volume, which the Machines API refuses
        failure = _second_machine_failure(ctx, app, cfg, strategy, targets, name)
        if strategy == "canary" and failure is None and targets:
            lines.append(f"Creating canary machine for group {process_group(targets[0])}")
        if failure is not None and strategy == "canary":
            lines.append(f"Failed to create canary machine: {failure.message}")
        lines.append(f"Updating existing machines in '{name}' with {strategy or 'rolling'} "
                     "strategy")
        if failure is not None and strategy == "bluegreen":
            lines += ["", "Verifying if app can be safely deployed ", "", "Creating green machines"]
        n = len(targets)
        now = now_rfc3339()
        for i, m in enumerate([] if failure is not None else targets, 1):
            cfgm = m.setdefault("config", {})
            cfgm["image"] = image
            _set_init_cmd(cfgm, cfg, process_group(m))
            meta = cfgm.setdefault("metadata", {})
            meta["fly_release_id"] = release["ID"]
            meta["fly_release_version"] = str(version)
            m["image_ref"] = image_ref_object(image, {"fly.version": f"v{version}"})
            m["instance_id"] = ulid()
            m["updated_at"] = now
            lines.append(f"  [{i}/{n}] Updating {m['id']} [{process_group(m)}]")
            hit = (
                fault is not None
                and fault.get("kind") == "health_timeout"
                and fault.get("machine_id") in (None, m["id"])
            )
            if wait is not None and wait <= 0 and not skip_health and m.get("state") == "started":
                # a zero (or negative) wait is over before the machine can start
                failure = FlyError(
                    f"failed to update machine {m['id']}: Unrecoverable error: timeout reached "
                    "waiting for machine's state to change",
                    suffix="\nYou can try increasing the timeout with the --wait-timeout flag\n",
                )
                break
            if fault is not None and fault.get("kind") == "replace_machine" and fault.get(
                "machine_id"
            ) in (None, m["id"]):
                lines.append(f"  [{i}/{n}] Replacing {m['id']} by new machine")
                _replace_machine(app, m, fault)
            if hit and not skip_health and m.get("state") == "started":
                lines.append(f"  [{i}/{n}] Checking health of machine {m['id']}")
                failure = FlyError(
                    f"failed to update machine {m['id']}: Unrecoverable error: timeout reached "
                    f"waiting for health checks to pass for machine {m['id']}: failed to get VM "
                    f"{m['id']}: Get \"https://api.machines.dev/v1/apps/{name}/machines/"
                    f"{m['id']}\": net/http: request canceled",
                    suffix="\nYou can try increasing the timeout with the --wait-timeout flag\n",
                )
                break
            lines.append(
                f"  \u2714 [{i}/{n}] Machine {m['id']} [{process_group(m)}] update succeeded"
            )
        if failure is not None:
            release["Status"] = "failed"
            release["Stable"] = False
            if strategy == "bluegreen":
                lines.append("")
                lines.append("Rolling back failed deployment")
                for m in targets:
                    original = before[m["id"]]
                    m.clear()
                    m.update(original)
        app.setdefault("releases", []).append(release)
        if failure is None and targets:
            _run_migration(state)
    if failure is not None:
        out("\n".join(lines) + "\n")
        raise failure
    lines.append("-------")
    if not ctx.flag("detach") and ctx.flag("dns-checks") is not False:
        lines.append(f"Checking DNS configuration for {name}.fly.dev")
    if emit:
        lines.append(
            go_json_compact({"id": release["ID"], "version": version, "image_ref": image})
        )
    lines += ["", f"Visit your newly deployed app at https://{name}.fly.dev/"]
    out("\n".join(lines) + "\n")
    return 0


def deploy_flags() -> list[Flag]:
    s, b = "string", "bool"
    spec: list[tuple[str, str | None, str]] = [
        ("region", "r", s), ("image", "i", s), ("now", None, b), ("remote-only", None, b),
        ("local-only", None, b), ("depot", None, b), ("depot-scope", None, s),
        ("nixpacks", None, b), ("build-only", None, b), ("push", None, b), ("detach", None, b),
        ("strategy", None, s), ("dockerfile", None, s), ("ignorefile", None, s),
        ("image-label", None, s), ("build-arg", None, "array"), ("build-secret", None, "array"),
        ("build-target", None, s), ("no-cache", None, b), ("recreate-builder", None, b),
        ("wait-timeout", None, s), ("release-command-timeout", None, s),
        ("lease-timeout", None, s), ("max-unavailable", None, "float"),
        ("ha", None, b), ("smoke-checks", None, b), ("dns-checks", None, b),
        ("update-only", None, b), ("deploy-retries", None, s), ("regions", None, s),
        ("exclude-regions", None, s), ("only-machines", None, s), ("exclude-machines", None, s),
        ("process-groups", None, s), ("skip-release-command", None, b),
        ("volume-initial-size", None, "int"), ("primary-region", None, s),
        ("vm-cpu-kind", None, s), ("vm-cpus", None, "int"), ("vm-memory", None, s),
        ("vm-size", None, s), ("vm-gpu-kind", None, s), ("vm-gpus", None, "int"),
        ("host-dedication-id", None, s), ("file-literal", None, "array"),
        ("file-local", None, "array"), ("file-secret", None, "array"), ("label", None, "array"),
        ("signal", "s", s), ("no-public-ips", None, b), ("provision-extensions", None, b),
        ("buildkit", None, b), ("recreate-extensions", None, b), ("no-extensions", None, b),
        ("immediate-max-concurrent", None, "int"), ("builder-pool", None, b),
        ("traces", None, b), ("wg", None, b), ("dockerfile-url", None, s), ("build-tag", None, s),
        ("compression", None, s), ("compression-level", None, "int"), ("exclude-files", None, s),
    ]
    flags = [app_flag(), config_flag()]
    defaults = {"ha": True, "smoke-checks": True, "dns-checks": True, "wg": True,
                "max-unavailable": 0.33, "wait-timeout": "5m0s",
                "release-command-timeout": "5m0s", "lease-timeout": "13s",
                "deploy-retries": "auto"}
    for name, short, kind in spec:
        flags.append(Flag(name, short, kind, default=defaults.get(name)))
    flags.append(Flag("yes", "y", help="Accept all confirmations", aliases=("auto-confirm",)))
    flags.append(Flag("env", "e", "slice", help="Set of environment variables NAME=VALUE"))
    return flags


def deploy_cmd() -> Command:
    return Command("deploy", usage="[WORKING_DIRECTORY]", short="Deploy Fly applications",
                   flags=deploy_flags(), run=cmd_deploy, args=max_args(1))
