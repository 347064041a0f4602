"""Observability data: the audit log, traces and spans, their rollups, and model prices."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models


class AppendOnlyError(Exception):
    """Audit events are never changed or removed through the application."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("the audit log is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("the audit log is append-only")


class AuditEvent(models.Model):
    """One audited event. `hash` covers this row's canonical content and `prev_hash`, so an
    edited, inserted or deleted row breaks the chain (`manage.py audit_verify`). Rows are
    written only by `observability.audit.audit_append`; a database trigger refuses UPDATE and
    DELETE as well, so even raw SQL through the application's role cannot rewrite history."""

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)  # no FK: history outlives users
    actor = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["actor", "-seq"]), models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("the audit log is append-only")


class AuditChainHead(models.Model):
    """The single row naming the newest event: appends lock it (serializing the chain), and
    `audit_verify` compares the chain's end against it, so deleting the newest rows shows."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit chain head at #{self.seq}"


# --- Traces and spans --------------------------------------------------------------------------


class SpanKind(models.TextChoices):
    ACTION = "action"
    LLM = "llm"
    ROUTE = "route"
    CACHE = "cache"
    EVAL = "eval"
    APPROVAL = "approval"
    TOOL = "tool"
    INTERNAL = "internal"


class SpanStatus(models.TextChoices):
    OK = "ok"
    ERROR = "error"


class CostStatus(models.TextChoices):
    PRICED = "priced"  # a ModelPrice row matched
    UNKNOWN = "unknown_model"  # tokens but no price: flagged, never silently $0
    NONE = "none"  # no tokens, nothing to price


class Trace(models.Model):
    """One trace: the root span's name and who caused it, with totals over all its spans.

    Written only by the span writer, which upserts the totals batch by batch (spans of one
    trace may arrive from several processes)."""

    trace_id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, blank=True)
    agent = models.CharField(max_length=100, blank=True)
    username = models.CharField(max_length=150, blank=True)
    api_token = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField()
    span_count = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.name or self.trace_id}"

    @property
    def status(self) -> str:
        return SpanStatus.ERROR if self.error_count else SpanStatus.OK

    @property
    def duration_ms(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() * 1000


class Span(models.Model):
    """One unit of work: an action attempt, an LLM call, a routing decision, a cache lookup...

    Rows are written in batches with COPY by `observability.writer`; nothing else inserts them.
    `input_tokens` includes cached input tokens and `output_tokens` includes reasoning tokens,
    as in OpenTelemetry; cost is priced from the three kinds kept apart."""

    id = models.BigAutoField(primary_key=True)
    span_id = models.BigIntegerField()  # the OpenTelemetry 8-byte id, as a signed integer
    trace_id = models.UUIDField(db_index=True)  # the 16-byte OpenTelemetry trace id
    parent_span_id = models.BigIntegerField(null=True, blank=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SpanKind.choices, default=SpanKind.INTERNAL)
    agent = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.OK)
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField()
    latency_ms = models.FloatField()
    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    cached_input_tokens = models.IntegerField(default=0)
    reasoning_tokens = models.IntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    cost_status = models.CharField(max_length=16, choices=CostStatus.choices, default=CostStatus.NONE)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_stack = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    username = models.CharField(max_length=150, blank=True)
    api_token = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["started_at"]
        indexes = [
            models.Index(
                fields=["cost_status", "model"],
                name="span_cost_status_idx",
                condition=models.Q(cost_status="unknown_model"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.latency_ms:.0f} ms)"

    @property
    def span_id_hex(self) -> str:
        return (self.span_id & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()

    @property
    def parent_span_id_hex(self) -> str | None:
        if self.parent_span_id is None:
            return None
        return (self.parent_span_id & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


ALL = "*"  # the dimension value of rollup rows that aggregate over that dimension


class SpanRollup(models.Model):
    """Per-minute and per-hour aggregates of spans, with a sparse log-spaced latency histogram
    (observability.histogram: at most 2% relative error), so dashboards read a few hundred rows
    instead of scanning millions of spans. Written by the span writer in the same transaction
    as the spans it counts.

    Each bucket holds one row per (kind, agent, model, provider) and pre-aggregated rows with
    "*" for the dimensions they sum over: per agent, per model, per kind, the total, and the
    "calls" rows (kind "*calls": LLM calls and agent actions only). Which rows a span counts
    in is decided in `observability.series`. A summary with no filter reads only the
    pre-aggregated rows (a few dozen an hour, whatever the traffic)."""

    resolution = models.PositiveIntegerField()  # seconds: 60 or 3600
    bucket = models.DateTimeField()
    kind = models.CharField(max_length=16)
    agent = models.CharField(max_length=100)
    model = models.CharField(max_length=150)
    provider = models.CharField(max_length=50)
    count = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    unknown_cost_count = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0, db_default=0)  # cache lookups answered (observability.series)
    cache_misses = models.BigIntegerField(default=0, db_default=0)
    hist_bins = ArrayField(models.SmallIntegerField())  # ascending bin indexes with a count
    hist_counts = ArrayField(models.IntegerField())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "bucket", "kind", "agent", "model", "provider"], name="spanrollup_unique_series"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.kind}/{self.agent}/{self.model}: {self.count}"


# --- Prices ----------------------------------------------------------------------------------------


class ModelPrice(models.Model):
    """USD per million tokens for the models whose name fully matches `pattern` (a regex).

    Among rows that match and are in effect at a span's start, the highest `priority` wins,
    then the newest `effective_from`. Rows are never edited in place by the price service: a
    price change is a new row with a later `effective_from`, so history stays and recorded
    span costs are never rewritten (except by the audited recompute action)."""

    provider = models.CharField(max_length=50, db_index=True)
    pattern = models.CharField(max_length=200, help_text="Regular expression matching the whole model name.")
    display_name = models.CharField(max_length=100, blank=True)
    input_per_mtok = models.DecimalField("input $ / 1M tokens", max_digits=12, decimal_places=6)
    output_per_mtok = models.DecimalField("output $ / 1M tokens", max_digits=12, decimal_places=6)
    cached_input_per_mtok = models.DecimalField(
        "cached input $ / 1M tokens", max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="Empty: cached input tokens are priced as input tokens.",
    )  # fmt: skip
    effective_from = models.DateTimeField()
    priority = models.IntegerField(default=0)
    notes = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["provider", "pattern", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.display_name or self.pattern} ({self.provider}) from {self.effective_from:%Y-%m-%d}"


class UnpricedSpan(Span):
    """Spans with tokens whose model has no price: listed for admins to add the missing price."""

    class Meta:
        proxy = True
        verbose_name = "span with unknown cost"
        verbose_name_plural = "spans with unknown cost"
