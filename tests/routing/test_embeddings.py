"""MiniLM embeddings: the traced fast path gives encode()'s vectors, falls back when it cannot trace,
and the memo is safe to share between threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from routing import embeddings

TEXTS = [
    "How do I reset my password?",
    "",
    "  spaced   out   text  ",
    "Ünïcödé: 東京 is the capital of Japan ✓",
    "Which of the following is NOT a prime?\nA. 2\nB. 3\nC. 5\nD. 9\nAnswer:",
    "word " * 400,  # longer than the model's 256 tokens: truncated the same way
]


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return embeddings._load()


def test_the_traced_path_is_used_and_matches_sentence_transformers_encode(model) -> None:  # type: ignore[no-untyped-def]
    assert embeddings.uses_traced_model()
    reference = embeddings._reference(model, TEXTS)
    singles = np.stack([embeddings.embed_many([text])[0] for text in TEXTS])
    batch = embeddings.embed_many(TEXTS, batch_size=4)  # padded batches, in length order
    assert (reference * singles).sum(axis=1).min() >= 0.9999
    assert (reference * batch).sum(axis=1).min() >= 0.9999
    assert batch.dtype == np.float32
    assert np.linalg.norm(batch, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)


def test_it_falls_back_to_encode_when_tracing_fails(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    def broken_trace(*args: object, **kwargs: object) -> None:
        raise RuntimeError("this torch cannot trace BERT")

    monkeypatch.setattr(torch.jit, "trace", broken_trace)
    assert embeddings._build_encoder(model) is None


def test_tracing_can_be_turned_off(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIOS_EMBED_TRACE", "0")
    assert embeddings._build_encoder(model) is None


def test_without_the_traced_path_embed_many_still_gives_the_same_vectors(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    traced = embeddings.embed_many(TEXTS[:3])
    monkeypatch.setattr(embeddings, "_encoder", None)
    assert (embeddings.embed_many(TEXTS[:3]) * traced).sum(axis=1).min() >= 0.9999


def test_the_memo_serves_concurrent_threads_without_losing_entries(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(embeddings, "_CACHE_SIZE", 8)
    monkeypatch.setattr(embeddings, "_cache", embeddings.OrderedDict())
    texts = [f"question number {n}" for n in range(12)]
    expected = {text: embeddings.embed_many([text])[0] for text in texts}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for round_ in range(20):
                text = texts[(offset + round_) % len(texts)]
                assert np.allclose(embeddings.embed(text), expected[text], atol=1e-5)
        except BaseException as error:  # noqa: BLE001 - reported to the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(embeddings._cache) <= 8  # the LRU bound holds under concurrent inserts
