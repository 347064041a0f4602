"""The worker pods' metrics sidecar (observability/metrics_server.py): the multiprocess files of
its pod, behind the same bearer token as the web /metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics_server import make_app, metrics_token


def call(app: Any, path: str, authorization: str = "") -> tuple[str, bytes]:
    seen: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": authorization}
    body = b"".join(app(environ, lambda status, _headers: seen.append(status)))
    return seen[0], body


def test_it_serves_the_metrics_of_its_directory_only_to_the_bearer_token() -> None:
    # This run's multiprocess directory holds the test process's own counters.
    app = make_app(token="scrape", directory=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert call(app, "/metrics")[0].startswith("401")
    assert call(app, "/metrics", "Bearer wrong")[0].startswith("401")
    status, body = call(app, "/metrics", "Bearer scrape")
    assert status == "200 OK"
    assert "aios_spans_dropped" in {f.name for f in text_string_to_metric_families(body.decode())}


def test_it_is_off_without_a_token_but_still_answers_its_health_check(tmp_path: Path) -> None:
    app = make_app(token=None, directory=str(tmp_path))
    assert call(app, "/metrics", "Bearer anything")[0].startswith("404")
    assert call(app, "/healthz")[0] == "200 OK"
    assert call(app, "/other")[0].startswith("404")


def test_the_token_may_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("from-file\n")
    monkeypatch.delenv("AIOS_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("AIOS_METRICS_TOKEN_FILE", str(tmp_path / "token"))
    assert metrics_token() == "from-file"
