"""The proofs of backups recorded in the run journals (wizard.core.prove writes them)."""

from __future__ import annotations

from typing import Any

from wizard.core.connection import PgSettings
from wizard.core.journal import Journal, runs_for


def proofs_of(settings: PgSettings, sha256: str, journals: list[Journal] | None = None
              ) -> list[dict[str, Any]]:
    """Every recorded proof of the backup with this sha256, newest first."""
    found = []
    for journal in journals if journals is not None else runs_for(settings):
        for event in journal.events("backup_proven"):
            if event.get("sha256") == sha256:
                found.append({**event, "journal": str(journal.folder)})
    return sorted(found, key=lambda e: str(e.get("ts", "")), reverse=True)
