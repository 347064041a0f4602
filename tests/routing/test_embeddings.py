"""The embedding memo is shared by threads (the gateway embeds in a thread pool)."""

from __future__ import annotations

import random
import sys
import threading

import numpy as np
import pytest

from routing import embeddings


def test_the_memo_survives_concurrent_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # The model is not what is tested here: a constant vector keeps the threads on the memo.
    monkeypatch.setattr(embeddings, "embed_many", lambda texts, batch_size=64: np.zeros((len(texts), 384), np.float32))
    monkeypatch.setattr(embeddings, "_CACHE_SIZE", 4)
    monkeypatch.setattr(embeddings, "_cache", embeddings.OrderedDict())
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(20_000):
                embeddings.embed(str(rng.randrange(12)))
        except Exception as exc:  # noqa: BLE001 - any error is the finding
            errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and len(embeddings._cache) <= 4
