"""Numbers from outside (config keys, INVOKE_* values, flags, records, the machine's,
flyctl's and litestream's output) are read in ASCII digits only (ops.digits): other
scripts' digits, a superscript, "1_000", nan and inf are refused in one line naming the
key and the value, or, in a tool's output, are no number (never a traceback)."""

from __future__ import annotations

import pytest

from ops import (
    config,
    data_guard,
    digits,
    engine,
    machine,
    remote,
    replica,
    replica_checks,
    replica_hooks,
)
from ops.errors import ExitCode, OpsError
from ops.retention import validate_keep
from ops.targets import scripted

# twelve in four scripts, a superscript two, Python's own spellings of numbers
HOSTILE = ["١٢", "۱۲", "１２", "१२", "²", "1_000", "nan", "inf", "-inf", "Infinity", "0x10",
           "1\u00a0", "\u200b1", "\u300012", ""]


def usage_error(call, *args, **kwargs) -> str:
    with pytest.raises(OpsError) as info:
        call(*args, **kwargs)
    assert info.value.code == ExitCode.USAGE, info.value
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("text", HOSTILE)
def test_the_shared_reader_takes_ascii_digits_only(text):
    assert digits.is_whole(text) is False and digits.whole(text) is None
    assert digits.whole_setting(text) is None
    assert digits.decimal(text) is None


def test_what_the_shared_reader_takes():
    assert digits.whole("0012") == 12 and digits.whole(" 12 ") is None  # output: exact
    assert digits.whole("9" * 40) == int("9" * 40) and digits.whole("9" * 41) is None
    assert digits.whole_setting(" 12 ") == 12 and digits.whole_setting("-0") == 0
    assert digits.decimal(" 12 ") == 12.0 and digits.decimal("12\n") == 12.0  # ASCII blanks
    assert digits.decimal("2.5") == 2.5
    assert digits.decimal("1e12") == 1e12 and digits.decimal("-0") == 0.0
    assert digits.decimal("9" * 400) == float("inf")  # the caller's range names it
    assert digits.decimal("9" * 1001) is None  # no megabyte-long "number"


@pytest.mark.parametrize("text", HOSTILE)
def test_every_number_key_and_flag_refuses_other_digits(text):
    for section, key in [("backup", "lock_wait"), ("backup", "timeout"), ("fly", "timeout"),
                         ("backup", "mmap_size"), ("ssh", "connect_timeout")]:
        message = usage_error(config.load, {section: {key: text}})
        assert message.startswith(f"config {section}.{key} must be") and repr(text) in message
    message = usage_error(config.load, {}, lock_wait=text)
    assert message.startswith("--lock-wait must be") and repr(text) in message
    message = usage_error(config.load, {"backup": {"keep": text}})  # the key, not a flag
    assert message == f"config backup.keep must be a whole number, got {text!r}"
    message = usage_error(config.load, {}, keep=text)
    assert message == f"--keep must be a whole number, got {text!r} (backup.keep)"


def test_blanks_a_sign_and_a_huge_number_read_as_before():
    settings = config.load({"backup": {"lock_wait": " 12 ", "keep": " 3 ", "timeout": "-0"}})
    assert (settings.lock_wait, settings.keep, settings.backup_timeout) == (12.0, 3, 0.0)
    for huge in ("9" * 400, 10 ** 400):  # a float's inf, named as the key's range
        assert "must be a finite number" in usage_error(
            config.load, {"backup": {"lock_wait": huge}})
    assert "at least 1" in usage_error(config.load, {"backup": {"keep": "-0"}})


@pytest.mark.parametrize("text", ["١٢h", "１２", "²h", "1_000s", "12h\u00b2", "nan", "infh",
                                  "1٫5h", "١h٣٠m", "\u300012h", "12h\u00a0"])
def test_a_duration_in_other_digits_is_refused_naming_the_flag(text):
    assert usage_error(config.parse_duration, text, "--max-age") == (
        f"--max-age must be a duration like 90s, 30m, 36h or 2d, got {text!r}")


def test_a_duration_in_ascii_digits_still_reads():
    assert config.parse_duration(" 12h ") == 12 * 3600
    assert config.parse_duration("1h30m") == 5400
    assert "at most 366d" in usage_error(config.parse_duration, "9" * 400, "--max-age")


def test_replica_durations_refuse_other_digits():
    message = usage_error(config.load_replica, {"replica": {"max_lag": "٦٠s"}})
    assert "replica.max_lag" in message and "'٦٠s'" in message
    assert replica._seconds("٣٠s") is None and replica._seconds("30s") == 30
    assert replica._seconds(float("nan")) is None and replica._seconds(float("inf")) is None
    assert not replica_checks.GO_DURATION.fullmatch("١s")


@pytest.mark.parametrize("text", ["٠٫٥", "１", "²", "1_0", "nan"])
def test_the_row_loss_limit_refuses_other_digits(text):
    with pytest.raises(ValueError, match="must be a"):
        data_guard.row_loss_limit({"fraction": text}, "deploy.max_row_loss")


# ---------------------------------------------------------------- what tools print

def test_the_machines_exit_status_in_other_digits_is_not_ours():
    for status in ("٠", "０", "²", "1_0"):
        with pytest.raises(OpsError, match="did not print|unexpected|this tool"):
            remote.parse_output(f"{remote.SENTINEL}={status}\n")
    assert remote.parse_output(f"{remote.SENTINEL}=0\n").status == 0


def test_a_result_with_nan_or_infinity_is_not_ours():
    for value in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(OpsError):
            remote.parse_output(f'{engine.RESULT_MARK} {{"ok": true, "size": {value}}}\n'
                                f"{remote.SENTINEL}=0\n")


def test_a_record_with_nan_is_no_record(tmp_path):
    with pytest.raises(ValueError, match="not a JSON number: NaN"):
        engine.parse_record('{"size": NaN}')
    path = tmp_path / "steps-2026-01-01T00-00-00.db"
    path.write_bytes(b"x")
    path.with_name(path.name + ".json").write_text(
        f'{{"name": "{path.name}", "size": Infinity, "sha256": "{"0" * 64}"}}')
    assert engine.read_manifest(path) is None


def test_counts_and_facts_in_other_digits_are_no_numbers():
    entries = [["live", "steps", "١٢"], ["live", "users", "²"], ["live", "teams", "7"]]
    assert scripted._counts(entries, "live") == {"teams": 7}
    facts = machine.parse([["db_size", "１２"], ["free_kb", "²"], ["mem_total_kb", "٣"]])
    assert (facts["db_size"], facts["free"], facts["mem_total"]) == (None, None, None)


def test_litestreams_framed_answers_in_other_digits_are_no_numbers():
    mark = remote.ENTRY_MARK
    found = replica.remote_answers(f"{mark} now ²\n{mark} begin version ١\nv0.5.2\n"
                                   f"{mark} end\n{mark} now 1700000000\n")
    assert found["now"].year == 2023 and "version" not in found
    assert replica.version_problem("litestream v٠.٥.٢") is not None
    assert replica.version_problem("v0.5.2") is None
    sections = replica_hooks.sections(f"{replica_hooks.MARK} sync\nout\n"
                                      f"{replica_hooks.MARK} rc ²\n")
    assert sections["sync"][0] is None


def test_flyctls_version_in_other_digits_is_not_a_version():
    from ops import fly

    assert fly.parse_version('{"Version": "0.4.87"}')[1] == (0, 4, 87)
    assert fly.parse_version('{"Version": "٠.٤.٨٧"}')[1] is None
    assert fly.parse_version("fly v٠.٤.٨٧ linux")[1] is None


# ---------------------------------------------------------------- the real CLI

def test_an_env_value_in_other_digits_is_one_error_line(run_invoke):
    result = run_invoke("restore", "--dry-run", env={"INVOKE_BACKUP_KEEP": "١٢"})
    assert result.returncode == ExitCode.USAGE, result  # named as the key (review-op s21 #10)
    assert result.stderr.strip() == \
        "Error: config backup.keep must be a whole number, got '١٢'", result.stderr
    assert validate_keep("12") == 12


def test_the_open_handles_count_in_other_digits_is_no_count():
    from ops import emergency

    def said(count: str) -> int | None:
        return emergency.open_handles(remote.parse_output(
            f"{remote.ENTRY_MARK} open {count}\n{remote.SENTINEL}=0\n"))

    assert (said("0"), said("3")) == (0, 3)
    assert [said(text) for text in ("²", "٣", "３", "1_0", "")] == [None] * 5
