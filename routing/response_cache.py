"""The response cache: exact and semantic, per namespace, with TTL, LRU capacity and accounting.

- Exact: the key is the SHA-256 of the normalized request (namespace, every field of every message,
  model, and the parameters that change the answer). Entries live in Postgres, fronted by an
  in-process LRU, so a hit in a warm process costs microseconds. Purges, evictions and overwrites
  (a refresh) reach every process through Redis pub/sub.
- Semantic: on an exact miss, the conversation is embedded (MiniLM) and its nearest neighbours in
  the namespace and variant (model, answer-changing parameters and the embedder) are found by routing.cache_vectors
  (pgvector where the database has it, else exactly in process). A neighbour is served only above
  the namespace's similarity threshold AND when routing.cache_verify finds no difference that
  changes the answer (numbers, names, negation, antonyms, system prompt, earlier turns).
- Policy: modes deterministic (default: temperature 0 or a seed; an omitted temperature is the
  provider's default, 1) / all / off (an admin's off is a ceiling); TTL; capacity in entries and
  bytes (embeddings counted) with LRU eviction; a periodic sweep of expired entries; errors and
  truncated answers are never stored; Cache-Control no-cache (refresh) / no-store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from routing import cache_vectors
from routing.cache_verify import DEFAULT_SIMILARITY_THRESHOLD, conversation_text, verify_semantic_match
from routing.embeddings import MODEL_TAG
from routing.models import CacheEntry, CacheMode, CachePolicy

log = logging.getLogger(__name__)

LRU_SIZE = 10_000
_FLOAT_PARAMS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})


@dataclass(frozen=True)
class Policy:
    namespace: str
    mode: str = CacheMode.DETERMINISTIC
    ttl_s: int = 24 * 3600
    max_entries: int = 10_000
    max_bytes: int = 100 * 1024 * 1024
    semantic: bool = True
    similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD


@dataclass
class CacheHit:
    kind: str  # "hit" | "semantic-hit"
    entry_id: int
    response: dict[str, Any]
    model: str
    similarity: float
    saved_usd: Decimal | None
    saved_ms: float


_policies: dict[str, tuple[float, Policy]] = {}


def policy_for(namespace: str) -> Policy:
    """The namespace's policy (admin-set, or the defaults), cached for a few seconds."""
    cached = _policies.get(namespace)
    if cached and time.monotonic() - cached[0] < 5.0:
        return cached[1]
    row = CachePolicy.objects.filter(namespace=namespace).first()
    policy = (
        Policy(namespace=namespace)
        if row is None
        else Policy(
            namespace, row.mode, row.ttl_s, row.max_entries, row.max_bytes, row.semantic, row.similarity_threshold
        )
    )
    _policies[namespace] = (time.monotonic(), policy)
    return policy


def effective_mode(policy_mode: str, requested: str | None) -> str:
    """The mode a request runs under: its own (header, per-request) unless the namespace's admin
    turned the cache off, which no request can lift."""
    if policy_mode == CacheMode.OFF:
        return CacheMode.OFF
    return requested or policy_mode


def cacheable(params: dict[str, Any], mode: str) -> bool:
    """Whether a request may be answered from (and stored in) the cache under `mode`."""
    if mode == CacheMode.OFF:
        return False
    if mode == CacheMode.ALL:
        return True
    temperature = params.get("temperature")
    return params.get("seed") is not None or (temperature is not None and float(temperature) == 0.0)


def _normalized_params(params: dict[str, Any]) -> dict[str, Any]:
    # 0 and 0.0 are the same temperature; an unset parameter is no parameter
    return {k: float(v) if k in _FLOAT_PARAMS else v for k, v in params.items() if v is not None}


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_key(namespace: str, messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
    """`params`: everything besides messages and model that changes the answer (CompletionRequest.params)."""
    return _digest(
        {
            "ns": namespace,
            "model": model or "auto",
            # Every field of every message (name, tool_calls, tool_call_id...): an unset one is absent.
            "messages": [{k: v for k, v in m.items() if v is not None} for m in messages],
            "params": _normalized_params(params),
        }
    )


def cache_variant(model: str, params: dict[str, Any]) -> str:
    """What besides the conversation changes the answer, hashed: a semantic neighbour must share it
    (the same question asked of another model, or with another max_tokens, is another answer).
    The embedder's tag is in it too: vectors of another embedder (fp32 entries after the switch to
    int8, say) are not comparable with this process's, so they are never searched; those entries
    still serve exact hits until they expire or are evicted."""
    return _digest({"model": model or "auto", "params": _normalized_params(params), "embedder": MODEL_TAG})[:32]


# --- the in-process LRU and its invalidation ---------------------------------------------------------


class LocalLRU:
    def __init__(self, size: int = LRU_SIZE) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], tuple[float, CacheHit]] = OrderedDict()
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    def get(self, namespace: str, key: str) -> CacheHit | None:
        item = self._data.get((namespace, key))
        if item is None:
            return None
        expires, hit = item
        if expires < time.time():
            self._data.pop((namespace, key), None)
            return None
        try:
            self._data.move_to_end((namespace, key))
        except KeyError:  # dropped by another thread since the read: the hit is still the answer we had
            pass
        return hit

    def put(self, namespace: str, key: str, expires_at: float, hit: CacheHit) -> None:
        with self._lock:
            self._data[(namespace, key)] = (expires_at, hit)
            self._data.move_to_end((namespace, key))
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def drop(self, namespace: str | None = None, entry_id: int | None = None, key: str | None = None) -> None:
        with self._lock:
            if namespace is not None and key is not None:
                self._data.pop((namespace, key), None)
                return
            for k in [
                k
                for k, (_, hit) in self._data.items()
                if (namespace is None or k[0] == namespace) and (entry_id is None or hit.entry_id == entry_id)
            ]:
                self._data.pop(k, None)

    def ensure_listening(self) -> None:
        if self._listener is None:
            with self._lock:
                if self._listener is None:
                    self._listener = threading.Thread(target=self._listen, name="aios-cache-invalidation", daemon=True)
                    self._listener.start()

    def _listen(self) -> None:
        import redis

        from aios_core.shutdown import exiting

        while not exiting():
            try:
                client = redis.Redis.from_url(settings.REDIS_URL)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(_channel())
                for message in pubsub.listen():
                    _apply_invalidation(json.loads(message["data"]))
            except Exception:
                if exiting():  # Redis stopped at exit (embedded servers): stop quietly
                    return
                log.warning("cache invalidation listener lost Redis; retrying", exc_info=True)
                self.drop()  # we may have missed purges: forget everything local
                time.sleep(1)


def _channel() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'aios')}:cache:invalidate"


local = LocalLRU()


def _apply_invalidation(message: dict[str, Any]) -> None:
    """Forget what a purge, eviction or refresh (here or in another process) made stale."""
    namespace, keys = message.get("namespace"), message.get("keys") or ()
    if namespace is not None and keys:
        for key in keys:
            local.drop(namespace, key=key)
    else:
        local.drop(namespace, message.get("entry_id"))
    if message.get("ids") and namespace is not None:
        cache_vectors.note_deleted(namespace, message["ids"])
    if message.get("purge"):
        cache_vectors.forget(namespace)


def _publish_invalidation(
    namespace: str | None,
    entry_id: int | None = None,
    *,
    keys: list[str] | None = None,
    ids: list[int] | None = None,
    purge: bool = False,
) -> None:
    message = {"namespace": namespace, "entry_id": entry_id, "keys": keys, "ids": ids, "purge": purge}
    _apply_invalidation(message)
    try:
        _redis().publish(_channel(), json.dumps(message))
    except Exception:
        log.warning("could not broadcast a cache invalidation", exc_info=True)


# --- lookups --------------------------------------------------------------------------------------------


def _hit_from(entry: CacheEntry, kind: str, similarity: float = 1.0) -> CacheHit:
    return CacheHit(kind, entry.pk, entry.response, entry.model, similarity, entry.cost_usd, entry.latency_ms)


def lookup_exact(namespace: str, key: str) -> CacheHit | None:
    """The cached answer for exactly this request (LRU first, then Postgres)."""
    local.ensure_listening()
    hit = local.get(namespace, key)
    if hit is not None:
        return hit
    entry = CacheEntry.objects.filter(namespace=namespace, key_hash=key, expires_at__gt=timezone.now()).first()
    if entry is None:
        return None
    hit = _hit_from(entry, "hit")
    local.put(namespace, key, entry.expires_at.timestamp(), hit)
    return hit


def vector_search_mode() -> str:
    return cache_vectors.vector_search_mode()


def _search_mode() -> str:
    return cache_vectors.search_mode()


def lookup_semantic(
    namespace: str, variant: str, messages: list[dict[str, Any]], embedding: np.ndarray, threshold: float
) -> tuple[CacheHit | None, float | None]:
    """The nearest entry of the namespace and variant above `threshold` that the verifier accepts;
    also the best similarity seen."""
    best = None
    for c in cache_vectors.nearest(namespace, variant, embedding):
        best = c.similarity if best is None else max(best, c.similarity)
        if c.similarity < threshold:
            break
        if verify_semantic_match(messages, c.messages).ok:
            hit = CacheHit("semantic-hit", c.entry_id, c.response, c.model, c.similarity, c.cost_usd, c.latency_ms)
            return hit, best
    return None, best


class _HitCounter:
    """Hit counts and last-hit times, written in one statement a second (LRU order and the
    top-entries list need them; a database UPDATE per hit would cost more than the hit)."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[int, datetime]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, entry_id: int) -> None:
        with self._lock:
            count, _ = self._pending.get(entry_id, (0, None))
            self._pending[entry_id] = (count + 1, timezone.now())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aios-cache-hits", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            with connection.cursor() as cur:
                cur.executemany(
                    "UPDATE routing_cacheentry SET hit_count = hit_count + %s, last_hit_at = %s WHERE id = %s",
                    [(count, when, entry_id) for entry_id, (count, when) in sorted(pending.items())],
                )
        except Exception:  # counts are bookkeeping: losing a second of them is fine
            log.warning("could not record cache hits", exc_info=True)


hits = _HitCounter()


def note_hit(entry_id: int) -> None:
    hits.add(entry_id)


# --- writes ---------------------------------------------------------------------------------------------


_UPSERT = """
INSERT INTO routing_cacheentry AS e (namespace, key_hash, variant, messages, params, prompt_text, embedding,
    {vec_col} response, model, cost_usd, latency_ms, size_bytes, created_at, expires_at, last_hit_at, hit_count)
VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, {vec_val} %s::jsonb, %s, %s, %s, %s, now(), %s, NULL, 0)
ON CONFLICT (namespace, key_hash) DO UPDATE SET
    variant = EXCLUDED.variant, messages = EXCLUDED.messages, params = EXCLUDED.params,
    prompt_text = EXCLUDED.prompt_text,
    -- without an embedding at hand (semantic lookups off) an overwrite keeps the row's own: the
    -- same messages embed the same way, and a NULL would hide the entry from semantic lookups
    embedding = coalesce(EXCLUDED.embedding, e.embedding), {vec_update}
    response = EXCLUDED.response, model = EXCLUDED.model, cost_usd = EXCLUDED.cost_usd,
    latency_ms = EXCLUDED.latency_ms, size_bytes = EXCLUDED.size_bytes, created_at = now(),
    expires_at = EXCLUDED.expires_at, last_hit_at = NULL, hit_count = 0
RETURNING id, (xmax = 0) AS inserted, embedding
"""
_UPSERT_PLAIN = _UPSERT.format(vec_col="", vec_val="", vec_update="")
_UPSERT_VECTOR = _UPSERT.format(
    vec_col="embedding_vec,",
    vec_val="%s::vector,",
    vec_update="embedding_vec = coalesce(EXCLUDED.embedding_vec, e.embedding_vec),",
)
# What a stored vector costs: float32 bytes, plus pgvector's copy (4 bytes a dimension and a header).
VECTOR_BYTES = cache_vectors.DIMENSIONS * 4
PGVECTOR_BYTES = cache_vectors.DIMENSIONS * 4 + 8


def entry_size(response: dict[str, Any], messages: list[dict[str, Any]], text: str, embedded: bool) -> int:
    size = len(json.dumps(response)) + len(json.dumps(messages)) + len(text)
    if embedded:
        size += VECTOR_BYTES + (PGVECTOR_BYTES if _search_mode() == "pgvector" else 0)
    return size


def store(
    *,
    policy: Policy,
    key: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    embedding: np.ndarray | None,
    response: dict[str, Any],
    model: str,
    cost_usd: Decimal | None,
    latency_ms: float,
    ttl_s: int | None = None,
    variant: str = "",
) -> int | None:
    """Store an answer (never an error or a truncated one: the caller checks finish_reason) and
    return its id. One statement: an upsert that says whether it overwrote an answer."""
    if response.get("finish_reason") not in ("stop", "tool_calls", None):
        return None
    text = conversation_text(messages)
    expires = timezone.now() + timedelta(seconds=ttl_s or policy.ttl_s)
    blob = cache_vectors.to_bytes(embedding) if embedding is not None else None
    values: list[Any] = [policy.namespace, key, variant, json.dumps(messages), json.dumps(params), text, blob]
    pgvector = _search_mode() == "pgvector"
    if pgvector:
        values.append(cache_vectors.pg_vector_param(embedding))
    size = entry_size(response, messages, text, embedding is not None)
    values += [json.dumps(response), model, cost_usd, latency_ms, size, expires]
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(_UPSERT_VECTOR if pgvector else _UPSERT_PLAIN, values)
            entry_id, inserted, stored = cur.fetchone()
        evict(policy)
        if not inserted:
            # A refresh (Cache-Control: no-cache) overwrote an answer that this and other processes
            # may hold in memory: forget it here now, and everywhere once the new row is visible.
            local.drop(policy.namespace, key=key)
            transaction.on_commit(lambda: _publish_invalidation(policy.namespace, keys=[key]))
    vector = embedding if embedding is not None else (cache_vectors.from_bytes(stored) if stored else None)
    cache_vectors.note_stored(policy.namespace, variant, entry_id, expires.timestamp(), vector, inserted=inserted)
    return entry_id


def evict(policy: Policy) -> int:
    """Drop expired entries, then least recently used ones beyond the entry and byte limits."""
    with connection.cursor() as cur:
        cur.execute(
            """
            DELETE FROM routing_cacheentry WHERE id IN (
                SELECT id FROM (
                    SELECT id, expires_at, row_number() OVER w AS n, sum(size_bytes) OVER w AS bytes
                    FROM routing_cacheentry WHERE namespace = %s
                    WINDOW w AS (ORDER BY coalesce(last_hit_at, created_at) DESC, id DESC)
                ) ranked WHERE n > %s OR bytes > %s OR expires_at <= now())
            RETURNING id, key_hash, variant
            """,
            [policy.namespace, policy.max_entries, policy.max_bytes],
        )
        removed = cur.fetchall()
    if removed:
        for variant in {row[2] for row in removed}:
            cache_vectors.note_rows(policy.namespace, variant, -sum(1 for row in removed if row[2] == variant))
        # Only these keys: wiping the namespace from every LRU would cost every hot entry.
        _publish_invalidation(policy.namespace, keys=[row[1] for row in removed], ids=[row[0] for row in removed])
    return len(removed)


def sweep_expired(*, batch: int = 10_000) -> int:
    """Delete expired entries of every namespace, in batches (each its own short transaction).
    No broadcast: every reader checks expiry (the LRU, the vector partitions, the candidate query)."""
    total = 0
    while True:
        with connection.cursor() as cur:
            cur.execute(
                "DELETE FROM routing_cacheentry WHERE id IN "
                "(SELECT id FROM routing_cacheentry WHERE expires_at <= now() LIMIT %s)",
                [batch],
            )
            total += cur.rowcount
            if cur.rowcount < batch:
                return total


def purge(*, namespace: str | None = None, entry_id: int | None = None) -> int:
    qs = CacheEntry.objects.all()
    if namespace:
        qs = qs.filter(namespace=namespace)
    if entry_id:
        qs = qs.filter(pk=entry_id)
    removed = qs.delete()[0]
    _publish_invalidation(namespace, entry_id, ids=[entry_id] if entry_id else None, purge=entry_id is None)
    return removed


# --- accounting ------------------------------------------------------------------------------------------


def _stats_key(ts: float) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "aios")
    return f"{prefix}:cache:stats:{int(ts // 60)}"


_redis_client: Any = None


def _redis() -> Any:
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1)
    return _redis_client


def record(namespace: str, outcome: str, *, saved_usd: Decimal | None = None, saved_ms: float = 0.0) -> None:
    """Count a lookup ("hit", "semantic-hit", "miss") per namespace per minute, in Redis."""
    try:
        client = _redis()
        key = _stats_key(time.time())
        pipe = client.pipeline()
        pipe.hincrby(key, f"{namespace}|{outcome}", 1)
        if outcome != "miss":
            pipe.hincrby(key, f"{namespace}|saved_microusd", int((saved_usd or 0) * 1_000_000))
            pipe.hincrby(key, f"{namespace}|saved_ms", int(saved_ms))
        pipe.expire(key, 8 * 86400)
        pipe.execute()
    except Exception:
        log.debug("cache accounting failed", exc_info=True)


def get_stats(*, window: timedelta = timedelta(hours=24), namespace: str | None = None) -> dict[str, Any]:
    """Hits, misses, hit rate, USD and latency saved, in total, per namespace, and per minute."""
    client = _redis()
    now = time.time()
    minutes = [now - 60 * i for i in range(int(window.total_seconds() // 60), -1, -1)]
    pipe = client.pipeline()
    for ts in minutes:
        pipe.hgetall(_stats_key(ts))
    per_ns: dict[str, dict[str, float]] = {}
    series: dict[str, list[Any]] = {"t": [], "hits": [], "misses": [], "hit_rate": [], "saved_usd": [], "saved_ms": []}
    for ts, fields in zip(minutes, pipe.execute(), strict=True):
        point = {"hit": 0, "semantic-hit": 0, "miss": 0, "saved_microusd": 0, "saved_ms": 0}
        for raw_field, raw_value in fields.items():
            ns, _, what = raw_field.decode().rpartition("|")
            if namespace and ns != namespace:
                continue
            per_ns.setdefault(ns, {}).setdefault(what, 0)
            per_ns[ns][what] += int(raw_value)
            if what in point:
                point[what] += int(raw_value)
        hits = point["hit"] + point["semantic-hit"]
        if hits or point["miss"]:
            series["t"].append(time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(ts - ts % 60)))
            series["hits"].append(hits)
            series["misses"].append(point["miss"])
            series["hit_rate"].append(hits / (hits + point["miss"]))
            series["saved_usd"].append(point["saved_microusd"] / 1e6)
            series["saved_ms"].append(point["saved_ms"])

    def summarize(c: dict[str, float]) -> dict[str, Any]:
        hits, semantic, misses = c.get("hit", 0), c.get("semantic-hit", 0), c.get("miss", 0)
        lookups = hits + semantic + misses
        return {
            "hits": hits,
            "semantic_hits": semantic,
            "misses": misses,
            "lookups": lookups,
            "hit_rate": (hits + semantic) / lookups if lookups else None,
            "saved_usd": c.get("saved_microusd", 0) / 1e6,
            "saved_ms": c.get("saved_ms", 0),
        }

    total: dict[str, float] = {}
    for counts in per_ns.values():
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return {
        "summary": summarize(total),
        "by_namespace": {ns: summarize(c) for ns, c in sorted(per_ns.items())},
        "series": series,
        "vector_search": _search_mode(),
    }
