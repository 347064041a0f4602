"""The learned router on synthetic prompts with fake embeddings: fast, and no MiniLM loading."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from routing import embeddings as embedding_module
from routing.complexity import TaskComplexity
from routing.learned_router import (
    STRUCTURE_FEATURES,
    LearnedRouter,
    LexicalIndex,
    NeighbourIndex,
    RouterArtifact,
    TrainConfig,
    consistent_outcomes,
    structure_features,
    train_router,
)

DIMENSIONS = 384
FAST = TrainConfig(epochs=25)


def _cluster(rng: np.random.Generator, center: np.ndarray, count: int, spread: float = 0.35) -> np.ndarray:
    vectors = center + spread * rng.standard_normal((count, DIMENSIONS))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Row:
    prompt: str
    weak_correct: bool
    strong_correct: bool
    embedding: np.ndarray


def _topic_rows(seed: int, count: int) -> tuple[list[Row], list[Row]]:
    """Math proofs only the strong model solves, and trivia both models know (a few exceptions each)."""
    rng = np.random.default_rng(seed)
    centers = np.eye(DIMENSIONS, dtype=np.float32)[:2]
    hard = [
        Row(f"Prove that the sum of the first {n} odd numbers is {n}^2.\nA. {n}\nB. {n * n}\nC. 0\nD. 1\nAnswer:",
            n % 25 == 0, True, vector)
        for n, vector in enumerate(_cluster(rng, centers[0], count))
    ]  # fmt: skip
    easy = [
        Row(f"Which colour is the sky on day {n}?\nA. blue\nB. green\nC. red\nD. black\nAnswer:",
            True, n % 25 != 0, vector)
        for n, vector in enumerate(_cluster(rng, centers[1], count))
    ]  # fmt: skip
    return hard, easy


@pytest.fixture(scope="module")
def trained() -> tuple[RouterArtifact, list[Row], list[Row]]:
    hard, easy = _topic_rows(seed=0, count=150)
    return train_router(hard + easy, seed=0, config=FAST), *_topic_rows(seed=1, count=20)


def test_it_scores_prompts_like_those_only_the_strong_model_solves_higher(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, hard, easy = trained
    router = LearnedRouter.from_artifact(artifact)
    hard_scores = [router.score(row.prompt, row.embedding) for row in hard]
    easy_scores = [router.score(row.prompt, row.embedding) for row in easy]
    assert min(hard_scores) > max(easy_scores)


def test_it_sends_hard_prompts_to_the_complex_tier_and_easy_ones_to_the_simple_tier(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, hard, easy = trained
    router = LearnedRouter.from_artifact(artifact)
    hard_tiers = [router.decide(row.prompt, row.embedding)[0] for row in hard]
    easy_tiers = [router.decide(row.prompt, row.embedding)[0] for row in easy]
    # The 95%-quality boundary lies inside the hard topic (sending its top ~90% reaches 95% of the
    # strong model's accuracy), so a few hard prompts land in MEDIUM or even SIMPLE.
    assert hard_tiers.count(TaskComplexity.COMPLEX) >= 15
    assert hard_tiers.count(TaskComplexity.SIMPLE) <= 2
    assert easy_tiers.count(TaskComplexity.SIMPLE) == len(easy)


def test_the_strong_needed_probability_is_a_probability_and_tracks_the_score(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, hard, easy = trained
    router = LearnedRouter.from_artifact(artifact)
    hard_probability = router.strong_needed_probability(hard[0].prompt, hard[0].embedding)
    easy_probability = router.strong_needed_probability(easy[0].prompt, easy[0].embedding)
    assert 0.0 <= easy_probability < hard_probability <= 1.0
    assert router.outcome_probabilities([hard[0].prompt], hard[0].embedding[None, :]).sum() == pytest.approx(1.0)


def test_confidence_is_high_far_from_a_boundary_and_within_zero_one(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, hard, easy = trained
    router = LearnedRouter.from_artifact(artifact)
    confidences = [router.decide(row.prompt, row.embedding)[1] for row in hard + easy]
    assert all(0.0 <= value <= 1.0 for value in confidences)
    assert np.median(confidences) > 0.5


def test_the_artifact_round_trips_through_bytes_and_predicts_the_same_offline(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, hard, easy = trained
    loaded_before = embedding_module.is_loaded()  # another test of this session may have loaded it
    blob = artifact.to_bytes()
    assert isinstance(blob, bytes)
    loaded = LearnedRouter.from_artifact(blob)
    original = LearnedRouter.from_artifact(artifact)
    for row in hard[:5] + easy[:5]:
        # float16 neighbour vectors in the blob move scores only slightly.
        assert loaded.score(row.prompt, row.embedding) == pytest.approx(
            original.score(row.prompt, row.embedding), abs=0.02
        )
    # Given embeddings, neither training nor scoring loaded the sentence-transformer model.
    assert embedding_module.is_loaded() == loaded_before


def test_the_artifact_metadata_records_version_size_metrics_and_thresholds(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, _, _ = trained
    metadata = RouterArtifact.from_bytes(artifact.to_bytes()).metadata
    assert metadata["version"] == 2
    assert metadata["n_examples"] == 300
    assert metadata["trained_at"].endswith("+00:00")
    # Half the prompts hold all the gain, so the best possible APGR here is about 0.75; random is 0.5.
    assert metadata["train_metrics"]["out_of_fold"]["apgr"] > 0.7
    assert metadata["thresholds"]["complex"] >= metadata["thresholds"]["medium"]


def test_an_artifact_names_its_embedder_and_another_embedders_artifact_is_flagged(trained, caplog) -> None:  # type: ignore[no-untyped-def]
    artifact, _, _ = trained
    assert artifact.metadata["embedder"] == embedding_module.MODEL_TAG
    with caplog.at_level("WARNING", logger="routing.learned_router"):
        LearnedRouter(artifact)
        assert caplog.records == []
        older = {key: value for key, value in artifact.metadata.items() if key != "embedder"}  # before tags: fp32
        LearnedRouter(RouterArtifact(**{**artifact.__dict__, "metadata": older}))
    assert "all-MiniLM-L6-v2/fp32" in caplog.text


def test_an_artifact_of_another_version_is_refused(trained) -> None:  # type: ignore[no-untyped-def]
    artifact, _, _ = trained
    future = RouterArtifact(**{**artifact.__dict__, "metadata": {**artifact.metadata, "version": 99}})
    with pytest.raises(ValueError, match="version"):
        RouterArtifact.from_bytes(future.to_bytes())


def test_a_version_1_artifact_without_lexical_neighbours_still_loads_and_scores() -> None:
    hard, easy = _topic_rows(seed=5, count=40)
    artifact = train_router(hard + easy, seed=0, config=TrainConfig(epochs=5, lexical_neighbours=False))
    config = {key: value for key, value in artifact.metadata["config"].items() if key != "lexical_neighbours"}
    old = RouterArtifact(**{**artifact.__dict__, "metadata": {**artifact.metadata, "version": 1, "config": config}})
    router = LearnedRouter.from_artifact(old.to_bytes())
    assert router.artifact.lexical is None and not router.config.lexical_neighbours
    assert router.score(hard[0].prompt, hard[0].embedding) == pytest.approx(
        LearnedRouter.from_artifact(artifact).score(hard[0].prompt, hard[0].embedding), abs=0.02
    )


def test_lexical_neighbours_are_the_training_prompts_that_share_rare_words() -> None:
    prompts = [
        "What is the capital of Burkina Faso?",
        "Name the capital city of Burkina Faso.",
        "What is the boiling point of water?",
        "What is the capital of France?",
    ]
    outcomes = np.array([[0, 1], [0, 1], [1, 1], [1, 1]], dtype=np.float32)
    index = LexicalIndex.build(prompts, outcomes, min_df=1)
    similarities = index.similarities(["Which river flows through Burkina Faso?"])[0]
    assert similarities.argmax() in (0, 1)
    assert similarities[2] == 0.0  # no shared word
    restored = RouterArtifact.from_bytes(_with_lexical(index).to_bytes()).lexical
    assert restored is not None and restored.terms == index.terms
    assert restored.similarities(["capital of Burkina Faso"]) == pytest.approx(
        index.similarities(["capital of Burkina Faso"]), abs=1e-3
    )


def _with_lexical(lexical: LexicalIndex) -> RouterArtifact:
    """A minimal artifact carrying `lexical`, to check its byte round trip."""
    rng = np.random.default_rng(0)
    neighbours = NeighbourIndex.build(
        _cluster(rng, np.eye(DIMENSIONS, dtype=np.float32)[0], 4), lexical.outcomes, dims=2
    )
    metadata = {"version": 2, "config": {}, "thresholds": {}}
    return RouterArtifact([], np.zeros(1), np.ones(1), neighbours, np.zeros(1), metadata, lexical)


def test_it_trains_from_plain_dicts_too() -> None:
    hard, easy = _topic_rows(seed=2, count=60)
    examples = [row.__dict__ for row in hard + easy]
    artifact = train_router(examples, seed=1, config=TrainConfig(epochs=5))
    assert artifact.metadata["n_examples"] == 120


def test_neighbour_features_of_training_rows_leave_the_row_itself_out() -> None:
    rng = np.random.default_rng(0)
    vectors = _cluster(rng, np.eye(DIMENSIONS, dtype=np.float32)[0], 12)
    outcomes = np.zeros((12, 2), dtype=np.float32)
    outcomes[0] = 1.0  # only the first row has a weak (and strong) success
    index = NeighbourIndex.build(vectors, outcomes, dims=8)
    features = index.leave_one_out_features()
    assert features[0, 0] == 0.0  # its neighbours all failed: its own success is not counted
    assert features[1:, 0].min() > 0.0


def test_structure_features_read_answer_options_and_negations() -> None:
    names = list(STRUCTURE_FEATURES)
    prompt = "Which of the following is NOT a prime?\nA. 2\nB. 3\nC. 5\nD. 9\nAnswer:"
    values = dict(zip(names, structure_features(prompt), strict=True))
    assert values["has_options"] == 1.0
    assert values["negation"] == 1.0
    assert values["which_of_the_following"] == 1.0
    assert values["numeric_options"] == 1.0
    plain = dict(zip(names, structure_features("Tell me a joke"), strict=True))
    assert plain["has_options"] == 0.0
    assert plain["negation"] == 0.0


def test_the_allowed_outcomes_of_a_row_follow_its_known_labels() -> None:
    outcomes = np.array([[1, 0], [np.nan, 1], [0, np.nan]], dtype=np.float32)
    # Outcome index = 2 * strong_correct + weak_correct: neither, only weak, only strong, both.
    assert consistent_outcomes(outcomes).tolist() == [
        [False, True, False, False],
        [False, False, True, True],
        [True, False, True, False],
    ]


def _one_label_rows(rng: np.random.Generator, center: np.ndarray, weak_correct: bool, count: int) -> list[Row]:
    """Prompts of one wording (so only their neighbours tell them apart) scored for the weak tier only."""
    prompt = "Summarize the attached quarterly report in three bullet points."
    vectors = _cluster(rng, center, count, spread=0.02)  # a tight topic: its neighbours are its own
    return [Row(prompt, weak_correct, None, vector) for vector in vectors]  # type: ignore[arg-type]


def test_rows_labelled_for_one_tier_only_teach_the_router_what_they_say() -> None:
    hard, easy = _topic_rows(seed=3, count=100)
    rng = np.random.default_rng(3)
    centers = np.eye(DIMENSIONS, dtype=np.float32)
    # The weak model was scored on two new topics: it failed every prompt of one, passed the other.
    failing, passing = _one_label_rows(rng, centers[2], False, 60), _one_label_rows(rng, centers[3], True, 60)
    artifact = train_router(hard + easy + failing + passing, seed=0, config=FAST)
    assert artifact.metadata["n_examples"] == 320
    assert artifact.metadata["n_partially_labelled"] == 120
    router = LearnedRouter.from_artifact(artifact.to_bytes())
    new_failing = _one_label_rows(rng, centers[2], False, 10)
    new_passing = _one_label_rows(rng, centers[3], True, 10)
    assert min(router.score(row.prompt, row.embedding) for row in new_failing) > max(
        router.score(row.prompt, row.embedding) for row in new_passing
    )


def test_a_row_without_any_label_is_refused() -> None:
    hard, easy = _topic_rows(seed=4, count=30)
    unlabelled = {"prompt": "hello", "weak_correct": None, "strong_correct": None, "embedding": hard[0].embedding}
    with pytest.raises(ValueError, match="weak_correct or strong_correct"):
        train_router([*hard, *easy, unlabelled], seed=0, config=TrainConfig(epochs=1))


@pytest.mark.django_db
def test_train_router_includes_stored_rows_labelled_for_one_tier() -> None:
    from django.core.management import call_command

    from routing.models import RouterModel
    from routing.services import training_example_add

    for n in range(40):
        training_example_add(prompt=f"Prove that {n} squared plus {n} is even.", weak_correct=n % 5 == 0,
                             strong_correct=True, source="dataset")  # fmt: skip
        training_example_add(prompt=f"What colour is a ripe banana number {n}?", weak_correct=True,
                             strong_correct=n % 7 != 0, source="dataset")  # fmt: skip
    for n in range(15):  # human scores of routed answers: only the tier that answered is labelled
        training_example_add(prompt=f"Design a sharded queue for {n} regions.", weak_correct=False,
                             strong_correct=None, source="human")  # fmt: skip
    call_command("train_router", "--no-activate")
    model = RouterModel.objects.get()
    assert model.metadata["n_examples"] == 95
    assert model.metadata["n_partially_labelled"] == 15
