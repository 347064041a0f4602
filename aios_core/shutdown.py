"""Whether the interpreter is exiting, so background threads can stop quietly.

At exit, embedded servers are stopped by atexit handlers and log streams may already be
closed: a daemon thread that then "loses" Redis or Postgres must not log about it (or write
to a closed stream). The flag is raised by threading's own exit hook, which runs before any
atexit handler.
"""

from __future__ import annotations

import atexit
import threading

_exiting = threading.Event()


def exiting() -> bool:
    return _exiting.is_set()


_register = getattr(threading, "_register_atexit", None)  # CPython 3.9+: runs before atexit handlers
if _register is not None:
    _register(_exiting.set)
else:  # pragma: no cover
    atexit.register(_exiting.set)
