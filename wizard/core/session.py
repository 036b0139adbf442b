"""One change window: the endpoints, the journal every step writes to, and what each found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.core.connection import PgSettings
from wizard.core.journal import Journal
from wizard.core.profiles import Profile
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES, Rule
from wizard.core.report import record_change


@dataclass
class WizardSession:
    """What the pages share. Passwords live only in the settings objects, in memory."""

    pg: PgSettings
    redis: RedisSettings | None = None
    profile: Profile | None = None
    smoke_password: str | None = field(default=None, repr=False)
    journal: Journal | None = None
    results: dict[str, Any] = field(default_factory=dict)  # step id -> its result object
    # The Redis migration rules in use: the profile's, as the Redis page may have edited them.
    redis_rules: tuple[Rule, ...] = DEFAULT_RULES

    @classmethod
    def from_profile(cls, profile: Profile, pg_password: str | None,
                     redis_password: str | None,
                     smoke_password: str | None = None) -> WizardSession:
        redis = profile.redis_settings(redis_password) if profile.redis_url else None
        return cls(profile.pg_settings(pg_password), redis, profile,
                   smoke_password=smoke_password, redis_rules=profile.redis_rule_list())

    @property
    def title(self) -> str:
        name = self.profile.name if self.profile else "no profile"
        return f"{name} — {self.pg.describe()}"

    @property
    def backup_folder(self) -> Path:
        if self.profile and self.profile.backup_folder:
            return Path(self.profile.backup_folder).expanduser()
        return self.ensure_journal().folder / "backup"

    @property
    def operator(self) -> str:
        return (self.profile.operator if self.profile and self.profile.operator else "") or ""

    @property
    def change_ref(self) -> str:
        return (self.profile.change_ref if self.profile and self.profile.change_ref else "")

    @property
    def reviewer(self) -> str:
        return (self.profile.reviewer if self.profile and self.profile.reviewer else "")

    def ensure_journal(self) -> Journal:
        """The run's journal, created when the first step runs (not when a profile is picked)."""
        if self.journal is None:
            self.journal = Journal.create(self.pg, "wizard")
            # The change board's reference opens the journal, so every report of it names it.
            record_change(self.journal, self.change_ref, self.reviewer, self.operator)
        return self.journal
