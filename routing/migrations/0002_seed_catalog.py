"""The catalog a fresh installation routes between (providers' API ids), and the simulator
models each tier falls back to when no provider key is configured."""

from django.db import migrations

CATALOG = [
    # provider, model, tier, baseline, vision, context, typical latency ms, priority
    ("gemini", "gemini-1.5-flash", "simple", False, True, 1_000_000, 400, 10),
    ("gemini", "gemini-2.5-flash-lite", "simple", False, True, 1_000_000, 450, 5),
    ("openai", "gpt-4.1-nano", "simple", False, True, 1_000_000, 500, 0),
    ("openai", "gpt-4o-mini", "medium", False, True, 128_000, 700, 10),
    ("gemini", "gemini-2.5-flash", "medium", False, True, 1_000_000, 800, 5),
    ("openai", "gpt-4.1-mini", "medium", False, True, 1_000_000, 800, 0),
    ("anthropic", "claude-3-5-sonnet-20241022", "complex", False, True, 200_000, 1800, 10),
    ("anthropic", "claude-sonnet-4-5", "complex", False, True, 200_000, 2000, 5),
    ("openai", "gpt-4o", "complex", True, True, 128_000, 1300, 0),
    ("gemini", "gemini-2.5-pro", "complex", False, True, 1_000_000, 2500, 0),
    ("sim", "simple", "simple", False, True, 128_000, 250, -100),
    ("sim", "medium", "medium", False, True, 128_000, 600, -100),
    ("sim", "complex", "complex", False, True, 200_000, 1500, -100),
    ("sim", "baseline", "complex", True, True, 128_000, 1300, -200),
]


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    ModelEndpoint = apps.get_model("routing", "ModelEndpoint")
    for provider, model, tier, baseline, vision, context, latency, priority in CATALOG:
        ModelEndpoint.objects.get_or_create(
            provider=provider,
            model=model,
            defaults={
                "tier": tier,
                "is_baseline": baseline,
                "vision": vision,
                "context_window": context,
                "typical_latency_ms": latency,
                "priority": priority,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_catalog_decisions_router")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
