"""Which columns and foreign keys the rename manages, and what stops a plan."""

from __future__ import annotations

from wizard.core import names
from wizard.core.catalog import CONFLICT, UNKNOWN, Constraint, Discovery


def final_columns(table: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(names.column_after(table, c) for c in columns)


def before_columns(table: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(names.column_before(table, c) for c in columns)


def table_names(table: str, target: str | None) -> tuple[str, str]:
    """A table's name (after the rename, before it): only the target table changes."""
    return (names.NEW_TABLE, names.OLD_TABLE) if table == target else (table, table)


def is_place(table: str, column: str) -> bool:
    """One of the seven referencing columns, under its old or its new name."""
    return any(p.table == table and column in (p.old, p.new) for p in names.REFERENCING)


def touches_renamed_column(table: str, columns: tuple[str, ...], target: str | None) -> bool:
    is_key = table == target and any(c in (names.OLD_KEY, names.NEW_KEY) for c in columns)
    return is_key or any(is_place(table, c) for c in columns)


def managed_foreign_keys(d: Discovery) -> tuple[list[Constraint], list[Constraint]]:
    """FKs to the prosumer/user table on one of the seven columns, and all the others."""
    managed, others = [], []
    for fk in d.foreign_keys_to_target():
        if len(fk.columns) == 1 and is_place(fk.table, fk.columns[0]):
            managed.append(fk)
        else:
            others.append(fk)
    return managed, others


def plan_blockers(d: Discovery) -> list[str]:
    """Why no plan may run from this catalog, each with the DBA's next step (empty: none).

    Discovery reports these too, so `inspect` and `plan` agree on what a state allows.
    """
    if d.state in (CONFLICT, UNKNOWN):
        return [f"no plan for a database in state '{d.state}': {d.explanation}"]
    managed, _ = managed_foreign_keys(d)
    seen: dict[tuple[str, str], list[str]] = {}
    for fk in managed:
        seen.setdefault((fk.table, fk.columns[0]), []).append(fk.name)
    return [f"{table}.{column} has {len(fk_names)} foreign keys to {d.target_table}: "
            f"{', '.join(fk_names)} (the upstream migration leaves such duplicates). Keep "
            f"the one whose ON DELETE matches the application and drop the others (ALTER "
            f"TABLE {table} DROP CONSTRAINT ...), then plan again."
            for (table, column), fk_names in seen.items() if len(fk_names) > 1]
