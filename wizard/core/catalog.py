"""What the catalog says about EnerLink's tables: plain data, read by discovery.

The plan's operations, the naming rules and the checks read these; only discovery.py
fills them from the server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from wizard.core import names

PRE, MIGRATED, PARTIAL, CONFLICT, UNKNOWN = "pre", "migrated", "partial", "conflict", "unknown"


@dataclass(frozen=True)
class TableInfo:
    name: str
    owner: str
    can_alter: bool
    estimated_rows: int


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # 'p' primary key, 'f' foreign key, 'n' NOT NULL (named from PostgreSQL 18)
    table: str
    columns: tuple[str, ...]
    ref_table: str | None
    ref_schema: str | None
    ref_columns: tuple[str, ...]
    on_delete: str
    on_update: str
    deferrable: bool
    deferred: bool
    validated: bool
    definition: str


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    is_primary: bool
    is_unique: bool
    constraint_name: str | None
    definition: str
    predicate: str | None


@dataclass(frozen=True)
class Sequence:
    name: str
    table: str  # the table whose column owns it
    column: str


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    function_name: str
    definition: str


@dataclass(frozen=True)
class TextReference:
    """A line of stored text (function body, view, policy) that still says prosumer."""

    kind: str
    object: str
    line_no: int
    line: str

    def __str__(self) -> str:
        return f"{self.kind} {self.object}, line {self.line_no}: {self.line}"


@dataclass
class Discovery:
    schema: str
    tables: dict[str, TableInfo]
    columns: dict[str, list[str]]
    constraints: list[Constraint]
    indexes: list[Index]
    triggers: list[Trigger]
    sequences: list[Sequence]
    migrations_table: bool
    migration_names: list[str]
    text_references: list[TextReference]
    server_version: str
    current_user: str
    state: str = UNKNOWN
    explanation: str = ""
    done: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # Why no plan can run from here although the state is plannable (e.g. duplicate keys
    # the upstream migration left): inspect and plan say the same.
    blockers: list[str] = field(default_factory=list)

    @property
    def target_table(self) -> str | None:
        """The prosumer/user table as it is named now (None when not exactly one exists)."""
        present = [t for t in (names.OLD_TABLE, names.NEW_TABLE) if t in self.tables]
        return present[0] if len(present) == 1 else None

    @property
    def key_column(self) -> str | None:
        target = self.target_table
        cols = self.columns.get(target or "", [])
        for candidate in (names.NEW_KEY, names.OLD_KEY):
            if candidate in cols:
                return candidate
        return None

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, [])

    def place_column(self, place: names.Place) -> str | None:
        """The column's current name (old or new), or None when it is not there."""
        for candidate in (place.new, place.old):
            if self.has_column(place.table, candidate):
                return candidate
        return None

    def foreign_keys_to_target(self) -> list[Constraint]:
        target = self.target_table
        return [c for c in self.constraints if c.kind == "f" and c.ref_table == target
                and c.ref_schema == self.schema]

    def primary_key(self) -> Constraint | None:
        target = self.target_table
        return next((c for c in self.constraints if c.kind == "p" and c.table == target), None)

    @property
    def migration_recorded(self) -> bool:
        return any(n in (names.MIGRATION_NAME, *names.ALSO_APPLIED)
                   for n in self.migration_names)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_table"] = self.target_table
        return data


def catalog_facts(d: Discovery) -> tuple[str, ...]:
    """The catalog facts a plan is built from, one sorted line each.

    Row estimates, text references and the server's version are left out: they change
    without changing what the plan must do.
    """
    facts = [f"table {t.name} owner={t.owner}" for t in d.tables.values()]
    facts += [f"column {t}.{c}" for t, cols in d.columns.items() for c in cols]
    facts += [f"constraint {c.table}.{c.name} {c.kind} ({','.join(c.columns)}) -> "
              f"{c.ref_schema}.{c.ref_table}({','.join(c.ref_columns)}) "
              f"{c.on_delete}{c.on_update} d={c.deferrable}{c.deferred} v={c.validated}"
              for c in d.constraints]
    facts += [f"index {i.table}.{i.name} ({','.join(i.columns)}) con={i.constraint_name}"
              for i in d.indexes]
    facts += [f"trigger {t.table}.{t.name}" for t in d.triggers]
    facts += [f"sequence {s.name} owned by {s.table}.{s.column}" for s in d.sequences]
    facts.append(f"migrations table={d.migrations_table}")
    facts += [f"migration {n}" for n in d.migration_names]
    return tuple(sorted(facts))


def facts_digest(facts: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256(json.dumps(list(facts)).encode()).hexdigest()
