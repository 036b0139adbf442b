"""What the rename changes, and the names TypeORM gives keys and indexes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

OLD_TABLE = "prosumer"
NEW_TABLE = "user"
OLD_KEY = "prosumer_id"
NEW_KEY = "user_id"

# TypeORM's history row for the rename, and the names that also count as "already applied"
# (the guide's helper script wrote ...1730534400000).
MIGRATION_TIMESTAMP = 1761992645605
MIGRATION_NAME = "RenameProsumerToUser1761992645605"
ALSO_APPLIED = ("RenameProsumerToUser1730534400000",)


@dataclass(frozen=True)
class Place:
    """A column that holds a prosumer's id: the key itself or one referring to it."""

    table: str
    old: str
    new: str

    @property
    def label(self) -> str:
        return f"{self.table}.{self.old}"


# The seven referencing columns, in six tables (the key of prosumer is the eighth column).
REFERENCING = (
    Place("wallet", "prosumer_id", "user_id"),
    Place("smart_meter", "prosumer_id", "user_id"),
    Place("transaction_log", "prosumer_id", "user_id"),
    Place("market_trade", "buyer_prosumer_id", "buyer_user_id"),
    Place("market_trade", "seller_prosumer_id", "seller_user_id"),
    Place("idrs_conversion", "prosumer_id", "user_id"),
    Place("token_blacklist", "prosumer_id", "user_id"),
)
CHILD_TABLES = tuple(dict.fromkeys(p.table for p in REFERENCING))

# What the entities declare: token_blacklist cascades, every other relation is NO ACTION.
EXPECTED_ON_DELETE = {p.label: ("c" if p.table == "token_blacklist" else "a")
                      for p in REFERENCING}

# The names production has before the rename (hashes of the old plural table names), so a
# revert without a journal still gives them back.
ORIGINAL_NAMES: dict[tuple[str, str, tuple[str, ...]], str] = {
    ("pk", OLD_TABLE, (OLD_KEY,)): "PK_3ae412f5b4dcb9072bc6fe6815d",
    ("fk", "wallet", ("prosumer_id",)): "FK_62a1a16628b883318e6b443cf52",
    ("fk", "smart_meter", ("prosumer_id",)): "FK_15c4c55f7a7ac1a93ae9a06a6c4",
    ("fk", "transaction_log", ("prosumer_id",)): "FK_c610529db3b0d2fa571fcb32c0c",
    ("fk", "market_trade", ("buyer_prosumer_id",)): "FK_e5d6128781fecd5e123649fd47b",
    ("fk", "market_trade", ("seller_prosumer_id",)): "FK_028c93bfb292f998635a701742d",
    ("fk", "idrs_conversion", ("prosumer_id",)): "FK_ca221ee5d35d43d27e8e2d0b799",
    ("fk", "token_blacklist", ("prosumer_id",)): "FK_1a320f4470d1b5517ee5553b66b",
    ("idx", "token_blacklist", ("prosumer_id",)): "IDX_1a320f4470d1b5517ee5553b66",
}

_TYPEORM_HASH = re.compile(r"^(?:(PK|FK)_[0-9a-f]{27}|(IDX)_[0-9a-f]{26})$")
_PREFIX = {"pk": ("PK_", 27), "fk": ("FK_", 27), "idx": ("IDX_", 26)}


def typeorm_name(kind: str, table: str, columns: tuple[str, ...] | list[str]) -> str:
    """DefaultNamingStrategy: prefix + sha1('<table>_<sorted columns joined by _>')."""
    prefix, length = _PREFIX[kind]
    key = f"{table.replace('.', '_')}_{'_'.join(sorted(columns))}"
    return prefix + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:length]


def is_typeorm_hash(name: str) -> bool:
    return bool(_TYPEORM_HASH.match(name))


def renamed(name: str, kind: str, table: str, columns: tuple[str, ...] | list[str]) -> str:
    """The name an object gets after the rename, given its table and columns afterwards.

    A TypeORM hash becomes the hash TypeORM computes for the new table and columns; a name
    that mentions prosumer gets user instead; any other name is kept.
    """
    if is_typeorm_hash(name):
        return typeorm_name(kind, table, columns)
    return swap_word(name, "prosumer", "user")


def swap_word(name: str, old: str, new: str) -> str:
    """Replace old by new in a name, keeping its case: prosumer/Prosumer/PROSUMER."""
    for a, b in ((old, new), (old.capitalize(), new.capitalize()), (old.upper(), new.upper())):
        name = name.replace(a, b)
    return name


def column_after(table: str, column: str) -> str:
    """A column's name after the rename (unchanged when it is not one of the eight)."""
    if table in (OLD_TABLE, NEW_TABLE) and column == OLD_KEY:
        return NEW_KEY
    for place in REFERENCING:
        if place.table == table and place.old == column:
            return place.new
    return column


def column_before(table: str, column: str) -> str:
    if table in (OLD_TABLE, NEW_TABLE) and column == NEW_KEY:
        return OLD_KEY
    for place in REFERENCING:
        if place.table == table and place.new == column:
            return place.old
    return column
