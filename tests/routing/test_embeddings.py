"""MiniLM embeddings: the traced int8 path (the default) stays close to encode()'s vectors and gives
a text the same vector whatever it is batched with; the traced fp32 path gives encode()'s vectors;
both fall back when they cannot trace; the memo is safe to share between threads."""

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


INT8_ONLY = pytest.mark.skipif(embeddings.PRECISION != "int8", reason="AIOS_EMBED_PRECISION is not int8")


@INT8_ONLY
def test_the_default_is_the_traced_int8_path_close_to_sentence_transformers_encode(model) -> None:  # type: ignore[no-untyped-def]
    assert embeddings.uses_traced_model()
    assert embeddings.MODEL_TAG.endswith("/int8-smooth-1")
    reference = embeddings._reference(model, TEXTS)
    singles = np.stack([embeddings.embed_many([text])[0] for text in TEXTS])
    assert (reference * singles).sum(axis=1).min() >= 0.97
    assert singles.dtype == np.float32
    assert np.linalg.norm(singles, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)


@INT8_ONLY
def test_an_int8_vector_does_not_depend_on_the_texts_batched_with_it(model) -> None:  # type: ignore[no-untyped-def]
    """Dynamic quantization scales a whole input tensor: batching would let the longest text of a
    batch change the others' vectors, and a stored entry would not match its own lookup."""
    alone = embeddings.embed_many([TEXTS[0]])[0]
    batched = embeddings.embed_many(TEXTS, batch_size=4)
    assert np.array_equal(batched[0], alone)
    assert np.array_equal(embeddings.embed_many(TEXTS[::-1])[::-1], batched)


def test_the_fp32_path_matches_sentence_transformers_encode(model) -> None:  # type: ignore[no-untyped-def]
    encoder = embeddings._Encoder(model, "fp32")
    reference = embeddings._reference(model, TEXTS)
    singles = np.stack([encoder.one(text) for text in TEXTS])
    batch = encoder.many(TEXTS)  # one padded batch
    assert (reference * singles).sum(axis=1).min() >= 0.9999
    assert (reference * batch).sum(axis=1).min() >= 0.9999
    assert batch.dtype == np.float32


def test_smoothing_alone_leaves_the_fp32_model_unchanged(model) -> None:  # type: ignore[no-untyped-def]
    """The int8 path's loss comes from rounding only: before quantization, dividing inputs by s and
    multiplying weights by s computes the same hidden states."""
    import torch

    from routing.embedding_int8 import smoothed_copy

    bert = model[0].auto_model.eval()
    smoothed = smoothed_copy(bert, lambda text: model.tokenizer(text)["input_ids"])
    ids = torch.tensor([model.tokenizer(TEXTS[4])["input_ids"]])
    with torch.inference_mode():
        expected, got = bert(input_ids=ids).last_hidden_state, smoothed(input_ids=ids).last_hidden_state
    assert torch.allclose(got, expected, atol=1e-3, rtol=1e-3)
    assert any(hasattr(module, "inverse_scale") for module in smoothed.modules())
    assert not any(hasattr(module, "inverse_scale") for module in bert.modules())  # the original is untouched


def test_it_falls_back_to_encode_when_tracing_fails(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    def broken_trace(*args: object, **kwargs: object) -> None:
        raise RuntimeError("this torch cannot trace BERT")

    monkeypatch.setattr(torch.jit, "trace", broken_trace)
    assert embeddings._build_encoder(model) is None


def test_tracing_can_be_turned_off(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIOS_EMBED_TRACE", "0")
    assert embeddings._build_encoder(model) is None


def test_without_the_traced_path_embed_many_still_gives_close_vectors(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    traced = embeddings.embed_many(TEXTS[:3])
    monkeypatch.setattr(embeddings, "_encoder", None)
    assert (embeddings.embed_many(TEXTS[:3]) * traced).sum(axis=1).min() >= 0.97


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
