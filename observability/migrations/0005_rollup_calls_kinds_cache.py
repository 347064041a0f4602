# Rollups gain per-kind and "calls" rows (observability.series) and cache hit / miss counts.
# Buckets whose spans are still stored are rebuilt so they have the new rows too; older
# buckets (spans past retention) keep what they had.

from datetime import timedelta

from django.db import migrations, models


def rebuild_stored(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from observability.rollup_rebuild import rollups_rebuild

    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT min(started_at) FROM observability_span")
        (oldest,) = cur.fetchone()
    if oldest is None:
        return
    # From the first whole hour: the hour the oldest span falls in lost its earlier spans to retention.
    since = oldest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    rollups_rebuild(since=since, until=timezone.now() + timedelta(minutes=1))


class Migration(migrations.Migration):
    dependencies = [
        ("observability", "0004_unpriced_span_proxy"),
    ]

    operations = [
        migrations.AddField(
            model_name="spanrollup",
            name="cache_hits",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="spanrollup",
            name="cache_misses",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(rebuild_stored, migrations.RunPython.noop),
    ]
