"""The verify step: the guide's automated checklist over the database, Redis and the app."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from wizard.core import jobs, orphans
from wizard.core.connection import PgSettings
from wizard.core.events import Verified
from wizard.core.journal import Journal
from wizard.core.profiles import Profile
from wizard.core.redis_conn import RedisSettings
from wizard.core.redis_rules import DEFAULT_RULES, Rule
from wizard.core.redis_verify import redis_checks
from wizard.core.reporting import Progress, Report, check_cancel, no_progress, no_report
from wizard.core.smoke import SmokeSettings, login_check
from wizard.core.verify import FAIL, PASS, WARN, Check

SMOKE_SKIPPED = ("no application base URL and test account in the profile: the login smoke "
                 "check is skipped")


def smoke_settings(profile: Profile | None, password: str | None) -> SmokeSettings | None:
    """The login smoke check a profile asks for (its base URL and test account), or None.
    One reading for the Verify page and `enerlink-migrate verify`, so both run the same."""
    if profile is None or not (profile.smoke_base_url and profile.smoke_user):
        return None
    return SmokeSettings(profile.smoke_base_url, profile.smoke_user, password)


def orphan_check(scan: orphans.OrphanScan) -> Check:
    title = "No orphan rows in the columns that refer to user"
    if scan.clean:
        return Check("no_orphans", title, PASS, f"{len(scan.columns)} columns scanned, none",
                     {"query": "anti-join of each referencing column against the parent key",
                      "result": scan.journal_record()})
    dirty = [f"{c.label}: {c.count}" for c in scan.columns if c.count]
    return Check("no_orphans", title, FAIL, "; ".join(dirty),
                 {"query": "anti-join of each referencing column against the parent key",
                  "result": scan.journal_record()})


def final_checklist(pg: PgSettings, redis: RedisSettings | None = None,
                    smoke: SmokeSettings | None = None, *,
                    rules: Sequence[Rule] = DEFAULT_RULES,
                    report: Report = no_report, progress: Progress = no_progress,
                    cancel: threading.Event | None = None,
                    journal: Journal | None = None) -> list[Check]:
    """Every automated check of the guide, each with its evidence; written to the journal.
    The Verify page and `enerlink-migrate verify` both run exactly this, in this order."""
    report("step", "checking the catalog and row counts")
    progress(0.05, "catalog")
    checks = jobs.verify(pg)
    check_cancel(cancel, "verification")
    report("step", "scanning for orphan rows")
    progress(0.4, "orphans")
    checks.append(orphan_check(orphans.scan(pg, cancel=cancel)))
    check_cancel(cancel, "verification")
    report("step", "checking the application's Redis data against its dry run")
    progress(0.8, "Redis")
    checks += redis_checks(redis, pg, rules, cancel)
    if smoke is not None:
        report("step", f"logging in to {smoke.base_url} as {smoke.email}")
        checks.append(login_check(smoke))
    else:
        report("info", SMOKE_SKIPPED)
    for c in checks:
        level = "error" if c.status == FAIL else "warn" if c.status == WARN else "info"
        report(level, f"{c.status.upper()} {c.title}: {c.detail}")
    if journal is not None:
        journal.record(Verified([c.to_dict() for c in checks]))
    progress(1.0, "done")
    return checks
