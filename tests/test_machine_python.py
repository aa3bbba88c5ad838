"""The flyctl double's machines' python3 (tests/flyctl_double/machine_python.py) runs a
``python3 -`` program exactly as the real interpreter does, from a cache of compiled code:
the same output, errors and exit status, the same process, and a broken cache entry costs
only a compile."""

from __future__ import annotations

import marshal
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.flyctl_double import machine_python
from tests.flyctl_double.state import real_python3
from tests.helpers import wait_for

PROGRAMS = {
    "prints": "import sys\nprint(sys.argv, __name__, __file__, __cached__, sorted(globals()))",
    "raises": "def f():\n    1 / 0\nf()\n",
    "syntax": "x = (\n",
    "exits": "import sys\nprint('before')\nsys.exit(3)\n",
    "ctrl-c": "raise KeyboardInterrupt\n",
    "stdin": "import sys\nprint(repr(sys.stdin.read()))\n",
    "dataclass": "from dataclasses import dataclass\n@dataclass\nclass A:\n    x: int = 1\n"
                 "print(A())\n",
    "atexit": "import atexit\natexit.register(print, 'at exit')\nraise SystemExit('bye')\n",
    "flags": "import os, sys\nprint(sys.flags.isolated, sys.flags.no_site, 'site' in sys.modules, "
             "sys.path[0], sys.stdout.line_buffering, os.environ.get('PYTHONPATH'))\n",
}
# ``python3 -`` and how ops runs its engine (engine.PYTHON3): ``python3 -I -S -``
FLAGS = {"plain": (), "isolated": ("-I", "-S")}


@pytest.fixture(scope="module")
def machine_python3() -> str:
    made = machine_python.command(real_python3())
    if made is None:
        pytest.skip("FLY_DOUBLE_PYTHON_CACHE=0 or no private folder: machines run python3")
    return made


def run(python: str, program: str, *args: str, flags=()) -> tuple[int, str, str]:
    done = subprocess.run([python, *flags, "-", *args], input=program.encode(),
                          capture_output=True, timeout=30, cwd="/",
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                               "PYTHONPATH": "/nonexistent", "PYTHONUNBUFFERED": "1"})
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("name", PROGRAMS)
def test_a_program_runs_as_under_the_real_python3(machine_python3, name, flags):
    program, flags = PROGRAMS[name], FLAGS[flags]
    expected = run(real_python3(), program, "a b", "c", flags=flags)
    assert run(machine_python3, program, "a b", "c", flags=flags) == expected  # compiled
    assert run(machine_python3, program, "a b", "c", flags=flags) == expected  # from the cache


def test_the_cache_holds_each_program_once_and_a_broken_entry_is_compiled_again(
        machine_python3):
    token = os.urandom(8).hex()
    program = f"print('{token}')\n"  # a program no run has cached before
    cache = Path(machine_python3).parent / "code"
    before = set(os.listdir(cache))
    assert run(machine_python3, program)[0] == 0
    new = set(os.listdir(cache)) - before
    assert len(new) == 1 and not any(name.endswith(".tmp") for name in new)
    entry = cache / new.pop()
    entry.write_bytes(b"not marshal data")
    assert run(machine_python3, program) == (0, f"{token}\n", "")
    entry.write_bytes(marshal.dumps("print('not the program')"))  # marshal data, not code
    assert run(machine_python3, program) == (0, f"{token}\n", "")


def test_other_command_lines_are_the_real_python3s(machine_python3):
    probe = "import sys; print(sys.argv[1:], sys.flags.isolated)"
    for python in (machine_python3, real_python3()):
        done = subprocess.run([python, "-I", "-c", probe, "x"], capture_output=True,
                              text=True, timeout=30)
        assert (done.returncode, done.stdout) == (0, "['x'] 1\n")


def test_the_process_is_the_interpreter_itself(machine_python3, tmp_path):
    ready = tmp_path / "pid"
    program = (f"import os, time\nopen({str(ready)!r}, 'w').write(str(os.getpid()))\n"
               "time.sleep(30)\n")
    proc = subprocess.Popen([machine_python3, "-"], stdin=subprocess.PIPE)
    proc.stdin.write(program.encode())
    proc.stdin.close()
    wait_for(lambda: ready.exists() and ready.read_text(), what="the program's pid")
    assert int(ready.read_text()) == proc.pid  # exec'd: a kill -9 of it kills the program
    assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "python3"
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
