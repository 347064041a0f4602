from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from evaluation.consumers import EvalRunConsumer, run_group
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db(transaction=True)

# The consumer as aios_site/ws_urls.py would mount it.
app = AuthMiddlewareStack(URLRouter([path("ws/evaluation/runs/<uuid:run_id>/", EvalRunConsumer.as_asgi())]))
RUN = uuid.uuid4()


def _communicator(user: Any) -> WebsocketCommunicator:
    headers = [(b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", f"sessionid={login(user).cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(app, f"/ws/evaluation/runs/{RUN}/", headers=headers)


def test_a_viewer_hears_the_progress_of_the_run_they_watch() -> None:
    comm = _communicator(make_user("viewer"))

    async def run() -> Any:
        connected, _ = await comm.connect()
        assert connected
        # What aios_core.live.send_on_commit does once the service's transaction commits.
        await get_channel_layer().group_send(run_group(RUN), {"type": "eval.progress", "payload": {"items_done": 3}})
        message = await comm.receive_json_from(timeout=3)
        await comm.disconnect()
        return message

    assert async_to_sync(run)() == {"type": "eval.progress", "progress": {"items_done": 3}}


def test_an_anonymous_socket_is_refused() -> None:
    async def run() -> Any:
        comm = _communicator(None)
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(run)() == (False, 4401)


def _progress_heard(items: int, target: str = "echo", item_input: str = "q") -> tuple[list[dict[str, Any]], float]:
    """The intermediate progress events a batch sent, and how long the batch took."""
    import time

    from asgiref.sync import sync_to_async

    from evaluation.models import EvalRun
    from evaluation.services import evalrun_execute_batch
    from tests.evaluation.factories import make_dataset

    # Created directly, not through evalrun_create: no batch task is queued for a Celery worker that an earlier
    # test may have left running, so this test's call is the only one that executes (and reports) the batch.
    dataset = make_dataset([(item_input, None) for _ in range(items)], name=f"d{items}{target}")
    exact = [{"name": "exact", "kind": "exact_match", "config": {}}]
    run = EvalRun.objects.create(dataset=dataset, target=target, items_total=items, created_by=make_user("admin"),
                                 evaluator_configs=exact)  # fmt: skip
    layer = get_channel_layer()

    async def listen() -> tuple[list[dict[str, Any]], float]:
        channel = await layer.new_channel()
        await layer.group_add(run_group(run.uuid), channel)
        started = time.monotonic()
        await sync_to_async(evalrun_execute_batch, thread_sensitive=False)(run_id=run.pk)
        took, heard = time.monotonic() - started, []
        while not heard or heard[-1]["status"] == "running":  # the batch is over: every event is queued
            heard.append((await asyncio.wait_for(layer.receive(channel), timeout=10))["payload"])
        return heard, took

    heard, took = async_to_sync(listen)()
    assert all(p["run"] == str(run.uuid) and p["items_total"] == items for p in heard)
    assert heard[-1]["status"] == "succeeded" and heard[-1]["items_done"] == items
    return heard[:-1], took


# An action that takes 100 ms an item (in forensic mode), so a batch lasts long enough to report progress.
SLOW_TARGET, SLOW_INPUT = "agent:chaos.flaky", '{"p_fail": 0, "sleep_ms": 100}'


def test_a_batch_reports_progress_while_it_runs_not_only_when_it_ends(settings: Any) -> None:
    settings.AIOS_EVAL_PROGRESS_INTERVAL_S = 0.0  # report as often as items finish
    during, _ = _progress_heard(12, SLOW_TARGET, SLOW_INPUT)
    done = [p["items_done"] for p in during]
    assert len(set(done)) >= 4 and done == sorted(done), done
    assert all(p["status"] == "running" for p in during)


def test_progress_events_are_coalesced_to_one_per_interval(settings: Any) -> None:
    settings.AIOS_EVAL_PROGRESS_INTERVAL_S = 0.4
    during, took = _progress_heard(12, SLOW_TARGET, SLOW_INPUT)  # 1.2 s of work or more
    assert 1 <= len(during) <= took / 0.4 + 1 and len(during) < 12, (len(during), took)
    settings.AIOS_EVAL_PROGRESS_INTERVAL_S = 60.0
    assert _progress_heard(120)[0] == []  # the batch ended well within the interval: only the final event
