"""Loaded by the CLI under test when ``PYTHONPATH`` names this folder (``tests.hooks``).

``OPS_TEST_HOOK`` (JSON) says which ``ops.engine`` function to wrap and what to do at an
exact point of a real run: ``{"wrap": "restore_live", "when": "after", "signal": "SIGINT"}``
sends the process a real signal as the copy returns; ``{"wrap": "verify_copy", "when":
"after", "tamper": PATH}`` rewrites PATH's bytes right after its check; ``"run": {"args":
[...], "output": PATH}`` runs another task (``invoke ARGS``) to its end there; a name
``module:Class.method`` wraps that method instead; a JSON list: several such, each its
own. Nothing here runs unless the variable is set.
"""

import json
import os

_SPEC = os.environ.get("OPS_TEST_HOOK")

if _SPEC:
    import functools
    import signal
    import sqlite3

    from ops import engine

    specs = json.loads(_SPEC)  # one spec, or a list of them (each its own wrap)
    specs = specs if isinstance(specs, list) else [specs]

    def _act(spec):  # a tamper (an app's write) comes before the signal when both are asked
        if spec.get("tamper"):
            conn = sqlite3.connect(spec["tamper"])
            conn.execute("UPDATE teams SET name = name || ' (tampered after its check)'")
            conn.commit()
            conn.close()
        if spec.get("run"):  # another task, run to its end at that point (a cleanup)
            import subprocess
            import sys

            env = {k: v for k, v in os.environ.items() if k != "OPS_TEST_HOOK"}
            with open(spec["run"]["output"], "w") as out:
                code = subprocess.run([sys.executable, "-m", "invoke", *spec["run"]["args"]],
                                      env=env, stdout=out, stderr=out,
                                      stdin=subprocess.DEVNULL).returncode
                out.write(f"\nexit {code}\n")
        if spec.get("signal"):
            os.kill(os.getpid(), getattr(signal, spec["signal"]))

    import importlib

    for spec, name in [(one, name) for one in specs for name in one["wrap"].split(",")]:
        owner = engine  # "function" of ops.engine, or "module:Class.method"
        if ":" in name:
            module, _, dotted = name.partition(":")
            owner = importlib.import_module(module)
            *parents, name = dotted.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
        if not hasattr(owner, name):
            continue
        real = getattr(owner, name)

        def wrapped(*args, _real=real, _spec=spec, **kwargs):
            if _spec.get("when") == "before":
                _act(_spec)
            result = _real(*args, **kwargs)
            if _spec.get("when") == "after":
                _act(_spec)
            return result

        setattr(owner, name, functools.wraps(real)(wrapped))
