"""Loaded by the CLI under test when ``PYTHONPATH`` names this folder (``tests.hooks``).

``OPS_TEST_HOOK`` (JSON) says which ``ops.engine`` function to wrap and what to do at an
exact point of a real run: ``{"wrap": "restore_live", "when": "after", "signal": "SIGINT"}``
sends the process a real signal as the copy returns; ``{"wrap": "verify_copy", "when":
"after", "tamper": PATH}`` rewrites PATH's bytes right after its check. Nothing here
runs unless the variable is set.
"""

import json
import os

_SPEC = os.environ.get("OPS_TEST_HOOK")

if _SPEC:
    import functools
    import signal
    import sqlite3

    from ops import engine

    spec = json.loads(_SPEC)

    def _act():
        if spec.get("signal"):
            os.kill(os.getpid(), getattr(signal, spec["signal"]))
        if spec.get("tamper"):
            conn = sqlite3.connect(spec["tamper"])
            conn.execute("UPDATE teams SET name = name || ' (tampered after its check)'")
            conn.commit()
            conn.close()

    for name in spec["wrap"].split(","):
        if not hasattr(engine, name):
            continue
        real = getattr(engine, name)

        def wrapped(*args, _real=real, **kwargs):
            if spec.get("when") == "before":
                _act()
            result = _real(*args, **kwargs)
            if spec.get("when") == "after":
                _act()
            return result

        setattr(engine, name, functools.wraps(real)(wrapped))
