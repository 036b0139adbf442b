"""Verification as data: the guide's checklist, each check with its query and result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wizard.core import names
from wizard.core.catalog import Discovery
from wizard.core.ops import (
    AddForeignKey,
    Expect,
    RenameForeignKey,
    RenameIndex,
    RenameObject,
    managed_foreign_keys,
    object_renames,
)
from wizard.core.plan import Plan
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
    # What the plan's operations promise the catalog shows afterwards (Operation.expects).
    objects: list[Expect] = field(default_factory=list)
    # False: fk_shapes are the entities' defaults, not what the catalog had before the run
    # (no journal of it), so a key migrate kept as it found it is a warning, not a failure.
    shapes_recorded: bool = True


def default_expectations() -> Expectations:
    """Without a run to compare with: what the application's entities declare."""
    return Expectations({f"{p.table}.{p.new}": (names.EXPECTED_ON_DELETE[p.label], "a",
                                                False, False) for p in names.REFERENCING})


def expectations_from(before: Discovery, plan: Plan) -> Expectations:
    """What the plan's operations promise, on top of the shapes the keys had before."""
    exp = default_expectations()
    managed, _others = managed_foreign_keys(before)
    for fk in managed:
        label = f"{fk.table}.{names.column_after(fk.table, fk.columns[0])}"
        exp.fk_shapes[label] = (fk.on_delete, fk.on_update, fk.deferrable, fk.deferred)
        if fk.validated:
            exp.must_be_validated.add(label)
    renamed = {op.before: op.after for op in plan.ops
               if isinstance(op, RenameForeignKey | RenameIndex)}
    for fk in managed:
        label = f"{fk.table}.{names.column_after(fk.table, fk.columns[0])}"
        exp.fk_names[label] = renamed.get(fk.name, fk.name)
    for op in plan.ops:
        if isinstance(op, AddForeignKey):
            label = f"{op.on}.{op.column}"
            exp.fk_names[label] = op.name
            exp.added.add(label)
    exp.index_names = [op.after for op in plan.ops if isinstance(op, RenameIndex)]
    exp.objects = plan.expectations()
    return exp


def expectations_of_catalog(d: Discovery) -> Expectations:
    """Without a run to compare with: the entities' defaults, and every key and index on a
    renamed column under its final name."""
    exp = default_expectations()
    for r in object_renames(d):
        if r.kind == RenameIndex.kind:
            exp.index_names.append(r.name_target)
        elif r.kind == RenameForeignKey.kind:
            column = names.column_after(r.table, r.columns_before[0])
            exp.fk_names[f"{r.table}.{column}"] = r.name_target
    return exp


def renamed_objects(plan: Plan) -> list[RenameObject]:
    return [op for op in plan.ops if isinstance(op, RenameObject)]


Sent = list[tuple[str, str, "psycopg.Cursor[Any]"]]
_BOUND: dict[tuple[str, str], str] = {}  # bound() memo: (query, repr(params)) -> text
_BOUND_MAX = 64


def bound(conn: psycopg.Connection[Any], query: str, params: Any) -> str:
    """The statement as it ran, its parameters bound as SQL literals (psycopg's client-side
    binding, no round trip): what a check's evidence shows, never %(name)s placeholders.

    Memoized, so that the checks queued under the migration's locks only look up what the
    same queries bound in the warm-up before the first lock."""
    if not params:
        return query
    key = (query, repr(params))
    text = _BOUND.get(key)
    if text is None:
        with psycopg.ClientCursor(conn) as cur:
            text = cur.mogrify(query, params)
        if len(_BOUND) >= _BOUND_MAX:
            _BOUND.clear()
        _BOUND[key] = text
    return text


def send(conn: psycopg.Connection[Any], wanted: dict[str, tuple[str, dict[str, Any]]], *,
         prepare: bool | None = None) -> Sent:
    """Queue queries on cursors of their own: inside a pipeline, no round trip yet. Each
    comes back from `receive` with its statement as it ran (parameters bound).

    prepare=True makes them server-side prepared statements (see psycopg's `prepare`).
    """
    sent = []
    for key, (query, params) in wanted.items():
        cur = conn.cursor(row_factory=dict_row)
        cur.execute(query, params, prepare=prepare)
        sent.append((key, bound(conn, query, params), cur))
    return sent


def receive(sent: Sent) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Every result of `send`, by key (the first read syncs a pipeline: one round trip)."""
    found = {}
    for key, query, cur in sent:
        found[key] = (query, cur.fetchall())
        cur.close()
    return found


def migration_rows_query(schema: str) -> str:
    return sql.SQL('SELECT "timestamp", name FROM {} WHERE name = ANY(%(names)s)').format(
        sql.Identifier(schema, "migrations")).as_string(None)


def catalog_queries(exp: Expectations, schema: str, *, with_migrations: bool
                    ) -> dict[str, tuple[str, dict[str, Any]]]:
    """The catalog checks' queries with their parameters (`with_migrations`: the migrations
    table is known to exist, so its rows are read in the same batch)."""
    params = {"schema": schema, "tables": list(names.CHILD_TABLES)}
    q = queries(VERIFY_SQL)
    wanted = {name: (q[name], params) for name in (
        "tables_present", "primary_key", "prosumer_columns", "foreign_keys_to_user",
        "indexes")}
    wanted["prosumer_names"] = (q["prosumer_names"], {**params, "places": [
        f"{p.table}.{p.new}" for p in names.REFERENCING]})
    wanted["objects"] = (q["objects"], {"schema": schema, "tables": [
        names.OLD_TABLE, names.NEW_TABLE, *names.CHILD_TABLES, "migrations"]})
    if with_migrations:
        wanted["migration_row"] = (migration_rows_query(schema),
                                   {"names": list(exp.migration_names)})
    return wanted


def catalog_checks(conn: psycopg.Connection[Any], exp: Expectations, schema: str = "public",
                   *, in_transaction: bool = False) -> list[Check]:
    """The checks that read only the catalog: safe to run inside the migration transaction."""
    found = receive(send(conn, catalog_queries(exp, schema, with_migrations=False)))
    query, params = migration_rows_query(schema), {"names": list(exp.migration_names)}
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            rows = [dict(r) for r in cur.fetchall()]
    except psycopg.errors.UndefinedTable:
        rows = []
    found["migration_row"] = (bound(conn, query, params), rows)
    return evaluate_catalog(found, exp, in_transaction=in_transaction)


def evaluate_catalog(found: dict[str, tuple[str, list[dict[str, Any]]]], exp: Expectations,
                     *, in_transaction: bool) -> list[Check]:
    """The catalog checks from their queries' results (no database access)."""
    checks: list[Check] = []
    q, rows = found["tables_present"]
    ok = rows and rows[0]["user_exists"] and not rows[0]["prosumer_exists"]
    checks.append(Check("table_renamed", 'Table "user" exists and "prosumer" does not',
                        PASS if ok else FAIL,
                        "user present, prosumer absent" if ok else f"found: {rows}",
                        {"query": q, "result": rows}))
    q, rows = found["primary_key"]
    ok = len(rows) == 1 and rows[0]["columns"] == [names.NEW_KEY]
    checks.append(Check("primary_key", "user.user_id is the primary key",
                        PASS if ok else FAIL,
                        f"{rows[0]['name']} on ({', '.join(rows[0]['columns'])})" if rows
                        else 'no primary key on "user"', {"query": q, "result": rows}))
    q, rows = found["prosumer_columns"]
    checks.append(Check("no_prosumer_columns",
                        "No column named like prosumer is left in the eight places",
                        PASS if not rows else FAIL,
                        "none left" if not rows else ", ".join(
                            f"{r['table_name']}.{r['column_name']}" for r in rows),
                        {"query": q, "result": rows}))
    q, rows = found["foreign_keys_to_user"]
    checks.append(_fk_check(rows, exp, q, in_transaction))
    q, rows = found["indexes"]
    present = {r["name"] for r in rows}
    missing = [n for n in exp.index_names if n not in present]
    checks.append(Check("indexes_renamed", "Indexes on renamed columns are present",
                        PASS if not missing else FAIL,
                        (f"{len(exp.index_names)} present: {', '.join(exp.index_names)}"
                         if not missing else f"missing: {', '.join(missing)}"),
                        {"query": q, "result": rows}))
    q, rows = found["prosumer_names"]
    checks.append(Check(
        "no_prosumer_names", "No constraint, index, sequence or trigger of the renamed "
        "objects is still named prosumer", PASS if not rows else FAIL,
        "none left" if not rows else "; ".join(
            f"{r['kind']} {r['name']} on {r['on_table']}" for r in rows),
        {"query": q, "result": rows}))
    if exp.objects:
        checks.append(_objects_check(*found["objects"], exp, in_transaction))
    q, rows = found["migration_row"]
    checks.append(Check("migration_row", "TypeORM's migrations row is present",
                        PASS if rows else FAIL,
                        ", ".join(r["name"] for r in rows) or "no row: the application "
                        "would run the upstream migration again",
                        {"query": q, "result": rows}))
    return checks


_BY_NAME = ("table", "index", "sequence")  # names unique in the schema: matched by name


def _objects_check(query: str, rows: list[dict[str, Any]], exp: Expectations,
                   in_transaction: bool) -> Check:
    """Every operation's promise (Operation.expects) against the catalog."""
    present = {(r["kind"], "" if r["kind"] in _BY_NAME else r["on_table"], r["name"])
               for r in rows}
    valid = {(r["on_table"], r["name"]) for r in rows if r["kind"] == "constraint"
             and r["validated"]}
    wrong: list[str] = []
    for e in exp.objects:
        if e.kind == "row":
            continue  # the migration_row check reads TypeORM's table
        if e.kind == "valid":
            if not in_transaction and (e.table, e.name) not in valid:
                wrong.append(f"constraint {e.table}.{e.name} is not validated")
            continue
        key = (e.kind, "" if e.kind in _BY_NAME else e.table, e.name)
        if (key in present) != e.present:
            where = f"{e.table}." if e.table else ""
            wrong.append(f"{e.kind} {where}{e.name} "
                         f"{'missing' if e.present else 'still there'}")
    return Check("plan_applied", "Every operation of the plan left the catalog as it "
                 "promised", PASS if not wrong else FAIL,
                 "; ".join(wrong) or f"{len(exp.objects)} expectations met",
                 {"query": query, "result": [e.describe() for e in exp.objects]})


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
    kept: list[str] = []  # shapes that differ from the defaults, when no record says better
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
        if got != shape and not exp.shapes_recorded:
            kept.append(f"{label}: {fk['name']} has actions/deferrability {got}, the "
                        f"entities declare {shape} (no journal of the migration says what it "
                        f"was before; migrate keeps what it finds)")
        elif got != shape:
            problems.append(f"{label}: actions/deferrability {got}, expected {shape}")
        if label in exp.fk_names and fk["name"] != exp.fk_names[label]:
            problems.append(f"{label}: named {fk['name']}, expected {exp.fk_names[label]}")
        wants_valid = label in exp.must_be_validated or (label in exp.added
                                                         and not in_transaction)
        if wants_valid and not fk["validated"]:
            problems.append(f"{label}: {fk['name']} is NOT VALID")
    status = FAIL if problems else WARN if kept else PASS
    return Check("foreign_keys", "Exactly one foreign key per renamed column, to "
                 "user(user_id), actions unchanged", status,
                 "; ".join(problems + kept) or f"{len(exp.fk_shapes)} foreign keys as before",
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
