"""The response cache: keys, policy, TTL, LRU capacity, namespaces, semantic safety, invalidation."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from routing import response_cache as rc
from routing.models import CacheEntry, CachePolicy

pytestmark = pytest.mark.django_db

MSG = [{"role": "user", "content": "How do I rotate the TLS certificate on the load balancer?"}]
ANSWER = {"content": "Upload the new certificate, then switch the listener.", "model": "m", "finish_reason": "stop",
          "usage": {"input_tokens": 12, "output_tokens": 9}}  # fmt: skip


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def store(policy: rc.Policy, messages=MSG, key: str | None = None, embedding=None, **kw):  # type: ignore[no-untyped-def]
    key = key or rc.cache_key(policy.namespace, messages, "auto", {"temperature": 0})
    return rc.store(policy=policy, key=key, messages=messages, params={"temperature": 0}, embedding=embedding,
                    response=kw.pop("response", ANSWER), model="sim/simple", cost_usd=Decimal("0.001"),
                    latency_ms=800, **kw)  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_local() -> None:
    rc.local.drop()
    rc._policies.clear()
    rc._matrices.clear()


def test_only_deterministic_requests_are_cached_by_default() -> None:
    assert rc.cacheable({"temperature": 0}, "deterministic")
    assert rc.cacheable({"seed": 7, "temperature": 0.9}, "deterministic")
    assert not rc.cacheable({}, "deterministic")  # omitted temperature = the provider's default, 1
    assert not rc.cacheable({"temperature": 0.7}, "deterministic")
    assert rc.cacheable({"temperature": 0.7}, "all") and not rc.cacheable({"temperature": 0}, "off")


def test_the_key_covers_namespace_messages_model_and_answer_parameters() -> None:
    base = rc.cache_key("t1", MSG, "auto", {"temperature": 0})
    assert base == rc.cache_key("t1", MSG, "auto", {"temperature": 0.0, "top_p": None})
    assert base != rc.cache_key("t2", MSG, "auto", {"temperature": 0})
    assert base != rc.cache_key("t1", MSG, "openai/gpt-4o", {"temperature": 0})
    assert base != rc.cache_key("t1", MSG, "auto", {"temperature": 0, "max_tokens": 10})
    system = [{"role": "system", "content": "Answer in French."}, *MSG]
    assert base != rc.cache_key("t1", system, "auto", {"temperature": 0})


def test_an_exact_hit_comes_back_and_is_served_from_memory_the_second_time() -> None:
    policy = rc.Policy(namespace="t1")
    store(policy)
    key = rc.cache_key("t1", MSG, "auto", {"temperature": 0})
    first = rc.lookup_exact("t1", key)
    assert first is not None and first.response["content"].startswith("Upload")
    CacheEntry.objects.all().delete()  # the LRU still has it...
    assert rc.lookup_exact("t1", key) is not None
    rc.purge(namespace="t1")  # ...until a purge, which every process hears
    assert rc.lookup_exact("t1", key) is None


def test_namespaces_are_isolated() -> None:
    store(rc.Policy(namespace="tenant-a"))
    assert rc.lookup_exact("tenant-b", rc.cache_key("tenant-a", MSG, "auto", {"temperature": 0})) is None
    assert rc.lookup_exact("tenant-b", rc.cache_key("tenant-b", MSG, "auto", {"temperature": 0})) is None


def test_entries_expire_after_their_ttl() -> None:
    policy = rc.Policy(namespace="t1")
    entry = store(policy)
    CacheEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert rc.lookup_exact("t1", entry.key_hash) is None


def test_capacity_evicts_the_least_recently_used() -> None:
    policy = rc.Policy(namespace="small", max_entries=3)
    entries = [store(policy, messages=[{"role": "user", "content": f"question {i}"}]) for i in range(3)]
    rc.note_hit(entries[0].pk)  # the oldest was used recently: it stays
    rc.hits.flush()
    store(policy, messages=[{"role": "user", "content": "question 3"}])
    kept = set(CacheEntry.objects.filter(namespace="small").values_list("prompt_text", flat=True))
    assert len(kept) == 3 and "user: question 1" not in {k.lower() for k in kept}
    assert any("question 0" in k for k in kept)


def test_errors_and_truncated_answers_are_never_stored() -> None:
    assert store(rc.Policy(namespace="t1"), response={**ANSWER, "finish_reason": "length"}) is None
    assert not CacheEntry.objects.exists()


def test_a_semantic_hit_needs_similarity_and_verification() -> None:
    policy = rc.Policy(namespace="sem", similarity_threshold=0.9)
    vec = unit(1)
    cached = [{"role": "user", "content": "Drain 3 nodes from the pool before the upgrade."}]
    store(policy, messages=cached, embedding=vec)
    hit, best = rc.lookup_semantic("sem", cached, vec, policy.similarity_threshold)
    assert hit is not None and hit.kind == "semantic-hit" and best == pytest.approx(1.0, abs=1e-4)
    # Same vector (as near-misses score), but the verifier sees the changed number / negation.
    for near_miss in (
        "Drain 4 nodes from the pool before the upgrade.",
        "Do not drain 3 nodes from the pool before the upgrade.",
    ):
        hit, _ = rc.lookup_semantic("sem", [{"role": "user", "content": near_miss}], vec, policy.similarity_threshold)
        assert hit is None, near_miss
    far, best = rc.lookup_semantic("sem", MSG, unit(2), policy.similarity_threshold)
    assert far is None and best < 0.9


def test_the_cache_reports_hits_misses_and_savings() -> None:
    ns = f"stats-{time.time_ns()}"
    rc.record(ns, "hit", saved_usd=Decimal("0.002"), saved_ms=800)
    rc.record(ns, "semantic-hit", saved_usd=Decimal("0.001"), saved_ms=400)
    rc.record(ns, "miss")
    stats = rc.get_stats(window=timedelta(minutes=5), namespace=ns)["summary"]
    assert (stats["hits"], stats["semantic_hits"], stats["misses"]) == (1, 1, 1)
    assert stats["hit_rate"] == pytest.approx(2 / 3) and stats["saved_usd"] == pytest.approx(0.003)


def test_a_policy_row_overrides_the_defaults() -> None:
    CachePolicy.objects.create(namespace="custom", mode="all", ttl_s=60, similarity_threshold=0.95)
    policy = rc.policy_for("custom")
    assert (policy.mode, policy.ttl_s, policy.similarity_threshold) == ("all", 60, 0.95)
    assert rc.policy_for("other").mode == "deterministic"


@pytest.mark.django_db(transaction=True)
def test_a_purge_reaches_another_process() -> None:
    """Another process holds the entry in its LRU; our purge must make it forget."""
    import subprocess
    import sys

    from tests.helpers import subprocess_env

    policy = rc.Policy(namespace=f"xproc-{time.time_ns()}")
    entry = store(policy)
    script = f"""
import django, sys, time; django.setup()
from routing import response_cache as rc
assert rc.lookup_exact({policy.namespace!r}, {entry.key_hash!r}) is not None
print("cached", flush=True)
deadline = time.time() + 20
while time.time() < deadline:
    if rc.local.get({policy.namespace!r}, {entry.key_hash!r}) is None:
        print("forgotten", flush=True); sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "cached"
    time.sleep(0.5)  # its listener subscribes
    rc.purge(namespace=policy.namespace)
    assert proc.wait(timeout=30) == 0


def test_a_refresh_replaces_the_answer_in_memory_and_tells_other_processes(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    import json

    policy = rc.Policy(namespace=f"refresh-{time.time_ns()}")
    entry = store(policy)
    assert rc.lookup_exact(policy.namespace, entry.key_hash).response["content"].startswith("Upload")  # in the LRU
    pubsub = rc._redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(rc._channel())
    try:
        pubsub.get_message(timeout=1.0)  # the subscription confirmation
        with django_capture_on_commit_callbacks(execute=True):
            store(policy, response={**ANSWER, "content": "Renew it with certbot."})
        assert rc.lookup_exact(policy.namespace, entry.key_hash).response["content"] == "Renew it with certbot."
        message = pubsub.get_message(timeout=2.0)
    finally:
        pubsub.close()
    assert message is not None and json.loads(message["data"])["namespace"] == policy.namespace


def test_a_refresh_keeps_the_entry_findable_by_meaning() -> None:
    """Cache-Control: no-cache skips the lookup but must not store the answer without its embedding."""
    from routing.completion import CompletionRequest, _cache_check

    policy = rc.Policy(namespace="refresh-sem", similarity_threshold=0.9)
    vec = unit(3)
    entry = store(policy, embedding=vec)
    store(policy, embedding=None)  # a store that has no embedding at hand keeps the one it had
    entry.refresh_from_db()
    assert entry.embedding is not None
    hit, _ = rc.lookup_semantic(policy.namespace, MSG, vec, policy.similarity_threshold)
    assert hit is not None

    req = CompletionRequest(messages=MSG, temperature=0, namespace="refresh-sem", cache_control="no-cache")
    check = _cache_check(req)
    assert check.result == "miss" and check.store and check.embedding is not None  # embedded for the store


@pytest.fixture
def in_process_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Search vectors in process (numpy), as on a Postgres without pgvector."""
    monkeypatch.setattr(rc, "_mode", "in-process")


def test_in_process_search_never_serves_an_expired_entry(in_process_search: None) -> None:
    policy = rc.Policy(namespace="inproc-expiry", similarity_threshold=0.9)
    vec = unit(4)
    entry = store(policy, embedding=vec)
    hit, _ = rc.lookup_semantic(policy.namespace, MSG, vec, policy.similarity_threshold)
    assert hit is not None  # the namespace's vectors are now in memory
    CacheEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    hit, _ = rc.lookup_semantic(policy.namespace, MSG, vec, policy.similarity_threshold)
    assert hit is None
