"""Background threads stop quietly at interpreter exit, when the servers they watch go away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A process with its own embedded Redis, stopped by an atexit handler as the test plugin and
# `manage.py up` stop theirs, while the cache-invalidation listener thread is subscribed to it.
SCRIPT = """
import atexit, os, shutil, sys, tempfile, time
from pathlib import Path
from aios_core import embedded
data = Path(tempfile.mkdtemp(prefix="aios-exit-", dir=os.environ["AIOS_VAR_DIR"]))
os.environ["REDIS_URL"] = embedded.redis_url(data / "redis")
atexit.register(shutil.rmtree, data, True)
atexit.register(embedded.redis_stop, data / "redis")
import django; django.setup()
from routing.response_cache import local
local.ensure_listening()
time.sleep(0.5)
print("listening", flush=True)
"""


def test_the_cache_invalidation_listener_stops_quietly_when_redis_goes_away_at_exit() -> None:
    from tests.helpers import subprocess_env

    env = subprocess_env(AIOS_VAR_DIR=str(ROOT / "var"))
    env.pop("REDIS_URL", None)
    env.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "listening" in proc.stdout
    output = proc.stdout + proc.stderr
    assert "lost Redis" not in output and "I/O operation on closed file" not in output, output[-2000:]
