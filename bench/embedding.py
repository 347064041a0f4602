"""Latency of one MiniLM embedding: SentenceTransformer.encode() against our traced path.

    .venv/bin/python bench/embedding.py [--runs 200]

For a short prompt (a ~30-token paraphrase, the semantic cache's typical lookup) and a long
one (an MMLU question with a passage, ~200 tokens), times single embeddings through
encode() ("before") and through routing.embeddings.embed_many() ("after", the traced graph),
interleaved so that both see the same load from other processes, on one torch thread. Also
checks that both give the same vector. The last printed line is one JSON object.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    model = embeddings._load()
    load_s = time.perf_counter() - started
    results: dict[str, object] = {"traced": embeddings.uses_traced_model(), "load_s": round(load_s, 1)}
    for label, prompt in PROMPTS.items():
        tokens = len(model.tokenizer(prompt, truncation=True, max_length=model.max_seq_length)["input_ids"])
        before = embeddings._reference(model, [prompt])[0]
        after = embeddings.embed_many([prompt])[0]
        figures = measure(
            {
                "encode": lambda prompt=prompt: embeddings._reference(model, [prompt]),
                "traced": lambda prompt=prompt: embeddings.embed_many([prompt]),
            },
            args.runs,
        )
        results[label] = {"tokens": tokens, "cosine": round(float(before @ after), 7), **figures}
        print(
            f"{label:<6} ({tokens} tokens): encode() p50 {figures['encode']['p50_ms']:.1f} / "
            f"p95 {figures['encode']['p95_ms']:.1f} ms; traced p50 {figures['traced']['p50_ms']:.1f} / "
            f"p95 {figures['traced']['p95_ms']:.1f} ms; cosine {float(before @ after):.7f}"
        )
    print(json.dumps({"bench": "embedding", **results}))


if __name__ == "__main__":
    main()
