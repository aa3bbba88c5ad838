"""ops.config: settings from a plain config mapping, durations, fly.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import config
from ops.errors import ExitCode, OpsError
from tests.helpers import REPO_ROOT

FLY_TOML = REPO_ROOT / "fly.toml"


def usage_error(call, *args, **kwargs) -> str:
    with pytest.raises(OpsError) as info:
        call(*args, **kwargs)
    assert info.value.code == ExitCode.USAGE, info.value
    return str(info.value)


# ---------------------------------------------------------------- load


def test_defaults():
    settings = config.load({})
    assert settings.db_path == Path("data/steps.db")
    assert settings.db_remote_path == "/data/steps.db"
    assert settings.backup_dir == Path("data/backups")
    assert settings.backup_remote_dir == "/data/backups"
    assert settings.keep == 10
    assert settings.check == "integrity"
    assert settings.lock_wait == 0.0
    assert settings.backup_timeout == 0.0
    assert settings.snapshot_timeout == 600.0
    assert settings.health_url == ""
    assert settings.health_timeout == 300.0
    assert settings.health_interval == 5.0
    assert settings.fly_config == Path("fly.toml")
    assert settings.fly_bin == "" and settings.fly_app == "" and settings.remote_command == ""
    assert settings.audit_log == Path("data/deploys.jsonl")


def test_every_default_key_is_a_string_so_env_values_cast_cleanly():
    # Invoke casts INVOKE_* values to the default's type: int("abc") would be a traceback
    # (a mapping's keys are variables too: INVOKE_DEPLOY_MAX_ROW_LOSS_ROWS)
    def leaves(values: dict, name: str):
        for key, value in values.items():
            yield from (leaves(value, f"{name}.{key}") if isinstance(value, dict)
                        else [(f"{name}.{key}", value)])

    for section, values in config.DEFAULTS.items():
        for key, value in leaves(values, section):
            assert isinstance(value, str), key


def test_env_like_strings_are_accepted():
    settings = config.load(
        {
            "db": {"path": "/srv/app/steps.db"},
            "backup": {"keep": "3", "lock_wait": "2.5", "timeout": " 60 ", "check": "quick",
                       "dir": "/srv/backups"},
            "health": {"interval": "0.5", "url": "http://localhost:8080/health"},
        }
    )  # fmt: skip
    assert settings.keep == 3
    assert settings.lock_wait == 2.5
    assert settings.backup_timeout == 60.0
    assert settings.check == "quick"
    assert settings.db_path == Path("/srv/app/steps.db")
    assert settings.backup_dir == Path("/srv/backups")
    assert settings.health_interval == 0.5
    assert settings.health == "http://localhost:8080/health"


def test_flags_beat_config_and_none_means_not_given():
    base = {"backup": {"keep": "3", "lock_wait": "1"}, "db": {"path": "a.db"}}
    settings = config.load(base, keep="5", lock_wait=None, db="b.db", dir="elsewhere",
                           quick=True)  # fmt: skip
    assert settings.keep == 5
    assert settings.lock_wait == 1.0
    assert settings.db_path == Path("b.db")
    assert settings.backup_dir == Path("elsewhere")
    assert settings.check == "quick"
    assert config.load(base, keep=None).keep == 3


@pytest.mark.parametrize("keep", ["abc", "0", "-1", "", "2.5"])
def test_bad_keep_is_a_usage_error_naming_the_key(keep):
    message = usage_error(config.load, {"backup": {"keep": keep}})
    assert message.startswith("config backup.keep must be ") and "--keep" not in message
    flagged = usage_error(config.load, {}, keep=keep)  # the flag's names the flag
    assert flagged.startswith("--keep must be ") and flagged.endswith("(backup.keep)")
    assert flagged.removeprefix("--keep").removesuffix(" (backup.keep)") == \
        message.removeprefix("config backup.keep")


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("backup", "lock_wait", "soon"),
        ("backup", "lock_wait", "-1"),
        ("backup", "timeout", "1h"),
        ("backup", "snapshot_timeout", "x"),
        ("health", "timeout", "never"),
        ("health", "interval", "0"),
        ("deploy", "lock_wait", "?"),
    ],
)
def test_bad_numbers_name_their_key(section, key, value):
    message = usage_error(config.load, {section: {key: value}})
    assert f"{section}.{key}" in message and repr(value) in message


@pytest.mark.parametrize("section, key", [("db", "path"), ("backup", "dir")])
def test_empty_paths_are_refused(section, key):
    assert f"{section}.{key}" in usage_error(config.load, {section: {key: "  "}})


def test_unknown_check_is_refused():
    assert "backup.check" in usage_error(config.load, {"backup": {"check": "fast"}})


def test_app_and_health_url_come_from_fly_toml_unless_set(monkeypatch):
    settings = config.load({"fly": {"config": str(FLY_TOML)}})
    assert settings.app == "step-app-4x-yhw"
    assert settings.health == "https://step-app-4x-yhw.fly.dev/health"
    monkeypatch.setenv("FLY_APP", "from-env")
    assert settings.app == "from-env"
    assert config.load({"fly": {"app": "from-config", "config": str(FLY_TOML)}}).app == (
        "from-config"
    )


def test_fly_toml_is_only_read_when_needed(tmp_path):
    settings = config.load({"fly": {"config": str(tmp_path / "missing.toml")}})
    assert settings.keep == 10  # local work never needs fly.toml
    message = usage_error(lambda: settings.app)
    assert "fly.toml not found" in message and str(tmp_path / "missing.toml") in message


def test_missing_flyctl_binary_is_a_fly_error():
    settings = config.load({"fly": {"bin": "/nonexistent/flyctl"}})
    with pytest.raises(OpsError) as info:
        settings.flyctl()
    assert info.value.code == ExitCode.FLY and "/nonexistent/flyctl" in str(info.value)


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        (90, 90),
        ("0", 0),
        ("45s", 45),
        ("90m", 5400),
        ("36h", 129600),
        ("2d", 172800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("1.5h", 5400),
        (" 2D ", 172800),
    ],
)
def test_parse_duration(text, seconds):
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1x", "", "h", "-5", "1h 30m", "1h30", "90 s", "d2", "1..5h"])
def test_parse_duration_refuses(text):
    message = usage_error(config.parse_duration, text, "--max-age")
    assert message.startswith("--max-age must be a duration like 90s, 30m, 36h or 2d")
    assert repr(text) in message


# ---------------------------------------------------------------- fly.toml


def test_read_the_repositorys_fly_toml():
    fly = config.read_fly_toml(FLY_TOML)
    assert fly == config.FlyToml(
        app="step-app-4x-yhw", mount_source="data", mount_destination="/data",
        health_path="/health",
    )  # fmt: skip


def test_fly_toml_variants(tmp_path):
    path = tmp_path / "fly.toml"
    path.write_text(
        'app = "other"\n'
        '[[mounts]]\nsource = "vol"\ndestination = "/mnt/vol"\n'
        '[checks.alive]\ntype = "http"\npath = "/healthz"\n'
    )
    assert config.read_fly_toml(path) == config.FlyToml("other", "vol", "/mnt/vol", "/healthz")
    path.write_text('app = "bare"\n')
    assert config.read_fly_toml(path) == config.FlyToml("bare", "", "", "/health")


def test_malformed_fly_toml_names_the_file(tmp_path):
    path = tmp_path / "fly.toml"
    path.write_text('app = "step-app\n[mounts\nsource = data\n')
    message = usage_error(config.read_fly_toml, path)
    assert str(path) in message and "not valid TOML" in message


@pytest.mark.parametrize(
    "text, complaint",
    [('app = 3\n', "`app` must be a string"), ('mounts = "data"\n', "[mounts] must be a table")],
)
def test_wrongly_typed_fly_toml(tmp_path, text, complaint):
    path = tmp_path / "fly.toml"
    path.write_text(text)
    message = usage_error(config.read_fly_toml, path)
    assert complaint in message and str(path) in message


def test_missing_or_directory_fly_toml(tmp_path):
    message = usage_error(config.read_fly_toml, tmp_path / "fly.toml")
    assert message == f"fly.toml not found: {tmp_path / 'fly.toml'} (set fly.config)"
    message = usage_error(config.read_fly_toml, tmp_path)
    assert "is a directory" in message and str(tmp_path) in message


# ---------------------------------------------------------------- ceilings (issue 7 #10)

NUMBER_KEYS = [("backup", "lock_wait"), ("backup", "timeout"), ("backup", "snapshot_timeout"),
               ("health", "timeout"), ("health", "interval"), ("deploy", "lock_wait")]
NUMBER_FLAGS = [("lock_wait", "--lock-wait"), ("timeout", "--timeout"),
                ("snapshot_timeout", "--timeout"), ("health_timeout", "--health-timeout"),
                ("deploy_lock_wait", "--lock-wait")]
NOT_A_SANE_NUMBER = ["inf", "-inf", "nan", "NaN", "1e12", "86401", "-1", "9" * 400, [1], None,
                     True, {"a": 1}, float("inf"), float("nan"), 10**30]


@pytest.mark.parametrize("value", NOT_A_SANE_NUMBER)
def test_every_number_key_and_flag_has_a_finite_range(value):
    for section, key in NUMBER_KEYS:
        assert f"config {section}.{key} must be" in usage_error(
            config.load, {section: {key: value}})
    for flag, typed in NUMBER_FLAGS if value is not None else ():  # None: flag not given
        assert usage_error(config.load, {}, **{flag: value}).startswith(f"{typed} must be")


def test_the_ceilings_are_inclusive():
    settings = config.load({"backup": {"lock_wait": "86400", "keep": "1000"},
                            "health": {"interval": "3600"}})
    assert settings.lock_wait == 86400 and settings.keep == 1000
    assert settings.health_interval == 3600
    assert "at most 3600" in usage_error(config.load, {"health": {"interval": "3601"}})
    assert "at most 1000" in usage_error(config.load, {}, keep="1001")
    assert config.parse_duration("366d") == 366 * 86400
    assert "at most 366d" in usage_error(config.parse_duration, "367d", "--max-age")


@pytest.mark.parametrize("name", ["step-app-4x-yhw", "a", "0x", "a" * 63])
def test_fly_app_names_fly_accepts(name):
    assert config.check_app_name(name, "fly.app") == name


@pytest.mark.parametrize("name", ["", "../x", "A", "a_b", "-a", "a\n", "a" * 64, "a.b", "ａ"])
def test_fly_app_names_fly_refuses(name):
    assert "fly.app is not a Fly app name" in usage_error(config.check_app_name, name, "fly.app")


def test_config_paths_start_at_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = config.load({"project": {"root": "/srv/app"}})
    assert settings.db_path == Path("/srv/app/data/steps.db")
    assert settings.fly_config == Path("/srv/app/fly.toml")
    assert settings.audit_log == Path("/srv/app/data/deploys.jsonl")
    inside = config.load({"project": {"root": str(tmp_path)}}, dir="x")
    assert inside.db_path == Path("data/steps.db")  # shown from here when it is under here
    assert inside.backup_dir == Path("x")  # flags: from the current folder
