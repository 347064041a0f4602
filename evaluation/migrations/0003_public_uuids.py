"""A random UUID per row named in URLs and API bodies (Django's pattern for a unique field added to
tables that may hold rows: add it nullable, fill each row, then make it unique and required)."""

import uuid

from django.db import migrations, models

MODELS = ["dataset", "datasetitem", "evaluator", "evalrun", "annotationqueue", "annotationitem", "continuousevaluation"]


def fill(apps, schema_editor):  # type: ignore[no-untyped-def]
    for name in MODELS:
        model = apps.get_model("evaluation", name)
        rows = list(model.objects.filter(uuid__isnull=True).only("pk"))
        for row in rows:
            row.uuid = uuid.uuid4()
        model.objects.bulk_update(rows, ["uuid"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("evaluation", "0002_continuousevaluation_spanscore"),
    ]

    operations = [
        *(migrations.AddField(model_name=name, name="uuid", field=models.UUIDField(null=True)) for name in MODELS),
        migrations.RunPython(fill, migrations.RunPython.noop),
        *(
            migrations.AlterField(
                model_name=name, name="uuid", field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
            )
            for name in MODELS
        ),
    ]
