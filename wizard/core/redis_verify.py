"""Verify the application's Redis data after the migration, against its dry run.

The checks a DBA needs before starting the new application: no order hash still names its
owner by the old field; the per-owner sets are where the new code reads them, as many and
as full as the dry run said; a sample of orders whose owner exists in the `user` table;
`orders:all` unchanged; no pure cache key of the old names left.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg import sql

from wizard.core import names
from wizard.core.connection import PgSettings
from wizard.core.journal import runs_for
from wizard.core.lazy import lazy_module
from wizard.core.redis_conn import RedisSettings, RedisUnavailable, explain
from wizard.core.redis_keyspace import Keyspace, open_keyspace
from wizard.core.redis_migrate import family_size, hash_fields, orders_all
from wizard.core.redis_rules import DeleteKeys, MoveKey, RenameField, Rule, to_text
from wizard.core.reporting import check_cancel
from wizard.core.verify import FAIL, PASS, WARN, Check, bound

if TYPE_CHECKING:
    import redis
else:
    redis = lazy_module("redis")  # about 0.1 s: loaded when Redis is first spoken to

OWNER_SAMPLE = 1000
STEP = "run the Redis step (the Migrate Redis data page, or enerlink-migrate cache)"


def newest_dry_run(pg: PgSettings, target: str) -> dict[str, Any] | None:
    """The counts of the newest Redis dry run of `target` journaled for this database."""
    for journal in runs_for(pg):  # newest first
        for event in reversed(journal.events("redis_dry_run")):
            if event.get("target") == target:
                return dict(event.get("counts") or {})
    return None


def redis_checks(settings: RedisSettings | None, pg: PgSettings, rules: Sequence[Rule],
                 cancel: threading.Event | None = None) -> list[Check]:
    """The Redis part of the checklist (one WARN when no Redis is configured)."""
    if settings is None:
        return [Check("redis_keys", "Redis data in the new names", WARN,
                      "no Redis in this profile (or --redis-url): not checked")]
    try:
        with open_keyspace(settings) as ks:
            expected = newest_dry_run(pg, ks.describe())
            checks: list[Check] = []
            for rule in rules:
                check_cancel(cancel, "Redis verification")
                checks += _rule_checks(ks, pg, rule, expected)
            checks.append(_orders_all_check(ks, expected))
            return checks
    except RedisUnavailable as exc:
        return [Check("redis_keys", "Redis data in the new names", FAIL,
                      f"{exc}; run the check again once Redis answers")]
    except (redis.exceptions.RedisError, OSError) as exc:
        return [Check("redis_keys", "Redis data in the new names", FAIL,
                      f"{explain(settings, exc)}; run the check again once Redis answers")]


def _rule_checks(ks: Keyspace, pg: PgSettings, rule: Rule,
                 expected: dict[str, Any] | None) -> list[Check]:
    if isinstance(rule, RenameField):
        return [_field_check(ks, rule), _owners_check(ks, pg, rule)]
    if isinstance(rule, MoveKey):
        return [_move_check(ks, rule, _expected_for(expected, rule))]
    return [_deleted_check(ks, rule)]


def _expected_for(expected: dict[str, Any] | None, rule: Rule) -> dict[str, Any] | None:
    if not expected:
        return None
    return next((c for c in expected.get("rules", []) if c.get("rule") == to_text(rule)), None)


def _hashes_with(ks: Keyspace, pattern: str, field: str, limit: int | None = None
                 ) -> tuple[int, list[tuple[bytes, bytes]]]:
    """How many hashes of `pattern` have `field`, and (key, value) of up to `limit`."""
    count, found = 0, list[tuple[bytes, bytes]]()
    for key, (value,) in hash_fields(ks, pattern, (field,)):
        if value is not None:
            count += 1
            if limit is None or len(found) < limit:
                found.append((key, value))
    return count, found


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="backslashreplace")


def _field_check(ks: Keyspace, rule: RenameField) -> Check:
    title = f"No {rule.pattern} hash still has {rule.old}"
    left, samples = _hashes_with(ks, rule.pattern, rule.old, limit=5)
    evidence = {"query": f"SCAN MATCH {rule.pattern}; TYPE, HGET {rule.old} on "
                         f"{ks.describe()}",
                "result": {"hashes_with_old_field": left,
                           "samples": [_text(k) for k, _ in samples]}}
    if left:
        return Check("redis_fields", title, FAIL,
                     f"{left} hashes still have {rule.old} (e.g. "
                     f"{', '.join(_text(k) for k, _ in samples)}): {STEP}; a hash with both "
                     f"fields holding different values is a conflict to resolve by hand",
                     evidence)
    return Check("redis_fields", title, PASS, f"none in {ks.describe()}", evidence)


def _owners_check(ks: Keyspace, pg: PgSettings, rule: RenameField) -> Check:
    title = f"A sample of orders names owners that exist in the {names.NEW_TABLE} table"
    _count, sample = _hashes_with(ks, rule.pattern, rule.new, limit=OWNER_SAMPLE)
    owners = sorted({_text(v) for _k, v in sample})
    if not owners:
        return Check("redis_owners", title, PASS, f"no {rule.pattern} hash has {rule.new}: "
                     f"nothing to compare", {"query": "", "result": {"sampled": 0}})
    query = sql.SQL("SELECT {key}::text FROM {table} WHERE {key}::text = ANY(%s)").format(
        key=sql.Identifier(names.NEW_KEY), table=sql.Identifier(names.NEW_TABLE))
    with pg.connect() as conn:
        found = {str(r[0]) for r in conn.execute(query, (owners,)).fetchall()}
        shown = bound(conn, query.as_string(conn), (owners,))  # as it ran, owners bound
    missing = [o for o in owners if o not in found]
    evidence = {"query": shown, "result": {
        "orders_sampled": len(sample), "owners": len(owners), "missing": missing[:20]}}
    if missing:
        return Check("redis_owners", title, FAIL,
                     f"{len(missing)} of {len(owners)} owners of {len(sample)} sampled orders "
                     f"are not in {names.NEW_TABLE} (e.g. {', '.join(missing[:5])}): the "
                     f"order book names users the database does not have", evidence)
    return Check("redis_owners", title, PASS,
                 f"{len(owners)} owners of {len(sample)} sampled orders all exist", evidence)


def _move_check(ks: Keyspace, rule: MoveKey, expected: dict[str, Any] | None) -> Check:
    title = f"Per-owner keys moved to {rule.target}, as many and as full as the dry run said"
    left, _ = family_size(ks, rule.source)
    keys_n, members = family_size(ks, rule.target)
    result = {"source_keys_left": left, "target_keys": keys_n, "target_members": members,
              "expected": expected}
    evidence = {"query": f"SCAN MATCH {rule.source} and {rule.target}; ZCARD/SCARD/HLEN",
                "result": result}
    if left:
        return Check("redis_moved", title, FAIL,
                     f"{left} keys still under {rule.source}: {STEP}", evidence)
    if expected is None:
        return Check("redis_moved", title, WARN,
                     f"{keys_n} keys, {members} members under {rule.target}; no dry run of "
                     f"this Redis is journaled for this database, so the counts are not "
                     f"compared (run the dry run before the migration)", evidence)
    want = (int(expected.get("expected_keys_after", 0)),
            int(expected.get("expected_members_after", 0)))
    if (keys_n, members) != want:
        return Check("redis_moved", title, FAIL,
                     f"{keys_n} keys with {members} members under {rule.target}, the dry run "
                     f"expected {want[0]} keys with {want[1]} members (an application "
                     f"writing meanwhile, or keys lost)", evidence)
    return Check("redis_moved", title, PASS,
                 f"{keys_n} keys with {members} members, as the dry run expected", evidence)


def _deleted_check(ks: Keyspace, rule: DeleteKeys) -> Check:
    title = f"No cache keys {rule.pattern} left in Redis"
    left = [key for _node, keys in ks.scan(rule.pattern) for key in keys]
    evidence = {"query": f"SCAN MATCH {rule.pattern} on {ks.describe()}",
                "result": {"count": len(left), "samples": [_text(k) for k in left[:5]]}}
    if left:
        return Check("redis_keys", title, FAIL, f"{len(left)} keys (e.g. "
                     f"{', '.join(_text(k) for k in left[:3])}): {STEP}", evidence)
    return Check("redis_keys", title, PASS, f"none in {ks.describe()}", evidence)


def _orders_all_check(ks: Keyspace, expected: dict[str, Any] | None) -> Check:
    title = "orders:all is unchanged by the migration"
    now = orders_all(ks)
    before = (expected or {}).get("orders_all")
    evidence = {"query": "SSCAN orders:all (count and CRC32 sum of the members)",
                "result": {"now": now, "dry_run": before}}
    if expected is None:
        return Check("redis_orders_all", title, WARN,
                     f"{(now or {}).get('members', 0)} orders; no dry run journaled to "
                     f"compare with", evidence)
    if now != before:
        return Check("redis_orders_all", title, FAIL,
                     f"orders:all is {now}, the dry run saw {before}", evidence)
    return Check("redis_orders_all", title, PASS,
                 f"{(now or {}).get('members', 0)} orders, as in the dry run", evidence)
