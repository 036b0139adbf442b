"""The SQL files a DBA can read are found and parsed the same way everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from wizard.core import resources, sqlfiles


def test_fixture_has_pre_and_post_data_sections() -> None:
    parts = sqlfiles.sections("fixtures/enerlink_pre_rename.sql")
    assert list(parts) == ["pre-data", "post-data"]
    assert "CREATE TABLE public.prosumer" in parts["pre-data"]
    assert "FOREIGN KEY" not in parts["pre-data"]
    assert parts["post-data"].count("REFERENCES public.prosumer (prosumer_id)") == 7


def test_named_queries_are_split_by_name() -> None:
    found = sqlfiles.queries("catalog/fingerprint.sql")
    assert {"tables", "columns", "constraints", "indexes", "triggers"} <= set(found)
    assert found["tables"].lstrip().startswith("SELECT")
    assert "-- name:" not in "".join(found.values())


def test_unknown_query_names_the_file() -> None:
    with pytest.raises(KeyError, match=r"fingerprint\.sql has no query named 'nope'"):
        sqlfiles.query("catalog/fingerprint.sql", "nope")


def test_missing_resource_says_reinstall() -> None:
    with pytest.raises(resources.ResourceMissing, match="reinstall enerlink-migrate"):
        resources.resource_path("sql", "no-such-file.sql")


def test_shipped_files_are_found_inside_the_package() -> None:
    """One lookup everywhere: the wizard package's own folder holds sql/ and resources/."""
    import wizard
    assert resources.resource_root() == Path(wizard.__file__).parent
    assert resources.resource_path("sql", "catalog", "discovery.sql").is_file()
    assert resources.resource_path("resources", "icons", "enerlink-migrate.svg").is_file()
