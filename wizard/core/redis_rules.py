"""What the rename means for the application's Redis data, as rules a DBA can read and edit.

EnerLink keeps its live order book in Redis: `orders:{id}` hashes whose owner is the field
`prosumerId` (after the rename `userId`), and one sorted set of order ids per owner,
`orders:by_prosumer:{id}` (after: `orders:by_user:{id}`). Those are migrated, not deleted;
only pure cache families (`prosumer:*`) are deleted. A rule is data: shown, stored in the
profile, checked before anything runs, and inverted for a revert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GLOB_CHARS = "*?[\\"
# Families the application owns that no rename touches: a rule reaching them must be typed.
PROTECTED = ("telemetry:", "price:")


class RuleError(ValueError):
    """A rule that is malformed or would touch more than it should; says which and why."""


def literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard."""
    first = min((i for i, ch in enumerate(pattern) if ch in GLOB_CHARS), default=len(pattern))
    return pattern[:first]


@dataclass(frozen=True)
class RenameField:
    """In every hash matching `pattern` that has `old`, the field becomes `new` (its value
    kept); keys of other types, and hashes without `old`, are left alone."""

    pattern: str
    old: str
    new: str
    kind = "rename_field"

    def describe(self) -> str:
        return f"rename hash field {self.old} → {self.new} in {self.pattern} hashes"

    def inverse(self) -> RenameField:
        return RenameField(self.pattern, self.new, self.old)

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.pattern,)


@dataclass(frozen=True)
class MoveKey:
    """Every key `source`* becomes `target`* with the same ending (members, scores and TTL
    kept); merged into the target when the new application already created it."""

    source: str  # "orders:by_prosumer:*"
    target: str  # "orders:by_user:*"
    kind = "move_key"

    @property
    def source_prefix(self) -> str:
        return self.source[:-1]

    @property
    def target_prefix(self) -> str:
        return self.target[:-1]

    def target_of(self, key: bytes) -> bytes:
        return self.target_prefix.encode() + key[len(self.source_prefix.encode()):]

    def describe(self) -> str:
        return f"move {self.source} → {self.target} (members and scores kept, merged)"

    def inverse(self) -> MoveKey:
        return MoveKey(self.target, self.source)

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.source, self.target)


@dataclass(frozen=True)
class DeleteKeys:
    """Pure cache keys: the application rebuilds them, so they are deleted (UNLINK)."""

    pattern: str
    kind = "delete"

    def describe(self) -> str:
        return f"delete cache keys {self.pattern}"

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.pattern,)


Rule = RenameField | MoveKey | DeleteKeys

DEFAULT_RULES: tuple[Rule, ...] = (
    RenameField("orders:*", "prosumerId", "userId"),
    MoveKey("orders:by_prosumer:*", "orders:by_user:*"),
    DeleteKeys("prosumer:*"),
)
ORDER = {"rename_field": 0, "move_key": 1, "delete": 2}


def to_dict(rule: Rule) -> dict[str, str]:
    if isinstance(rule, RenameField):
        return {"kind": rule.kind, "pattern": rule.pattern, "old": rule.old, "new": rule.new}
    if isinstance(rule, MoveKey):
        return {"kind": rule.kind, "source": rule.source, "target": rule.target}
    return {"kind": rule.kind, "pattern": rule.pattern}


def from_dict(data: dict[str, Any]) -> Rule:
    kind = data.get("kind")
    try:
        if kind == "rename_field":
            return RenameField(str(data["pattern"]), str(data["old"]), str(data["new"]))
        if kind == "move_key":
            return MoveKey(str(data["source"]), str(data["target"]))
        if kind == "delete":
            return DeleteKeys(str(data["pattern"]))
    except KeyError as exc:
        raise RuleError(f"Redis rule {data!r} lacks {exc.args[0]!r}") from None
    raise RuleError(f"unknown Redis rule kind {kind!r}: expected rename_field, move_key or "
                    f"delete")


def to_text(rule: Rule) -> str:
    """One line a person can edit: `field PATTERN OLD=NEW`, `move SRC TARGET`,
    `delete PATTERN`."""
    if isinstance(rule, RenameField):
        return f"field {rule.pattern} {rule.old}={rule.new}"
    if isinstance(rule, MoveKey):
        return f"move {rule.source} {rule.target}"
    return f"delete {rule.pattern}"


def parse(text: str) -> Rule:
    """The inverse of to_text; a line that does not parse says what was expected."""
    words = text.split()
    if len(words) == 3 and words[0] == "field" and words[2].count("=") == 1:
        old, new = words[2].split("=")
        return RenameField(words[1], old, new)
    if len(words) == 3 and words[0] == "move":
        return MoveKey(words[1], words[2])
    if len(words) == 2 and words[0] == "delete":
        return DeleteKeys(words[1])
    raise RuleError(f"cannot read the Redis rule {text.strip()!r}: write `field PATTERN "
                    f"OLD=NEW`, `move SOURCE* TARGET*` or `delete PATTERN`")


def _check_pattern(pattern: str, rule: Rule, allow: Sequence[str]) -> None:
    what = to_text(rule)
    if not pattern.strip():
        raise RuleError(f"Redis rule `{what}` has an empty pattern")
    prefix = literal_prefix(pattern)
    if not prefix:
        raise RuleError(f"Redis rule `{what}`: pattern {pattern!r} has no literal prefix and "
                        f"could match every key of the db; name the key family (e.g. "
                        f"'orders:by_prosumer:*')")
    for family in PROTECTED:
        if (family.startswith(prefix) or prefix.startswith(family)) and family not in allow:
            raise RuleError(f"Redis rule `{what}` could touch the application's {family}* "
                            f"keys, which the rename does not concern; to mean it, type the "
                            f"family ({family}) to allow it")


def validate(rules: Iterable[Rule], allow: Sequence[str] = ()) -> tuple[Rule, ...]:
    """The rules in the order they run (field renames, moves, deletes), each checked:
    literal prefixes, no protected family unless typed in `allow`, no duplicates, moves
    between two distinct `prefix*` families."""
    checked: list[Rule] = []
    for rule in rules:
        for pattern in rule.patterns:
            _check_pattern(pattern, rule, allow)
        if isinstance(rule, RenameField) and (not rule.old or not rule.new
                                              or rule.old == rule.new):
            raise RuleError(f"Redis rule `{to_text(rule)}` must rename a field to another "
                            f"name")
        if isinstance(rule, MoveKey):
            for pattern in (rule.source, rule.target):
                if not pattern.endswith("*") or literal_prefix(pattern) != pattern[:-1]:
                    raise RuleError(f"Redis rule `{to_text(rule)}`: a move takes two "
                                    f"patterns of the form prefix* (got {pattern!r})")
            a, b = rule.source_prefix, rule.target_prefix
            if a.startswith(b) or b.startswith(a):
                raise RuleError(f"Redis rule `{to_text(rule)}`: the source and target "
                                f"families overlap, so moved keys would match again")
        if rule not in checked:
            checked.append(rule)
    if not checked:
        raise RuleError("no Redis rule given")
    return tuple(sorted(checked, key=lambda r: ORDER[r.kind]))


def inverse(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    """The rules that take the data back to the old names (revert, restore of a pre-rename
    backup). Deleted cache keys are not brought back: the old application rebuilds them."""
    back: list[Rule] = [r.inverse() for r in rules if not isinstance(r, DeleteKeys)]
    return tuple(sorted(back, key=lambda r: ORDER[r.kind]))
