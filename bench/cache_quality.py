"""Semantic cache quality: precision, recall and number-changed false hits on pairs not used for tuning.

Run from the repository root: `.venv/bin/python bench/cache_quality.py [--quick]`. The last line is one
JSON object for tooling; the lines before it are for people. Embeddings are cached under var/cache/,
so only the first run pays for the model (the full MMLU set takes several minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AIOS_TORCH_THREADS", "1")

from routing.cache_quality import evaluate_quality
from routing.cache_verify import DEFAULT_SIMILARITY_THRESHOLD

TARGETS = {"semantic_precision": 0.98, "semantic_recall": 0.80, "number_changed_false_hits": 0}


def _print_summary(result: dict[str, Any], seconds: float) -> None:
    threshold, tuned = result["threshold"], result["tuned_threshold"]
    print(f"threshold {threshold:.3f} (DEFAULT_SIMILARITY_THRESHOLD; tuned on the tune part: {tuned:.3f})")
    positives, negatives = result["n_positive_report"], result["n_negative_report"]
    print(f"report part: {positives} paraphrase queries, {negatives} near-miss queries")
    for family, count in result["queries_by_family"].items():
        print(f"  {family:28s} {count:6d} queries, {result['false_hits_by_family'].get(family, 0):4d} false hits")
    print(
        f"precision {result['semantic_precision']:.4f}  recall {result['semantic_recall']:.4f}  "
        f"recall in context {result['recall_in_context']:.4f}  hits {result['hits']}  "
        f"number-changed false hits {result['number_changed_false_hits']}"
    )
    print(
        f"with paraphrases of uncached prompts: precision {result['precision_with_uncached']:.4f}, "
        f"{result['uncached_paraphrase_hit_rate']:.1%} of them served; "
        f"hits on look-alike origins counted as correct: {result['hits_on_look_alike_origins']}"
    )
    unverified = result["report_without_verification"]
    print(
        f"without verification at the same threshold: precision {unverified['semantic_precision']:.4f}, "
        f"recall {unverified['semantic_recall']:.4f}, false hits {unverified['false_hits_by_family']}"
    )
    for example in result["false_hit_examples"]:
        print(f"  false hit [{example['family']}, {example['similarity']}]: {example['query'][:160]!r}")
        print(f"      served from: {example['neighbour'][:160]!r}")
    print(f"wall time {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 MMLU questions per subject, 150 GSM8K problems")
    args = parser.parse_args()
    started = time.perf_counter()
    result = evaluate_quality(quick=args.quick, progress=lambda line: print(line, flush=True))
    seconds = time.perf_counter() - started
    _print_summary(result, seconds)
    summary = {
        "bench": "cache_quality",
        "quick": args.quick,
        "semantic_precision": round(result["semantic_precision"], 4),
        "semantic_recall": round(result["semantic_recall"], 4),
        "precision_with_uncached": round(result["precision_with_uncached"], 4),
        "number_changed_false_hits": result["number_changed_false_hits"],
        "threshold": DEFAULT_SIMILARITY_THRESHOLD,
        "tuned_threshold": result["tuned_threshold"],
        "n_positive_report": result["n_positive_report"],
        "n_negative_report": result["n_negative_report"],
        "seconds": round(seconds, 1),
        "targets": TARGETS,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
