"""Benchmark of the model routers on the holdout split (placeholder while embeddings cache)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
DATA_PATH = REPO_ROOT / ".." / "shared" / "data" / "routing" / "routellm_mmlu_gsm8k.jsonl.gz"
CACHE_DIR = REPO_ROOT / "var" / "cache"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def load_rows(path: Path = DATA_PATH) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def cached_embeddings(prompts: list[str]) -> np.ndarray:
    """Embeddings of every prompt, cached on disk under a key of the model and the exact prompts."""
    digest = hashlib.sha256(EMBEDDING_MODEL.encode())
    for prompt in prompts:
        digest.update(hashlib.sha256(prompt.encode()).digest())
    path = CACHE_DIR / f"router_embeddings_{digest.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    from routing.embeddings import embed_many

    vectors = embed_many(prompts)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
