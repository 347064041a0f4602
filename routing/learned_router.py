"""Learned router: predicts from a prompt whether the weak model suffices or the strong one is needed.

Inputs at inference are only the prompt text and its MiniLM embedding (never a subject label):
- prompt-structure features (answer options and how alike they are, negations, numbers,
  statements to combine, length ...);
- neighbour features: outcomes of the most similar training prompts (kNN over their
  embeddings). The neighbour index is part of the artifact, so the router needs no database.
The raw embedding can also be fed to the MLP (TrainConfig.use_embedding) but overfits: on the
train split it lowered out-of-fold APGR from 0.69 to 0.66, so it is off by default.

The model is a small MLP with a 4-way softmax over the joint outcome (neither model right,
only weak, only strong, both). Routing ranks by the expected gain of the strong model,
P(only strong) - P(only weak) = P(strong right) - P(weak right): a prompt both models fail is
not worth a strong call, which "P(weak fails)" alone would miss. Five fold models are trained;
their out-of-fold scores give honest training metrics and the tier thresholds, and the five
are averaged at inference.

The artifact serializes to bytes (an .npz of plain arrays plus JSON metadata, no pickle) so
it can be stored versioned in the database and loaded offline.

What was tried, chosen by 5-fold out-of-fold APGR on the train split only (holdout untouched):
structure + MiniLM neighbours 0.707; + TF-IDF neighbours 0.711 (kept); the subject predicted
from the embedding (78% accurate) and its out-of-fold gain prior as features 0.705; more k values
(5 .. 400) 0.709; exponential similarity kernels (temperature 0.05) 0.696; hidden 128 / dropout
0.4 0.707; 30 epochs 0.704; word 1-2-gram, character 3-5-gram and embedding logistic models
stacked as features 0.707-0.710 (0.675 / 0.664 / 0.648 alone); rank averages with them, with a
second seed or with gradient boosting (0.692 alone) 0.712-0.714; per-source (GSM8K / MMLU)
isotonic calibration 0.704. None came near the issue's 0.72: the differences beyond the TF-IDF
neighbours are within fold noise, so the simpler model was kept.

A later round (out-of-fold APGR on train, mean over fold seeds; this model 0.712): joint-outcome
neighbour rates and their disagreement 0.709; neighbour counts with a prior toward the global rate
0.709; k-means clusters (30/100/300) as pseudo-subjects with shrunk priors 0.711; neighbours in a
space learned per fold (ridge projection) 0.700-0.704; 3 initializations per fold 0.713. What did
help on train: word-problem features for prompts without options (quantities, largest number,
implied operations) 0.715, a pairwise ranking loss on the expected gain beside the cross-entropy
0.714, both 0.718, and 3 bags of fold splits on top 0.723 (CPT(50%) 23.1%). On holdout that model
scored 0.699 / 26.7% / saving 57.6% against this one's 0.702 / 25.6% / 55.9%: no gain beyond the
holdout's noise (90% bootstrap interval 0.668-0.734), for three times the models and a looser
tier test, so it was not adopted.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from routing.complexity import ComplexityAnalyzer, TaskComplexity
from routing.embeddings import MODEL_TAG
from routing.router_metrics import RouterMetrics, router_metrics, threshold_for_quality

logger = logging.getLogger(__name__)

ARTIFACT_VERSION = 2
# Version 1 artifacts (no lexical neighbours) still load: an upgrade keeps the active router.
READABLE_VERSIONS = (1, 2)
N_FOLDS = 5
NEIGHBOUR_KS = (10, 50, 200)
NEIGHBOUR_DIMENSIONS = 128
OUTCOMES = 4  # index = 2 * strong_correct + weak_correct
# Quality (share of strong accuracy kept) defining the tier boundaries on training scores:
# above the 95% cutoff a prompt is COMPLEX; between that and the 99% cutoff, MEDIUM.
COMPLEX_QUALITY = 0.95
MEDIUM_QUALITY = 0.99
CONFIDENCE_BAND = 0.15  # rank distance from a tier boundary at which confidence reaches 1

# ----------------------------------------------------------------------------- prompt structure

_OPTION = re.compile(r"^\s*([A-D])[.)]\s*(.*)$", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*")
_MATH_SYMBOL = re.compile(r"[=+*/^×÷√∫∑π<>≤≥]|\\frac|\bsqrt\b|\blog\b")
_NEGATION = re.compile(r"\b(NOT|EXCEPT|LEAST|FALSE|INCORRECT|CANNOT)\b")
_WHICH = re.compile(r"\bwhich of the following\b", re.IGNORECASE)
_ALL_NONE = re.compile(r"\b(all|none|both|neither) of (the )?(above|these|options)\b", re.IGNORECASE)
_STATEMENTS = re.compile(r"\b(statement|scenario)\s*\d\b", re.IGNORECASE)
_ROMAN = re.compile(r"\b(I{1,3}|IV)\b\s*(?:,|and|only)")
_TRUE_FALSE = re.compile(r"^\s*[A-D][.)]\s*(true|false)\s*,\s*(true|false)\s*$", re.IGNORECASE | re.MULTILINE)
_WRONG = re.compile(r"^\s*[A-D][.)]\s*(not )?wrong\s*,", re.IGNORECASE | re.MULTILINE)
_BLANK = re.compile(r"_{2,}")
_MONEY_UNIT = re.compile(r"\$|%|\b(hours?|minutes?|miles?|dollars?|cents?|km|kg|meters?)\b", re.IGNORECASE)
_CODE = re.compile(r"[{};]\s*$|\bdef |\breturn\b|\bint \w+|==", re.MULTILINE)
_COMPUTE = re.compile(
    r"\b(calculate|compute|how many|how much|what is the value|approximately|closest to|solve)\b", re.I
)
_JUDGEMENT = re.compile(r"\b(most likely|least likely|best|primarily|most|main|strongest|weakest)\b", re.I)
_TOKEN = re.compile(r"\w+")

STRUCTURE_FEATURES = (
    "log_chars",
    "log_words",
    "log_lines",
    "has_options",
    "log_stem_words",
    "log_option_words",
    "option_length_spread",
    "numeric_options",
    "log_stem_numbers",
    "log_math_symbols",
    "negation",
    "which_of_the_following",
    "all_or_none_option",
    "statements",
    "roman_combinations",
    "true_false_pairs",
    "wrong_not_wrong",
    "blank",
    "log_questions",
    "uppercase_share",
    "digit_share",
    "long_passage",
    "money_or_units",
    "code",
    "heuristic_score",
    "option_overlap",
    "numeric_option_closeness",
    "compute_words",
    "judgement_words",
    "stem_ends_with_question",
    "log_sentences",
)

_analyzer = ComplexityAnalyzer()


def _option_stats(options: list[str]) -> tuple[float, float, float]:
    if not options:
        return 0.0, 0.0, 0.0
    lengths = np.array([len(text.split()) for text in options], dtype=np.float64)
    numeric = sum(1 for text in options if _NUMBER.search(text)) / len(options)
    spread = float(lengths.max() - lengths.min()) / (1.0 + float(lengths.mean()))
    return math.log1p(float(lengths.mean())), spread, numeric


def _option_overlap(options: list[str]) -> float:
    """Mean token Jaccard between answer options: near-identical options need careful reading."""
    sets = [set(_TOKEN.findall(text.lower())) for text in options]
    pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1 :] if a or b]
    return sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs) if pairs else 0.0


def _numeric_closeness(options: list[str]) -> float:
    """1 when every option is a number and they are close together (a computation must be exact)."""
    values = []
    for text in options:
        match = _NUMBER.fullmatch(text.strip().rstrip("."))
        if match is None:
            return 0.0
        values.append(float(match.group(0).replace(",", "")))
    if len(values) < 2:
        return 0.0
    spread = (max(values) - min(values)) / (abs(float(np.mean(values))) + 1e-9)
    return 1.0 / (1.0 + spread)


def structure_features(prompt: str) -> np.ndarray:
    """Surface features of a prompt in the order of STRUCTURE_FEATURES."""
    options = [match.group(2) for match in _OPTION.finditer(prompt)]
    first_option = _OPTION.search(prompt)
    stem = prompt[: first_option.start()] if first_option else prompt
    stem_words = len(stem.split())
    option_words, spread, numeric = _option_stats(options)
    letters = sum(ch.isalpha() for ch in prompt) or 1
    values = (
        math.log1p(len(prompt)),
        math.log1p(len(prompt.split())),
        math.log1p(prompt.count("\n")),
        1.0 if len(options) >= 2 else 0.0,
        math.log1p(stem_words),
        option_words,
        spread,
        numeric,
        math.log1p(len(_NUMBER.findall(stem))),
        math.log1p(len(_MATH_SYMBOL.findall(prompt))),
        1.0 if _NEGATION.search(stem) else 0.0,
        1.0 if _WHICH.search(stem) else 0.0,
        1.0 if _ALL_NONE.search(prompt) else 0.0,
        1.0 if _STATEMENTS.search(prompt) else 0.0,
        1.0 if _ROMAN.search(prompt) else 0.0,
        1.0 if _TRUE_FALSE.search(prompt) else 0.0,
        1.0 if _WRONG.search(prompt) else 0.0,
        1.0 if _BLANK.search(prompt) else 0.0,
        math.log1p(prompt.count("?")),
        sum(ch.isupper() for ch in prompt) / letters,
        sum(ch.isdigit() for ch in prompt) / max(1, len(prompt)),
        1.0 if stem_words > 120 else 0.0,
        math.log1p(len(_MONEY_UNIT.findall(prompt))),
        1.0 if _CODE.search(prompt) else 0.0,
        _analyzer.analyze(prompt).score,
        _option_overlap(options),
        _numeric_closeness(options),
        math.log1p(len(_COMPUTE.findall(stem))),
        math.log1p(len(_JUDGEMENT.findall(stem))),
        1.0 if stem.rstrip().endswith("?") else 0.0,
        math.log1p(len(re.findall(r"[.!?](?:\s|$)", stem))),
    )
    return np.asarray(values, dtype=np.float32)


# ----------------------------------------------------------------------------- neighbours

NEIGHBOUR_FEATURES = (
    *(f"{stat}_at_{k}" for k in NEIGHBOUR_KS for stat in ("weak", "strong", "gain", "similarity")),
    "top_similarity",
)


def _neighbour_matrix(similarities: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """Neighbour features for rows of `similarities` (queries x index), top-k by similarity.

    `outcomes` holds NaN where a label is unknown (a score on a routed request labels only the
    tier that answered): each mean is over the neighbours whose label is known.
    """
    largest = min(max(NEIGHBOUR_KS), similarities.shape[1] - 1)
    top = np.argpartition(-similarities, largest - 1, axis=1)[:, :largest]
    top_sims = np.take_along_axis(similarities, top, axis=1)
    order = np.argsort(-top_sims, axis=1)
    top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
    labels = outcomes[top]  # (queries, largest, 2)
    known = ~np.isnan(labels)
    values = np.where(known, labels, 0.0)
    columns: list[np.ndarray] = []
    for k in (min(k, largest) for k in NEIGHBOUR_KS):
        # Similarity-weighted means: closer neighbours say more about this prompt.
        weights = np.maximum(top_sims[:, :k], 1e-3)[:, :, None] * known[:, :k]
        total = weights.sum(axis=1)
        means = (weights * values[:, :k]).sum(axis=1) / np.maximum(total, 1e-9)
        means = np.where(total > 0, means, 0.5)  # no known neighbour label: uninformative
        mean_weak, mean_strong = means[:, 0], means[:, 1]
        columns += [mean_weak, mean_strong, mean_strong - mean_weak, top_sims[:, :k].mean(axis=1)]
    columns.append(top_sims[:, 0])
    return np.stack(columns, axis=1).astype(np.float32)


def _project(center: np.ndarray, basis: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    projected = (np.asarray(embeddings, dtype=np.float32) - center) @ basis.T
    return (projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-9)).astype(np.float32)


@dataclass(frozen=True)
class NeighbourIndex:
    """Training prompts projected on their top principal components, with their outcomes.

    128 of 384 dimensions keep the kNN features as good (out-of-fold APGR within noise on
    train) and make a lookup 3x cheaper: the full matrix is 19 MB, more than the CPU cache,
    and the scan over it dominated the router's tail latency.
    """

    center: np.ndarray  # (384,) mean training embedding
    basis: np.ndarray  # (dims, 384) principal directions
    vectors: np.ndarray  # (n, dims) projected training prompts, unit rows
    outcomes: np.ndarray  # (n, 2) weak_correct, strong_correct as 0/1, NaN where unknown

    @classmethod
    def build(cls, embeddings: np.ndarray, outcomes: np.ndarray, dims: int = NEIGHBOUR_DIMENSIONS) -> NeighbourIndex:
        center = embeddings.mean(axis=0).astype(np.float32)
        _, _, directions = np.linalg.svd(embeddings - center, full_matrices=False)
        basis = directions[:dims].astype(np.float32)
        return cls(center, basis, _project(center, basis, embeddings), outcomes.astype(np.float32))

    def features(self, queries: np.ndarray) -> np.ndarray:
        return _neighbour_matrix(_project(self.center, self.basis, queries) @ self.vectors.T, self.outcomes)

    def leave_one_out_features(self, batch: int = 1024) -> np.ndarray:
        """Features of the indexed prompts themselves, each ignoring its own outcome."""
        parts = []
        for start in range(0, len(self.vectors), batch):
            sims = self.vectors[start : start + batch] @ self.vectors.T
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf
            parts.append(_neighbour_matrix(sims, self.outcomes))
        return np.concatenate(parts)


_WORD = re.compile(r"\b\w\w+\b")


def _term_counts(prompt: str) -> Counter[str]:
    return Counter(_WORD.findall(prompt.lower()))


@dataclass(frozen=True)
class LexicalIndex:
    """TF-IDF vectors of the training prompts, for neighbours that share rare words.

    MiniLM places a prompt in its topic; prompts that share names, technical terms or a
    template ("Scenario 1 | ...") are found better by their words. Sublinear term frequency,
    smoothed idf and unit rows, as scikit-learn's TfidfVectorizer(sublinear_tf=True), but
    computed here so the artifact stays plain arrays.
    """

    terms: tuple[str, ...]
    idf: np.ndarray  # (terms,)
    matrix: Any  # scipy.sparse.csr_matrix (n, terms), unit rows
    outcomes: np.ndarray  # (n, 2), NaN where unknown

    @classmethod
    def build(cls, prompts: Sequence[str], outcomes: np.ndarray, min_df: int = 2) -> LexicalIndex:
        counts = [_term_counts(prompt) for prompt in prompts]
        document_frequency = Counter(term for count in counts for term in count)
        terms = tuple(sorted(term for term, df in document_frequency.items() if df >= min_df))
        frequencies = np.array([document_frequency[term] for term in terms], dtype=np.float64)
        idf = (np.log((1 + len(prompts)) / (1 + frequencies)) + 1.0).astype(np.float32)
        index = cls(terms, idf, None, outcomes.astype(np.float32))
        return cls(terms, idf, index._vectorize(counts), index.outcomes)

    @property
    def _positions(self) -> dict[str, int]:
        positions = self.__dict__.get("_positions_cache")
        if positions is None:
            positions = {term: position for position, term in enumerate(self.terms)}
            object.__setattr__(self, "_positions_cache", positions)
        return positions

    def _vectorize(self, counts: Sequence[Counter[str]]) -> Any:
        from scipy.sparse import csr_matrix

        positions, rows, columns, values = self._positions, [], [], []
        for row, count in enumerate(counts):
            for term, times in count.items():
                column = positions.get(term)
                if column is not None:
                    rows.append(row)
                    columns.append(column)
                    values.append((1.0 + math.log(times)) * self.idf[column])
        matrix = csr_matrix(
            (np.asarray(values, np.float32), (rows, columns)), shape=(len(counts), len(self.terms)), dtype=np.float32
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        return csr_matrix(matrix.multiply(1.0 / np.maximum(norms, 1e-9)[:, None]))

    @property
    def _postings(self) -> Any:
        """The matrix transposed to (terms, n) CSR: a query reads only the rows of its own terms."""
        postings = self.__dict__.get("_postings_cache")
        if postings is None:
            postings = self.matrix.T.tocsr()
            object.__setattr__(self, "_postings_cache", postings)
        return postings

    def similarities(self, prompts: Sequence[str]) -> np.ndarray:
        queries = self._vectorize([_term_counts(prompt) for prompt in prompts])
        return np.asarray((queries @ self._postings).todense(), dtype=np.float32)

    def features(self, prompts: Sequence[str]) -> np.ndarray:
        return _neighbour_matrix(self.similarities(prompts), self.outcomes)

    def leave_one_out_features(self, batch: int = 1024) -> np.ndarray:
        parts = []
        for start in range(0, self.matrix.shape[0], batch):
            sims = np.asarray((self.matrix[start : start + batch] @ self.matrix.T).todense(), dtype=np.float32)
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf
            parts.append(_neighbour_matrix(sims, self.outcomes))
        return np.concatenate(parts)


# ----------------------------------------------------------------------------- model


def _build_model(n_inputs: int, hidden: int, dropout: float) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Dropout(dropout),
        torch.nn.Linear(n_inputs, hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(hidden, OUTCOMES),
    )


@dataclass(frozen=True)
class TrainConfig:
    hidden: int = 64
    dropout: float = 0.3
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    # The raw 384-d embedding overfits (out-of-fold APGR 0.66 with it, 0.69 without, on the train
    # split): the embedding reaches the model through the neighbour features instead.
    use_embedding: bool = False
    # TF-IDF neighbour features beside the MiniLM ones (out-of-fold APGR on train 0.707 -> 0.711).
    lexical_neighbours: bool = True


def _fit_one(features: np.ndarray, allowed: np.ndarray, config: TrainConfig, seed: int) -> dict[str, np.ndarray]:
    """One MLP, trained to put probability on the outcomes `allowed` (n, 4) by each row's labels."""
    import torch

    torch.manual_seed(seed)
    model = _build_model(features.shape[1], config.hidden, config.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    inputs = torch.from_numpy(features)
    # log of the 0/1 mask: -inf on outcomes the labels rule out.
    log_allowed = torch.from_numpy(np.where(allowed, 0.0, -np.inf).astype(np.float32))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(config.epochs):
        for batch in torch.randperm(len(inputs), generator=generator).split(config.batch_size):
            optimizer.zero_grad()
            logits = model(inputs[batch])
            # -log P(allowed set): plain cross-entropy for a fully labelled row.
            loss = (logits.logsumexp(dim=1) - (logits + log_allowed[batch]).logsumexp(dim=1)).mean()
            loss.backward()
            optimizer.step()
    return {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}


def _forward(weights: Sequence[Mapping[str, np.ndarray]], features: np.ndarray) -> np.ndarray:
    """Mean outcome probabilities of the fold models, in numpy (no torch needed at inference)."""
    probabilities = np.zeros((features.shape[0], OUTCOMES), dtype=np.float64)
    for state in weights:
        hidden = features @ state["1.weight"].T + state["1.bias"]
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))  # exact GELU, as torch's default
        logits = hidden @ state["4.weight"].T + state["4.bias"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probabilities += exp / exp.sum(axis=1, keepdims=True)
    return probabilities / len(weights)


def _erf(values: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(values)


def gain_scores(probabilities: np.ndarray) -> np.ndarray:
    """Expected gain of a strong call: P(only strong right) - P(only weak right)."""
    return probabilities[:, 2] - probabilities[:, 1]


# ----------------------------------------------------------------------------- artifact


@dataclass
class RouterArtifact:
    """Everything a LearnedRouter needs, serializable to bytes without pickle."""

    fold_weights: list[dict[str, np.ndarray]]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    neighbours: NeighbourIndex
    training_scores: np.ndarray  # sorted out-of-fold scores, for rank-based confidence
    metadata: dict[str, Any] = field(default_factory=dict)
    lexical: LexicalIndex | None = None  # same rows and outcomes as `neighbours`

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "neighbour_center": self.neighbours.center,
            "neighbour_basis": self.neighbours.basis,
            # float16 halves the largest array; cosine similarities move by < 1e-3.
            "neighbour_vectors": self.neighbours.vectors.astype(np.float16),
            # 0 / 1, and 2 for an unknown label.
            "neighbour_outcomes": np.where(np.isnan(self.neighbours.outcomes), 2, self.neighbours.outcomes).astype(
                np.uint8
            ),
            "training_scores": self.training_scores.astype(np.float32),
            "metadata": np.frombuffer(json.dumps(self.metadata).encode(), dtype=np.uint8),
        }
        for index, state in enumerate(self.fold_weights):
            arrays.update({f"fold{index}/{name}": value for name, value in state.items()})
        if self.lexical is not None:
            matrix = self.lexical.matrix
            arrays |= {
                "lexical_terms": np.frombuffer("\n".join(self.lexical.terms).encode(), dtype=np.uint8),
                "lexical_idf": self.lexical.idf,
                "lexical_data": matrix.data.astype(np.float16),
                "lexical_indices": matrix.indices.astype(np.int32),
                "lexical_indptr": matrix.indptr.astype(np.int64),
            }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RouterArtifact:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        metadata = json.loads(arrays.pop("metadata").tobytes().decode())
        if metadata.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported router artifact version {metadata.get('version')!r}")
        folds: dict[int, dict[str, np.ndarray]] = {}
        for name in [name for name in arrays if name.startswith("fold")]:
            fold, _, param = name.partition("/")
            folds.setdefault(int(fold[4:]), {})[param] = arrays.pop(name).astype(np.float32)
        neighbours = NeighbourIndex(
            center=arrays["neighbour_center"],
            basis=arrays["neighbour_basis"],
            vectors=arrays["neighbour_vectors"].astype(np.float32),
            outcomes=_decode_outcomes(arrays["neighbour_outcomes"]),
        )
        return cls(
            fold_weights=[folds[index] for index in sorted(folds)],
            feature_mean=arrays["feature_mean"],
            feature_scale=arrays["feature_scale"],
            neighbours=neighbours,
            training_scores=arrays["training_scores"],
            metadata=metadata,
            lexical=_lexical_from(arrays, neighbours.outcomes) if "lexical_terms" in arrays else None,
        )


def _lexical_from(arrays: Mapping[str, np.ndarray], outcomes: np.ndarray) -> LexicalIndex:
    from scipy.sparse import csr_matrix

    terms = tuple(arrays["lexical_terms"].tobytes().decode().split("\n"))
    matrix = csr_matrix(
        (arrays["lexical_data"].astype(np.float32), arrays["lexical_indices"], arrays["lexical_indptr"]),
        shape=(len(outcomes), len(terms)),
    )
    return LexicalIndex(terms, arrays["lexical_idf"], matrix, outcomes)


def _decode_outcomes(stored: np.ndarray) -> np.ndarray:
    return np.where(stored == 2, np.nan, stored).astype(np.float32)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingExample:
    """A labelled prompt. One label may be None: a human or judge score on a routed request
    says only whether the tier that answered was right."""

    prompt: str
    weak_correct: bool | None
    strong_correct: bool | None
    embedding: np.ndarray | None = None


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _as_example(item: Any) -> TrainingExample:
    get = item.get if isinstance(item, Mapping) else lambda name, default=None: getattr(item, name, default)
    embedding = get("embedding", None)
    example = TrainingExample(
        prompt=str(get("prompt")),
        weak_correct=_optional_bool(get("weak_correct")),
        strong_correct=_optional_bool(get("strong_correct")),
        embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
    )
    if example.weak_correct is None and example.strong_correct is None:
        raise ValueError("a training example needs weak_correct or strong_correct")
    return example


def _outcome_matrix(items: Sequence[TrainingExample]) -> np.ndarray:
    """(n, 2) weak and strong correctness as 0 / 1, NaN where unknown."""
    return np.array(
        [
            [np.nan if value is None else float(value) for value in (item.weak_correct, item.strong_correct)]
            for item in items
        ],
        dtype=np.float32,
    )


def consistent_outcomes(outcomes: np.ndarray) -> np.ndarray:
    """(n, 4) mask of the joint outcomes (index 2 * strong + weak) that agree with the known labels.

    A fully labelled row allows exactly one outcome; a row that knows only the weak label allows
    the two with that weak bit. Training maximizes the probability of the allowed set (the
    marginal likelihood of what was observed), so a partial label teaches the model exactly what
    it says and nothing more.
    """
    mask = np.ones((len(outcomes), OUTCOMES), dtype=bool)
    for index in range(OUTCOMES):
        weak_bit, strong_bit = index % 2, index // 2
        for column, bit in ((0, weak_bit), (1, strong_bit)):
            label = outcomes[:, column]
            mask[:, index] &= np.isnan(label) | (label == bit)
    return mask


def _embeddings_of(examples: Sequence[TrainingExample]) -> np.ndarray:
    if all(example.embedding is not None for example in examples):
        return np.stack([example.embedding for example in examples]).astype(np.float32)  # type: ignore[misc]
    from routing.embeddings import embed_many

    return embed_many([example.prompt for example in examples])


def _input_matrix(
    embeddings: np.ndarray,
    structure: np.ndarray,
    neighbours: np.ndarray,
    lexical: np.ndarray | None,
    config: TrainConfig,
) -> np.ndarray:
    parts = [structure, neighbours]
    parts += [lexical] if lexical is not None else []
    parts += [embeddings] if config.use_embedding else []
    return np.concatenate(parts, axis=1).astype(np.float32)


def _fold_ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % N_FOLDS


def _tier_thresholds(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> dict[str, float]:
    return {
        "complex": threshold_for_quality(scores, weak, strong, COMPLEX_QUALITY),
        "medium": threshold_for_quality(scores, weak, strong, MEDIUM_QUALITY),
    }


def train_router(examples: Iterable[Any], *, seed: int = 0, config: TrainConfig | None = None) -> RouterArtifact:
    """Train on labelled prompts (prompt, weak_correct, strong_correct, optional embedding)."""
    import torch

    torch.set_num_threads(1)
    config = config or TrainConfig()
    items = [_as_example(item) for item in examples]
    embeddings = _embeddings_of(items)
    outcomes = _outcome_matrix(items)
    full = ~np.isnan(outcomes).any(axis=1)
    if full.sum() < N_FOLDS or len(np.unique(outcomes[full, 0] - outcomes[full, 1])) < 2:
        raise ValueError("need fully labelled prompts where the two models differ, to measure and set thresholds")
    index = NeighbourIndex.build(embeddings, outcomes)
    lexical = LexicalIndex.build([item.prompt for item in items], outcomes) if config.lexical_neighbours else None
    structure = np.stack([structure_features(item.prompt) for item in items])
    # Training rows see their neighbours without themselves, as a new prompt will.
    lexical_features = lexical.leave_one_out_features() if lexical is not None else None
    raw = _input_matrix(embeddings, structure, index.leave_one_out_features(), lexical_features, config)
    mean, scale = raw.mean(axis=0), raw.std(axis=0) + 1e-6
    allowed = consistent_outcomes(outcomes)
    fold_weights, out_of_fold = _cross_fit(((raw - mean) / scale).astype(np.float32), allowed, config, seed)
    # Metrics and thresholds need both labels: they are computed on the fully labelled rows.
    scores, weak, strong = out_of_fold[full], outcomes[full, 0], outcomes[full, 1]
    metrics = router_metrics(scores, weak, strong)
    metadata = _metadata(len(items), seed, config, metrics, _tier_thresholds(scores, weak, strong))
    metadata["n_partially_labelled"] = int((~full).sum())
    return RouterArtifact(fold_weights, mean, scale, index, np.sort(scores).astype(np.float32), metadata, lexical)


def _cross_fit(
    features: np.ndarray, allowed: np.ndarray, config: TrainConfig, seed: int
) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """One model per fold and the out-of-fold gain scores (honest scores for thresholds and metrics)."""
    folds = _fold_ids(len(allowed), seed)
    fold_weights, out_of_fold = [], np.zeros(len(allowed))
    for fold in range(N_FOLDS):
        held = folds == fold
        state = _fit_one(features[~held], allowed[~held], config, seed * 100 + fold)
        out_of_fold[held] = gain_scores(_forward([state], features[held]))
        fold_weights.append(state)
    return fold_weights, out_of_fold


def _metadata(
    n_examples: int, seed: int, config: TrainConfig, metrics: RouterMetrics, thresholds: dict[str, float]
) -> dict[str, Any]:
    return {
        "version": ARTIFACT_VERSION,
        "trained_at": datetime.now(UTC).isoformat(),
        "n_examples": n_examples,
        "seed": seed,
        "config": config.__dict__,
        "train_metrics": {"out_of_fold": metrics.as_dict()},
        "thresholds": thresholds,
        # The neighbour index holds training embeddings: queries must come from the same embedder.
        "embedder": MODEL_TAG,
        "structure_features": list(STRUCTURE_FEATURES),
        "neighbour_features": list(NEIGHBOUR_FEATURES),
        "lexical_features": list(NEIGHBOUR_FEATURES) if config.lexical_neighbours else [],
    }


# ----------------------------------------------------------------------------- inference


class LearnedRouter:
    """Scores prompts with a trained artifact; needs numpy/scipy only, plus the embedder if not given one."""

    def __init__(self, artifact: RouterArtifact) -> None:
        self.artifact = artifact
        # Version 1 artifacts predate lexical neighbours: their config does not name the option.
        self.config = TrainConfig(**{"lexical_neighbours": False, **artifact.metadata["config"]})
        self.thresholds: dict[str, float] = artifact.metadata["thresholds"]
        # Artifacts without the field were trained before the int8 embedder, on fp32 vectors.
        embedder = artifact.metadata.get("embedder", "all-MiniLM-L6-v2/fp32")
        if embedder != MODEL_TAG:
            # Still usable (int8 and fp32 vectors agree to cosine ~0.99), but retrain to match.
            logger.warning("router artifact trained on %s embeddings, this process embeds with %s", embedder, MODEL_TAG)

    @classmethod
    def from_artifact(cls, artifact: RouterArtifact | bytes) -> LearnedRouter:
        return cls(artifact if isinstance(artifact, RouterArtifact) else RouterArtifact.from_bytes(artifact))

    def outcome_probabilities(self, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """(n, 4) probabilities of: neither right, only weak, only strong, both right."""
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(prompts), -1)
        structure = np.stack([structure_features(prompt) for prompt in prompts])
        lexical = self.artifact.lexical.features(prompts) if self.artifact.lexical is not None else None
        raw = _input_matrix(embeddings, structure, self.artifact.neighbours.features(embeddings), lexical, self.config)
        features = (raw - self.artifact.feature_mean) / self.artifact.feature_scale
        return _forward(self.artifact.fold_weights, features.astype(np.float32))

    def score_many(self, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        return gain_scores(self.outcome_probabilities(prompts, embeddings))

    def score(self, prompt: str, embedding: np.ndarray | None = None) -> float:
        """Need for the strong model: P(only the strong model is right) - P(only the weak one is).

        Not the bare probability (see strong_needed_probability): ranking by it was worse on the
        train split (out-of-fold APGR 0.68 against 0.70), as it ignores the prompts that the strong
        model gets wrong where the weak one is right.
        """
        return float(gain_scores(self._probabilities_of(prompt, embedding))[0])

    def strong_needed_probability(self, prompt: str, embedding: np.ndarray | None = None) -> float:
        """Probability that the weak model fails where the strong one succeeds."""
        return float(self._probabilities_of(prompt, embedding)[0, 2])

    def _probabilities_of(self, prompt: str, embedding: np.ndarray | None) -> np.ndarray:
        if embedding is None:
            from routing.embeddings import embed

            embedding = embed(prompt)
        return self.outcome_probabilities([prompt], np.asarray(embedding)[None, :])

    def decide(self, prompt: str, embedding: np.ndarray | None = None) -> tuple[TaskComplexity, float]:
        """The tier and a confidence in [0, 1]: how far, in training-rank terms, the score is from a boundary."""
        return self.decide_score(self.score(prompt, embedding))

    def decide_score(self, score: float) -> tuple[TaskComplexity, float]:
        """`decide` for a score already computed (the router needs both and scores once)."""
        if score >= self.thresholds["complex"]:
            tier = TaskComplexity.COMPLEX
        elif score >= self.thresholds["medium"]:
            tier = TaskComplexity.MEDIUM
        else:
            tier = TaskComplexity.SIMPLE
        return tier, self._confidence(score)

    def _rank(self, score: float) -> float:
        ranked = self.artifact.training_scores
        return float(np.searchsorted(ranked, score)) / max(1, len(ranked))

    def _confidence(self, score: float) -> float:
        rank = self._rank(score)
        margin = min(abs(rank - self._rank(boundary)) for boundary in self.thresholds.values())
        return min(1.0, margin / CONFIDENCE_BAND)
