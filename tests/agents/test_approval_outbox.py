"""What approvals send on commit (webhooks, forensic previews) survives a failing endpoint and a
broker outage: retried by their tasks, re-queued by the relay, never blocking a decision."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from agents import approvals as approvals_mod
from agents import tasks
from agents.approvals import approval_decide, approvals_expire, approvals_relay
from agents.models import ApprovalRequest, ApprovalWebhook
from agents.services import run_request

pytestmark = pytest.mark.django_db

FIREWALL = {"agent": "security", "action": "firewall_enable", "payload": {}}


class Endpoint:
    """A local webhook receiver answering with scripted statuses (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.received.append(json.loads(body))
                self.send_response(endpoint.statuses.pop(0) if endpoint.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint(settings: Any) -> Iterator[Endpoint]:
    ep = Endpoint([])
    settings.AIOS_APPROVAL_WEBHOOK_URL = ep.url
    yield ep
    ep.server.shutdown()


@pytest.fixture
def queued(no_broker: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Tasks queued on commit, recorded (the broker's part); notifications dropped."""
    sent: dict[str, list[int]] = {"webhook": [], "preview": []}
    monkeypatch.setattr(tasks.approval_webhook, "apply_async", lambda args, **kw: sent["webhook"].append(args[0]))
    monkeypatch.setattr(tasks.approval_preview, "apply_async", lambda args, **kw: sent["preview"].append(args[0]))
    monkeypatch.setattr(approvals_mod, "send_now", lambda *a: None)
    return sent


def _broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.approval_webhook, "apply_async", refuse)
    monkeypatch.setattr(tasks.approval_preview, "apply_async", refuse)


# --- webhooks ------------------------------------------------------------------------------------


def test_a_failing_webhook_endpoint_is_retried_until_it_answers(
    operator: Any, approver: Any, endpoint: Endpoint, queued: dict[str, list[int]]
) -> None:
    endpoint.statuses = [500, 503]
    run, _ = run_request(user=operator, **FIREWALL)
    approval_decide(request=run.approval, user=approver, approve=True, comment="go")
    requested, decided = queued["webhook"]
    assert tasks.approval_webhook.apply(args=[requested]).get() == "sent"  # retries inline (eager)
    assert tasks.approval_webhook.apply(args=[decided]).get() == "sent"
    first, second = ApprovalWebhook.objects.get(pk=requested), ApprovalWebhook.objects.get(pk=decided)
    assert first.attempts == 3 and first.sent_at is not None and first.last_error == ""
    assert second.attempts == 1 and second.sent_at is not None
    assert [m["aios"]["event"] for m in endpoint.received] == ["requested"] * 3 + ["decided"]
    assert "approved" in endpoint.received[-1]["text"]
    assert tasks.approval_webhook.apply(args=[requested]).get() == "done"  # a duplicate message posts nothing
    assert len(endpoint.received) == 4


def test_a_webhook_that_never_answers_is_given_up_loudly_and_the_decision_stands(
    operator: Any, approver: Any, endpoint: Endpoint, queued: dict[str, list[int]], caplog: Any
) -> None:
    endpoint.statuses = [500] * 20
    run, _ = run_request(user=operator, **FIREWALL)
    approval_decide(request=run.approval, user=approver, approve=False, comment="no")
    with caplog.at_level(logging.ERROR, logger="agents.approvals"):
        assert tasks.approval_webhook.apply(args=[queued["webhook"][0]]).get() == "failed"
    hook = ApprovalWebhook.objects.get(pk=queued["webhook"][0])
    assert hook.failed_at is not None and hook.attempts == 9 and "500" in hook.last_error
    assert "abandoned" in caplog.text
    run.refresh_from_db()
    assert run.status == "rejected" and run.approval.status == "rejected"
    assert approvals_relay()["webhooks"] == 0  # abandoned rows stay abandoned


def test_a_slow_webhook_endpoint_never_holds_up_a_decision(
    operator: Any, approver: Any, settings: Any, queued: dict[str, list[int]]
) -> None:
    settings.AIOS_APPROVAL_WEBHOOK_URL = "http://10.255.255.1/unroutable"  # would hang until timeout
    run, _ = run_request(user=operator, **FIREWALL)
    started = time.monotonic()
    approval_decide(request=run.approval, user=approver, approve=True)
    assert time.monotonic() - started < 2  # the decision only writes an outbox row
    assert len(queued["webhook"]) == 2


def test_a_broker_outage_at_commit_loses_no_webhook_the_relay_sends_it(
    operator: Any,
    approver: Any,
    endpoint: Endpoint,
    queued: dict[str, list[int]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
) -> None:
    run, _ = run_request(user=operator, **FIREWALL)
    queued["webhook"].clear()
    _broker_down(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="agents.approvals"):
        approval_decide(request=run.approval, user=approver, approve=True)  # the decision stands
    run.refresh_from_db()
    assert run.status == "queued" and run.approval.status == "approved"
    assert "left for agents.approvals_relay" in caplog.text
    hook = ApprovalWebhook.objects.get(event="decided")
    assert hook.dispatched_at is None and hook.sent_at is None
    monkeypatch.undo()  # the broker is back
    monkeypatch.setattr(tasks.approval_webhook, "apply_async", lambda args, **kw: queued["webhook"].append(args[0]))
    assert approvals_relay() == {"previews": 0, "webhooks": 1}
    assert queued["webhook"] == [hook.pk]
    assert approvals_relay()["webhooks"] == 0  # queued once, not on every beat
    assert tasks.approval_webhook.apply(args=[hook.pk]).get() == "sent"
    assert endpoint.received[-1]["aios"]["event"] == "decided"


def test_the_relay_resends_a_webhook_whose_task_went_missing(
    operator: Any, endpoint: Endpoint, queued: dict[str, list[int]]
) -> None:
    run_request(user=operator, **FIREWALL)
    (pk,) = queued["webhook"]
    assert approvals_relay()["webhooks"] == 0  # in flight
    ApprovalWebhook.objects.filter(pk=pk).update(dispatched_at=timezone.now() - timedelta(hours=1))
    assert approvals_relay()["webhooks"] == 1 and queued["webhook"] == [pk, pk]


# --- previews ------------------------------------------------------------------------------------


def test_expiry_never_computes_previews_however_slow_they_are(
    operator: Any, queued: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = run_request(user=operator, **FIREWALL)
    req = run.approval
    ApprovalRequest.objects.filter(pk=req.pk).update(
        preview_dispatched_at=None, created_at=timezone.now() - timedelta(minutes=5)
    )
    other, _ = run_request(user=operator, **FIREWALL)
    ApprovalRequest.objects.filter(pk=other.approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    def slow_preview(**kwargs: Any) -> bool:
        raise AssertionError("expiry ran a forensic preview")

    monkeypatch.setattr(approvals_mod, "approval_preview_attach", slow_preview)
    assert approvals_expire() == {"expired": 1, "cancelled": 0}


def test_the_relay_queues_lost_previews_as_their_own_tasks(
    operator: Any, queued: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    _broker_down(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="agents.approvals"):
        run, _ = run_request(user=operator, **FIREWALL)  # the request stands
    req = ApprovalRequest.objects.get(run=run)
    assert req.preview_dispatched_at is None and "left for agents.approvals_relay" in caplog.text
    monkeypatch.undo()
    monkeypatch.setattr(tasks.approval_preview, "apply_async", lambda args, **kw: queued["preview"].append(args[0]))
    monkeypatch.setattr(approvals_mod, "approval_preview_attach", lambda **kw: pytest.fail("computed inline"))
    assert approvals_relay() == {"previews": 1, "webhooks": 0}
    assert queued["preview"] == [req.pk]
    assert approvals_relay()["previews"] == 0  # in flight: not queued again
    ApprovalRequest.objects.filter(pk=req.pk).update(preview_dispatched_at=timezone.now() - timedelta(minutes=10))
    assert approvals_relay()["previews"] == 1  # its task went missing: queued again


def test_the_relay_runs_on_beat_every_minute(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["agents-approvals-relay"]
    assert entry["task"] == "agents.approvals_relay" and entry["schedule"] <= 60
