"""The demo drives the real paths: gateway calls over HTTP with the demo user's token, and
agent actions through the agents services, run by a real worker. It writes no spans itself."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from aios_site.demo import chat_request, demo_identity, run_demo
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demo_user_and_its_token_are_created_once_and_replaced_per_run() -> None:
    from aios_site.models import ApiToken

    user, first = demo_identity()
    again, second = demo_identity()
    assert again.pk == user.pk and first != second and not user.has_usable_password()
    assert ApiToken.objects.filter(user=user, name="demo", revoked_at__isnull=True).count() == 1


def test_demo_requests_mix_cacheable_and_uncacheable_prompts() -> None:
    rng = random.Random(1)
    requests = [chat_request(rng) for _ in range(1000)]
    deterministic = [r for r in requests if r.body["temperature"] == 0]
    prompts = Counter(r.body["messages"][-1]["content"] for r in deterministic)
    assert 350 < len(deterministic) < 650
    assert prompts.most_common(1)[0][1] >= 20  # popular questions come back (exact hits)...
    assert sum(1 for n in prompts.values() if n == 1) >= 150  # ...and a long tail does not
    assert any(r.stream for r in requests) and all(r.body["model"] == "auto" for r in requests)


def test_a_short_demo_run_goes_through_the_gateway_and_the_agents(asgi_server: str, celery_worker: Any) -> None:
    from agents.models import ActionRun
    from observability.models import Span, Trace
    from tests.seeds import ensure_seed_data

    ensure_seed_data()
    time.sleep(0.6)  # the server notices the seeded catalog within AIOS_CONFIG_RECHECK_S
    # Long enough for answers stored after the first asks (off the request path) to be hit.
    stats = asyncio.run(run_demo(url=asgi_server, rate=25, duration=10, seed=3, action_share=0.2))
    assert stats["http 200"] >= 100 and not any(k.startswith(("error", "http 5")) for k in stats), stats
    assert stats["cache hit"] + stats["cache semantic-hit"] >= 1 and stats["cache miss"] >= 1, stats
    assert stats["cache bypass"] >= 1, stats

    runs = ActionRun.objects.all()
    assert runs.filter(requested_by__username="demo").exists()  # read-only surveys, as the demo user
    assert runs.filter(agent="chaos").exists()  # fault injection
    deadline = time.monotonic() + 60
    while runs.exclude(status__in=["succeeded", "failed", "dead_letter"]).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert runs.filter(status="succeeded").exists()

    flushed()
    time.sleep(1.0)  # the server's and the worker's writers flush on their own (0.5 s)
    gateway = Trace.objects.filter(name="gateway.chat_completions", username="demo", api_token="demo")
    assert gateway.count() >= 100
    assert Span.objects.filter(kind="llm", trace_id__in=gateway.values("trace_id")).exists()
    # No made-up spans: every cache lookup and routing step belongs to a gateway request.
    gateway_traces = set(Trace.objects.filter(name="gateway.chat_completions").values_list("trace_id", flat=True))
    assert set(Span.objects.filter(kind__in=["cache", "route"]).values_list("trace_id", flat=True)) <= gateway_traces
    assert Span.objects.filter(name="agent.action", agent="chaos").exists()  # run by the worker
