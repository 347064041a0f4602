"""The response cache: keys, policy, TTL, LRU capacity, namespaces, semantic safety, invalidation."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from routing import cache_vectors
from routing import response_cache as rc
from routing.models import CacheEntry, CachePolicy

pytestmark = pytest.mark.django_db

MSG = [{"role": "user", "content": "How do I rotate the TLS certificate on the load balancer?"}]
ANSWER = {"content": "Upload the new certificate, then switch the listener.", "model": "m", "finish_reason": "stop",
          "usage": {"input_tokens": 12, "output_tokens": 9}}  # fmt: skip


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


VARIANT = rc.cache_variant("auto", {"temperature": 0})


def store(policy: rc.Policy, messages=MSG, key: str | None = None, embedding=None, **kw):  # type: ignore[no-untyped-def]
    key = key or rc.cache_key(policy.namespace, messages, "auto", {"temperature": 0})
    entry_id = rc.store(policy=policy, key=key, messages=messages, params={"temperature": 0}, embedding=embedding,
                        response=kw.pop("response", ANSWER), model="sim/simple", cost_usd=Decimal("0.001"),
                        latency_ms=800, variant=kw.pop("variant", VARIANT), **kw)  # fmt: skip
    return None if entry_id is None else CacheEntry.objects.get(pk=entry_id)


def lookup(namespace: str, messages, embedding, threshold: float, variant: str = VARIANT):  # type: ignore[no-untyped-def]
    return rc.lookup_semantic(namespace, variant, messages, embedding, threshold)


@pytest.fixture(autouse=True)
def _clean_local() -> None:
    rc.local.drop()
    rc._policies.clear()
    cache_vectors.forget()


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
    hit, best = lookup("sem", cached, vec, policy.similarity_threshold)
    assert hit is not None and hit.kind == "semantic-hit" and best == pytest.approx(1.0, abs=1e-4)
    # Same vector (as near-misses score), but the verifier sees the changed number / negation.
    for near_miss in (
        "Drain 4 nodes from the pool before the upgrade.",
        "Do not drain 3 nodes from the pool before the upgrade.",
    ):
        hit, _ = lookup("sem", [{"role": "user", "content": near_miss}], vec, policy.similarity_threshold)
        assert hit is None, near_miss
    far, best = lookup("sem", MSG, unit(2), policy.similarity_threshold)
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
from routing import cache_vectors
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
    hit, _ = lookup(policy.namespace, MSG, vec, policy.similarity_threshold)
    assert hit is not None

    req = CompletionRequest(messages=MSG, temperature=0, namespace="refresh-sem", cache_control="no-cache")
    check = _cache_check(req)
    assert check.result == "miss" and check.store and check.embedding is not None  # embedded for the store


@pytest.fixture
def in_process_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Search vectors in process (numpy), as on a Postgres without pgvector."""
    monkeypatch.setattr(cache_vectors, "_mode", "in-process")


def test_in_process_search_never_serves_an_expired_entry(in_process_search: None) -> None:
    policy = rc.Policy(namespace="inproc-expiry", similarity_threshold=0.9)
    vec = unit(4)
    entry = store(policy, embedding=vec)
    hit, _ = lookup(policy.namespace, MSG, vec, policy.similarity_threshold)
    assert hit is not None  # the namespace's vectors are now in memory
    CacheEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    hit, _ = lookup(policy.namespace, MSG, vec, policy.similarity_threshold)
    assert hit is None


def test_a_semantic_neighbour_must_share_the_model_and_the_answer_parameters() -> None:
    """The same question cached for `auto` at temperature 0 must not answer it for another model,
    another max_tokens, or other routing constraints."""
    from routing.completion import CompletionRequest
    from routing.router import Constraints

    policy = rc.Policy(namespace="variants", similarity_threshold=0.9)
    vec = unit(5)
    cached = CompletionRequest(messages=MSG, temperature=0)
    store(policy, embedding=vec, variant=rc.cache_variant(cached.model, cached.params()))
    others = [
        CompletionRequest(messages=MSG, temperature=0, model="openai/gpt-4o"),
        CompletionRequest(messages=MSG, temperature=0, max_tokens=5),
        CompletionRequest(messages=MSG, temperature=0, constraints=Constraints(max_cost_usd=0.001)),
        CompletionRequest(messages=MSG, temperature=0, extra={"response_format": {"type": "json_object"}}),
    ]
    for req in [cached, *others]:
        variant = rc.cache_variant(req.model, req.params())
        hit, _ = lookup(policy.namespace, MSG, vec, policy.similarity_threshold, variant=variant)
        assert (hit is not None) == (req is cached), req


def test_entries_embedded_by_another_embedder_are_never_compared_by_meaning(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An entry stored while the process embedded with fp32 must not be searched with int8 query
    vectors (or the other way round); it still answers the exact same request."""
    policy = rc.Policy(namespace="embedders", similarity_threshold=0.9)
    vec = unit(6)
    monkeypatch.setattr(rc, "MODEL_TAG", "all-MiniLM-L6-v2/fp32")
    old = store(policy, embedding=vec, variant=rc.cache_variant("auto", {"temperature": 0}))
    monkeypatch.setattr(rc, "MODEL_TAG", "all-MiniLM-L6-v2/int8-smooth-1")
    variant_now = rc.cache_variant("auto", {"temperature": 0})
    assert variant_now != old.variant
    hit, _ = lookup(policy.namespace, MSG, vec, policy.similarity_threshold, variant=variant_now)
    assert hit is None
    assert rc.lookup_exact(policy.namespace, old.key_hash) is not None


def test_embeddings_are_stored_as_float32_bytes_and_counted_in_the_entry_size() -> None:
    policy = rc.Policy(namespace="sizes")
    without = store(policy, messages=[{"role": "user", "content": "a"}])
    with_vector = store(policy, messages=[{"role": "user", "content": "b"}], embedding=unit(6))
    assert len(with_vector.embedding) == 384 * 4
    assert np.array_equal(np.frombuffer(with_vector.embedding, dtype="<f4"), unit(6))
    assert with_vector.size_bytes - without.size_bytes >= 384 * 4


def test_in_process_search_extends_its_vectors_instead_of_reloading_them(
    in_process_search: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = rc.Policy(namespace="inproc-incremental", similarity_threshold=0.9)
    store(policy, embedding=unit(7))
    assert lookup(policy.namespace, MSG, unit(7), 0.9)[0] is not None
    loaded = cache_vectors.partition(policy.namespace, VARIANT)
    # A store in this process joins the matrix at once.
    mine = [{"role": "user", "content": "How do I rotate the SSH host keys on the bastion?"}]
    store(policy, messages=mine, embedding=unit(8))
    assert lookup(policy.namespace, mine, unit(8), 0.9)[0] is not None
    # Another process's row arrives with the next check, fetched by id (rows newer than the last).
    theirs = [{"role": "user", "content": "How do I rotate the API signing keys on the gateway?"}]
    CacheEntry.objects.create(namespace=policy.namespace, key_hash="x" * 64, variant=VARIANT, messages=theirs,
                              prompt_text="other", embedding=unit(9).tobytes(), response=ANSWER, model="sim/simple",
                              expires_at=timezone.now() + timedelta(hours=1))  # fmt: skip
    monkeypatch.setattr(cache_vectors, "RECHECK_S", 0.0)
    assert lookup(policy.namespace, theirs, unit(9), 0.9)[0] is not None
    part = cache_vectors.partition(policy.namespace, VARIANT)
    assert part is loaded and part.n == 3  # extended, never reloaded


def test_in_process_semantic_hits_and_misses(in_process_search: None) -> None:
    """The whole semantic path without pgvector: similarity, verification, namespaces."""
    policy = rc.Policy(namespace="inproc-sem", similarity_threshold=0.9)
    cached = [{"role": "user", "content": "Drain 3 nodes from the pool before the upgrade."}]
    store(policy, messages=cached, embedding=unit(10))
    hit, best = lookup(policy.namespace, cached, unit(10), 0.9)
    assert hit is not None and hit.kind == "semantic-hit" and best == pytest.approx(1.0, abs=1e-5)
    assert lookup(policy.namespace, [{"role": "user", "content": "Drain 4 nodes from the pool before the upgrade."}],
                  unit(10), 0.9)[0] is None  # fmt: skip
    assert lookup("inproc-other", cached, unit(10), 0.9)[0] is None
    rc.purge(namespace=policy.namespace)
    assert lookup(policy.namespace, cached, unit(10), 0.9)[0] is None


def bulk_entries(namespace: str, vectors: np.ndarray, variant: str = VARIANT) -> None:
    """Many entries in one statement (with pgvector's column where it exists)."""
    from django.db import connection

    pgvector = cache_vectors.search_mode() == "pgvector"
    literals = ["[" + ",".join(f"{x:.7g}" for x in v) + "]" for v in vectors.tolist()]
    with connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO routing_cacheentry (namespace, key_hash, variant, messages, params, prompt_text, embedding,
                {"embedding_vec," if pgvector else ""} response, model, latency_ms, size_bytes, created_at,
                expires_at, hit_count)
            SELECT %s, md5(%s || i::text), %s, %s::jsonb, '{{}}', 'filler', e, {"v::vector," if pgvector else ""}
                %s::jsonb, 'sim/simple', 0, 0, now(), now() + interval '1 day', 0
            FROM unnest(%s::bytea[], %s::text[]) WITH ORDINALITY AS t(e, v, i)
            """,
            [namespace, namespace, variant, '[{"role": "user", "content": "filler"}]', '{"content": "filler"}',
             [np.asarray(v, dtype="<f4").tobytes() for v in vectors], literals],
        )  # fmt: skip
        cur.execute("ANALYZE routing_cacheentry")


def test_a_small_namespace_next_to_a_large_one_still_finds_its_neighbour() -> None:
    """pgvector 0.6 filters after the HNSW scan: ~ef_search rows come back before the namespace
    filter, so a small namespace whose entries are not among the table's nearest would miss."""
    if cache_vectors.search_mode() != "pgvector":
        pytest.skip("needs pgvector")
    rng = np.random.default_rng(11)
    query = unit(12)
    # The large namespace crowds the query's neighbourhood with closer vectors than the small one's.
    crowd = query + rng.normal(scale=0.01, size=(3000, 384)).astype(np.float32)
    crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
    bulk_entries("tenant-large", crowd)
    mine = query + rng.normal(scale=0.017, size=384).astype(np.float32)
    mine /= np.linalg.norm(mine)
    cached = [{"role": "user", "content": "Which port does the metrics exporter listen on?"}]
    store(rc.Policy(namespace="tenant-small"), messages=cached, embedding=mine)
    assert 0.9 < float(mine @ query) < float((crowd @ query).min())
    from django.db import connection

    with connection.cursor() as cur:
        # What a busy server settles on for a prepared statement: one plan for every namespace.
        cur.execute("SET plan_cache_mode = force_generic_plan")
    try:
        hit, _ = lookup("tenant-small", cached, query, 0.9)
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET plan_cache_mode")
    assert hit is not None


def test_hnsw_searches_wide_enough_for_its_partition_or_not_at_all() -> None:
    assert cache_vectors.search_ef(500, 600) is None  # small: an exact scan is as fast
    assert cache_vectors.search_ef(50_000, 60_000) == 40  # most of the table: pgvector's default
    assert cache_vectors.search_ef(50_000, 1_000_000) == 400  # 5% of the table: ~20 of 400 are its own
    assert cache_vectors.search_ef(5_000, 10_000_000) is None  # too small a share for any ef_search


def test_capacity_in_bytes_evicts_the_least_recently_used() -> None:
    one = store(rc.Policy(namespace="bytes"), messages=[{"role": "user", "content": "question 0"}])
    policy = rc.Policy(namespace="bytes", max_bytes=int(one.size_bytes * 2.5))
    store(policy, messages=[{"role": "user", "content": "question 1"}])
    assert CacheEntry.objects.filter(namespace="bytes").count() == 2
    store(policy, messages=[{"role": "user", "content": "question 2"}])
    kept = sorted(CacheEntry.objects.filter(namespace="bytes").values_list("prompt_text", flat=True))
    assert kept == ["question 1", "question 2"]


def test_a_periodic_sweep_deletes_expired_entries_of_every_namespace() -> None:
    from routing.tasks import cache_sweep

    live = store(rc.Policy(namespace="sweep-a"))
    for namespace in ("sweep-a", "sweep-b"):
        entry = store(rc.Policy(namespace=namespace), messages=[{"role": "user", "content": f"old {namespace}"}])
        CacheEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert cache_sweep() == 2
    assert list(CacheEntry.objects.filter(namespace__startswith="sweep-")) == [live]


def test_an_admin_who_turns_the_cache_off_cannot_be_overruled_by_a_request() -> None:
    from routing.completion import CompletionRequest, _cache_check

    CachePolicy.objects.create(namespace="locked", mode="off")
    for requested in ("all", "deterministic", None):
        req = CompletionRequest(messages=MSG, temperature=0, namespace="locked", cache_mode=requested)
        assert _cache_check(req).result == "bypass", requested
    assert rc.effective_mode("deterministic", "all") == "all"  # below the ceiling a request may choose
