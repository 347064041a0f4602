"""pytest plugin (loaded with -p, before pytest-django reads settings): choose the servers.

- DATABASE_URL unset: the embedded Postgres in var/pg (pytest-django creates test_* in it).
- REDIS_URL unset: a private embedded Redis for this session only, stopped at the end.
- Either set: that server. A per-run Celery queue, channel-layer and cache prefix keep
  concurrent runs (or a running `make up`) from consuming each other's messages.
"""

from __future__ import annotations

import atexit
import os
import shutil
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
os.environ.setdefault("SECRET_KEY", "tests-only-" + "k" * 50)
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("AIOS_LOCAL_HTTP", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("AIOS_CELERY_QUEUE", f"aios-test-{RUN_ID}")
os.environ.setdefault("AIOS_CHANNELS_PREFIX", f"aios-test-{RUN_ID}")
os.environ.setdefault("AIOS_CACHE_PREFIX", f"aios-test-{RUN_ID}")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["AIOS_TEST_RUN_ID"] = RUN_ID
# One test database per run, so concurrent runs on one server never drop each other's.
os.environ.setdefault("AIOS_TEST_DB_NAME", f"test_aios_{RUN_ID}")

# Prometheus multiprocess files of this run only (a dev server's counters must not leak in).
_prom_dir = ROOT / "var" / f"prom-{RUN_ID}"
_prom_dir.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_prom_dir)
atexit.register(shutil.rmtree, _prom_dir, True)

if not os.environ.get("REDIS_URL"):
    from aios_core import embedded

    _redis_dir = ROOT / "var" / f"tr-{RUN_ID}"
    os.environ["REDIS_URL"] = embedded.redis_url(_redis_dir)

    def _stop_private_redis() -> None:
        embedded.redis_stop(_redis_dir)
        shutil.rmtree(_redis_dir, ignore_errors=True)

    atexit.register(_stop_private_redis)


def _static_fingerprint() -> str:
    import hashlib

    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders

    h = hashlib.sha256(str(settings.STATIC_ROOT).encode())
    for finder in get_finders():
        for path, storage in finder.list([]):
            stat = os.stat(storage.path(path))
            h.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()


def pytest_sessionstart(session: object) -> None:
    """Pages render {% static %} through the manifest. Collect once when sources change,
    under a lock, so concurrent runs never see a half-written staticfiles directory."""
    import fcntl

    from django.core.management import call_command

    stamp = ROOT / "var" / "static.stamp"
    with open(ROOT / "var" / ".static.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fingerprint = _static_fingerprint()
        if not stamp.exists() or stamp.read_text() != fingerprint:
            call_command("collectstatic", interactive=False, verbosity=0)
            stamp.write_text(fingerprint)
