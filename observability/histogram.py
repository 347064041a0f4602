"""Log-spaced latency histogram used by the rollups.

Bin i covers [MIN_MS * GAMMA**(i-1), MIN_MS * GAMMA**i) for i in 1..N-2; bin 0 is
underflow, bin N-1 overflow. Reporting a bin by its geometric midpoint bounds the relative
error of any percentile by (sqrt(GAMMA) - 1) ~= 1.98% for GAMMA = 1.04 (for values inside
the range 0.05 ms .. 10 min). Percentiles do not add up; histograms do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

GAMMA = 1.04
MIN_MS = 0.05
MAX_MS = 600_000.0
_LOG_GAMMA = math.log(GAMMA)
N_BINS = math.ceil(math.log(MAX_MS / MIN_MS) / _LOG_GAMMA) + 2
RELATIVE_ERROR = math.sqrt(GAMMA) - 1


def bin_of(latency_ms: float) -> int:
    if latency_ms < MIN_MS:
        return 0
    if latency_ms >= MAX_MS:
        return N_BINS - 1
    return min(N_BINS - 2, int(math.log(latency_ms / MIN_MS) / _LOG_GAMMA) + 1)


def bins_of(latencies_ms: np.ndarray) -> np.ndarray:
    lat = np.asarray(latencies_ms, dtype=np.float64)
    with np.errstate(divide="ignore"):
        idx = np.floor(np.log(np.maximum(lat, 1e-12) / MIN_MS) / _LOG_GAMMA).astype(np.int64) + 1
    idx = np.clip(idx, 1, N_BINS - 2)
    idx[lat < MIN_MS] = 0
    idx[lat >= MAX_MS] = N_BINS - 1
    return idx


def histogram_of(latencies_ms: Iterable[float]) -> np.ndarray:
    return np.bincount(bins_of(np.fromiter(latencies_ms, dtype=np.float64)), minlength=N_BINS).astype(np.int64)


def representative_ms(bin_index: int) -> float:
    """The value reported for a bin: the geometric midpoint of its bounds."""
    if bin_index <= 0:
        return MIN_MS
    if bin_index >= N_BINS - 1:
        return MAX_MS
    low = MIN_MS * GAMMA ** (bin_index - 1)
    return low * math.sqrt(GAMMA)


def percentiles(hist: Sequence[int] | np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Percentiles (q in 0..100) from a histogram, nearest-rank on the cumulative counts."""
    counts = np.asarray(hist, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return [None for _ in qs]
    cumulative = np.cumsum(counts)
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q / 100 * total))
        out.append(representative_ms(int(np.searchsorted(cumulative, rank))))
    return out
