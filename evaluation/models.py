"""Datasets, evaluators, eval runs and their results, and human annotation queues."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from evaluation.configs import EvaluatorConfig, ScoreConfig, parse_evaluator_config, parse_score_configs
from observability.models import SpanKind

if TYPE_CHECKING:
    from evaluation.stats import AnalysisPlan
    from routing.policies import PolicyVariant


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)


class PublicIdModel(models.Model):
    """Rows named in URLs and API bodies by a random UUID (`uuid`); the integer primary key stays internal
    (foreign keys, ordering), so sequence numbers never leak and ids cannot be guessed."""

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)

    class Meta:
        abstract = True

    @property
    def short_id(self) -> str:
        """What pages show as the row's number: the UUID's first 8 hex digits."""
        return self.uuid.hex[:8]


class Dataset(PublicIdModel):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class DatasetItemQuerySet(models.QuerySet["DatasetItem"]):
    def active(self) -> DatasetItemQuerySet:
        """Items new runs evaluate: not retired."""
        return self.filter(retired_at__isnull=True)


class DatasetItem(PublicIdModel):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    input = models.JSONField()  # a string (the prompt) or an object (chat messages, structured input)
    expected = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set when an item that eval runs have results for is edited or deleted: past results keep showing what
    # was evaluated, new runs skip it (an edit makes a new item).
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = DatasetItemQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"item {self.pk} of dataset {self.dataset_id}"


class Evaluator(PublicIdModel):
    class Kind(models.TextChoices):
        EXACT_MATCH = "exact_match"
        CONTAINS = "contains"
        REGEX = "regex"
        JSON_SCHEMA = "json_schema"
        NUMERIC_TOLERANCE = "numeric_tolerance"
        LATENCY_BUDGET = "latency_budget"
        COST_BUDGET = "cost_budget"
        LLM_JUDGE = "llm_judge"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True)  # validated by the pydantic model of `kind`
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def parsed_config(self) -> EvaluatorConfig:
        return parse_evaluator_config(self.kind, self.config)


class EvalRun(PublicIdModel):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ECHO_TARGET = "echo"  # the output is the input: for runs that only apply code evaluators (see targets.py)

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    target = models.CharField(max_length=200)  # "echo", "auto" (the router), a model id or "agent:<a>.<b>"
    evaluators = models.ManyToManyField(Evaluator, related_name="runs")
    # [{"name", "kind", "config"}] as they were when the run started: the run executes and shows these, so
    # editing an evaluator later never changes what a past run appears to have used.
    evaluator_configs = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    items_failed = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    cancel_requested = models.BooleanField(default=False)
    # When the judge scores of a finished `auto` run were turned into router training rows (evaluation/training.py)
    training_rows_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"eval run {self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def used_evaluators(self) -> list[dict[str, Any]]:
        """The snapshot; for a run created without one (not through evalrun_create), its evaluators as now."""
        if self.evaluator_configs:
            return self.evaluator_configs
        return [{"name": e.name, "kind": e.kind, "config": e.config} for e in self.evaluators.all()]

    @property
    def evaluator_names(self) -> list[str]:
        return [e["name"] for e in self.used_evaluators]

    @property
    def progress_percent(self) -> int:
        return int(100 * self.items_done / self.items_total) if self.items_total else 100

    def progress_payload(self, *, done: int = 0, failed: int = 0, cost: Decimal = Decimal(0)) -> dict[str, Any]:
        """The live-progress event; `done`, `failed` and `cost` add what a running batch has not stored yet."""
        items_done = self.items_done + done
        return {
            "run": str(self.uuid),
            "status": self.status,
            "items_total": self.items_total,
            "items_done": items_done,
            "items_failed": self.items_failed + failed,
            "cost_usd": f"{self.cost_usd + cost:f}",
            "percent": int(100 * items_done / self.items_total) if self.items_total else 100,
        }


class EvalResult(models.Model):
    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="results")
    output = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=150, blank=True)  # the model that answered (model and router targets)
    # {evaluator name: {"value": 0..1 | null, "label": str, "reasoning": str, "error": str}}
    scores = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    error = models.TextField(blank=True)
    trace_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["item_id"]
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="eval_result_one_per_item")]

    def __str__(self) -> str:
        return f"result of item {self.item_id} in run {self.run_id}"


class AnnotationQueue(PublicIdModel):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    score_configs = models.JSONField(default=list, blank=True)  # [ScoreConfig]
    reviewers_per_item = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    lock_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(10), MaxValueValidator(86_400)],
        help_text="How long a claimed item stays with its annotator.",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reviewers_per_item__gte=1, reviewers_per_item__lte=10),
                name="annotation_queue_reviewers_1_to_10",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Every writer (services, the admin) goes through this: score configs parse, names are unique, at least
        one, and they stay fixed once reviews exist (old reviews are keyed by them)."""
        try:
            configs = parse_score_configs(self.score_configs)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValidationError({"score_configs": _first_error(exc)}) from None
        if not configs:
            raise ValidationError({"score_configs": "Add at least one score."})
        self.score_configs = [c.model_dump() for c in configs]
        if self.pk is not None:
            stored = AnnotationQueue.objects.filter(pk=self.pk).values_list("score_configs", flat=True).first()
            if stored != self.score_configs and Annotation.objects.filter(item__queue_id=self.pk).exists():
                raise ValidationError({"score_configs": "The queue already has reviews: its scores can no longer "
                                                        "change (create a new queue)."})  # fmt: skip

    @property
    def parsed_score_configs(self) -> list[ScoreConfig]:
        return parse_score_configs(self.score_configs)


class AnnotationItem(PublicIdModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"

    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="items")
    # What the item shows: "span:<trace>:<span>", "trace:<trace>" or "manual:<uuid>". One per queue.
    source_key = models.CharField(max_length=120)
    trace_id = models.UUIDField(null=True, blank=True)
    span_id = models.BigIntegerField(null=True, blank=True)
    # A copy of what the annotator sees ({"input", "output", "context"}): span retention never empties it.
    content = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lock_expires_at = models.DateTimeField(null=True, blank=True)
    reviews_done = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "source_key"], name="annotation_item_one_per_object"),
        ]
        indexes = [models.Index(fields=["queue", "status", "id"], name="annotation_item_claim")]

    def __str__(self) -> str:
        return f"{self.source_key} in queue {self.queue_id}"

    def is_claimed_by(self, user: Any) -> bool:
        """`user` holds the claim. An expired claim still counts until another annotator takes the item over
        (that rewrites `locked_by`), so a slow reviewer's work is not thrown away when nobody else wanted it."""
        return self.status == self.Status.PENDING and self.locked_by_id == user.pk


class Annotation(models.Model):
    item = models.ForeignKey(AnnotationItem, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    scores = models.JSONField(default=dict, blank=True)  # {score config name: number | label | bool}
    comment = models.TextField(blank=True)
    skipped = models.BooleanField(default=False)  # a skip is remembered so "next" never offers it again
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="annotation_one_per_annotator")]

    def __str__(self) -> str:
        return f"annotation {self.pk} of item {self.item_id}"


class ContinuousEvaluation(PublicIdModel):
    """Samples recent production spans, scores them, and sends low scorers to an annotation queue."""

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    span_kind = models.CharField(max_length=16, default="llm", choices=SpanKind.choices)
    model = models.CharField(max_length=150, blank=True)  # empty: any model
    agent = models.CharField(max_length=100, blank=True)  # empty: any agent
    # 0..1, decided per span id so a rescan samples the same spans
    sample_rate = models.FloatField(default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    evaluators = models.ManyToManyField(Evaluator, related_name="continuous")
    # a span with any score below this goes to `queue`
    threshold = models.FloatField(default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    queue = models.ForeignKey(AnnotationQueue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_span_pk = models.BigIntegerField(default=0)  # watermark: spans with a larger primary key are new
    # Sampled spans whose trace root was not written yet (a root ends after its children), so whether they are
    # production or an eval run's was unknown: looked at again each tick (continuous.py).
    deferred_span_pks = models.JSONField(default=list, blank=True)
    max_spans_per_tick = models.PositiveIntegerField(
        default=500, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(sample_rate__gte=0, sample_rate__lte=1),
                                   name="continuous_sample_rate_0_to_1"),
            models.CheckConstraint(condition=models.Q(threshold__gte=0, threshold__lte=1),
                                   name="continuous_threshold_0_to_1"),
        ]  # fmt: skip

    def __str__(self) -> str:
        return self.name


class SpanScore(models.Model):
    """A score given to a production span by continuous evaluation (spans are observability's; scores are ours)."""

    continuous = models.ForeignKey(ContinuousEvaluation, on_delete=models.CASCADE, related_name="scores")
    trace_id = models.UUIDField()
    span_id = models.BigIntegerField()
    model = models.CharField(max_length=150, blank=True)  # the span's model, for scores per model
    evaluator = models.CharField(max_length=200)
    value = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    reasoning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["continuous", "trace_id", "span_id", "evaluator"], name="span_score_one_per_evaluator"
            )
        ]
        indexes = [models.Index(fields=["trace_id", "span_id"], name="span_score_span")]

    def __str__(self) -> str:
        return f"{self.evaluator} on span {self.span_id}"


class ABTest(models.Model):
    """Two variants compared on one metric, with the analysis plan fixed when the test is created.

    Offline (`eval_run` scope) every dataset item goes through both variants (paired) or through the one
    its id hashes to (split); live (`live` scope) a routing policy splits the gateway's `auto` traffic and
    observations are collected from the spans. evaluation/abtests/ holds the logic."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"
        DECIDED = "decided"

    class Scope(models.TextChoices):
        EVAL_RUN = "eval_run", "Eval run (a dataset)"
        LIVE = "live", "Live gateway traffic"

    class Metric(models.TextChoices):
        SUCCESS = "success", "Success (evaluator pass / request succeeded)"
        JUDGE = "judge", "Judge score"
        HUMAN = "human", "Human score"
        COST = "cost", "Cost (USD)"
        LATENCY = "latency", "Latency (ms)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    hypothesis = models.TextField(blank=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    variants = models.JSONField()  # [PolicyVariant, PolicyVariant]: A (control) then B
    weights = models.JSONField()  # [float, float]: the traffic split (live, and split eval runs)
    metric = models.CharField(max_length=16, choices=Metric.choices)
    metric_kind = models.CharField(max_length=16)  # proportion | mean (evaluation.stats)
    higher_is_better = models.BooleanField(default=True)
    evaluator = models.ForeignKey(Evaluator, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    score_name = models.CharField(max_length=60, blank=True)  # human metric: the annotation score's name
    alpha = models.FloatField(default=0.05)
    power = models.FloatField(default=0.8)
    minimum_detectable_effect = models.FloatField()  # absolute: proportion points or metric units
    baseline_rate = models.FloatField(null=True, blank=True)  # proportion metrics: the expected rate of A
    standard_deviation = models.FloatField(null=True, blank=True)  # mean metrics: the expected SD per unit
    sample_size = models.PositiveIntegerField()  # per arm for a single fixed-horizon analysis
    plan = models.JSONField()  # evaluation.stats.AnalysisPlan: the looks and their thresholds
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    paired = models.BooleanField(default=True)  # eval runs: every item through both variants
    settle_seconds = models.PositiveIntegerField(default=300)  # live: how long a request may wait for its value
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    decided_look = models.PositiveSmallIntegerField(null=True, blank=True)  # 0-based
    verdict = models.TextField(blank=True)
    stop_reason = models.TextField(blank=True)
    collected_until = models.DateTimeField(null=True, blank=True)  # live: spans started before this are in
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def parsed_variants(self) -> list[PolicyVariant]:
        from routing.policies import PolicyVariant

        return [PolicyVariant.model_validate(v) for v in self.variants]

    @property
    def analysis_plan(self) -> AnalysisPlan:
        from evaluation.stats import AnalysisPlan

        data = dict(self.plan)
        for key in ("look_sizes", "boundaries", "nominal_alphas", "alpha_spent"):
            data[key] = tuple(data[key])
        return AnalysisPlan(**data)

    @property
    def policy_name(self) -> str:
        return f"abtest:{self.pk}"


class ABObservation(models.Model):
    """One unit's value for one variant, in assignment order (`seq`): the analysis reads each arm's first n."""

    class Source(models.TextChoices):
        EVAL_RUN = "eval_run"
        LIVE = "live"

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="observations")
    variant = models.PositiveSmallIntegerField()  # 0 = A, 1 = B
    # Assignment order: the dataset item's id offline; live, the order of the requests' start times.
    seq = models.BigIntegerField()
    value = models.FloatField(null=True, blank=True)  # None: no measurement (kept, so the unit is never redone)
    trace_id = models.UUIDField(null=True, blank=True)
    span_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    detail = models.JSONField(default=dict, blank=True)  # item, output excerpt, error
    observed_at = models.DateTimeField()  # when the unit was assigned (the request or the item's call started)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["test", "variant", "seq"]
        constraints = [models.UniqueConstraint(fields=["test", "variant", "seq"], name="abobservation_one_per_unit")]

    def __str__(self) -> str:
        return f"observation {self.seq} of variant {self.variant} in {self.test_id}"
