"""`manage.py up`: migrate, seed, collect static files, then run web + worker + beat.

Ctrl-C or SIGTERM stops every child and, when they are embedded, Postgres and Redis too.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from aios_core import embedded
from aios_site.supervisor import Supervisor


def process_commands(
    *, python: str, host: str, port: int, worker_concurrency: int, beat_pidfile: Path
) -> dict[str, list[str]]:
    """The three processes. The Dockerfile, docker-compose.yml and k8s/ run the same commands
    (one process per container there); tests/deploy/test_manifests.py keeps them in step."""
    return {
        "web": [python, "-m", "aios_site.serve", "--host", host, "--port", str(port)],
        "worker": [python, "-m", "celery", "-A", "aios_site", "worker", "--loglevel", "INFO", "--concurrency",
                   str(worker_concurrency), "--without-gossip", "--without-mingle"],
        # --enable-remote-control: beat answers `celery inspect ping` while its scheduler ticks
        # (the liveness check of the beat container in docker-compose.yml and k8s/).
        "beat": [python, "-m", "celery", "-A", "aios_site", "beat", "--loglevel", "INFO", "--enable-remote-control",
                 "--pidfile", str(beat_pidfile)],
    }  # fmt: skip


class Command(BaseCommand):
    help = "Run Ai:oS (web, Celery worker and beat) under one supervisor."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default=os.environ.get("AIOS_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-setup", action="store_true", help="skip migrate, seed and collectstatic")
        parser.add_argument(
            "--worker-concurrency", type=int, default=int(os.environ.get("AIOS_WORKER_CONCURRENCY", "2"))
        )

    def handle(self, *args: object, **opts: object) -> None:
        if not opts["no_setup"]:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("aios_seed", stdout=self.stdout)
            call_command("collectstatic", interactive=False, verbosity=0)
        self._reset_prometheus_dir()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        commands = process_commands(
            python=sys.executable, host=str(opts["host"]), port=int(opts["port"]),  # type: ignore[call-overload]
            worker_concurrency=int(opts["worker_concurrency"]),  # type: ignore[call-overload]
            beat_pidfile=settings.VAR_DIR / "run" / "beat.pid",
        )  # fmt: skip
        sup = Supervisor(commands, env)
        sup.start()
        try:
            self._announce(str(opts["host"]), int(opts["port"]))  # type: ignore[arg-type]
            code = sup.wait()
        finally:
            sup.stop()
            self._stop_embedded()
        sys.exit(code)

    def _reset_prometheus_dir(self) -> None:
        """Multiprocess metric files of processes from a previous run would be summed in."""
        prom = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        for f in prom.glob("*.db"):
            f.unlink(missing_ok=True)

    def _announce(self, host: str, port: int) -> None:
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        if settings.AIOS_ADMIN_PASSWORD:
            login = "password from AIOS_ADMIN_PASSWORD"
        else:
            login = f"password in {settings.VAR_DIR / 'admin_password'}"
        self.stdout.write(f"\n  Ai:oS is up at {url}\n  Log in as 'admin' ({login}).\n  Ctrl-C stops everything.\n\n")
        self.stdout.flush()

    def _stop_embedded(self) -> None:
        if settings.REDIS_EMBEDDED:
            embedded.redis_stop(settings.VAR_DIR / "redis")
        if settings.DATABASE_EMBEDDED:
            embedded.postgres_stop(settings.VAR_DIR / "pg")
