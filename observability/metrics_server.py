"""A bare /metrics endpoint for pods that serve no HTTP of their own (Celery workers).

Every process writes its metrics into prometheus_client's multiprocess directory
(`PROMETHEUS_MULTIPROC_DIR`). Under `make up` all processes share one directory and the web
/metrics sums them; on Kubernetes each pod has its own (an emptyDir), so a worker pod's spans,
tokens and costs would never be scraped. This server runs as a sidecar in the worker pod,
sums that pod's directory on each scrape and answers behind the same bearer token as the web
/metrics (`AIOS_METRICS_TOKEN`). It exports process metrics only: the gauges read from the
database at scrape time come from the web pods, once.

No Django: the sidecar needs the token and the directory, not the database or the other
secrets.

    python -m observability.metrics_server --host 0.0.0.0 --port 9100
"""

from __future__ import annotations

import argparse
import hmac
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def bearer_ok(header: str, expected: str) -> bool:
    """Whether an Authorization header carries `Bearer <expected>` (constant-time compare)."""
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500 for a stray header).
    sent = header[7:].strip().encode("utf-8", "surrogateescape")
    return header.lower().startswith("bearer ") and hmac.compare_digest(sent, expected.encode())


def metrics_token() -> str | None:
    """`AIOS_METRICS_TOKEN`, else the file named by `AIOS_METRICS_TOKEN_FILE` (as settings read it)."""
    if "AIOS_METRICS_TOKEN" in os.environ:
        return os.environ["AIOS_METRICS_TOKEN"]
    path = os.environ.get("AIOS_METRICS_TOKEN_FILE")
    return Path(path).read_text().strip() if path else None


def render_process_metrics(directory: str) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def make_app(*, token: str | None, directory: str) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method != "GET" or path not in ("/metrics", "/healthz"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if not token:  # as the web /metrics: no token configured means metrics are off
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"metrics are disabled: set AIOS_METRICS_TOKEN\n"]
        if not bearer_ok(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"send Authorization: Bearer <AIOS_METRICS_TOKEN>\n"]
        body = render_process_metrics(directory)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per scrape on stderr would drown the worker's logs."""


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve this pod's multiprocess metrics on /metrics.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]  # required: it is what this server reads
    app = make_app(token=metrics_token(), directory=directory)
    # PID 1 in a container ignores signals it has no handler for: without this, a pod waits out
    # its whole grace period for the sidecar after the worker has stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with make_server(args.host, args.port, app, handler_class=_QuietHandler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
