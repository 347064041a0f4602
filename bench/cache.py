"""The response cache: exact-hit latency (in process and over HTTP, against a 100 ms upstream),
semantic-hit latency with 100,000 entries (pgvector and the in-process fallback), and the
quality of semantic hits on pairs never used for tuning.

    .venv/bin/python bench/cache.py [--quick]

--quick: 10,000 entries and fewer queries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._common import bench_database, emit, setup_django  # noqa: E402
from bench.gateway import free_port, wait_port  # noqa: E402

TARGETS = {"exact_hit_inproc_p50_us": 50, "exact_hit_http_p50_ms": 2, "speedup": 50, "semantic_hit_p50_ms": 15,
           "semantic_precision": 0.98, "semantic_recall": 0.80, "number_changed_false_hits": 0}  # fmt: skip
SLOW_UPSTREAM = """
import asyncio, json
ANSWER = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "slow",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await asyncio.sleep(0.1)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})
"""


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def exact_in_process(n: int) -> float:
    from decimal import Decimal

    from routing import response_cache as rc

    policy = rc.Policy(namespace="bench-exact")
    messages = [{"role": "user", "content": "How do I restart nginx?"}]
    key = rc.cache_key(policy.namespace, messages, "auto", {"temperature": 0})
    rc.store(policy=policy, key=key, messages=messages, params={"temperature": 0}, embedding=None,
             response={"content": "sudo systemctl restart nginx", "finish_reason": "stop"}, model="sim/simple",
             cost_usd=Decimal("0.0001"), latency_ms=500)  # fmt: skip
    rc.lookup_exact(policy.namespace, key)  # into the LRU
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        assert rc.lookup_exact(policy.namespace, key) is not None
        times.append((time.perf_counter_ns() - t) / 1000)
    return pct(times, 50)


def http_hit_vs_miss(url: str, n: int) -> tuple[float, float]:
    """Gateway: P50 of an exact hit, and P50 of a miss that goes to the 100 ms upstream."""
    import django  # noqa: F401
    from django.contrib.auth import get_user_model

    from aios_site.tokens import token_create
    from routing.models import ModelEndpoint, ProviderCredential
    from routing.secrets import encrypt

    up_port, gw_port = free_port(), free_port()
    (ROOT / "var" / "bench_slow_upstream.py").write_text(SLOW_UPSTREAM)
    upstream = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_slow_upstream:app", "--port", str(up_port),
                                 "--log-level", "warning", "--no-access-log"], cwd=ROOT / "var")  # fmt: skip
    ProviderCredential.objects.update_or_create(provider="openai_compatible", defaults={
        "base_url": f"http://127.0.0.1:{up_port}", "encrypted_key": encrypt("k"), "key_hint": "k"})  # fmt: skip
    ModelEndpoint.objects.update_or_create(provider="openai_compatible", model="slow",
                                           defaults={"tier": "simple", "priority": 100})  # fmt: skip
    user, _ = get_user_model().objects.get_or_create(username=f"bench-{uuid.uuid4().hex[:6]}")
    _, token = token_create(user=user, name=f"bench-{uuid.uuid4().hex[:6]}", scopes=["gateway"])
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "AIOS_CAPTURE_CONTENT": "0"}
    gateway = subprocess.Popen([sys.executable, "-m", "aios_site.serve", "--port", str(gw_port)], cwd=ROOT, env=env)
    try:
        wait_port(up_port)
        wait_port(gw_port)
        time.sleep(1)
        endpoint = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {token}"}

        def body(text: str) -> dict:
            # semantic lookups off for this measurement: an exact hit, and a miss that pays the upstream
            return {
                "model": "openai_compatible/slow",
                "temperature": 0,
                "messages": [{"role": "user", "content": text}],
            }

        with httpx.Client(headers={**headers, "x-aios-cache-mode": "deterministic"}, timeout=30) as client:
            misses, hits = [], []
            for i in range(max(20, n // 10)):
                t = time.perf_counter()
                r = client.post(endpoint, json=body(f"question {uuid.uuid4().hex} number {i}"),
                                headers={"Cache-Control": "no-store"})  # fmt: skip
                misses.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            client.post(endpoint, json=body("the repeated question"))
            time.sleep(1)
            for _ in range(n):
                t = time.perf_counter()
                r = client.post(endpoint, json=body("the repeated question"))
                hits.append((time.perf_counter() - t) * 1000)
                assert r.headers.get("x-aios-cache") == "hit", r.headers
    finally:
        gateway.terminate()
        upstream.terminate()
        gateway.wait(timeout=30)
        upstream.wait(timeout=30)
    return pct(hits, 50), pct(misses, 50)


def _insert_entries(ns: str, variant: str, messages: list[list[dict]], vectors: np.ndarray) -> None:
    """Entries in batches of one statement each (with pgvector's column where it exists)."""
    from django.db import connection

    from routing import cache_vectors

    pgvector = cache_vectors.vector_search_mode() == "pgvector"
    sql = f"""
        INSERT INTO routing_cacheentry (namespace, key_hash, variant, messages, params, prompt_text, embedding,
            {"embedding_vec," if pgvector else ""} response, model, cost_usd, latency_ms, size_bytes, created_at,
            expires_at, hit_count)
        SELECT %s, md5(random()::text || i::text), %s, m::jsonb, '{{}}', i::text, e, {"v::vector," if pgvector else ""}
            '{{"content": "a", "finish_reason": "stop"}}', 'sim/simple', 0.0001, 500, 2000, now(),
            now() + interval '1 day', 0
        FROM unnest(%s::text[], %s::bytea[], %s::text[]) WITH ORDINALITY AS t(m, e, v, i)
    """
    with connection.cursor() as cur:
        for start in range(0, len(vectors), 5000):
            chunk = vectors[start : start + 5000]
            literals = ["[" + ",".join(f"{x:.7g}" for x in v) + "]" for v in chunk.tolist()] if pgvector else []
            cur.execute(sql, [ns, variant, [json.dumps(m) for m in messages[start : start + 5000]],
                              [v.astype("<f4").tobytes() for v in chunk], literals or [""] * len(chunk)])  # fmt: skip
        cur.execute("ANALYZE routing_cacheentry")


def semantic(entries: int, queries: int) -> dict[str, float]:
    """Semantic hits among `entries` cached answers: real embeddings of paraphrase origins plus
    random filler; queries are the paraphrases. Timed: embedding + lookup + verification."""
    from routing import cache_vectors, embeddings
    from routing import response_cache as rc
    from routing.cache_quality import PARAPHRASE_PATH
    from routing.cache_verify import DEFAULT_SIMILARITY_THRESHOLD, conversation_text
    from routing.embeddings import embed, embed_many
    from routing.models import CacheEntry

    pairs = json.loads(PARAPHRASE_PATH.read_text())
    pairs = pairs[:queries]
    ns, variant = "bench-semantic", rc.cache_variant("auto", {"temperature": 0})
    CacheEntry.objects.filter(namespace=ns).delete()
    origins = [[{"role": "user", "content": p["origin"]}] for p in pairs]
    rng = np.random.default_rng(0)
    filler = rng.normal(size=(max(0, entries - len(origins)), 384)).astype(np.float32)
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    vectors = np.concatenate([embed_many([conversation_text(m) for m in origins]), filler])[:entries]
    messages = origins + [[{"role": "user", "content": f"filler question {i}"}] for i in range(len(filler))]
    _insert_entries(ns, variant, messages[:entries], vectors)
    out: dict[str, float] = {}
    modes = ["pgvector", "in-process"] if cache_vectors.vector_search_mode() == "pgvector" else ["in-process"]
    for mode in modes:
        cache_vectors._mode = mode
        cache_vectors.forget()
        if mode == "in-process":
            started = time.perf_counter()
            cache_vectors.partition(ns, variant)  # loaded once per process, then extended
            out["inprocess_load_ms"] = (time.perf_counter() - started) * 1000
            print(f"in-process vectors of {entries:,} entries loaded in {out['inprocess_load_ms']:.0f} ms")
        times, lookups, embeds, hits = [], [], [], 0
        for p in pairs:
            messages = [{"role": "user", "content": p["similar"]}]
            t = time.perf_counter()
            vector = embed(conversation_text(messages))
            embedded = time.perf_counter()
            hit, _ = rc.lookup_semantic(ns, variant, messages, vector, DEFAULT_SIMILARITY_THRESHOLD)
            times.append((time.perf_counter() - t) * 1000)
            lookups.append((time.perf_counter() - embedded) * 1000)  # search + verification, no embedding
            embeds.append((embedded - t) * 1000)
            hits += hit is not None
        embeddings._cache.clear()
        out[f"{mode}_p50"], out[f"{mode}_p95"] = pct(times, 50), pct(times, 95)
        out[f"{mode}_lookup_p50"], out[f"{mode}_lookup_p95"] = pct(lookups, 50), pct(lookups, 95)
        out[f"{mode}_embedding_p50"] = pct(embeds, 50)
        print(
            f"semantic lookups ({mode}, {entries:,} entries): P50 {out[f'{mode}_p50']:.1f} ms, "
            f"P95 {out[f'{mode}_p95']:.1f} ms (embedding included; without it P50 {out[f'{mode}_lookup_p50']:.2f} ms, "
            f"P95 {out[f'{mode}_lookup_p95']:.2f} ms; the embedding alone P50 {out[f'{mode}_embedding_p50']:.2f} ms, "
            f"{embeddings.MODEL_TAG}); paraphrases served {hits}/{len(pairs)}; load average {os.getloadavg()[0]:.1f}"
        )
    cache_vectors._mode = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    url = bench_database("aios_bench_cache", fresh=True)
    setup_django(url)
    inproc = exact_in_process(20_000)
    print(f"exact hit in process: P50 {inproc:.1f} us")
    hit_ms, miss_ms = http_hit_vs_miss(url, 200 if args.quick else 1000)
    print(
        f"through the gateway: exact hit P50 {hit_ms:.2f} ms; miss (100 ms upstream) P50 {miss_ms:.1f} ms; "
        f"speedup {miss_ms / hit_ms:.0f}x"
    )
    sem = semantic(10_000 if args.quick else 100_000, 200 if args.quick else 500)
    from routing.cache_quality import evaluate_quality
    from routing.embeddings import MODEL_TAG

    quality = evaluate_quality(quick=args.quick)
    print(
        f"quality on held-out pairs: precision {quality['semantic_precision']:.3f}, recall "
        f"{quality['semantic_recall']:.3f}, number-changed false hits {quality['number_changed_false_hits']}"
    )
    main_mode = "pgvector" if "pgvector_p50" in sem else "in-process"
    emit({
        "bench": "cache", "exact_hit_inproc_p50_us": round(inproc, 1), "exact_hit_http_p50_ms": round(hit_ms, 2),
        "miss_http_p50_ms": round(miss_ms, 1), "speedup": round(miss_ms / hit_ms, 1),
        "semantic_hit_p50_ms": round(sem[f"{main_mode}_p50"], 1),
        "semantic_hit_p95_ms": round(sem[f"{main_mode}_p95"], 1),
        "semantic_inprocess_p50_ms": round(sem["in-process_p50"], 1),
        "semantic_inprocess_p95_ms": round(sem["in-process_p95"], 1),
        "semantic_lookup_only_p50_ms": round(sem[f"{main_mode}_lookup_p50"], 2),
        "semantic_lookup_only_p95_ms": round(sem[f"{main_mode}_lookup_p95"], 2),
        "semantic_inprocess_lookup_only_p50_ms": round(sem["in-process_lookup_p50"], 2),
        "semantic_embedding_p50_ms": round(sem[f"{main_mode}_embedding_p50"], 2), "embedder": MODEL_TAG,
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "inprocess_load_ms": round(sem.get("inprocess_load_ms", 0)),
        "semantic_entries": 10_000 if args.quick else 100_000, "vector_search": main_mode,
        "semantic_precision": quality["semantic_precision"], "semantic_recall": quality["semantic_recall"],
        "number_changed_false_hits": quality["number_changed_false_hits"], "targets": TARGETS,
    })  # fmt: skip


if __name__ == "__main__":
    main()
