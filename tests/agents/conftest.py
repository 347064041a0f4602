"""Agents test fixtures: fast backoff, a private sandbox, runs executed in-process."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import ActionRun
from agents.services import run_execute


@pytest.fixture(autouse=True)
def _fast_runtime(settings: Any, tmp_path: Any) -> None:
    settings.AIOS_RUN_BACKOFF_SCALE = 0.0  # retry waits of zero: attempts follow each other at once
    settings.AIOS_SANDBOX_DIR = tmp_path / "sandbox"
    settings.AIOS_FORENSIC_MODE = False


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[str]:
    """Record sent messages instead of publishing (the worker's part is driven by `drain`).
    One message per run (the doorbell's coalescing is tested on its own: test_doorbell.py)."""
    settings.AIOS_RUN_COALESCE_WAKEUPS = False
    sent: list[str] = []
    from django.db import transaction

    from agents import tasks

    # Test transactions never commit: run on-commit callbacks at once, as autocommit would.
    monkeypatch.setattr(transaction, "on_commit", lambda fn, using=None, robust=False: fn())

    monkeypatch.setattr(tasks.execute_run, "apply_async", lambda args, **kw: sent.append(args[0]))
    return sent


@pytest.fixture
def effects(no_broker: list[str], monkeypatch: pytest.MonkeyPatch, settings: Any) -> dict[str, list[Any]]:
    """Approvals: previews computed in-process, notifications and webhooks recorded instead of sent."""
    from agents import approvals as approvals_mod
    from agents import tasks

    sent: dict[str, list[Any]] = {"notify": [], "webhook": []}
    settings.AIOS_APPROVAL_WEBHOOK_URL = "http://hooks.invalid/approvals"
    monkeypatch.setattr(tasks.approval_preview, "apply_async", lambda args, **kw: tasks.approval_preview.run(*args))
    from agents.models import ApprovalWebhook

    def webhook(args: list[int], **kw: Any) -> None:
        sent["webhook"].append(ApprovalWebhook.objects.get(pk=args[0]).body)

    monkeypatch.setattr(tasks.approval_webhook, "apply_async", webhook)
    monkeypatch.setattr(approvals_mod, "send_now", lambda group, kind, msg: sent["notify"].append((group, kind, msg)))
    return sent


def drain(sent: list[str], limit: int = 500) -> None:
    """Play the worker: execute every sent message, including those sent while executing."""
    from uuid import UUID

    for _ in range(limit):
        if not sent:
            return
        run_execute(run_id=UUID(sent.pop(0)))
    raise AssertionError("messages kept coming")


def refreshed(run: ActionRun) -> ActionRun:
    run.refresh_from_db()
    return run
