"""Train the learned router and store it as the active version (in the database)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from routing.learned_router import train_router
from routing.services import router_model_save, training_examples


def read_rows(path: Path, limit: int | None) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("split", "train") != "train":
                continue  # holdout rows are for reporting only, never for training
            rows.append(
                {
                    "prompt": row["prompt"],
                    "weak_correct": bool(row["weak_correct"]),
                    "strong_correct": bool(row["strong_correct"]),
                }
            )
            if limit and len(rows) >= limit:
                break
    return rows


class Command(BaseCommand):
    help = "Train the learned router on labelled prompts (split == 'train') plus stored training rows."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--data", type=Path, help="JSONL(.gz) with prompt, weak_correct, strong_correct, split")
        parser.add_argument("--limit", type=int, default=None, help="use the first N training rows (quick runs)")
        parser.add_argument("--no-stored", action="store_true", help="ignore rows written by other apps")
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: object, **opts: Any) -> None:
        rows: list[dict[str, Any]] = []
        if opts["data"]:
            if not opts["data"].exists():
                raise CommandError(f"no such file: {opts['data']}")
            rows += read_rows(opts["data"], opts["limit"])
        if not opts["no_stored"]:
            # Rows that label only one tier (a score on a routed request) are included: the
            # trainer's loss counts only the label that is known.
            rows += [
                {"prompt": r.prompt, "weak_correct": r.weak_correct, "strong_correct": r.strong_correct}
                for r in training_examples()
            ]
        if len(rows) < 50:
            raise CommandError(f"{len(rows)} labelled prompts: need at least 50 to train")
        partial = sum(1 for row in rows if row["weak_correct"] is None or row["strong_correct"] is None)
        self.stdout.write(
            f"training on {len(rows)} prompts ({partial} labelled for one tier only); embedding them first..."
        )
        try:
            artifact = train_router(rows, seed=opts["seed"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        saved = router_model_save(
            artifact=artifact.to_bytes(), metadata=artifact.metadata, activate=not opts["no_activate"]
        )
        self.stdout.write(
            f"saved router v{saved.version}{' (active)' if saved.active else ''}: "
            f"out-of-fold {json.dumps(artifact.metadata['train_metrics']['out_of_fold'])}"
        )
