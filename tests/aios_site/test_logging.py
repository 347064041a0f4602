from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from aios_core.logging import JsonFormatter, redact
from aios_site.tokens import token_create
from tests.factories import make_user


def test_each_log_line_is_one_json_object_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    from aios_core import context

    with context.bound(request_id="r-1", username="ann"):
        record = logging.makeLogRecord({"name": "t", "msg": "hello %s", "args": ("world",), "levelname": "INFO"})
    line = JsonFormatter().format(record)  # formatted later, elsewhere: the fields travel with it
    entry = json.loads(line)
    assert entry["msg"] == "hello world" and entry["request_id"] == "r-1" and entry["username"] == "ann"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer aios_1234abcd_SECRETSECRETSECRET",
        "key=sk-ant-api03-abcdefghijkl",
        'password="hunter2hunter2"',
    ],
)
def test_secrets_are_masked(text: str) -> None:
    masked = redact(text)
    assert "SECRETSECRET" not in masked and "abcdefghijkl" not in masked and "hunter2" not in masked
    assert "[REDACTED]" in masked


@pytest.mark.django_db
def test_requests_are_logged_with_their_id_and_user_but_never_the_token(caplog: pytest.LogCaptureFixture) -> None:
    _, raw = token_create(user=make_user(username="logme"), name="t", scopes=["read"])
    with caplog.at_level(logging.INFO, logger="aios.access"):
        resp = Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_REQUEST_ID="req-42")
    assert resp["X-Request-ID"] == "req-42"
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "aios.access"]
    assert lines, "no access log line"
    assert all(raw not in line for line in lines)
    entry = json.loads(lines[-1])
    assert entry["request_id"] == "req-42" and entry["username"] == "logme" and entry["api_token"] == "t"
    assert entry["status"] == 200 and entry["path"] == "/api/me"


def _log_entry(message: str) -> dict[str, object]:
    """The JSON line a record created now would become."""
    record = logging.getLogger("t").makeRecord("t", logging.INFO, __file__, 1, message, (), None)
    return json.loads(JsonFormatter().format(record))


@pytest.mark.django_db
def test_a_log_line_written_inside_a_span_carries_its_trace_id() -> None:
    from observability import get_observability

    obs = get_observability()
    with obs.trace_span("outer") as outer:
        inside = _log_entry("inside")
        with obs.trace_span("inner"):
            nested = _log_entry("nested")
    after = _log_entry("after")
    assert inside["trace_id"] == outer.trace_id.hex
    assert nested["trace_id"] == outer.trace_id.hex  # a child span belongs to the same trace
    assert "trace_id" not in after


@pytest.mark.django_db
def test_a_celery_task_logs_with_the_trace_id_of_the_span_that_sent_it() -> None:
    from types import SimpleNamespace

    from celery import signals

    import aios_site.celery  # noqa: F401 - its receivers reset the context per task
    from observability import get_observability

    with get_observability().trace_span("sender") as sender:
        traceparent = sender.traceparent

    class Task:  # what the receivers read of a Celery task
        request = SimpleNamespace(traceparent=traceparent, headers={})

    task = Task()
    signals.task_prerun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={})
    try:
        entry = _log_entry("in the task")
    finally:
        signals.task_postrun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={})
    assert entry["trace_id"] == sender.trace_id.hex and entry["request_id"] == "task:t-1"
