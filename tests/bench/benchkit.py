"""What every benchmark shares: a throwaway cluster with the owner role, and the table."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from wizard.core.connection import PgSettings
from wizard.sandbox.sandbox import OWNER_ROLE, create_owner_role
from wizard.sandbox.servers import PostgresServer


@contextmanager
def bench_cluster() -> Iterator[tuple[PostgresServer, PgSettings]]:
    """A PostgreSQL cluster and the (non-superuser) owner role, stopped afterwards."""
    server = PostgresServer.start()
    try:
        owner = server.settings("postgres", OWNER_ROLE, "bench-only-password")
        create_owner_role(server, OWNER_ROLE, owner.password or "")
        yield server, owner
    finally:
        server.stop()


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n### {title}\n", flush=True)
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    print(flush=True)
