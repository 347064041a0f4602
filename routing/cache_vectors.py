"""Nearest cached answers by embedding: pgvector (HNSW, cosine) where the database has it, else
an exact search in process (numpy). Both search one partition: a namespace and a variant (what
besides the conversation changes the answer, see response_cache.request_keys).

pgvector: one round trip returns the candidates with what a hit needs (messages for the verifier,
the response, its cost). The statement is prepared, binds the query vector once and in binary.
pgvector 0.6 has no iterative index scans: a filtered HNSW scan finds about `hnsw.ef_search`
rows before the namespace filter, so a partition that is a small share of the table would
silently miss. Small partitions are therefore scanned exactly (still in SQL, through the btree on
namespace, variant, id), and larger ones get an ef_search sized to their share of the table.

In process: each partition's vectors live in one float32 matrix per process, loaded once (rows
are 1,536 bytes each, read with np.frombuffer), extended with the rows this process stores and,
every few seconds, with rows newer than the last one it has. Rows that another process refreshed
or deleted are caught by the candidate query (which checks expiry) and by a full reload every few
minutes: a late hit at worst, never a wrong or expired one.
"""

from __future__ import annotations

import json
import math
import struct
import threading
import time
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection

DIMENSIONS = 384
CANDIDATES = 3
# pgvector: partitions up to this size are scanned exactly (~1 ms; 10,000 rows take ~15-40 ms, an
# HNSW scan ~2 ms). Larger ones use HNSW with an ef_search that leaves about MIN_FILTERED_ROWS of the
# partition after the filter, if pgvector allows one that large; else they too are scanned exactly.
EXACT_SCAN_MAX_ROWS = 1_000
MIN_FILTERED_ROWS = 20
EF_SEARCH_MIN, EF_SEARCH_MAX = 40, 1000  # pgvector's default and its ceiling
COUNT_TTL_S = 60.0
# In process: how often to fetch other processes' new rows, and to reload a partition entirely.
RECHECK_S = 2.0
FULL_RELOAD_S = 300.0


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


@dataclass(frozen=True)
class Candidate:
    entry_id: int
    similarity: float
    messages: list[dict[str, Any]]
    response: dict[str, Any]
    model: str
    cost_usd: Decimal | None
    latency_ms: float


def _json(value: Any) -> Any:
    # Django's psycopg setup loads jsonb as text (JSONField parses it); a raw cursor sees the same.
    return json.loads(value) if isinstance(value, str | bytes) else value


# --- which search ----------------------------------------------------------------------------------

_mode: str | None = None


def vector_search_mode() -> str:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'routing_cacheentry' "
            "AND column_name = 'embedding_vec'"
        )
        return "pgvector" if cur.fetchone() else "in-process"


def search_mode() -> str:
    global _mode
    if _mode is None:
        _mode = vector_search_mode()
    return _mode


def nearest(namespace: str, variant: str, embedding: np.ndarray, limit: int = CANDIDATES) -> list[Candidate]:
    """The partition's nearest live entries, most similar first."""
    if search_mode() == "pgvector":
        return _pgvector_nearest(namespace, variant, embedding, limit)
    return _in_process_nearest(namespace, variant, embedding, limit)


# --- pgvector -------------------------------------------------------------------------------------

_SELECT = """
SELECT id, 1 - (embedding_vec <=> %(q)b), messages, response, model, cost_usd, latency_ms
FROM routing_cacheentry
WHERE namespace = %(ns)s AND variant = %(variant)s AND expires_at > now() AND embedding_vec IS NOT NULL
ORDER BY {order} LIMIT %(limit)s
"""
_HNSW_QUERY = _SELECT.format(order="embedding_vec <=> %(q)b")
# Adding 0 hides the ordering from the HNSW index: the planner scans the partition exactly.
_EXACT_QUERY = _SELECT.format(order="(embedding_vec <=> %(q)b) + 0")


class PgVector:
    """A query vector in pgvector's binary format (dimensions, unused, big-endian float4s)."""

    __slots__ = ("data",)

    def __init__(self, vector: np.ndarray) -> None:
        self.data = struct.pack(">HH", len(vector), 0) + np.asarray(vector, dtype=">f4").tobytes()


_vector_oid: int | None = None
_prepared: weakref.WeakSet[Any] = weakref.WeakSet()
_ef_search: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_prepare_lock = threading.Lock()


def _vector_cursor(ef_search: int | None = None) -> Any:
    """A server-binding psycopg cursor on Django's connection, which knows how to send PgVector.

    Django's cursors bind on the client (the vector would travel as ~3 KB of text, once per use
    in the statement); this one sends $1 once, in binary, and lets the statement be prepared."""
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    global _vector_oid
    connection.ensure_connection()
    raw = connection.connection
    if raw not in _prepared:
        with _prepare_lock:
            if _vector_oid is None:
                with connection.cursor() as cur:
                    cur.execute("SELECT 'vector'::regtype::oid")
                    _vector_oid = int(cur.fetchone()[0])

            class _Dumper(Dumper):
                format = Format.BINARY
                oid = _vector_oid

                def dump(self, obj: PgVector) -> bytes:
                    return obj.data

            raw.adapters.register_dumper(PgVector, _Dumper)
            _prepared.add(raw)
    if ef_search is not None and _ef_search.get(raw) != ef_search:
        # A session setting, sent only when it changes (most lookups reuse the last value).
        with connection.cursor() as cur:
            cur.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        _ef_search[raw] = ef_search
    return psycopg.Cursor(raw)


_counts: dict[tuple[str, str], tuple[float, int]] = {}
_table_rows: tuple[float, int] = (0.0, 0)


def _partition_rows(namespace: str, variant: str) -> tuple[int, int]:
    """(rows in the partition, rows in the table), cached for COUNT_TTL_S (an estimate is enough)."""
    global _table_rows
    now = time.monotonic()
    cached = _counts.get((namespace, variant))
    if cached is None or now - cached[0] > COUNT_TTL_S:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM routing_cacheentry WHERE namespace = %s AND variant = %s", [namespace, variant]
            )
            cached = (now, int(cur.fetchone()[0]))
        _counts[(namespace, variant)] = cached
    if now - _table_rows[0] > COUNT_TTL_S:
        with connection.cursor() as cur:
            cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'routing_cacheentry'::regclass")
            _table_rows = (now, max(0, int(cur.fetchone()[0])))
    return cached[1], max(_table_rows[1], cached[1])


def search_ef(partition_rows: int, table_rows: int) -> int | None:
    """The hnsw.ef_search for a partition, or None to scan it exactly. A filtered HNSW scan finds
    about ef_search rows of the whole table before the partition filter; if the partition holds
    `share` of the table, about ef_search * share of them are its own."""
    if partition_rows <= EXACT_SCAN_MAX_ROWS:
        return None
    share = partition_rows / max(table_rows, partition_rows)
    needed = math.ceil(MIN_FILTERED_ROWS / share)
    return None if needed > EF_SEARCH_MAX else max(EF_SEARCH_MIN, needed)


def _pgvector_nearest(namespace: str, variant: str, embedding: np.ndarray, limit: int) -> list[Candidate]:
    rows, total = _partition_rows(namespace, variant)
    if rows == 0:
        return []
    ef = search_ef(rows, total)
    query = _EXACT_QUERY if ef is None else _HNSW_QUERY
    params = {"q": PgVector(embedding), "ns": namespace, "variant": variant, "limit": limit}
    with _vector_cursor(ef) as cur:
        cur.execute(query, params, prepare=True)
        found = cur.fetchall()
    return [
        Candidate(pk, float(similarity), _json(messages), _json(response), model, cost, latency)
        for pk, similarity, messages, response, model, cost, latency in found
    ]


def pg_vector_param(embedding: np.ndarray | None) -> str | None:
    """A vector literal for writes through Django's cursors (stores are off the request path)."""
    if embedding is None:
        return None
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(embedding, dtype=np.float32).tolist()) + "]"


def note_rows(namespace: str, variant: str, delta: int) -> None:
    """Keep this process's partition count roughly current between recounts."""
    cached = _counts.get((namespace, variant))
    if cached is not None:
        _counts[(namespace, variant)] = (cached[0], max(0, cached[1] + delta))


# --- in process -----------------------------------------------------------------------------------


class _Partition:
    """One partition's vectors in this process. Readers take a snapshot of (n, arrays); writers
    replace or extend the arrays under the lock, so a search never sees a half-written row."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = np.zeros(0, dtype=np.int64)
        self.expires = np.zeros(0, dtype=np.float64)
        self.matrix = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self.n = 0
        self.positions: dict[int, int] = {}
        self.last_id = 0
        self.loaded_at = 0.0
        self.checked_at = 0.0

    def add(self, ids: np.ndarray, expires: np.ndarray, vectors: np.ndarray) -> None:
        with self.lock:
            fresh = []
            for i, pk in enumerate(ids.tolist()):
                row = self.positions.get(pk)
                if row is None:
                    fresh.append(i)
                else:  # refreshed in place (same id): new expiry, same messages
                    self.expires[row], self.matrix[row] = expires[i], vectors[i]
            if fresh:
                self._append(ids[fresh], expires[fresh], vectors[fresh])
            if len(ids):
                self.last_id = max(self.last_id, int(ids.max()))

    def _append(self, ids: np.ndarray, expires: np.ndarray, vectors: np.ndarray) -> None:
        needed = self.n + len(ids)
        if needed > len(self.ids):  # grow by doubling: appends are amortized O(1)
            capacity = max(needed, 2 * len(self.ids), 64)
            self.ids = np.resize(self.ids, capacity)
            self.expires = np.resize(self.expires, capacity)
            matrix = np.zeros((capacity, DIMENSIONS), dtype=np.float32)
            matrix[: self.n] = self.matrix[: self.n]
            self.matrix = matrix
        self.ids[self.n : needed] = ids
        self.expires[self.n : needed] = expires
        self.matrix[self.n : needed] = vectors
        for offset, pk in enumerate(ids.tolist()):
            self.positions[pk] = self.n + offset
        self.n = needed

    def forget(self, ids: list[int]) -> None:
        with self.lock:
            for pk in ids:
                row = self.positions.get(pk)
                if row is not None:
                    self.expires[row] = 0.0  # a tombstone: never a candidate again

    def search(self, embedding: np.ndarray, limit: int) -> list[tuple[int, float]]:
        n, ids, expires, matrix = self.n, self.ids, self.expires, self.matrix
        if n == 0:
            return []
        scores = matrix[:n] @ np.asarray(embedding, dtype=np.float32)
        scores[expires[:n] <= time.time()] = -2.0
        top = np.argpartition(-scores, min(limit, n) - 1)[:limit] if n > limit else np.arange(n)
        top = top[np.argsort(-scores[top])]
        return [(int(ids[i]), float(scores[i])) for i in top if scores[i] > -2.0]


_partitions: dict[tuple[str, str], _Partition] = {}
_partitions_lock = threading.Lock()


def _fetch_rows(namespace: str, variant: str, after_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, extract(epoch FROM expires_at), embedding FROM routing_cacheentry "
            "WHERE namespace = %s AND variant = %s AND id > %s AND embedding IS NOT NULL AND expires_at > now() "
            "ORDER BY id",
            [namespace, variant, after_id],
        )
        rows = cur.fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros((0, DIMENSIONS), np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    expires = np.fromiter((float(r[1]) for r in rows), dtype=np.float64, count=len(rows))
    vectors = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype="<f4").reshape(len(rows), DIMENSIONS)
    return ids, expires, vectors


def partition(namespace: str, variant: str) -> _Partition:
    """The partition's vectors, loaded or brought up to date as needed."""
    key = (namespace, variant)
    now = time.monotonic()
    part = _partitions.get(key)
    if part is None or now - part.loaded_at > FULL_RELOAD_S:
        part = _Partition()
        part.add(*_fetch_rows(namespace, variant, 0))
        part.loaded_at = part.checked_at = now
        with _partitions_lock:
            _partitions[key] = part
    elif now - part.checked_at > RECHECK_S:
        part.checked_at = now
        part.add(*_fetch_rows(namespace, variant, part.last_id))
    return part


def _in_process_nearest(namespace: str, variant: str, embedding: np.ndarray, limit: int) -> list[Candidate]:
    scored = partition(namespace, variant).search(embedding, limit)
    if not scored:
        return []
    with connection.cursor() as cur:
        # The matrix may hold rows that expired or were deleted since it was loaded: check here.
        cur.execute(
            "SELECT id, messages, response, model, cost_usd, latency_ms FROM routing_cacheentry "
            "WHERE id = ANY(%s) AND expires_at > now()",
            [[pk for pk, _ in scored]],
        )
        rows = {row[0]: row for row in cur.fetchall()}
    return [
        Candidate(pk, similarity, _json(r[1]), _json(r[2]), r[3], r[4], r[5])
        for pk, similarity in scored
        if (r := rows.get(pk)) is not None
    ]


def note_stored(
    namespace: str, variant: str, entry_id: int, expires_at: float, embedding: np.ndarray | None, *, inserted: bool
) -> None:
    """A row this process stored: into its loaded partition at once, and counted."""
    if inserted:
        note_rows(namespace, variant, 1)
    part = _partitions.get((namespace, variant))
    if part is not None and embedding is not None:
        vector = np.asarray(embedding, dtype=np.float32)[None, :]
        part.add(np.array([entry_id], dtype=np.int64), np.array([expires_at]), vector)


def note_deleted(namespace: str, ids: list[int]) -> None:
    for (ns, _), part in list(_partitions.items()):
        if ns == namespace:
            part.forget(ids)


def forget(namespace: str | None = None) -> None:
    """Drop loaded partitions (a purge): the next search reloads them."""
    with _partitions_lock:
        for key in [k for k in _partitions if namespace is None or k[0] == namespace]:
            del _partitions[key]
    for key in [k for k in _counts if namespace is None or k[0] == namespace]:
        _counts.pop(key, None)
