"""Database capabilities that vary by server: pgvector is present on the embedded Postgres
(pgserver ships it) and absent on Debian's Postgres 15. Code that uses vectors asks here."""

from __future__ import annotations

from django.db import connection


def vector_extension_available(cursor) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    return cursor.fetchone() is not None


def create_vector_extension_if_available(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    """Migration step: CREATE EXTENSION vector where the server offers it; otherwise nothing
    (vector features then run in process: see routing's cache)."""
    with schema_editor.connection.cursor() as cur:
        if vector_extension_available(cur):
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")


def has_pgvector() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cur.fetchone() is not None
