"""The live metrics feed behind the overview's charts.

Writers (any process) mark the feed dirty after each committed batch and record the newest
span end they wrote (the watermark). Each web process that has dashboard sockets runs a small
loop, ticking at the start of each quarter-second slot of the wall clock; in each slot at most
one process in the whole deployment wins it (SET NX on a key named after the slot number),
reads the dirty flag, computes the newest points from the rollups, and sends one message per
window group. So each group gets at most one message per slot, four a second, whatever the
span rate or the number of processes. Messages carry a global sequence number: the channel layer is
at-most-once, and a client that sees a gap re-reads the window over HTTP instead of drawing a hole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

TICK_S = 0.25  # one slot: at most four messages a second per group
HEARTBEAT_S = 5.0
SUMMARY_EVERY_S = 1.0
PANELS_EVERY_S = 10.0  # panels of other apps (evaluation scores...) are slower-moving and costlier
WINDOWS = ("15m", "1h", "24h", "7d")
KEY_DIRTY = "aios:live:dirty"
KEY_WATERMARK = "aios:live:watermark"
KEY_SEQ = "aios:live:seq"
KEY_SLOT = "aios:live:slot"

# Keep the largest watermark: writers in several processes race.
_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SET', KEYS[2], '1')
return 1
"""


def group_name(window: str) -> str:
    return f"metrics.live.{window}"


def _key(name: str) -> str:
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "aios")
    return f"{prefix}:{name}"


_sync_client: Any = None


def _redis() -> Any:
    global _sync_client
    if _sync_client is None:
        import redis

        _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _sync_client


def on_flush(batch: Sequence[tuple[Any, ...]]) -> None:
    """Span-writer listener: the batch is committed; mark the feed dirty."""
    from observability.writer import COL

    newest = max(row[COL["ended_at"]] for row in batch)
    try:
        _redis().eval(_SET_MAX, 2, _key(KEY_WATERMARK), _key(KEY_DIRTY), f"{newest.timestamp():.6f}")
    except Exception:
        log.debug("live feed: could not mark dirty", exc_info=True)


def current_seq() -> int:
    try:
        return int(_redis().get(_key(KEY_SEQ)) or 0)
    except Exception:  # noqa: BLE001
        return 0


def _panels(window: str) -> list[dict[str, Any]]:
    from django.utils import timezone

    from observability.panels import panels_data
    from observability.selectors import WINDOW_SECONDS

    until = timezone.now()
    return panels_data(since=until - timedelta(seconds=WINDOW_SECONDS[window]), until=until)


def snapshot(window: str) -> dict[str, Any]:
    """What a client draws first (and re-reads after a gap): the whole window."""
    from observability.selectors import WINDOW_SECONDS, costs_by_caller, metrics_timeseries, overview_summary

    seq = current_seq()  # read first: anything newer arrives as a message after this snapshot
    span = timedelta(seconds=WINDOW_SECONDS[window])
    return {
        "seq": seq,
        "window": window,
        "series": metrics_timeseries(window=window),
        "summary": overview_summary(window=span),
        "panels": _panels(window),
        "by_caller": costs_by_caller(window=span),  # on (re)load only: a trace scan, not a rollup read
    }


def _update(window: str, with_summary: bool, with_panels: bool) -> dict[str, Any]:
    from observability.selectors import WINDOW_SECONDS, metrics_timeseries, overview_summary

    body: dict[str, Any] = {"window": window, "series": metrics_timeseries(window=window, points=2)}
    if with_summary:
        body["summary"] = overview_summary(window=timedelta(seconds=WINDOW_SECONDS[window]))
    if with_panels:
        body["panels"] = _panels(window)
    return body


class LiveFeed:
    """One per process, started by the first dashboard socket of the process."""

    def __init__(self) -> None:
        self.local_sockets = 0
        self._task: asyncio.Task[None] | None = None
        self._last_publish = 0.0
        self._last_summary = 0.0
        self._last_panels = 0.0
        self._redis: Any = None

    def attach(self) -> None:
        self.local_sockets += 1
        loop = asyncio.get_running_loop()
        # A task (or Redis client) from another event loop is dead here: tests, or a server
        # that restarted its loop, must not leave the feed stopped.
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._redis = None
            self._task = loop.create_task(self._run())

    def detach(self) -> None:
        self.local_sockets = max(0, self.local_sockets - 1)

    async def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        return self._redis

    async def _run(self) -> None:
        while self.local_sockets > 0:
            slot = int(time.time() // TICK_S)
            try:
                await self._tick(slot)
            except Exception:
                log.warning("live feed tick failed", exc_info=True)
            # Wake at the start of the next slot (every process alike, so the first to try wins it).
            await asyncio.sleep(max(0.0, (slot + 1) * TICK_S - time.time()) + 0.002)
        self._task = None

    async def _tick(self, slot: int) -> None:
        r = await self._client()
        # One publisher per wall-clock slot in the whole deployment: the key is the slot itself,
        # so a process whose clock tick comes late cannot publish twice in one slot.
        if not await r.set(_key(f"{KEY_SLOT}:{slot}"), "1", nx=True, px=int(TICK_S * 8 * 1000)):
            return  # another process publishes this slot
        dirty = await r.getdel(_key(KEY_DIRTY))
        now = time.monotonic()
        if not dirty and now - self._last_publish < HEARTBEAT_S:
            return
        with_summary = now - self._last_summary >= SUMMARY_EVERY_S
        with_panels = now - self._last_panels >= PANELS_EVERY_S
        seq = int(await r.incr(_key(KEY_SEQ)))
        watermark_raw = await r.get(_key(KEY_WATERMARK))
        from channels.db import database_sync_to_async
        from channels.layers import get_channel_layer

        updates = await database_sync_to_async(lambda: [_update(w, with_summary, with_panels) for w in WINDOWS])()
        watermark = datetime.fromtimestamp(float(watermark_raw), UTC).isoformat() if watermark_raw else None
        layer = get_channel_layer()
        sent_at = datetime.now(UTC).isoformat()
        for body in updates:
            payload = {"type": "update", "seq": seq, "slot": slot, "watermark": watermark, "sent_at": sent_at, **body}
            await layer.group_send(group_name(body["window"]), {"type": "metrics.update", "payload": payload})
        self._last_publish = now
        if with_summary:
            self._last_summary = now
        if with_panels:
            self._last_panels = now


feed = LiveFeed()
