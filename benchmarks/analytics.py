"""``python -m benchmarks.analytics``: alert history at scale — exports, the partitioned copy, DuckDB, reports.

Issue 10's scale benchmark.  It seeds ``--alerts`` alerts (default 1,000,000) of
one analyst's 10 streams over 30 days with six injected bursts
(:mod:`benchmarks.history_data`: bulk Core inserts of the real models), and a
neighbour's small history beside them, then measures each reader of that
history the way a user meets it:

1. **exports**: ``relay export --format parquet|csv|json`` of the whole
   database, each in a process of its own (the real CLI), so that its wall
   time and its peak RSS are that process's alone (its ``VmHWM``, read from
   ``/proc`` while it runs); the Parquet file's row groups.
   The same three exports of a second database of ``--small`` alerts (100,000)
   say how memory grows with the row count.
2. **partitioned**: ``relay export --partitioned DIR``, then one more day of
   alerts stored and the same command again (the incremental run).
3. **queries**: every named query of :mod:`relay.history.analytics` over that
   folder, for the analyst (as ``GET /api/analytics/{name}`` asks): first run
   and the mean of ``--repeats`` more; then the pandas reference
   (:mod:`benchmarks.analytics_reference`) on the same files, its load apart
   from its query time; both in processes of their own (their peak RSS is
   theirs).  Every answer is compared with the reference as the tests compare
   them (:func:`~benchmarks.analytics_reference.same_rows`).
4. **http**: ``relay serve`` on the database; the analyst downloads
   ``GET /api/alerts/export`` in each format while the neighbour reads their
   page 1 every 50 ms: time to first byte, the server's RSS idle, during (peak)
   and after, the neighbour's p50/p99.
5. **report**: ``relay report`` for the analyst, with no analytics copy yet
   (it writes one) and again with the copy current.
6. **browser**: the workbench on the database, Chromium logged in as the
   analyst, from the click on "Analytics" to the status line and the six
   charts drawn (needs Chromium; off in ``--smoke``).

Each figure is printed with issue 10's target and whether this run met it;
``--json FILE`` keeps every raw figure.  Nothing is asserted but the answers
(a wrong answer, a failed command or a file with the wrong row count is an
error and the exit status 1): a shared machine gives no stable times.
``--smoke`` runs every step but the browser at 20,000 alerts in about a minute (what
``tests/examples/test_analytics_benchmark_smoke.py`` runs, so it cannot rot).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import http.client
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from benchmarks.procstat import memory, pid_listening_on, reset_peak
from benchmarks.relays import free_port

REPO: Final = Path(__file__).resolve().parent.parent
STEPS: Final = ("exports", "partitioned", "queries", "http", "report", "browser")
FORMATS: Final = ("parquet", "csv", "json")
ANALYST: Final = "analyst"
NEIGHBOUR: Final = "neighbour"
PASSWORD: Final = "bench analytics"
"""The analyst's password, for the browser step's login."""
DAYS: Final = 30
MAX_ROW_GROUP: Final = 128 * 1024
NEIGHBOUR_PAUSE: Final = 0.05
"""Seconds between the neighbour's page-1 reads during an HTTP export: a person clicking, not a load test."""
AFTER_SECONDS: Final = 3.0
"""How long after an HTTP export the server's RSS is read as "after"."""
CHILD_TIMEOUT: Final = 3600.0
LARGE: Final = 5_000_000
"""From this many alerts the queries are judged by issue 10's 10M targets (≤ 2 s each, DuckDB ≤ 1 GB)."""


# ---------------------------------------------------------------------------- figures


@dataclass(slots=True)
class Check:
    """A line of the summary: a step's figure, issue 10's target for it, and whether this run met it."""

    step: str
    figure: str
    target: str = ""
    met: bool | None = None
    """None where the issue sets no target for this figure (it is informative)."""


@dataclass(slots=True)
class Results:
    """Everything measured: the summary lines, the raw figures by step, and the errors (wrong answers)."""

    checks: list[Check] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def check(self, step: str, figure: str, target: str = "", met: bool | None = None) -> None:
        self.checks.append(Check(step, figure, target, met))
        verdict = "" if met is None else (" [met]" if met else " [MISSED]")
        print(f"{step}: {figure}{f' (target {target})' if target else ''}{verdict}", file=sys.stderr, flush=True)

    def error(self, problem: str) -> None:
        self.errors.append(problem)
        print(f"ERROR: {problem}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Child:
    """A finished child process: wall time, its own peak RSS, exit status and output."""

    seconds: float
    peak_mb: float
    returncode: int
    output: str


def run_child(command: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = CHILD_TIMEOUT) -> Child:
    """Run one command to its end in a process of its own: its wall time and its own peak RSS.

    Peak RSS is the child's ``VmHWM`` (``/proc/PID/status``), read every 10 ms
    while it runs: the high-water mark of the memory of the program it
    executed, and never lower than any earlier reading, so the last reading
    before it exits is its peak (give or take the last 10 ms).  Not
    ``ru_maxrss``: Linux records there, at ``exec``, the high-water mark of the
    memory the child was forked with, i.e. this benchmark's own peak, so every
    child would seem at least as big as the benchmark has ever been.
    """
    with tempfile.TemporaryFile() as log:
        began = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        deadline = time.monotonic() + timeout
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            if time.monotonic() > deadline:
                process.kill()
            time.sleep(0.01)
        seconds = time.perf_counter() - began
        log.seek(0)
        output = log.read().decode(errors="replace")
    return Child(seconds, peak_kb / 1024, process.returncode, output)


def _high_water_kb(pid: int) -> int:
    """``VmHWM`` of a running process in kB (0 before its ``exec`` is done or once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def relay_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "relay", *arguments]


def _ok(results: Results, what: str, child: Child) -> bool:
    if child.returncode != 0:
        results.error(f"{what} exited with {child.returncode}: {child.output[-2000:]}")
        return False
    return True


# ---------------------------------------------------------------------------- the database


@contextlib.contextmanager
def database(kind: str, folder: Path, name: str) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file in ``folder``, or a new schema of PostgreSQL (dropped after)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / name}.db"
        _migrate(url)
        yield url
        return
    import psycopg

    base = os.environ.get("RELAY_BENCH_POSTGRES_URL") or os.environ.get(
        "RELAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        # pg_trgm in public, or the migration would put it in this schema and the drop below take it along
        with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    try:
        _migrate(url)
        yield url
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _migrate(url: str) -> None:
    from relay.store import Store

    async def migrate() -> None:
        await (await Store.open(url)).close()

    asyncio.run(migrate())


@dataclass(slots=True)
class Seeding:
    """What was stored, and for whom."""

    seeded: Any  # benchmarks.history_data.Seeded of the analyst
    neighbour_alerts: int
    seconds: float
    tokens: dict[str, str]

    @property
    def total(self) -> int:
        return int(self.seeded.alerts) + self.neighbour_alerts


def seed(url: str, alerts: int) -> Seeding:
    """The analyst's ``alerts`` over :data:`DAYS` days and a neighbour's 2 % beside them, then tokens for both."""
    from benchmarks.history_data import seed as seed_history
    from relay.store import Store
    from relay.store.database import create_sync_engine

    engine = create_sync_engine(url)
    try:
        began = time.perf_counter()
        seeded = seed_history(engine, alerts, days=DAYS, username=ANALYST)
        neighbour = seed_history(engine, max(200, alerts // 50), streams=2, days=DAYS, bursts=0, username=NEIGHBOUR)
        seconds = time.perf_counter() - began
    finally:
        engine.dispose()

    async def tokens() -> dict[str, str]:
        store = await Store.open(url)  # also brings statistics up to date where the relay keeps them
        try:
            return {
                ANALYST: (await store.users.add_or_issue_token(ANALYST, PASSWORD)).token,
                NEIGHBOUR: (await store.users.add_or_issue_token(NEIGHBOUR)).token,
            }
        finally:
            await store.close()

    return Seeding(seeded, neighbour.alerts, seconds, asyncio.run(tokens()))


def write_copy(folder: Path, alerts: int) -> Seeding:
    """The analyst's history written straight into a partitioned copy, by day, without a database (``--copy-only``).

    The same rows :func:`seed` would store (``history_data.plan``), made into
    record batches by the export's own :func:`relay.history.table.to_batch`
    (as the rows PostgreSQL hands it), :data:`~relay.history.table.ROWS_PER_BATCH`
    rows a row group, one file a day as :mod:`relay.history.partitioned` lays
    them out: what the queries read after ``relay export --partitioned``, made
    in minutes where filling a database of 10M alerts takes most of an hour here.
    """
    from benchmarks.history_data import device_name, plan
    from relay.history import table
    from relay.history.formats import DayWriter
    from relay.history.partitioned import DAY_FILE, partition

    began = time.perf_counter()
    seeded, batches = plan(alerts, days=DAYS, username=ANALYST)
    names = {stream_id: device_name(index) for index, stream_id in enumerate(seeded.stream_ids)}
    pending: list[tuple[Any, ...]] = []
    writer: DayWriter | None = None
    day: datetime.date | None = None
    seq = 0

    def flush() -> None:
        if pending and writer is not None:
            writer.write(table.to_batch(pending, "postgresql"))
            pending.clear()

    for rows in batches:
        for row in rows:
            created: datetime.datetime = row["createdAt"]
            if created.date() != day:
                flush()
                if writer is not None:
                    writer.close()
                day = created.date()
                partition(folder, day).mkdir(parents=True, exist_ok=True)
                writer = DayWriter(partition(folder, day) / DAY_FILE)
            seq += 1
            meta = row["metadata"]
            location = meta["location"]
            pending.append(
                (
                    seq, row["id"], row["streamId"], names[row["streamId"]], seeded.user_id, row["streamSeq"],
                    row["severity"], row["message"], row["timestamp"], created, row["ref"], meta["confidence"],
                    location["x"], location["y"], location["width"], location["height"], meta["objectType"],
                    orjson.dumps(meta).decode(), None, False, False, False, None, None, False, None,
                )
            )  # fmt: skip
            if len(pending) == table.ROWS_PER_BATCH:
                flush()
        seeded.alerts += len(rows)
    flush()
    if writer is not None:
        writer.close()
    return Seeding(seeded, 0, time.perf_counter() - began, {})


# ---------------------------------------------------------------------------- 1. exports


def count_occurrences(path: Path, token: bytes) -> int:
    """How many times ``token`` appears in the file, read a piece at a time (the file may be bigger than memory)."""
    found, carry = 0, b""
    with path.open("rb") as file:
        while piece := file.read(1 << 24):
            data = carry + piece
            found += data.count(token)
            carry = data[-(len(token) - 1) :]
            found -= carry.count(token)  # counted again with the next piece
    return found + carry.count(token)


def exported_rows(path: Path, format: str) -> tuple[int, int]:
    """Rows in an export file, and its largest Parquet row group (0 for CSV and JSON)."""
    if format == "parquet":
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata
        groups = [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]
        return metadata.num_rows, max(groups, default=0)
    if format == "csv":
        return count_occurrences(path, b"\n") - 1, 0  # the header line
    return count_occurrences(path, b'"streamId":'), 0


def measure_exports(results: Results, url: str, folder: Path, rows: int, label: str) -> dict[str, Any]:
    """``relay export`` of the whole database in each format; wall time, rows/s, peak RSS, row groups."""
    figures: dict[str, Any] = {}
    for format in FORMATS:
        out = folder / f"{label}.{format}"
        child = run_child(relay_command("export", "--format", format, "--out", str(out), "--database-url", url))
        if not _ok(results, f"relay export --format {format} ({label})", child):
            continue
        written, largest_group = exported_rows(out, format)
        if written != rows:
            results.error(f"relay export --format {format} ({label}) wrote {written} rows, not {rows}")
        figures[format] = {
            "seconds": child.seconds,
            "rows": written,
            "rows_per_second": rows / child.seconds,
            "peak_mb": child.peak_mb,
            "bytes": out.stat().st_size,
            "largest_row_group": largest_group,
        }
        out.unlink()
    return figures


def judge_exports(
    results: Results, big: dict[str, Any], small: dict[str, Any] | None, rows: int, small_rows: int
) -> None:
    for format, figures in big.items():
        target = 100_000 if format == "parquet" else 40_000
        rate = figures["rows_per_second"]
        results.check(
            "export",
            f"relay export --format {format}: {rows:,} rows in {figures['seconds']:.1f} s = {rate:,.0f} rows/s",
            f"≥ {target:,} rows/s",
            rate >= target,
        )
        results.check(
            "export", f"  {format} peak RSS {figures['peak_mb']:.0f} MB", "≤ 400 MB", figures["peak_mb"] <= 400
        )
        if small is not None and format in small:
            lower = small[format]
            growth = figures["peak_mb"] - lower["peak_mb"]
            extra = figures["seconds"] - lower["seconds"]
            marginal = f"{(rows - small_rows) / extra:,.0f} rows/s" if extra > 0.5 else "(too close to tell)"
            results.check(
                "export",
                f"  {format} peak RSS {lower['peak_mb']:.0f} MB at {small_rows:,} → {figures['peak_mb']:.0f} MB at "
                f"{rows:,} ({growth:+.0f} MB); {small_rows:,} rows took {lower['seconds']:.1f} s, so the rows beyond "
                f"ran at {marginal}",
                "≤ +100 MB",
                growth <= 100,
            )
        if format == "parquet":
            group = figures["largest_row_group"]
            results.check("export", f"  largest Parquet row group {group:,} rows", "≤ 131,072", group <= MAX_ROW_GROUP)


# ---------------------------------------------------------------------------- 2. partitioned


def folder_rows(folder: Path) -> tuple[int, int, int]:
    """Rows, day files and largest row group of a partitioned folder."""
    import pyarrow.parquet as pq

    rows, largest = 0, 0
    files = sorted(folder.glob("date=*/*.parquet"))
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        rows += metadata.num_rows
        largest = max([largest, *(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))])
    return rows, len(files), largest


def measure_partitioned(results: Results, url: str, folder: Path, seeding: Seeding) -> dict[str, Any] | None:
    """``relay export --partitioned`` from nothing, then after one more day stored (the incremental run)."""
    from benchmarks.history_data import add_days
    from relay.history.partitioned import refresh
    from relay.history.service import EVERYONE
    from relay.store.database import create_sync_engine

    command = relay_command("export", "--partitioned", str(folder), "--database-url", url)
    full = run_child(command)
    if not _ok(results, "relay export --partitioned", full):
        return None
    rows, days, largest = folder_rows(folder)
    if rows != seeding.total:
        results.error(f"the partitioned folder holds {rows} rows, not {seeding.total}")
    results.check(
        "partitioned",
        f"relay export --partitioned: {rows:,} rows into {days} days in {full.seconds:.1f} s "
        f"({rows / full.seconds:,.0f} rows/s), peak RSS {full.peak_mb:.0f} MB; largest row group {largest:,}",
        "≤ 400 MB",
        full.peak_mb <= 400,
    )
    engine = create_sync_engine(url)
    try:
        began = time.perf_counter()
        added = add_days(engine, seeding.seeded, round(seeding.seeded.alerts / DAYS))
        adding = time.perf_counter() - began
    finally:
        engine.dispose()
    again = run_child(command)
    if not _ok(results, "relay export --partitioned (incremental)", again):
        return None
    startup = run_child(relay_command("export", "--help"))
    after, days_after, _ = folder_rows(folder)
    if after != seeding.total:
        results.error(f"after one more day the folder holds {after} rows, not {seeding.total}")
    said = again.output.strip().splitlines()[-1] if again.output.strip() else ""
    results.check(
        "partitioned",
        f"incremental run after one new day ({added:,} alerts): {again.seconds:.2f} s, peak RSS "
        f"{again.peak_mb:.0f} MB ('{said}')",
        "≤ 2 s",
        again.seconds <= 2,
    )
    results.check(
        "partitioned",
        f"  of which starting the command: `relay export --help` alone takes {startup.seconds:.2f} s "
        "(Python, the relay's imports)",
    )
    engine = create_sync_engine(url)
    try:
        added_too = add_days(engine, seeding.seeded, round(seeding.seeded.alerts / DAYS), random_seed=13)
        began = time.perf_counter()
        done = refresh(engine, folder, EVERYONE)
        in_process = time.perf_counter() - began
    finally:
        engine.dispose()
    last, _, _ = folder_rows(folder)
    if last != seeding.total:
        results.error(f"after a second new day the folder holds {last} rows, not {seeding.total}")
    results.check(
        "partitioned",
        f"the same in the relay's own process (partitioned.refresh, as its refresher runs it) after another new "
        f"day ({added_too:,} alerts, {done.alerts_written:,} written on {len(done.days_written)} days): "
        f"{in_process:.2f} s",
        "≤ 2 s",
        in_process <= 2,
    )
    return {
        "full": {
            "seconds": full.seconds,
            "peak_mb": full.peak_mb,
            "rows": rows,
            "days": days,
            "largest_group": largest,
        },
        "incremental": {
            "seconds": again.seconds,
            "peak_mb": again.peak_mb,
            "added": added,
            "seed_seconds": adding,
            "days": days_after,
            "output": said,
            "command_startup_seconds": startup.seconds,
        },
        "in_process": {"seconds": in_process, "added": added_too, "written": done.alerts_written},
    }


# ---------------------------------------------------------------------------- 3. queries


def _duckdb_child(folder: Path, user_id: str, repeats: int, out: Path) -> None:
    """In a process of its own: every named query, its first run and ``repeats`` more, then all together."""
    from relay.history.analytics import QUERIES, Analytics
    from relay.store import AlertFilter

    baseline = memory(os.getpid()).rss_mb
    analytics = Analytics(folder, cached_rows=0)  # the queries themselves, not the answers kept
    where = AlertFilter(user_id=user_id)
    figures: dict[str, Any] = {"baseline_mb": baseline, "queries": {}}
    for name in QUERIES:
        began = time.perf_counter()
        answer = analytics.run(name, where)
        first = (time.perf_counter() - began) * 1000
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            analytics.run(name, where)
            times.append((time.perf_counter() - began) * 1000)
        figures["queries"][name] = {"first_ms": first, "times_ms": times, "rows": answer.rows}
    totals = []
    for _ in range(repeats):
        began = time.perf_counter()
        for name in QUERIES:
            analytics.run(name, where)
        totals.append((time.perf_counter() - began) * 1000)
    figures["totals_ms"] = totals
    analytics.close()
    out.write_bytes(orjson.dumps(figures, default=_plain))


def _pandas_child(folder: Path, user_id: str, repeats: int, out: Path) -> None:
    """In a process of its own: the pandas reference of each query on the same files, load apart."""
    import pyarrow.dataset as ds

    from benchmarks.analytics_reference import REFERENCE

    baseline = memory(os.getpid()).rss_mb
    began = time.perf_counter()
    table = ds.dataset(folder, partitioning="hive").to_table().to_pandas()  # as tests/relay/test_analytics.py
    mine = table[table["userId"] == user_id]
    load = time.perf_counter() - began
    del table
    figures: dict[str, Any] = {"baseline_mb": baseline, "load_seconds": load, "loaded_mb": memory(os.getpid()).rss_mb}
    figures["queries"] = {}
    for name, reference in REFERENCE.items():
        times, rows = [], None
        for _ in range(repeats):
            began = time.perf_counter()
            rows = reference(mine)
            times.append((time.perf_counter() - began) * 1000)
        figures["queries"][name] = {"times_ms": times, "rows": rows}
    out.write_bytes(orjson.dumps(figures, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY))


def _plain(value: Any) -> Any:
    """What orjson does not write by itself (a Decimal from DuckDB, a numpy scalar): a plain number or text."""
    if hasattr(value, "item"):
        return value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


CHILDREN: Final[dict[str, Callable[[Path, str, int, Path], None]]] = {
    "_duckdb": _duckdb_child,
    "_pandas": _pandas_child,
}


def _judge_unusual(results: Results, rows: list[list[Any]], bursts: list[tuple[str, str]]) -> None:
    """How many of the injected bursts "unusual hours" found, and how many other hours it flagged."""
    flagged = {(str(row[0]), str(row[1])) for row in rows}
    found = sum(burst in flagged for burst in bursts)
    results.check(
        "queries",
        f"  unusual hours found {found} of the {len(bursts)} injected bursts, and flagged {len(flagged) - found} "
        "other hours (issue 10 measured 6 of 6 with 2 others)",
        "all bursts",
        found == len(bursts),
    )


def measure_queries(
    results: Results, folder: Path, seeding: Seeding, repeats: int, *, pandas: bool, scratch: Path
) -> dict[str, Any] | None:
    """The named queries in DuckDB and (with ``pandas``) in pandas, each side in a child; answers compared."""
    from benchmarks.analytics_reference import same_rows
    from relay.clock import iso

    user_id = str(seeding.seeded.user_id)
    large = int(seeding.seeded.alerts) >= LARGE
    bursts = [(burst.stream_id, iso(burst.hour)) for burst in seeding.seeded.bursts]
    sides = ["_duckdb", "_pandas"] if pandas else ["_duckdb"]
    figures: dict[str, Any] = {}
    for side in sides:
        out = scratch / f"{side}.json"
        side_repeats = repeats if side == "_duckdb" else max(1, min(repeats, 3))
        command = [
            sys.executable,
            "-m",
            "benchmarks.analytics",
            side,
            str(folder),
            user_id,
            str(side_repeats),
            str(out),
        ]
        child = run_child(command)
        if not _ok(results, f"the {side[1:]} queries", child):
            return None
        figures[side[1:]] = {**orjson.loads(out.read_bytes()), "seconds": child.seconds, "peak_mb": child.peak_mb}
        out.unlink()
    duck = figures["duckdb"]
    reference = figures.get("pandas")
    faster = 0
    for name, mine in duck["queries"].items():
        mean = statistics.fmean(mine["times_ms"])
        limit = 2000 if large else 250 if name == "time-between-alerts" else 50
        line = f"{name}: first {mine['first_ms']:.1f} ms, mean {mean:.1f} ms"
        if reference is not None:
            theirs = reference["queries"][name]
            pandas_mean = statistics.fmean(theirs["times_ms"])
            equal = same_rows(mine["rows"], theirs["rows"])
            mine["equal_to_reference"] = equal
            if not equal:
                pairs = zip(mine["rows"], theirs["rows"], strict=False)
                differ = next(((a, b) for a, b in pairs if not same_rows([a], [b])), None)
                results.error(
                    f"{name}: DuckDB's {len(mine['rows'])} rows differ from pandas' {len(theirs['rows'])} "
                    f"(first differing pair: {differ})"
                )
            ratio = pandas_mean / mean
            with_load = (pandas_mean + reference["load_seconds"] * 1000) / mean
            faster += ratio >= 2
            line += (
                f"; pandas {pandas_mean:.1f} ms ({ratio:.1f}× ours; {with_load:.0f}× with its "
                f"{reference['load_seconds']:.2f} s load); {len(mine['rows'])} rows, "
                f"{'equal to the reference' if equal else 'NOT EQUAL to the reference'}"
            )
        results.check("queries", line, f"≤ {limit} ms", mean <= limit)
        if name == "unusual-hours":
            _judge_unusual(results, mine["rows"], bursts)
        mine["rows_count"] = len(mine.pop("rows"))
    total = statistics.fmean(duck["totals_ms"])
    results.check(
        "queries", f"all 7 together: mean {total:.0f} ms", "" if large else "≤ 400 ms", None if large else total <= 400
    )
    duckdb_mb = duck["peak_mb"] - duck["baseline_mb"]
    results.check(
        "queries",
        f"DuckDB process: peak RSS {duck['peak_mb']:.0f} MB, of which {duckdb_mb:.0f} MB above its "
        f"{duck['baseline_mb']:.0f} MB after imports (DuckDB's share)",
        "≤ 1 GB" if large else "(≤ 1 GB at 10M)",
        duckdb_mb <= 1024 if large else None,
    )
    if reference is not None:
        results.check(
            "queries",
            f"queries at least 2× faster than pandas (query time alone, load not counted): {faster} of 7",
            "≥ 6 of 7",
            faster >= 6,
        )
        results.check(
            "queries",
            f"pandas process: load {reference['load_seconds']:.2f} s, peak RSS {reference['peak_mb']:.0f} MB",
        )
        for theirs in reference["queries"].values():
            theirs["rows_count"] = len(theirs.pop("rows") or [])
    return figures


# ---------------------------------------------------------------------------- 4. HTTP


class Pages:
    """One kept-alive HTTP connection, as a person paging through their history holds."""

    def __init__(self, port: int, token: str) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> tuple[int, bytes]:
        """One request; once again on a new connection if the relay had closed the idle one (its header timeout)."""
        for attempt in (1, 2):
            try:
                self._connection.request("GET", path, headers=self._headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._connection.close()


@contextlib.contextmanager
def relay_serve(url: str, analytics_folder: Path, log: Path) -> Iterator[tuple[int, int]]:
    """``relay serve`` on ``url`` (no REST rate limit); yields its port and PID.

    Its analytics copy is the folder the partitioned step wrote (same filter:
    everyone's alerts), so its start-up refresh finds nothing much to do and
    does not weigh on the idle figure.
    """
    port = free_port()
    environment = {**os.environ, "RELAY_MAX_REST_PER_SECOND": "0", "RELAY_ANALYTICS_DIR": str(analytics_folder)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            relay_command("serve", "--port", str(port), "--database-url", url, "--log-level", "WARNING"),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if Pages(port, "").get("/api/health")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relay serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield port, pid_listening_on(port) or process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _settled_rss(pid: int, seconds: float = 10.0) -> float:
    """The server's RSS once it stops moving (within 2 MB over half a second), or after ``seconds``."""
    deadline = time.monotonic() + seconds
    last = memory(pid).rss_mb
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = memory(pid).rss_mb
        if abs(now - last) < 2:
            return now
        last = now
    return last


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def _download(port: int, token: str, format: str, out: Path) -> tuple[float, float]:
    """``GET /api/alerts/export`` into ``out``: seconds to the first byte of the body, and to the last."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        began = time.perf_counter()
        connection.request("GET", f"/api/alerts/export?format={format}", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}: {response.read()[:500]!r}")
        first = response.read1(1 << 16)
        first_byte = time.perf_counter() - began
        with out.open("wb") as file:
            file.write(first)
            while piece := response.read1(1 << 20):
                file.write(piece)
        return first_byte, time.perf_counter() - began
    finally:
        connection.close()


class Watch:
    """While an export runs: the server's RSS every 20 ms, and the neighbour reading page 1 every 50 ms."""

    def __init__(self, pid: int, neighbour: Pages, rss_mb: float) -> None:
        self._pid = pid
        self._neighbour = neighbour
        self._stop = threading.Event()
        self.samples = [rss_mb]
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._page)]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(memory(self._pid).rss_mb)

    def _page(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                status, body = self._neighbour.get("/api/alerts?limit=50")
            except OSError as error:
                self.failures.append(repr(error))
                continue
            self.latencies.append((time.perf_counter() - began) * 1000)
            if status != 200 or not orjson.loads(body)["alerts"]:
                self.failures.append(f"status {status}")
            self._stop.wait(NEIGHBOUR_PAUSE)


def measure_http(
    results: Results, url: str, analytics_folder: Path, seeding: Seeding, scratch: Path, *, after_seconds: float
) -> dict[str, Any]:
    """The analyst's HTTP exports while the neighbour pages: first byte, server RSS, the neighbour's latency."""
    figures: dict[str, Any] = {}
    rows = int(seeding.seeded.alerts)
    with relay_serve(url, analytics_folder, scratch / "relay.log") as (port, pid):
        neighbour = Pages(port, seeding.tokens[NEIGHBOUR])
        quiet = []
        for _ in range(40):
            began = time.perf_counter()
            neighbour.get("/api/alerts?limit=50")
            quiet.append((time.perf_counter() - began) * 1000)
        idle = _settled_rss(pid)
        figures["idle_mb"] = idle
        figures["neighbour_quiet_ms"] = {"p50": statistics.median(quiet), "p99": _percentile(quiet, 0.99)}
        for format in FORMATS:
            before = _settled_rss(pid)
            peak_resettable = reset_peak(pid)
            watch = Watch(pid, neighbour, before)
            out = scratch / f"http.{format}"
            with watch:
                first_byte, seconds = _download(port, seeding.tokens[ANALYST], format, out)
            samples, latencies, failures = watch.samples, watch.latencies, watch.failures
            peak = max([*samples, memory(pid).peak_rss_mb if peak_resettable else 0.0])
            time.sleep(after_seconds)
            after = memory(pid).rss_mb
            written, _ = exported_rows(out, format)
            if written != rows:
                results.error(f"GET /api/alerts/export?format={format} held {written} alerts, not {rows}")
            if failures:
                results.error(f"the neighbour's pages failed during the {format} export: {failures[:3]}")
            p99 = _percentile(latencies, 0.99)
            figures[format] = {
                "first_byte_seconds": first_byte,
                "seconds": seconds,
                "rows": written,
                "bytes": out.stat().st_size,
                "rss_before_mb": before,
                "rss_peak_mb": peak,
                "rss_after_mb": after,
                "neighbour_ms": latencies,
                "neighbour_p50_ms": statistics.median(latencies) if latencies else None,
                "neighbour_p99_ms": p99,
            }
            out.unlink()
            results.check(
                "http",
                f"GET /api/alerts/export?format={format}: {rows:,} alerts in {seconds:.1f} s "
                f"({rows / seconds:,.0f}/s), first byte after {first_byte * 1000:.0f} ms",
                "≤ 1 s",
                first_byte <= 1,
            )
            results.check(
                "http",
                f"  server RSS before {before:.0f} MB, peak {peak:.0f} MB ({peak - before:+.0f})",
                "≤ idle + 200 MB",
                peak - before <= 200,
            )
            results.check(
                "http",
                f"  server RSS {after_seconds:g} s after: {after:.0f} MB ({after - idle:+.0f} over the first idle "
                f"{idle:.0f} MB)",
                "≤ idle + 50 MB",
                after - idle <= 50,
            )
            results.check(
                "http",
                f"  neighbour's page 1 meanwhile: {len(latencies)} reads, p50 "
                f"{figures[format]['neighbour_p50_ms'] or 0:.1f} ms, p99 {p99:.1f} ms (quiet: p99 "
                f"{figures['neighbour_quiet_ms']['p99']:.1f} ms)",
                "p99 ≤ 100 ms",
                p99 <= 100,
            )
        neighbour.close()
    return figures


# ---------------------------------------------------------------------------- 5. report


def measure_report(results: Results, url: str, scratch: Path, seeding: Seeding, *, smoke: bool) -> dict[str, Any]:
    """``relay report --user analyst``: first with no analytics copy (it makes one), then with the copy current."""
    environment = {**os.environ, "RELAY_ANALYTICS_DIR": str(scratch / "report-copy")}
    out = scratch / "report.html"
    figures: dict[str, Any] = {}
    expected = f"&lt;b&gt;{seeding.seeded.alerts}&lt;/b&gt; on {len(seeding.seeded.stream_ids)} streams"
    for run in ("no copy yet", "copy current")[: 1 if smoke else 2]:
        child = run_child(
            relay_command("report", "--out", str(out), "--user", ANALYST, "--database-url", url), env=environment
        )
        if not _ok(results, f"relay report ({run})", child):
            continue
        page = out.read_text(encoding="utf-8")
        if expected not in page:
            results.error(f"the report ({run}) does not say {expected!r}")
        figures[run] = {"seconds": child.seconds, "peak_mb": child.peak_mb, "bytes": len(page.encode())}
        results.check(
            "report",
            f"relay report ({run}): {child.seconds:.1f} s, peak RSS {child.peak_mb:.0f} MB, {len(page) / 1e6:.1f} MB "
            "of HTML",
            "≤ 15 s, ≤ 500 MB",
            child.seconds <= 15 and child.peak_mb <= 500,
        )
    return figures


# ---------------------------------------------------------------------------- 6. browser


def measure_browser(
    results: Results, url: str, analytics_folder: Path, scratch: Path, attempts: int = 3
) -> dict[str, Any] | None:
    """The workbench on the seeded database; seconds from the click on "Analytics" to the six charts drawn.

    Each attempt is a fresh tab (a fresh session, so nothing of the last one is
    on screen); the first after the workbench started may also bring the
    analytics copy up to date.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        results.check("browser", "skipped: Chromium is not installed")
        return None
    from playwright.sync_api import expect, sync_playwright

    from tests.workbench.support import CHROMIUM_ARGS, Analyst, WorkbenchServer

    class SeededWorkbench(WorkbenchServer):
        def environment(self) -> dict[str, str]:
            return {**super().environment(), "RELAY_DATABASE_URL": url, "RELAY_ANALYTICS_DIR": str(analytics_folder)}

    folder = scratch / "workbench"
    folder.mkdir()
    server = SeededWorkbench(folder)
    server.database_url = url
    times: list[float] = []
    server.start()
    try:
        analyst = Analyst(server, ANALYST, "")
        analyst.password = PASSWORD
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                for _ in range(attempts):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    analyst.login(page, "/workbench")
                    page.locator(".analyst").wait_for()
                    began = time.perf_counter()
                    page.get_by_role("button", name="Analytics").click()
                    expect(page.locator(".analytics-status")).to_contain_text(" unusual hours", timeout=120_000)
                    page.locator("canvas:visible").nth(5).wait_for(state="visible", timeout=120_000)
                    times.append(time.perf_counter() - began)
                    context.close()
            finally:
                browser.close()
    finally:
        server.stop()
    later = times[1:] or times
    results.check(
        "browser",
        f"Analytics page drawn {times[0]:.2f} s after the click (first tab after start), then "
        f"{', '.join(f'{seconds:.2f}' for seconds in times[1:])} s",
        "≤ 2 s",
        max(later) <= 2,
    )
    return {"seconds": times}


# ---------------------------------------------------------------------------- the run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analytics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000, help="the analyst's alerts (default 1,000,000)")
    parser.add_argument("--small", type=int, help="alerts of the second database, for memory growth (100,000; 0: none)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeats", type=int, help="warm runs of each DuckDB query (default 10, smoke 2)")
    parser.add_argument("--only", action="append", choices=STEPS, help="these steps only (repeatable; default all)")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas reference (10M: it loads it all)")
    parser.add_argument("--smoke", action="store_true", help="20,000 alerts, no browser: about a minute, for CI")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--copy-only",
        action="store_true",
        help="no database: write the analyst's alerts straight into a partitioned copy and run the queries (10M)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files and the partitioned folder")
    args = parser.parse_args(argv)
    if args.smoke:
        args.alerts = 20_000
        args.small = 0 if args.small is None else args.small
    args.small = 100_000 if args.small is None else args.small
    args.repeats = args.repeats or (2 if args.smoke else 10)
    args.steps = tuple(args.only or (step for step in STEPS if not (args.smoke and step == "browser")))
    return args


def _run_on_database(args: argparse.Namespace, results: Results, base: Path) -> None:
    """Every step but the copy-only one: seed a database, then measure its readers."""
    with _scratch(base, keep=args.keep) as scratch, database(args.database, scratch, "big") as url:
        seeding = seed(url, args.alerts)
        total = seeding.total
        results.raw["seed"] = {"seconds": seeding.seconds, "alerts": total}
        results.check(
            "seed",
            f"{total:,} alerts ({seeding.seeded.alerts:,} of the analyst's 10 streams, "
            f"{seeding.neighbour_alerts:,} of the neighbour's 2) in {seeding.seconds:.1f} s "
            f"({total / seeding.seconds:,.0f}/s), "
            f"{len(seeding.seeded.bursts)} bursts",
        )
        if "exports" in args.steps:
            big = measure_exports(results, url, scratch, total, "big")
            small = None
            small_rows = 0
            if args.small:
                with database(args.database, scratch, "small") as small_url:
                    small_seeding = seed(small_url, args.small)
                    small_rows = small_seeding.total
                    small = measure_exports(results, small_url, scratch, small_rows, "small")
            results.raw["exports"] = {"big": big, "small": small, "small_rows": small_rows}
            judge_exports(results, big, small, total, small_rows)
        folder = scratch / "partitioned"
        if set(args.steps) - {"exports"}:
            results.raw["partitioned"] = measure_partitioned(results, url, folder, seeding)
        if "queries" in args.steps:
            results.raw["queries"] = measure_queries(
                results, folder, seeding, args.repeats, pandas=not args.no_pandas, scratch=scratch
            )
        if "http" in args.steps:
            results.raw["http"] = measure_http(
                results, url, folder, seeding, scratch, after_seconds=0.5 if args.smoke else AFTER_SECONDS
            )
        if "report" in args.steps:
            results.raw["report"] = measure_report(results, url, scratch, seeding, smoke=args.smoke)
        if "browser" in args.steps:
            results.raw["browser"] = measure_browser(results, url, folder, scratch)


def _run_copy_only(args: argparse.Namespace, results: Results, base: Path) -> None:
    """``--copy-only``: the queries over a copy written straight from the generator (see :func:`write_copy`)."""
    with _scratch(base, keep=args.keep) as scratch:
        folder = scratch / "partitioned"
        seeding = write_copy(folder, args.alerts)
        rows, days, largest = folder_rows(folder)
        results.check(
            "copy",
            f"{rows:,} alerts of the analyst written straight into {days} day files (no database) in "
            f"{seeding.seconds:.0f} s; largest row group {largest:,}",
        )
        results.raw["copy"] = {"seconds": seeding.seconds, "alerts": rows, "days": days, "largest_group": largest}
        results.raw["queries"] = measure_queries(
            results, folder, seeding, args.repeats, pandas=not args.no_pandas, scratch=scratch
        )


@contextlib.contextmanager
def _scratch(base: Path, *, keep: bool) -> Iterator[Path]:
    """The run's folder: removed at the end, unless ``keep`` (to look at the data afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-analytics-", dir=base))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    results = Results()
    began = time.perf_counter()
    load_before = os.getloadavg()
    base = Path(os.environ.get("RELAY_BENCH_TMP", tempfile.gettempdir()))
    if args.copy_only:
        _run_copy_only(args, results, base)
    else:
        _run_on_database(args, results, base)
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()
    print(
        f"\nAnalytics at {args.alerts:,} alerts, {args.database}; {elapsed:.0f} s; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (2 cores: above 2 means the machine was shared)"
    )
    print(table(results.checks))
    if results.errors:
        print(f"\n{len(results.errors)} errors:\n" + "\n".join(results.errors))
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "commit": _commit(),
                    "command": " ".join(sys.argv),
                    "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
                    "load_average": {"before": load_before, "after": load_after},
                    "alerts": args.alerts,
                    "database": args.database,
                    "steps": list(args.steps),
                    "seconds": elapsed,
                    "checks": [
                        {"step": c.step, "figure": c.figure, "target": c.target, "met": c.met} for c in results.checks
                    ],
                    "errors": results.errors,
                    "raw": results.raw,
                },
                option=orjson.OPT_INDENT_2,
                default=_plain,
            )
        )
    return 1 if results.errors else 0


def table(checks: Sequence[Check]) -> str:
    lines = [f"{'step':12} {'met?':7} {'target':18} figure", "-" * 100]
    for check in checks:
        verdict = "-" if check.met is None else ("yes" if check.met else "MISSED")
        lines.append(f"{check.step:12} {verdict:7} {check.target:18} {check.figure}")
    return "\n".join(lines)


def _commit() -> str:
    completed = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return completed.stdout.strip() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in CHILDREN:  # a measured side of the queries step, in its own process
        folder, user_id, repeats, out = arguments[1:5]
        CHILDREN[arguments[0]](Path(folder), user_id, int(repeats), Path(out))
        return 0
    return run(parse_args(arguments))


if __name__ == "__main__":
    sys.exit(main())
