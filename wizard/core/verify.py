"""Verification as data: the guide's checklist, each check with its query and result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.discovery import Discovery
from wizard.core.plan import Plan, managed_foreign_keys
from wizard.core.sqlfiles import queries

VERIFY_SQL = "catalog/verify.sql"
PASS, FAIL, WARN = "pass", "fail", "warn"

FkShape = tuple[str, str, bool, bool]  # on_delete, on_update, deferrable, deferred


@dataclass
class Check:
    id: str
    title: str
    status: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Expectations:
    """What the migrated schema must look like, taken from the database before the run."""

    fk_shapes: dict[str, FkShape]  # "wallet.user_id" -> referential actions etc.
    fk_names: dict[str, str] = field(default_factory=dict)  # "wallet.user_id" -> name
    index_names: list[str] = field(default_factory=list)
    migration_names: tuple[str, ...] = (names.MIGRATION_NAME, *names.ALSO_APPLIED)
    counts_before: dict[str, int] | None = None
    must_be_validated: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)  # FKs the plan adds NOT VALID, then validates


def default_expectations() -> Expectations:
    """Without a run to compare with: what the application's entities declare."""
    return Expectations({f"{p.table}.{p.new}": (names.EXPECTED_ON_DELETE[p.label], "a",
                                                False, False) for p in names.REFERENCING})


def expectations_from(before: Discovery, plan: Plan) -> Expectations:
    exp = default_expectations()
    managed, _others = managed_foreign_keys(before)
    for fk in managed:
        label = f"{fk.table}.{names.column_after(fk.table, fk.columns[0])}"
        exp.fk_shapes[label] = (fk.on_delete, fk.on_update, fk.deferrable, fk.deferred)
        if fk.validated:
            exp.must_be_validated.add(label)
    renamed = {s.change["before"]: s.change["after"] for s in plan.steps
               if s.change.get("kind") in ("fk", "idx") and s.change.get("action") == "rename"}
    for fk in managed:
        label = f"{fk.table}.{names.column_after(fk.table, fk.columns[0])}"
        exp.fk_names[label] = renamed.get(fk.name, fk.name)
    for s in plan.steps:
        if s.change.get("action") == "add_fk":
            label = f"{s.change['table']}.{s.change['column']}"
            exp.fk_names[label] = s.change["after"]
            exp.added.add(label)
    exp.index_names = [renamed.get(i.name, i.name) for i in before.indexes
                       if i.constraint_name is None and i.name in renamed]
    return exp


def _rows(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    query = queries(VERIFY_SQL)[name]
    cur.execute(query, params)
    return query, [dict(r) for r in cur.fetchall()]


def catalog_checks(conn: psycopg.Connection[Any], exp: Expectations, schema: str = "public",
                   *, in_transaction: bool = False) -> list[Check]:
    """The checks that read only the catalog: safe to run inside the migration transaction."""
    params = {"schema": schema, "tables": list(names.CHILD_TABLES)}
    checks: list[Check] = []
    with conn.cursor(row_factory=dict_row) as cur:
        q, rows = _rows(cur, "tables_present", params)
        ok = rows and rows[0]["user_exists"] and not rows[0]["prosumer_exists"]
        checks.append(Check("table_renamed", 'Table "user" exists and "prosumer" does not',
                            PASS if ok else FAIL,
                            "user present, prosumer absent" if ok else f"found: {rows}",
                            {"query": q, "result": rows}))
        q, rows = _rows(cur, "primary_key", params)
        ok = len(rows) == 1 and rows[0]["columns"] == [names.NEW_KEY]
        checks.append(Check("primary_key", "user.user_id is the primary key",
                            PASS if ok else FAIL,
                            f"{rows[0]['name']} on ({', '.join(rows[0]['columns'])})" if rows
                            else 'no primary key on "user"', {"query": q, "result": rows}))
        q, rows = _rows(cur, "prosumer_columns", params)
        checks.append(Check("no_prosumer_columns",
                            "No column named like prosumer is left in the eight places",
                            PASS if not rows else FAIL,
                            "none left" if not rows else ", ".join(
                                f"{r['table_name']}.{r['column_name']}" for r in rows),
                            {"query": q, "result": rows}))
        q, rows = _rows(cur, "foreign_keys_to_user", params)
        checks.append(_fk_check(rows, exp, q, in_transaction))
        q, rows = _rows(cur, "indexes", params)
        present = {r["name"] for r in rows}
        missing = [n for n in exp.index_names if n not in present]
        checks.append(Check("indexes_renamed", "Indexes on renamed columns are present",
                            PASS if not missing else FAIL,
                            (f"{len(exp.index_names)} present: {', '.join(exp.index_names)}"
                             if not missing else f"missing: {', '.join(missing)}"),
                            {"query": q, "result": rows}))
        q, rows = _rows(cur, "prosumer_names", {**params, "places": [
            f"{p.table}.{p.new}" for p in names.REFERENCING]})
        checks.append(Check(
            "no_prosumer_names", "No constraint, index, sequence or trigger of the renamed "
            "objects is still named prosumer", PASS if not rows else FAIL,
            "none left" if not rows else "; ".join(
                f"{r['kind']} {r['name']} on {r['on_table']}" for r in rows),
            {"query": q, "result": rows}))
        q = sql.SQL('SELECT "timestamp", name FROM {} WHERE name = ANY(%(names)s)').format(
            sql.Identifier(schema, "migrations")).as_string(None)
        try:
            with conn.transaction():
                cur.execute(q, {"names": list(exp.migration_names)})
                rows = [dict(r) for r in cur.fetchall()]
        except psycopg.errors.UndefinedTable:
            rows = []
        checks.append(Check("migration_row", "TypeORM's migrations row is present",
                            PASS if rows else FAIL,
                            ", ".join(r["name"] for r in rows) or "no row: the application "
                            "would run the upstream migration again",
                            {"query": q, "result": rows}))
    return checks


def down_checks(conn: psycopg.Connection[Any], exp: Expectations,
                schema: str = "public") -> list[Check]:
    """After a revert (inside its transaction): the pre-rename schema is back."""
    from wizard.core.discovery import PRE, discover

    d = discover(conn, schema, text_references=False)
    checks = [Check("state_pre", 'Table "prosumer" and its columns are back',
                    PASS if d.state == PRE else FAIL, f"{d.state}: {d.explanation}",
                    {"query": "sql/catalog/discovery.sql", "result": d.pending})]
    managed, _ = managed_foreign_keys(d)
    per_column: dict[str, int] = {}
    for fk in managed:
        per_column[f"{fk.table}.{fk.columns[0]}"] = per_column.get(
            f"{fk.table}.{fk.columns[0]}", 0) + 1
    extra = {k: n for k, n in per_column.items() if n != 1}
    checks.append(Check("foreign_keys", "One foreign key per column, to prosumer(prosumer_id)",
                        PASS if not extra else FAIL,
                        f"{len(per_column)} foreign keys" if not extra else str(extra),
                        {"result": [fk.definition for fk in managed]}))
    return checks


def _fk_check(rows: list[dict[str, Any]], exp: Expectations, query: str,
              in_transaction: bool) -> Check:
    problems: list[str] = []
    for label, shape in exp.fk_shapes.items():
        table, column = label.split(".")
        fks = [r for r in rows if r["table_name"] == table and r["columns"] == [column]]
        if len(fks) != 1:
            problems.append(f"{label}: {len(fks)} foreign keys to user(user_id), expected 1")
            continue
        fk = fks[0]
        got = (fk["on_delete"], fk["on_update"], fk["deferrable"], fk["deferred"])
        if fk["ref_columns"] != [names.NEW_KEY]:
            problems.append(f"{label}: references {fk['ref_columns']}, expected user_id")
        if got != shape:
            problems.append(f"{label}: actions/deferrability {got}, expected {shape}")
        if label in exp.fk_names and fk["name"] != exp.fk_names[label]:
            problems.append(f"{label}: named {fk['name']}, expected {exp.fk_names[label]}")
        wants_valid = label in exp.must_be_validated or (label in exp.added
                                                         and not in_transaction)
        if wants_valid and not fk["validated"]:
            problems.append(f"{label}: {fk['name']} is NOT VALID")
    return Check("foreign_keys", "Exactly one foreign key per renamed column, to "
                 "user(user_id), actions unchanged", PASS if not problems else FAIL,
                 "; ".join(problems) or f"{len(exp.fk_shapes)} foreign keys as before",
                 {"query": query, "result": rows})


def count_rows(conn: psycopg.Connection[Any], tables: list[str],
               schema: str = "public") -> dict[str, int]:
    """Exact row counts (these scan: never run them while the rename holds its locks)."""
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
            row = cur.fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def row_count_check(before: dict[str, int] | None, after: dict[str, int],
                    renamed: dict[str, str] | None = None) -> Check:
    if before is None:
        return Check("row_counts", "Row counts equal the counts taken before", WARN,
                     "no counts from before the migration in this run's journal",
                     {"result": after})
    renamed = {names.OLD_TABLE: names.NEW_TABLE} if renamed is None else renamed
    diffs = [f"{t}: {n} before, {after.get(renamed.get(t, t))} after"
             for t, n in before.items() if after.get(renamed.get(t, t)) != n]
    return Check("row_counts", "Row counts equal the counts taken before",
                 PASS if not diffs else FAIL,
                 "; ".join(diffs) or ", ".join(f"{t} {n:,}" for t, n in after.items()),
                 {"query": "SELECT count(*) FROM <each table>",
                  "result": {"before": before, "after": after}})


def text_reference_check(d: Discovery) -> Check:
    refs = [str(r) for r in d.text_references]
    return Check("text_references", "No stored text still names prosumer",
                 PASS if not refs else WARN,
                 "none" if not refs else f"{len(refs)} lines: " + "; ".join(refs[:10]),
                 {"query": "sql/catalog/discovery.sql: *_naming_prosumer", "result": refs})
