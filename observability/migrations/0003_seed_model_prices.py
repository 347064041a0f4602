from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from observability.price_seed import SEED_PRICES

    ModelPrice = apps.get_model("observability", "ModelPrice")
    effective = datetime(2024, 1, 1, tzinfo=UTC)
    for provider, name, pattern, inp, out, cached in SEED_PRICES:
        ModelPrice.objects.get_or_create(
            provider=provider, pattern=pattern, effective_from=effective,
            defaults={"display_name": name, "input_per_mtok": Decimal(inp), "output_per_mtok": Decimal(out),
                      "cached_input_per_mtok": Decimal(cached) if cached else None, "notes": "seed"},
        )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [("observability", "0002_traces_spans_prices")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
