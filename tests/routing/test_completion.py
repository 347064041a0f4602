"""The completion path in process: the cache lookup and the router share one embedding."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from routing import completion, decisions, embeddings
from routing.learned_router import LearnedRouter, train_router
from routing.providers import registry
from routing.router import ModelRouter, learned_router

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def active_learned_router(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A learned router trained on synthetic rows (their embeddings given, so training is quick)."""
    from routing.services import router_model_save
    from tests.seeds import ensure_seed_data

    ensure_seed_data()  # the simulator tiers a fresh installation has (transactional tests truncate them)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(80, 384)).astype(np.float32)
    rows = [
        {"prompt": f"question {i} about topic {i % 7}", "weak_correct": i % 10 < 6, "strong_correct": i % 10 < 9,
         "embedding": vectors[i] / np.linalg.norm(vectors[i])}
        for i in range(80)
    ]  # fmt: skip
    artifact = train_router(rows)
    router_model_save(artifact=artifact.to_bytes(), metadata=artifact.metadata)
    learned_router.invalidate()
    monkeypatch.setattr("django.conf.settings.AIOS_ROUTER_MIN_CONFIDENCE", 0.0)  # always the learned decision
    monkeypatch.setenv("AIOS_SIM_LATENCY_SCALE", "0")
    registry.forget_providers()
    yield
    learned_router.invalidate()
    registry.forget_providers()
    decisions.flush_at_exit()  # the decision writer's own connection must not outlive the test database
    decisions._writer = None


def run(coro: Any) -> Any:
    """Run on a fresh loop; afterwards the connections its worker threads opened are closed (the
    threads are gone, so collecting their thread-local connections closes them)."""
    import gc

    try:
        return asyncio.run(coro)
    finally:
        gc.collect()


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_miss_embeds_the_prompt_once_for_the_cache_and_the_router(
    active_learned_router: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodings = count_calls(monkeypatch, embeddings, "embed_many")
    prompt = f"Explain how the replication lag on replica {uuid.uuid4().hex[:6]} is measured."
    req = completion.CompletionRequest(
        messages=[{"role": "user", "content": prompt}], temperature=0, namespace=f"once-{uuid.uuid4().hex[:6]}"
    )
    result = run(completion.complete(req))
    assert result.cache == "miss" and result.decision.decided_by == "learned"
    assert encodings[0] == 1


def test_the_learned_router_scores_a_prompt_once(active_learned_router: None, monkeypatch: pytest.MonkeyPatch) -> None:
    forward = count_calls(monkeypatch, LearnedRouter, "outcome_probabilities")
    decision = ModelRouter().route("Design a sharding scheme for the orders table.", embedding=np.ones(384) / 384**0.5)
    assert decision.decided_by == "learned" and forward[0] == 1


@pytest.fixture
def flaky_upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The only simple-tier model is an OpenAI-compatible server under the test's control."""
    from routing import catalog
    from routing.models import ModelEndpoint, ProviderCredential
    from routing.secrets import encrypt
    from tests.routing.provider_server import ProviderServer

    upstream = ProviderServer().start()
    ProviderCredential.objects.create(provider="openai_compatible", base_url=upstream.url,
                                      encrypted_key=encrypt("local-key"), key_hint="-key")  # fmt: skip
    ModelEndpoint.objects.create(provider="openai_compatible", model="flaky", tier="simple", priority=100)
    catalog.endpoints.invalidate()
    catalog.credentials.invalidate()
    registry.forget_providers()
    yield upstream
    upstream.stop()
    catalog.endpoints.invalidate()
    catalog.credentials.invalidate()
    registry.forget_providers()
    decisions.flush_at_exit()
    decisions._writer = None


def test_a_stream_that_fails_before_its_first_byte_is_retried(flaky_upstream: Any) -> None:
    from routing.completion import StreamEnd, StreamStart
    from tests.routing.provider_server import ScriptedResponse, fixture_response

    flaky_upstream.enqueue(
        ScriptedResponse(status=503, body={"error": {"message": "busy", "type": "server_error"}}),
        fixture_response("openai_compatible_stream"),
    )
    req = completion.CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="openai_compatible/flaky")

    async def collect() -> list[Any]:
        return [item async for item in completion.complete_stream(req)]

    items = run(collect())
    starts = [i for i in items if isinstance(i, StreamStart)]
    assert [s.endpoint.model_id for s in starts] == ["openai_compatible/flaky"]  # retried, not fallen back
    assert isinstance(items[-1], StreamEnd) and items[-1].response.content
    assert len(flaky_upstream.requests) == 2
