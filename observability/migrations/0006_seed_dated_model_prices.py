# gpt-4o-2024-05-13 was $5 / $15 per million tokens, not the gpt-4o family's $2.50 / $10.
from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from observability.price_seed import DATED_PRICES

    ModelPrice = apps.get_model("observability", "ModelPrice")
    effective = datetime(2024, 1, 1, tzinfo=UTC)
    for provider, name, pattern, inp, out, cached, priority in DATED_PRICES:
        ModelPrice.objects.get_or_create(
            provider=provider, pattern=pattern, effective_from=effective,
            defaults={"display_name": name, "input_per_mtok": Decimal(inp), "output_per_mtok": Decimal(out),
                      "cached_input_per_mtok": Decimal(cached) if cached else None, "priority": priority,
                      "notes": "seed"},
        )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [("observability", "0005_rollup_calls_kinds_cache")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
