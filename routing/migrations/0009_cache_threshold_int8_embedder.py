"""The default semantic similarity threshold moves from 0.805 to 0.77, re-tuned for the int8 MiniLM
embedder (routing/embedding_int8.py, routing.cache_verify).

Policy rows still at the old default (0.805, never edited by an admin or set to exactly that) move
with it; other values were chosen by someone and stay. Cache entries need nothing: the embedder's
tag is part of their variant, so entries embedded in fp32 are never searched with int8 vectors.
"""

from django.db import migrations, models

OLD, NEW = 0.805, 0.77


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("routing", "CachePolicy").objects.filter(similarity_threshold=OLD).update(similarity_threshold=NEW)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("routing", "CachePolicy").objects.filter(similarity_threshold=NEW).update(similarity_threshold=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0008_routing_policy"),
    ]

    operations = [
        migrations.AlterField(
            model_name="cachepolicy",
            name="similarity_threshold",
            field=models.FloatField(default=NEW, help_text="Cosine similarity a neighbour must reach"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
