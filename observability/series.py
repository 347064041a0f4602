"""Which rollup rows a span counts in. The span writer, the rollup rebuild and the cost
recomputation all expand a span through this module, so they always agree.

A span counts in its own series (kind, agent, model, provider) and in pre-aggregated rows
with "*" for the dimensions they sum over: its agent's, its model's and the total (all
kinds), and its kind's. LLM calls and agent actions (`CALL_KINDS`) also count in the "calls"
rows (kind "*calls": per agent, per model, total), which are what the overview means by a
call: routing, cache lookups, tools and the like are parts of a call, not calls.
"""

from __future__ import annotations

from observability.models import ALL

CALLS = "*calls"
CALL_KINDS = ("llm", "action")

Key = tuple[str, str, str, str]


def series_keys(kind: str, agent: str, model: str, provider: str) -> tuple[Key, ...]:
    keys: tuple[Key, ...] = (
        (kind, agent, model, provider),
        (ALL, agent, ALL, ALL),
        (ALL, ALL, model, ALL),
        (ALL, ALL, ALL, ALL),
        (kind, ALL, ALL, ALL),
    )
    if kind in CALL_KINDS:
        keys += ((CALLS, agent, ALL, ALL), (CALLS, ALL, model, ALL), (CALLS, ALL, ALL, ALL))
    return keys


def sql_expand(src: str) -> tuple[str, str]:
    """SQL that expands rows of `src` (with kind, agent, model, provider columns) into one row
    per series, as `d(kind, agent, model, provider)`: a join clause and its WHERE condition."""
    s = src
    join = (
        "CROSS JOIN LATERAL (VALUES "
        f"({s}.kind, {s}.agent, {s}.model, {s}.provider, false), ('*', {s}.agent, '*', '*', false), "
        f"('*', '*', {s}.model, '*', false), ('*', '*', '*', '*', false), ({s}.kind, '*', '*', '*', false), "
        f"('{CALLS}', {s}.agent, '*', '*', true), ('{CALLS}', '*', {s}.model, '*', true), "
        f"('{CALLS}', '*', '*', '*', true)) AS d(kind, agent, model, provider, calls_only)"
    )
    kinds = ", ".join(f"'{k}'" for k in CALL_KINDS)
    return join, f"(NOT d.calls_only OR {s}.kind IN ({kinds}))"


# Cache lookups: a span of kind "cache" says what happened in this attribute (routing's
# response cache sets it). Hits and misses are counted in the rollups, for the hit rate;
# lookups that bypassed the cache count as neither.
CACHE_KIND = "cache"
CACHE_RESULT = "aios.cache.result"
CACHE_HITS = ("hit", "semantic-hit")
CACHE_MISSES = ("miss",)


def cache_outcome(kind: str, attributes: dict[str, object] | None) -> tuple[int, int]:
    """(hits, misses) one span adds."""
    if kind != CACHE_KIND or not attributes:
        return 0, 0
    result = attributes.get(CACHE_RESULT)
    return int(result in CACHE_HITS), int(result in CACHE_MISSES)


def sql_cache_counts(src: str) -> str:
    """SQL for the (hits, misses) columns of a row of `src` (with kind and attributes)."""
    hits = ", ".join(f"'{v}'" for v in CACHE_HITS)
    misses = ", ".join(f"'{v}'" for v in CACHE_MISSES)
    attr = f"{src}.attributes->>'{CACHE_RESULT}'"
    return (
        f"({src}.kind = '{CACHE_KIND}' AND {attr} IN ({hits}))::int AS cache_hit, "
        f"({src}.kind = '{CACHE_KIND}' AND {attr} IN ({misses}))::int AS cache_miss"
    )
