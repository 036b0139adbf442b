"""Progress a DBA believes: bytes written by pg_dump, bytes restored, elapsed and ETA."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from psycopg import sql

from wizard.core import backup, restore
from wizard.core.backup import BackupOptions
from wizard.core.connection import PgSettings
from wizard.core.reporting import Progress
from wizard.core.restore_inspect import TocEntry

MiB = 2**20


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Seen:
    def __init__(self) -> None:
        self.updates: list[tuple[float, str]] = []

    def __call__(self, fraction: float, detail: str) -> None:
        self.updates.append((fraction, detail))

    @property
    def fraction(self) -> float:
        return self.updates[-1][0]

    @property
    def detail(self) -> str:
        return self.updates[-1][1]

    def data(self) -> float:
        """The last fraction as a share of the table data (the bar's data span)."""
        return (self.fraction - backup.DATA_START) / (backup.DATA_END - backup.DATA_START)


def grow(path: Path, n: int) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\0" * n)


def dumping(table: str) -> str:
    return f'pg_dump: dumping contents of table "{table}"'


def tracker_for(path: Path, sizes: dict[str, int], seen: Progress, clock: Clock,
                **options: Any) -> backup.DumpProgress:
    return backup.DumpProgress(sizes, options.pop("jobs", 1), seen, path=path, clock=clock,
                               **options)


# --- the estimator, on a fake clock and a file that grows as pg_dump's would ------------


def test_bytes_written_move_the_bar_within_a_table(tmp_path: Path) -> None:
    path, clock, seen = tmp_path / "x.dump", Clock(), Seen()
    path.touch()
    tracker = tracker_for(path, {"public.big": 100 * MiB}, seen, clock, compression="none")
    tracker.tick()
    assert seen.detail.startswith("reading the catalog and the schema · 0 s elapsed")
    grow(path, 4096)  # header and schema
    tracker.line(dumping("public.big"))
    fractions = []
    for _ in range(10):
        clock.advance(1.0)
        grow(path, 4 * MiB)
        tracker.tick()
        fractions.append(seen.data())
    assert fractions == sorted(fractions)
    assert len(set(fractions)) == 10
    # 40 MiB written at the prior 0.8 archive bytes per table byte: half of 100 MiB.
    assert seen.data() == pytest.approx(40 / 0.8 / 100, rel=0.01)
    assert "public.big · written 40.0 MiB at 4.0 MiB/s · 0 of 1 tables" in seen.detail
    assert seen.detail.endswith("10 s elapsed, about 10 s left")


def test_never_zero_bytes_of_while_bytes_are_written(tmp_path: Path) -> None:
    """A table the catalog says is empty (never vacuumed) that holds the data."""
    path, clock, seen = tmp_path / "x.dump", Clock(), Seen()
    path.touch()
    tracker = tracker_for(path, {"public.fresh": 0, "public.old": 5 * MiB}, seen, clock,
                          db_bytes=398 * MiB)
    tracker.line(dumping("public.fresh"))
    for _ in range(20):
        clock.advance(1.0)
        grow(path, 10 * MiB)
        tracker.tick()
        assert not re.search(r"\b0 B of\b", seen.detail)
    assert "written 200 MiB at 10.0 MiB/s" in seen.detail
    # The bar moved through the whole dump of the big table, and never claimed the end.
    data = [(f - backup.DATA_START) / (backup.DATA_END - backup.DATA_START)
            for f, _ in seen.updates]
    assert data == sorted(data)
    assert 0.5 < data[-1] < 0.99
    assert len(set(data)) >= 15


def test_the_ratio_is_measured_on_finished_tables(tmp_path: Path) -> None:
    path, clock, seen = tmp_path / "x.dump", Clock(), Seen()
    path.touch()
    tracker = tracker_for(path, {"public.a": 40 * MiB, "public.b": 60 * MiB}, seen, clock,
                          compression="gzip:1")
    tracker.line(dumping("public.a"))
    clock.advance(4.0)
    grow(path, 8 * MiB)  # compresses to 0.2 of its catalog size
    tracker.line(dumping("public.b"))
    assert tracker.ratio() == pytest.approx((8 + 0.35 * 4) / (40 + 4))
    assert "public.b · written 8.0 MiB" in seen.detail
    assert "1 of 2 tables" in seen.detail
    clock.advance(3.0)
    grow(path, 6 * MiB)  # half of b at the measured ratio
    tracker.tick()
    expected = (40 + 6 / tracker.ratio()) / 100
    assert seen.data() == pytest.approx(expected, rel=1e-6)
    assert seen.detail.endswith(f"7 s elapsed, about "
                                f"{round(7 * (1 - expected) / expected)} s left")
    tracker.data_done()
    assert seen.fraction == backup.DATA_END
    assert seen.detail == "all table data written (14.0 MiB in 7 s); verifying"


def test_parallel_directory_dumps_read_each_finished_table_file(tmp_path: Path) -> None:
    path, clock, seen = tmp_path / "x.dir", Clock(), Seen()
    path.mkdir()
    tracker = tracker_for(path, {"public.a": 10 * MiB, "public.b": 30 * MiB}, seen, clock,
                          jobs=2)
    tracker.line(dumping("public.a"))
    tracker.line(dumping("public.b"))
    assert "public.b and 1 more" in seen.detail
    clock.advance(2.0)
    grow(path / "3347.dat.gz", 2 * MiB)
    grow(path / "3348.dat.gz", 3 * MiB)
    tracker.line("pg_dump: finished item 3347 TABLE DATA a")
    assert tracker.done_out == 2 * MiB  # a's own file, not b's bytes
    assert tracker.ratio() == pytest.approx((2 + 0.35 * 4) / (10 + 4))
    assert "1 of 2 tables" in seen.detail
    assert "written 5.0 MiB at 2.5 MiB/s" in seen.detail
    before = seen.fraction
    clock.advance(1.0)
    grow(path / "3348.dat.gz", 2 * MiB)
    tracker.tick()
    assert seen.fraction > before


def test_without_a_file_it_still_moves_by_the_clock() -> None:
    clock, seen = Clock(), Seen()
    tracker = backup.DumpProgress({"public.a": 100, "public.b": 300}, 1, seen, clock=clock)
    tracker.line(dumping("public.a"))
    clock.advance(0.5)
    tracker.tick()
    assert "written" not in seen.detail
    assert "public.a · 0 of 2 tables · 0 s elapsed" in seen.detail


# --- a real pg_dump ----------------------------------------------------------------------


def add_big_table(settings: PgSettings, rows: int) -> None:
    """A table of md5 text (hard to compress), never vacuumed: the catalog says 0 pages."""
    with settings.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE public.big_history (id bigint, a text, b text, c text)")
        conn.execute(sql.SQL(
            "INSERT INTO public.big_history SELECT g, md5(g::text), md5((g * 7)::text), "
            "md5((g * 13)::text) FROM generate_series(1, {}) g").format(sql.Literal(rows)))


@pytest.mark.slow
def test_a_real_dump_moves_the_bar_while_the_big_table_is_written(
        pg_db: PgSettings, tmp_path: Path) -> None:
    add_big_table(pg_db, 120_000)
    plan = backup.prepare(pg_db, BackupOptions(out_dir=tmp_path, compression="gzip:6"))
    assert plan.table_bytes["public.big_history"] == 0
    seen = Seen()
    lines: list[tuple[str, str]] = []
    result = backup.run(plan, report=lambda lv, m: lines.append((lv, m)), progress=seen)
    assert result.verified, result.error
    assert result.size_bytes > 2 * MiB
    during = [(f, d) for f, d in seen.updates if d.startswith("public.big_history")]
    assert len({f for f, _ in during}) > 2, during
    assert all(not re.search(r"\b0 B of\b", d) for _, d in seen.updates)
    # Every reading of the big table says how much is written (and, after half a second of
    # data, at what rate: the clock-driven tests above check that text; a real dump on a
    # fast machine can write this table in less).
    shape = r"^public\.big_history · written \d+(\.\d)? (B|KiB|MiB)( at [\d.]+ [KM]iB/s)? · "
    assert all(re.search(shape, d) for _, d in during), during
    fractions = [f for f, _ in seen.updates]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    step = next(m for lv, m in lines if lv == "step" and m.startswith("pg_dump "))
    command = step.split("): ", 1)[1]
    argv = shlex.split(command)
    assert argv[:len(plan.argv)] == plan.argv
    assert pg_db.password
    assert pg_db.password not in step
    assert not any(pg_db.password in a for a in argv)
    check = next(m for lv, m in lines if lv == "step" and m.startswith("verifying "))
    assert check.endswith(shlex.join([str(plan.pg_restore.path), "--list", str(plan.path)]))


# --- restore: the bytes the new database grows by, and the phase -------------------------


def restore_plan(estimate: int, entries: list[tuple[str, str]]) -> Any:
    """What _Progress reads of a plan: the archive's entries and the size expected."""
    toc = [TocEntry(desc, "public", tag, "owner") for desc, tag in entries]
    return SimpleNamespace(
        inspection=SimpleNamespace(toc_entries=len(toc), size_bytes=1, entries=toc),
        space=SimpleNamespace(estimate=estimate), live_props={"size": estimate})


ENTRIES = [("TABLE", "big"), ("TABLE", "small"), ("TABLE DATA", "big"),
           ("TABLE DATA", "small"), ("CONSTRAINT", "big big_pkey"), ("INDEX", "big_t_idx"),
           ("FK CONSTRAINT", "small small_fk"), ("COMMENT", "x"), ("ACL", "y")]


def test_restore_progress_follows_the_bytes_restored_and_names_the_phase() -> None:
    clock, seen = Clock(), Seen()
    sizes = [8 * MiB]  # a fresh database from template0

    def sizer() -> int:
        return sizes[-1]

    tracker = restore._Progress(restore_plan(108 * MiB, ENTRIES), None, seen, sizer=sizer,
                                clock=clock)
    tracker.start()
    tracker.line("stderr", 'pg_restore: creating TABLE "public.big"')
    assert seen.detail == "creating the schema · 0 s elapsed"
    tracker.line("stderr", 'pg_restore: processing data for table "public.big"')
    fractions = []
    for _ in range(8):  # the big table loads: TOC items stand still, the bytes do not
        clock.advance(1.0)
        sizes.append(sizes[-1] + 10 * MiB)
        tracker.tick()
        fractions.append(seen.fraction)
    assert fractions == sorted(fractions)
    assert len(set(fractions)) == 8
    assert seen.fraction == pytest.approx(0.8)
    assert seen.detail == ("loading data: public.big (1 of 2 tables) · 80.0 MiB restored of "
                           "about 100 MiB · 8 s elapsed, about 2 s left")
    tracker.line("stderr", 'pg_restore: processing data for table "public.small"')
    tracker.line("stderr", 'pg_restore: creating CONSTRAINT "public.big big_pkey"')
    tracker.line("stderr", 'pg_restore: creating INDEX "public.big_t_idx"')
    assert seen.detail.startswith("building indexes and constraints: 2 of 3 (public.big_t_idx)")
    # The copy ends up smaller than the estimate (the live database's bloat): the indexes
    # done still move the bar.
    assert seen.fraction == pytest.approx(0.8 + 0.2 * 1 / 3)
    clock.advance(1.0)
    tracker.line("stderr", 'pg_restore: creating FK CONSTRAINT "public.small small_fk"')
    assert seen.fraction == pytest.approx(0.8 + 0.2 * 2 / 3)
    assert all(f < 1 for f, _ in seen.updates)


def test_restore_progress_without_a_size_reading_counts_items() -> None:
    seen = Seen()
    tracker = restore._Progress(restore_plan(10 * MiB, ENTRIES), None, seen,
                                sizer=lambda: None)
    tracker.start()
    tracker.line("stderr", 'pg_restore: creating TABLE "public.big"')
    tracker.line("stderr", 'pg_restore: processing data for table "public.big"')
    assert seen.fraction == pytest.approx(2 / len(ENTRIES))
    assert seen.detail.startswith("loading data: public.big (1 of 2 tables) · 2 of 9 items")


@pytest.mark.slow
def test_a_real_restore_moves_by_bytes_and_names_its_phases(
        pg_db: PgSettings, tmp_path: Path, restore_template: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Big enough that its COPY spans several of run_program's 0.1 s ticks on a quiet
    # machine (200k rows loaded between two size readings there).
    add_big_table(pg_db, 600_000)
    with pg_db.connect(autocommit=True) as conn:
        conn.execute("CREATE INDEX big_history_a ON public.big_history (a)")
        conn.execute("CREATE INDEX big_history_b ON public.big_history (b)")
    made = backup.run(backup.prepare(pg_db, BackupOptions(out_dir=tmp_path)))
    assert made.verified, made.error
    monkeypatch.setattr(restore._Progress, "SAMPLE_S", 0.1)  # a small database restores fast
    # One job: its lines arrive in order. Two jobs share one stderr, and under load their
    # prefixes interleave (see restore_fk.violated_keys), which made this test flaky.
    plan = restore.prepare(pg_db, made.path,
                           restore.RestoreOptions(template=restore_template, jobs=1))
    seen = Seen()
    lines: list[str] = []
    result = restore.run(plan, confirm=pg_db.dbname, progress=seen,
                         report=lambda _lv, m: lines.append(m))
    assert result.ok, result.error
    fractions = [f for f, _ in seen.updates]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    details = [d for _, d in seen.updates]
    loading = [(f, d) for f, d in seen.updates
               if d.startswith("loading data: public.big_history")]
    assert len({f for f, _ in loading}) > 2, "\n".join(map(str, seen.updates))
    assert any(re.search(r" MiB restored of about [\d.]+ MiB", d) for _, d in loading)
    assert any(d.startswith("building indexes and constraints: ") for d in details)
    assert any(d.startswith("creating the schema") for d in details)
    assert all(re.search(r"\d+ s elapsed", d) for d in details[:-1])
    step = next(m for m in lines if m.startswith(f"restoring {plan.inspection.path} into "))
    assert shlex.split(step.split(": ", 1)[1]) == plan.argv()
    assert pg_db.password
    assert pg_db.password not in step
