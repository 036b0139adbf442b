"""A schema fingerprint: sorted text lines describing tables, keys, indexes and triggers."""

from __future__ import annotations

from typing import Any

import psycopg

from wizard.core.sqlfiles import queries

FINGERPRINT_SQL = "catalog/fingerprint.sql"


def schema_fingerprint(conn: psycopg.Connection[Any], schema: str = "public") -> list[str]:
    """Every table, column, constraint, index, trigger, sequence, function and enum, sorted.

    Two databases with equal fingerprints have the same structure as far as the rename is
    concerned: names, types, nullability, defaults, referential actions, deferrability and
    validity. Object owners, comments and function bodies are left out.
    """
    lines: list[str] = []
    with conn.transaction(), conn.cursor() as cur:
        # Qualify every name in the output, whatever the caller's search_path, and put the
        # caller's search_path back afterwards (a savepoint release would keep ours).
        cur.execute("SELECT current_setting('search_path')")
        row = cur.fetchone()
        previous = row[0] if row else "public"
        cur.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        for sql in queries(FINGERPRINT_SQL).values():
            cur.execute(sql, {"schema": schema})
            lines.extend(r[0] for r in cur.fetchall())
        cur.execute("SELECT set_config('search_path', %s, true)", (previous,))
    return sorted(lines)
