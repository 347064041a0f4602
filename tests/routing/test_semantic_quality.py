"""The semantic cache with the real embedder on a small slice of the shared data: paraphrases are
served, a different MMLU question of the same subject and a GSM8K problem with one number changed
are not. (bench/cache_quality.py measures the same on thousands of lookups.)"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from routing import cache_vectors
from routing import response_cache as rc
from routing.cache_quality import (
    PARAPHRASE_PATH,
    ROUTING_PATH,
    change_number,
    load_paraphrase_pairs,
    load_routing_rows,
    split_paraphrase_pairs,
)
from routing.cache_verify import DEFAULT_SIMILARITY_THRESHOLD, conversation_text

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not (PARAPHRASE_PATH.exists() and ROUTING_PATH.exists()), reason="shared data not present"),
]
VARIANT = rc.cache_variant("auto", {"temperature": 0})


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def cache_all(namespace: str, prompts: list[str]) -> dict[int, str]:
    from routing.embeddings import embed_many

    policy = rc.Policy(namespace=namespace)
    vectors = embed_many([conversation_text(user(p)) for p in prompts])
    ids = {}
    for prompt, vector in zip(prompts, vectors, strict=True):
        key = rc.cache_key(namespace, user(prompt), "auto", {"temperature": 0})
        entry_id = rc.store(policy=policy, key=key, messages=user(prompt), params={"temperature": 0},
                            embedding=vector, response={"content": prompt, "finish_reason": "stop"},
                            model="sim/simple", cost_usd=Decimal("0.001"), latency_ms=500, variant=VARIANT)  # fmt: skip
        ids[entry_id] = prompt
    return ids


def served(namespace: str, prompt: str) -> str | None:
    from routing.embeddings import embed

    hit, _ = rc.lookup_semantic(namespace, VARIANT, user(prompt), embed(conversation_text(user(prompt))),
                                DEFAULT_SIMILARITY_THRESHOLD)  # fmt: skip
    return None if hit is None else hit.response["content"]


@pytest.mark.parametrize("mode", ["database", "in-process"])
def test_real_paraphrases_hit_and_real_near_misses_miss(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "in-process":
        monkeypatch.setattr(cache_vectors, "_mode", "in-process")
    _, report = split_paraphrase_pairs(load_paraphrase_pairs())
    pairs = random.Random(7).sample(report, 20)
    rows = load_routing_rows()
    subject = "high_school_biology"
    mmlu = sorted((r for r in rows if r["subject"] == subject and r["split"] == "holdout"), key=lambda r: r["id"])
    gsm8k = sorted((r for r in rows if r["source"] == "gsm8k" and r["split"] == "holdout"), key=lambda r: r["id"])
    changed = {r["id"]: change_number(r["prompt"], random.Random(r["id"])) for r in gsm8k[:20]}
    gsm8k = [r for r in gsm8k[:20] if changed[r["id"]] not in (None, r["prompt"])][:10]
    namespace = f"quality-{mode}"
    cache_all(namespace, [p["origin"] for p in pairs] + [r["prompt"] for r in mmlu[:10] + gsm8k])

    answers = [served(namespace, p["similar"]) for p in pairs]
    assert all(a in (None, p["origin"]) for a, p in zip(answers, pairs, strict=True))  # never another's answer
    assert sum(a is not None for a in answers) >= 14  # recall on the full report half is about 0.83
    for row in mmlu[10:20]:  # other questions of the same subject, never cached
        assert served(namespace, row["prompt"]) is None, row["prompt"][:80]
    assert len(gsm8k) == 10
    for row in gsm8k:  # one number changed
        assert served(namespace, changed[row["id"]]) is None, changed[row["id"]][:80]
