"""Where pgvector exists: a generated vector column mirroring `embedding`, with an HNSW cosine
index. Elsewhere (Debian's Postgres 15 has no pgvector) nothing: the cache searches the
namespace's embeddings in process (routing.response_cache)."""

from django.db import migrations


def add_vector_column(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if cur.fetchone() is None:
            return
        cur.execute(
            "ALTER TABLE routing_cacheentry ADD COLUMN embedding_vec vector(384) "
            "GENERATED ALWAYS AS (embedding::vector(384)) STORED"
        )
        cur.execute(
            "CREATE INDEX routing_cacheentry_hnsw ON routing_cacheentry USING hnsw (embedding_vec vector_cosine_ops)"
        )


def drop_vector_column(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cur:
        cur.execute("ALTER TABLE routing_cacheentry DROP COLUMN IF EXISTS embedding_vec")


class Migration(migrations.Migration):
    dependencies = [("routing", "0004_response_cache")]
    operations = [migrations.RunPython(add_vector_column, drop_vector_column)]
