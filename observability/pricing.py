"""Token costs from the admin-edited ModelPrice table.

The table is small and read on every span, so each process keeps it in memory and reloads
it when the shared version number in the cache changes (checked at most every few seconds);
the price services bump the version on every change, so an admin's edit reaches every
process within seconds without a query per span.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.core.cache import cache

VERSION_KEY = "obs:price_version"
RECHECK_S: float | None = None  # seconds between version checks; None: settings.AIOS_CONFIG_RECHECK_S
MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.0000000001")


@dataclass(frozen=True)
class Price:
    id: int
    provider: str
    pattern: str
    regex: re.Pattern[str]
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    effective_from: datetime
    priority: int


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Patterns match the whole model name, case-insensitively."""
    return re.compile(pattern, re.IGNORECASE)


def literal_pattern(model_name: str) -> str:
    """A pattern matching exactly `model_name` (dots and other specials escaped)."""
    return re.escape(model_name)


@dataclass(frozen=True)
class Cost:
    usd: Decimal | None
    status: str  # "priced" | "unknown_model" | "none"
    price_id: int | None = None


def cost_of(
    price: Price | None, *, input_tokens: int = 0, output_tokens: int = 0, cached_input_tokens: int = 0
) -> Cost:
    """USD for one call. `input_tokens` includes the cached ones (OpenTelemetry's convention):
    they are subtracted before pricing so nothing is counted twice."""
    if input_tokens <= 0 and output_tokens <= 0:
        return Cost(Decimal(0), "none", price.id if price else None)
    if price is None:
        return Cost(None, "unknown_model")
    cached = max(0, min(cached_input_tokens, input_tokens))
    uncached = input_tokens - cached
    cached_rate = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    usd = (uncached * price.input_per_mtok + cached * cached_rate + output_tokens * price.output_per_mtok) / MILLION
    return Cost(usd.quantize(COST_QUANTUM), "priced", price.id)


_PRICES_SQL = (
    "SELECT id, provider, pattern, input_per_mtok, output_per_mtok, cached_input_per_mtok, effective_from, priority "
    "FROM observability_modelprice"
)


def _prices_from(rows: Any) -> tuple[Price, ...]:
    out = []
    for pk, provider, pattern, inp, outp, cached, effective_from, priority in rows:
        try:
            regex = compile_pattern(pattern)
        except re.error:
            continue  # the admin form refuses bad patterns; a bad row must not break pricing
        out.append(Price(pk, provider, pattern, regex, inp, outp, cached, effective_from, priority))
    return tuple(out)


def read_prices(conn: Any = None) -> tuple[Price, ...]:
    """Every price row. Through `conn` (a psycopg connection of a writer thread) when given,
    else through Django's connection of the calling thread."""
    if conn is not None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(_PRICES_SQL)
            return _prices_from(cur.fetchall())
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(_PRICES_SQL)
        return _prices_from(cur.fetchall())


class PriceTable:
    """The price rule over an in-memory copy of the table (see the module docstring).

    `conn`: the span writer prices in its own thread over its own psycopg connection, which it
    reconnects after a database restart; Django's connection of a long-lived non-request thread
    is never checked or replaced, so after a restart every reload through it would fail."""

    key = "prices"  # named in the refresher's logs

    def __init__(self) -> None:
        self._prices: tuple[Price, ...] = ()
        self._version: object = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._frozen = False

    @classmethod
    def snapshot(cls) -> PriceTable:
        """A table of the prices in the database now, never reloaded (a recomputation prices
        every span with one consistent table)."""
        table = cls()
        table._load()
        table._frozen = True
        return table

    def _load(self, conn: Any = None) -> None:
        self._prices = read_prices(conn)
        self._match.cache_clear()

    @property
    def recheck_s(self) -> float:
        if RECHECK_S is not None:
            return RECHECK_S
        from django.conf import settings

        return float(getattr(settings, "AIOS_CONFIG_RECHECK_S", 5.0))

    def _refresh(self, conn: Any = None) -> None:
        if self._frozen:
            return
        from aios_core.versioned import NotLoaded, in_event_loop, watch_in_background

        if conn is None and in_event_loop():
            # Never query on an event loop: the process's refresher thread keeps the table
            # current (within a period) once it has been loaded.
            if self._version is None:
                raise NotLoaded("prices")
            watch_in_background(self)
            return
        if time.monotonic() - self._checked < self.recheck_s and self._version is not None:
            return
        self._refresh_now(conn)

    def background_refresh(self) -> None:
        """Called each period by the refresher thread (aios_core.versioned)."""
        if self._version is not None:
            self._refresh_now(force=True)

    def _refresh_now(self, conn: Any = None, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked < self.recheck_s and self._version is not None:
                return
            try:
                version = cache.get(VERSION_KEY, 0)
            except Exception:  # noqa: BLE001 - Redis down: keep the prices we have
                version = self._version if self._version is not None else 0
            if version != self._version:
                self._load(conn)
                self._version = version
            self._checked = now

    def invalidate(self) -> None:
        """Force a reload on next use in this process (other processes follow the version)."""
        self._version = None
        self._checked = 0.0

    @lru_cache(maxsize=4096)  # noqa: B019 - one table per process; cleared on reload
    def _match(self, model: str, provider: str) -> tuple[Price, ...]:
        """Rows matching `model`, best first (priority, then newest effective_from)."""
        found = [p for p in self._prices if p.regex.fullmatch(model) and (not provider or p.provider in ("", provider))]
        if not found and provider:
            found = [p for p in self._prices if p.regex.fullmatch(model)]
        return tuple(sorted(found, key=lambda p: (-p.priority, -p.effective_from.timestamp())))

    def price_for(self, model: str, at: datetime, provider: str = "", *, conn: Any = None) -> Price | None:
        if not model:
            return None
        self._refresh(conn)
        for price in self._match(model, provider or ""):
            if price.effective_from <= at:
                return price
        return None


prices = PriceTable()


def bump_price_version() -> None:
    """Tell every process to reload prices (called by the price services on commit)."""
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, 1, timeout=None)
    prices.invalidate()
