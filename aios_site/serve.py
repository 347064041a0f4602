"""Run the ASGI app under uvicorn with Django's JSON logging (instead of uvicorn's own).

python -m aios_site.serve --host 127.0.0.1 --port 8000 [--workers N]
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()  # configures logging from settings.LOGGING
    import uvicorn

    uvicorn.run(
        "aios_site.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,  # keep Django's JSON logging
        access_log=False,  # RequestContextMiddleware writes the access log
        lifespan="off",  # Channels' router does not speak the lifespan protocol
        proxy_headers=True,
        server_header=False,
    )


if __name__ == "__main__":
    main()
