"""Cache entries: embeddings as float32 bytes, and a `variant` for semantic lookups.

- `embedding` was a float8[]: 3 KB a row, read back as Python lists of floats (seconds for 100,000
  rows). It becomes 1,536 little-endian float32 bytes that numpy reads as they are.
- Where pgvector exists, `embedding_vec` was generated from the float array; it becomes a plain
  `vector(384)` column that the cache writes itself (same HNSW cosine index).
- `variant` (a hash of the model asked for and the parameters that change the answer) partitions
  semantic lookups; the default similarity threshold moves to 0.805 (re-tuned, routing.cache_verify). Rows from before have none ("") and are found by exact key only: the model a
  request asked for was not stored, so their variant cannot be rebuilt.
"""

import numpy as np
from django.db import migrations, models

BATCH = 2000


def _has_vector_column(cur) -> bool:  # type: ignore[no-untyped-def]
    cur.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'routing_cacheentry' "
        "AND column_name = 'embedding_vec'"
    )
    return cur.fetchone() is not None


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cur:
        if _has_vector_column(cur):
            cur.execute("ALTER TABLE routing_cacheentry DROP COLUMN embedding_vec")  # drops the index too
            cur.execute("ALTER TABLE routing_cacheentry ADD COLUMN embedding_vec vector(384)")
            cur.execute(
                "UPDATE routing_cacheentry SET embedding_vec = embedding::vector(384) WHERE embedding IS NOT NULL"
            )
            cur.execute(
                "CREATE INDEX routing_cacheentry_hnsw ON routing_cacheentry "
                "USING hnsw (embedding_vec vector_cosine_ops)"
            )
        last = 0
        while True:
            cur.execute(
                "SELECT id, embedding FROM routing_cacheentry WHERE id > %s AND embedding IS NOT NULL "
                "ORDER BY id LIMIT %s",
                [last, BATCH],
            )
            rows = cur.fetchall()
            if not rows:
                break
            cur.executemany(
                "UPDATE routing_cacheentry SET embedding_f4 = %s WHERE id = %s",
                [(np.asarray(vector, dtype="<f4").tobytes(), pk) for pk, vector in rows],
            )
            last = rows[-1][0]


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT id, embedding_f4 FROM routing_cacheentry WHERE embedding_f4 IS NOT NULL")
        rows = cur.fetchall()
        cur.executemany(
            "UPDATE routing_cacheentry SET embedding = %s WHERE id = %s",
            [(np.frombuffer(bytes(blob), dtype="<f4").astype(float).tolist(), pk) for pk, blob in rows],
        )
        if _has_vector_column(cur):
            cur.execute("ALTER TABLE routing_cacheentry DROP COLUMN embedding_vec")
            cur.execute(
                "ALTER TABLE routing_cacheentry ADD COLUMN embedding_vec vector(384) "
                "GENERATED ALWAYS AS (embedding::vector(384)) STORED"
            )
            cur.execute(
                "CREATE INDEX routing_cacheentry_hnsw ON routing_cacheentry "
                "USING hnsw (embedding_vec vector_cosine_ops)"
            )


class Migration(migrations.Migration):
    dependencies = [("routing", "0006_training_example_partial_labels")]

    operations = [
        migrations.AddField(
            model_name="cacheentry", name="embedding_f4", field=models.BinaryField(blank=True, null=True)
        ),
        migrations.AddField(model_name="cacheentry", name="variant", field=models.CharField(default="", max_length=32)),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="cacheentry", name="embedding"),
        migrations.RenameField(model_name="cacheentry", old_name="embedding_f4", new_name="embedding"),
        migrations.AddIndex(
            model_name="cacheentry",
            index=models.Index(fields=["namespace", "variant", "id"], name="cacheentry_variant_idx"),
        ),
        # Re-tuned for the new embedding text of single-turn prompts (routing.cache_verify).
        migrations.AlterField(
            model_name="cachepolicy",
            name="similarity_threshold",
            field=models.FloatField(default=0.805, help_text="Cosine similarity a neighbour must reach"),
        ),
    ]
