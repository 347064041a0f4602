"""Latency of one MiniLM embedding: SentenceTransformer.encode(), our traced fp32 graph and our
traced int8 graph (the default, routing/embedding_int8.py), side by side.

    .venv/bin/python bench/embedding.py [--runs 200]

For a short prompt (a ~30-token paraphrase, the semantic cache's typical lookup) and a long
one (an MMLU question with a passage, ~200 tokens), times single embeddings through each path,
interleaved so that all see the same load from other processes, on one torch thread. Also
reports how close each path's vectors are to encode()'s (fp32): on the two prompts, and mean /
min cosine over the shared paraphrase prompts (both sides of every pair). The last printed line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from routing import embeddings  # noqa: E402
from routing.cache_quality import PARAPHRASE_PATH  # noqa: E402

PROMPTS = {
    "short": "Could you tell me how I can change the password of my account if I no longer remember the old one?",
    "long": (
        "This question refers to the following information. In order to make the world safe for democracy, "
        "the nations that fought the war agreed to form a league whose members would guarantee each other's "
        "independence and borders, settle their disputes by arbitration rather than by arms, reduce their "
        "armaments to the lowest point consistent with domestic safety, and act together against any member "
        "that went to war in disregard of its covenants. The treaty that created it also redrew the map of "
        "central Europe, imposed reparations on the defeated powers, and placed their former colonies under "
        "mandates supervised by the league. Critics at home argued that the covenant bound the country to "
        "fight in quarrels that were not its own and surrendered the power of the legislature to declare war.\n"
        "Which of the following best explains why the legislature refused to ratify the treaty?\n"
        "A. Fear that collective security would commit the country to foreign wars\n"
        "B. Opposition to the reparations imposed on the defeated powers\n"
        "C. A desire to annex the former colonies of the defeated powers\n"
        "D. Support for an immediate reduction of the navy\nAnswer:"
    ),
}


def percentiles(timings: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(timings, [50, 95])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2)}


def measure(paths: dict[str, Callable[[], object]], runs: int) -> dict[str, dict[str, float]]:
    for call in paths.values():
        for _ in range(10):
            call()
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, call in paths.items():  # interleaved: both paths see the same background load
            start = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - start) * 1000)
    return {name: percentiles(values) for name, values in timings.items()}


def agreement(model: object, encoders: dict[str, embeddings._Encoder], limit: int) -> dict[str, dict[str, float]]:
    """Mean / min cosine of each encoder's single-text vectors against encode() on shared prompts."""
    if not PARAPHRASE_PATH.exists():
        return {}
    pairs = json.loads(PARAPHRASE_PATH.read_text())[:limit]
    texts = [text for pair in pairs for text in (pair["origin"], pair["similar"])]
    reference = embeddings._reference(model, texts)
    out = {}
    for name, encoder in encoders.items():
        cosines = (np.stack([encoder.one(text) for text in texts]) * reference).sum(axis=1)
        mean, worst = float(cosines.mean()), float(cosines.min())
        out[name] = {"texts": len(texts), "mean": round(mean, 5), "min": round(worst, 5)}
        print(f"{name}: cosine to encode() on {len(texts)} shared prompts: mean {mean:.5f}, min {worst:.5f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=500, help="paraphrase pairs for the cosine figures")
    args = parser.parse_args()
    started = time.perf_counter()
    model = embeddings._load()
    load_s = time.perf_counter() - started
    encoders = {"fp32": embeddings._Encoder(model, "fp32"), "int8": embeddings._Encoder(model, "int8")}
    results: dict[str, object] = {
        "default": embeddings.MODEL_TAG,
        "traced": embeddings.uses_traced_model(),
        "load_s": round(load_s, 1),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "cosine_to_encode": agreement(model, encoders, args.pairs),
    }
    for label, prompt in PROMPTS.items():
        tokens = len(model.tokenizer(prompt, truncation=True, max_length=model.max_seq_length)["input_ids"])
        before = embeddings._reference(model, [prompt])[0]
        paths: dict[str, Callable[[], object]] = {"encode": lambda p=prompt: embeddings._reference(model, [p])}
        paths |= {name: lambda p=prompt, encoder=encoder: encoder.one(p) for name, encoder in encoders.items()}
        figures = measure(paths, args.runs)
        cosines = {name: round(float(before @ encoder.one(prompt)), 7) for name, encoder in encoders.items()}
        results[label] = {"tokens": tokens, "cosine": cosines, **figures}
        print(
            f"{label:<6} ({tokens} tokens): "
            + "; ".join(f"{name} p50 {f['p50_ms']:.1f} / p95 {f['p95_ms']:.1f} ms" for name, f in figures.items())
            + f"; cosine to encode() {cosines}"
        )
    results["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps({"bench": "embedding", **results}))


if __name__ == "__main__":
    main()
