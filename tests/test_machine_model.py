"""One Fly machine model and one chooser (issue 22 item 2): ``fly.Machine`` reads what
emergency and restore.volume need of `fly machine list --json`, hostile JSON is one
``ShapeError``; ``choose_production`` with a state policy, tested as data."""

from __future__ import annotations

import pytest

from ops import emergency, fly
from ops.errors import ExitCode, OpsError
from ops.targets.fly.machine import ANY_STATE, STARTED, choose_production

RAW = {"id": "m1", "name": "app", "state": "started", "region": "ams", "host_status": "ok",
       "config": {"image": "registry/app:1",
                  "init": {"cmd": ["sleep", "2147483647"], "entrypoint": ["/init"]},
                  "mounts": [{"volume": "vol_1", "path": "/data"}],
                  "services": [{"autostop": "suspend"}, {"autostop": True, "autostart": False}],
                  "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
                  "metadata": {"ops_autostart_before": "true",
                               "ops_emergency_original": '{"cmd":null}'}}}


def test_the_model_reads_what_every_flow_needs():
    m = fly.Machine.parse(RAW)
    assert (m.id, m.state, m.volumes, m.mounts) == ("m1", "started", ("vol_1",),
                                                    (("vol_1", "/data"),))
    assert m.in_maintenance and m.cmd == fly.MAINTENANCE_CMD and m.entrypoint == ("/init",)
    assert (m.autostops, m.autostarts) == (("suspend", "stop"), (True, False))
    assert m.guest == fly.Guest("shared", 1, 512)
    assert (m.autostart_before, m.recorded_original) == (True, '{"cmd":null}')
    bare = fly.Machine.parse({"id": "m2"})  # what flyctl may leave out: Fly's defaults
    assert (bare.cmd, bare.exec, bare.host_status, bare.guest, bare.autostart_before) == (
        (), (), "ok", None, None)
    assert not bare.in_maintenance


@pytest.mark.parametrize("config", [
    {"init": {"cmd": "sleep 1"}}, {"init": {"exec": [1]}}, {"services": ["x"]},
    {"services": [{"autostop": "sometimes"}]}, {"mounts": [{"volume": 3}]},
])
def test_hostile_json_is_a_shape_error_never_a_crash(config):
    with pytest.raises(fly.ShapeError):
        fly.Machine.parse({"id": "m1", "config": config})
    assert emergency.is_stopped({"id": "m1", "config": config}) is False


def machine(mid: str, state: str) -> fly.Machine:
    return fly.Machine(mid, mid, state, "ams", "", ())


def vol(vid: str, attached: str | None) -> fly.Volume:
    return fly.Volume(vid, "data", "created", 3, "ams", attached, None)


@pytest.mark.parametrize("states, policy, chosen", [
    (["started"], STARTED, "m0"),
    (["stopped"], ANY_STATE, "m0"),  # emergency: a crashed app's machine is still the one
    (["stopped", "started"], ANY_STATE, "m1"),  # restore.volume left the old one stopped
    (["destroying", "stopped"], ANY_STATE, "m1"),
])
def test_the_state_policy_chooses(states, policy, chosen):
    machines = [machine(f"m{n}", state) for n, state in enumerate(states)]
    volumes = [vol(f"v{n}", f"m{n}") for n in range(len(states))]
    assert choose_production(volumes, machines, "data", "app", policy)[1].id == chosen


@pytest.mark.parametrize("states, policy, code, words", [
    (["stopped"], STARTED, ExitCode.NOT_FOUND, "no started machine has a 'data' volume"),
    (["destroyed"], ANY_STATE, ExitCode.NOT_FOUND, "no machine of app has a 'data' volume"),
    (["stopped", "stopped"], ANY_STATE, ExitCode.USAGE, "several machines have a 'data'"),
    (["started", "started"], STARTED, ExitCode.USAGE, "several started machines"),
])
def test_the_state_policy_refuses(states, policy, code, words):
    machines = [machine(f"m{n}", state) for n, state in enumerate(states)]
    volumes = [vol(f"v{n}", f"m{n}") for n in range(len(states))]
    with pytest.raises(OpsError) as refused:
        choose_production(volumes, machines, "data", "app", policy)
    assert refused.value.code == code and words in str(refused.value)

