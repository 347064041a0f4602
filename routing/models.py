"""Routing data: the model catalog, provider keys, routing decisions, the learned router."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from routing.policies import PolicySpec


class Tier(models.TextChoices):
    SIMPLE = "simple"
    MEDIUM = "medium"
    COMPLEX = "complex"


class ModelEndpoint(models.Model):
    """A model the router may choose. Prices come from observability's price table."""

    provider = models.CharField(max_length=50)  # openai | anthropic | gemini | openai_compatible | sim
    model = models.CharField(max_length=150, help_text="The provider's API id, e.g. gpt-4o-mini")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    is_baseline = models.BooleanField(
        default=False, help_text="What 'savings' are measured against (one per provider set)"
    )
    vision = models.BooleanField(default=False)
    context_window = models.PositiveIntegerField(default=128_000)
    typical_latency_ms = models.PositiveIntegerField(default=1000)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=0, help_text="Higher first within a tier")

    class Meta:
        ordering = ["tier", "-priority", "provider", "model"]
        constraints = [models.UniqueConstraint(fields=["provider", "model"], name="modelendpoint_unique")]

    def __str__(self) -> str:
        return self.model_id

    @property
    def model_id(self) -> str:
        return f"{self.provider}/{self.model}"


class ProviderCredential(models.Model):
    """An API key an admin entered: encrypted at rest (routing.secrets), never shown again."""

    provider = models.CharField(max_length=50, unique=True)
    base_url = models.CharField(max_length=300, blank=True)  # http://127.0.0.1:11434/v1 is fine here
    encrypted_key = models.BinaryField(blank=True)
    key_hint = models.CharField(max_length=12, blank=True)  # the last 4 characters, for recognition
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"{self.provider} key …{self.key_hint}" if self.key_hint else self.provider


class RoutingDecision(models.Model):
    """One routing decision. Written in batches by routing.decisions (never on the request path)."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    trace_id = models.UUIDField(null=True, blank=True)
    complexity = models.CharField(max_length=10, choices=Tier.choices)
    score = models.FloatField()
    decided_by = models.CharField(max_length=16)  # heuristic | learned | explicit | policy
    chosen_model = models.CharField(max_length=200)
    alternatives = models.JSONField(default=list)
    constraints = models.JSONField(default=dict)
    features = models.JSONField(default=dict)
    estimated_input_tokens = models.IntegerField(default=0)
    estimated_output_tokens = models.IntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True)
    baseline_cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True)
    reason = models.TextField(blank=True)
    username = models.CharField(max_length=150, blank=True)
    api_token = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.complexity} -> {self.chosen_model}"


class RouterModel(models.Model):
    """A trained learned-router artifact, versioned in the database (not in the source tree)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)
    active = models.BooleanField(default=False)
    artifact = models.BinaryField()
    metadata = models.JSONField(default=dict)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=models.Q(active=True), name="routermodel_one_active")
        ]

    def __str__(self) -> str:
        return f"router v{self.version}{' (active)' if self.active else ''}"


class RouterTrainingExample(models.Model):
    """A labelled prompt for `train_router`, with where the label came from (data set, human
    annotation, LLM judge). Other apps write these through routing.services."""

    prompt = models.TextField()
    # A dataset row labels both tiers; a human or judge score on a routed request labels only
    # the tier that answered, so either may be unknown (NULL), never both (constraint below).
    weak_correct = models.BooleanField(null=True, blank=True)
    strong_correct = models.BooleanField(null=True, blank=True)
    source = models.CharField(max_length=50)  # dataset | human | judge
    provenance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weak_correct__isnull=False) | models.Q(strong_correct__isnull=False),
                name="routing_training_example_has_a_label",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.prompt[:60]}"


class CacheMode(models.TextChoices):
    DETERMINISTIC = "deterministic"  # only temperature 0 or a fixed seed (an omitted temperature is 1)
    ALL = "all"
    OFF = "off"


class CachePolicy(models.Model):
    """Per-namespace cache policy (a namespace is an API token's, or "internal"). Missing: defaults."""

    namespace = models.CharField(max_length=150, unique=True)
    mode = models.CharField(max_length=16, choices=CacheMode.choices, default=CacheMode.DETERMINISTIC)
    ttl_s = models.PositiveIntegerField(default=24 * 3600)
    max_entries = models.PositiveIntegerField(default=10_000)
    max_bytes = models.PositiveBigIntegerField(default=100 * 1024 * 1024)
    semantic = models.BooleanField(default=True)
    similarity_threshold = models.FloatField(default=0.77, help_text="Cosine similarity a neighbour must reach")

    def __str__(self) -> str:
        return f"cache policy for {self.namespace}"


class CacheEntry(models.Model):
    """One cached answer. `embedding` is the float32 vector as 1,536 little-endian bytes (read
    straight into numpy by the in-process search); where pgvector exists, store() also writes an
    `embedding_vec vector(384)` column with an HNSW cosine index (migrations 0005 and 0007).

    `variant` is a hash of what besides the conversation changes the answer (the model asked for,
    sampling and further parameters, routing constraints, the embedder's MODEL_TAG): semantic
    lookups only compare entries of the same namespace and variant."""

    id = models.BigAutoField(primary_key=True)
    namespace = models.CharField(max_length=150)
    key_hash = models.CharField(max_length=64)
    variant = models.CharField(max_length=32, default="")
    messages = models.JSONField()
    params = models.JSONField(default=dict)
    prompt_text = models.TextField()
    embedding = models.BinaryField(null=True, blank=True)
    response = models.JSONField()  # content, model, finish_reason, usage
    model = models.CharField(max_length=200)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True)
    latency_ms = models.FloatField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    hit_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "key_hash"], name="cacheentry_unique_key")]
        indexes = [
            models.Index(fields=["namespace", "last_hit_at"], name="cacheentry_lru_idx"),
            # the in-process search fetches a partition's rows newer than the last one it has
            models.Index(fields=["namespace", "variant", "id"], name="cacheentry_variant_idx"),
        ]
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return f"{self.namespace}: {self.prompt_text[:60]}"


class RoutingPolicy(models.Model):
    """A weighted split of `model: "auto"` gateway traffic between variants (routing/policies.py). At most one
    is active. Other apps (evaluation's live A/B tests) write it through routing.services."""

    name = models.CharField(max_length=100, unique=True)
    label = models.CharField(max_length=100, blank=True)  # what spans record as aios.ab.test (the test's id)
    variants = models.JSONField()  # [PolicyVariant]
    weights = models.JSONField()  # [float], one per variant
    active = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name_plural = "routing policies"
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=models.Q(active=True), name="routingpolicy_one_active")
        ]

    def __str__(self) -> str:
        return f"{self.name}{' (active)' if self.active else ''}"

    @property
    def spec(self) -> PolicySpec:
        from routing.policies import PolicySpec

        return PolicySpec.model_validate({"variants": self.variants, "weights": self.weights})
