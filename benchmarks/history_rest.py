"""``python -m benchmarks.history_rest``: ``GET /api/alerts`` over a large alert history.

Seeds a database with ``--alerts`` alerts of 10 streams over 30 days, through bulk
Core inserts of the models' table (batches of 5,000, as an import would), then
starts ``relay serve`` on it and times, through the real REST handler over HTTP,
each filter shape's first page, its page 1000 (the cursor that following
``nextCursor`` 999 times reaches; the deepest page where a shape has fewer
matches) and text searches that hit and miss, each ``--repeats`` times: p50 and
p99 in milliseconds.  The relay is measured as it starts on a database that was
just imported: on PostgreSQL there are no planner statistics until something
makes them, which is the relay's own business (``relay.store.statistics``).

The data is realistic rather than uniform: streams of unequal size, skewed
severities, a few object types in ``metadata.objectType`` (and alerts without
one), a confidence, and messages made of a few templates and places, with rare
tamper alerts.  It is generated from a fixed seed, so the benchmark knows which
alerts each shape matches: the page-1000 cursor is computed from the generated
rows, and every first page and every cursor the relay answers is checked against
them (a fast wrong answer is an error, not a figure).

``--smoke`` seeds tens of thousands of alerts and repeats each measurement
three times: what CI runs, so the benchmark keeps working.  No target is
asserted here; ``benchmarks/RESULTS.md`` has the figures at 1M and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import http.client
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import insert, update

from benchmarks.relays import free_port
from relay.store import Store
from relay.store.models import Base, VideoStream

REPO = Path(__file__).resolve().parent.parent
STREAMS = 10
DAYS = 30
BATCH = 5_000
PAGE = 50
DEEP_PAGE = 1000
STARTUP_TIMEOUT = 600.0
"""Seconds ``relay serve`` may take to open a database (a migration of 1M alerts included)."""

STREAM_WEIGHTS = (20, 15, 12, 10, 10, 9, 8, 7, 5, 4)
SEVERITIES = (("low", 0.62), ("medium", 0.25), ("high", 0.10), ("critical", 0.03))
OBJECT_TYPES = (("person", 0.45), ("car", 0.22), ("bicycle", 0.10), ("dog", 0.08), ("cat", 0.05), ("package", 0.03))
"""The rest (7 %) have no object type: motion alone."""
PLACES = (
    "front door",
    "driveway",
    "garden",
    "garage",
    "lobby",
    "parking lot",
    "street",
    "backyard",
    "hallway",
    "entrance",
    "loading bay",
    "side gate",
)
TEMPLATES = (
    "{object} detected at the {place}",
    "{object} near the {place}",
    "{object} loitering by the {place} for {n} s",
    "{Object} crossed the {place}",
)
TAMPER_SHARE = 0.0005
ALERT_TABLE = Base.metadata.tables["alert"]
"""Inserted with Core by column name, as a bulk import writes rows: no ORM objects."""


@dataclass(frozen=True, slots=True)
class Shape:
    """A filter of ``GET /api/alerts``, and which generated alerts it matches."""

    name: str
    query: dict[str, str]
    matches: Callable[[int], bool]
    """Whether the alert at this index of the generated rows matches."""


@dataclass(slots=True)
class History:
    """The generated alerts, column by column (index i is the alert with ``seq`` i + 1)."""

    start: datetime.datetime
    stream_ids: list[str]
    stream: list[int] = field(default_factory=list)
    severity: list[str] = field(default_factory=list)
    object_type: list[str | None] = field(default_factory=list)
    message: list[str] = field(default_factory=list)
    created: list[datetime.datetime] = field(default_factory=list)


def generate(count: int, stream_ids: list[str], start: datetime.datetime, seed: int = 7) -> History:
    """``count`` alerts spread evenly over :data:`DAYS` days from ``start``, from a fixed seed."""
    chooser = random.Random(seed)
    history = History(start, stream_ids)
    spacing = datetime.timedelta(days=DAYS) / count
    streams = chooser.choices(range(len(stream_ids)), STREAM_WEIGHTS[: len(stream_ids)], k=count)
    severities = chooser.choices([name for name, _ in SEVERITIES], [share for _, share in SEVERITIES], k=count)
    kinds: list[str | None] = [name for name, _ in OBJECT_TYPES] + [None]
    shares = [share for _, share in OBJECT_TYPES] + [1 - sum(share for _, share in OBJECT_TYPES)]
    objects = chooser.choices(kinds, shares, k=count)
    for index in range(count):
        object_type = objects[index]
        place = chooser.choice(PLACES)
        if chooser.random() < TAMPER_SHARE:
            message = f"Tamper alarm: camera at the {place} covered"
        elif object_type is None:
            message = f"Motion in the {place}"
        else:
            template = chooser.choice(TEMPLATES)
            message = template.format(
                object=object_type, Object=object_type.capitalize(), place=place, n=chooser.randint(5, 300)
            )
        history.stream.append(streams[index])
        history.severity.append(severities[index])
        history.object_type.append(object_type)
        history.message.append(message[0].upper() + message[1:])
        history.created.append(start + spacing * index)
    return history


def shapes(history: History) -> list[Shape]:
    """The filter shapes measured: each filter of ``GET /api/alerts`` alone, and a few together."""
    middle = history.start + datetime.timedelta(days=DAYS // 2)
    day_after = middle + datetime.timedelta(days=1)
    big, small = history.stream_ids[0], history.stream_ids[-1]

    def since_until(i: int) -> bool:
        return middle <= history.created[i] < day_after

    def text(q: str) -> Callable[[int], bool]:
        folded = q.lower()
        return lambda i: folded in history.message[i].lower()

    garage = text("garage")
    return [
        Shape("all", {}, lambda _: True),
        Shape("streamId (largest)", {"streamId": big}, lambda i: history.stream_ids[history.stream[i]] == big),
        Shape("streamId (smallest)", {"streamId": small}, lambda i: history.stream_ids[history.stream[i]] == small),
        Shape("severity=critical", {"severity": "critical"}, lambda i: history.severity[i] == "critical"),
        Shape(
            "severity=high,critical",
            {"severity": "high,critical"},
            lambda i: history.severity[i] in ("high", "critical"),
        ),
        Shape("since/until (1 day)", {"since": _iso(middle), "until": _iso(day_after)}, since_until),
        Shape("objectType=car", {"objectType": "car"}, lambda i: history.object_type[i] == "car"),
        Shape("objectType=package", {"objectType": "package"}, lambda i: history.object_type[i] == "package"),
        Shape("q=garage (hit, 8 %)", {"q": "GARAGE"}, garage),
        Shape("q=tamper (rare hit)", {"q": "tamper"}, text("tamper")),
        Shape("q=xylophone (miss)", {"q": "xylophone"}, text("xylophone")),
        Shape("q=at (2 letters)", {"q": "at"}, text("at")),
        Shape(
            "streamId+severity+q",
            {"streamId": big, "severity": "high,critical", "q": "garage"},
            lambda i: (
                history.stream_ids[history.stream[i]] == big
                and history.severity[i] in ("high", "critical")
                and garage(i)
            ),
        ),
        Shape(
            "objectType+since/until",
            {"objectType": "car", "since": _iso(middle), "until": _iso(day_after)},
            lambda i: history.object_type[i] == "car" and since_until(i),
        ),
        Shape(
            "q=car+objectType=person (miss)",
            {"q": "car", "objectType": "person"},
            lambda i: history.object_type[i] == "person" and "car" in history.message[i].lower(),
        ),
    ]


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_cursor(seq: int) -> str:
    """The relay's cursor for "older than ``seq``" (``relay.rest.alerts``), as a client would hold it."""
    return base64.urlsafe_b64encode(f"a1:{seq}".encode()).decode().rstrip("=")


async def seed(url: str, count: int, progress: bool) -> tuple[str, History]:
    """A user, its streams and ``count`` alerts in the database at ``url``; the user's token and the alerts."""
    store = await Store.open(url)
    try:
        issued = await store.users.add_or_issue_token(f"bench-{uuid.uuid4().hex[:8]}")
        stream_ids = [
            (await store.streams.register(issued.user_id, f"camera {n}", "bench", {})).id for n in range(STREAMS)
        ]
        start = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(days=DAYS)
        history = generate(count, stream_ids, start)
        began = time.perf_counter()
        stream_seq = [0] * STREAMS
        for first in range(0, count, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, count)):
                stream = history.stream[i]
                stream_seq[stream] += 1
                meta: dict[str, Any] = {"confidence": round(0.3 + 0.69 * ((i * 7919) % 1000) / 1000, 3)}
                if history.object_type[i] is not None:
                    meta["objectType"] = history.object_type[i]
                created = history.created[i]
                rows.append(
                    {
                        "id": f"alert_{uuid.UUID(int=i + 1).hex[-16:]}",
                        "streamId": stream_ids[stream],
                        "streamSeq": stream_seq[stream],
                        "severity": history.severity[i],
                        "message": history.message[i],
                        "metadata": meta,
                        "timestamp": int(created.timestamp() * 1000) - 150,
                        "createdAt": created,
                    }
                )
            async with store.engine.begin() as connection:
                await connection.execute(insert(ALERT_TABLE), rows)
            if progress and (first // BATCH) % 20 == 19:
                done = first + len(rows)
                print(f"seeded {done} alerts, {done / (time.perf_counter() - began):.0f}/s", file=sys.stderr)
        async with store.engine.begin() as connection:
            for stream, last in enumerate(stream_seq):
                await connection.execute(
                    update(VideoStream).where(VideoStream.id == stream_ids[stream]).values(last_alert_seq=last)
                )
        elapsed = time.perf_counter() - began
        print(f"seeded {count} alerts in {elapsed:.1f} s ({count / elapsed:.0f}/s)", file=sys.stderr)
        return issued.token, history
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A fresh database: a SQLite file in a temporary folder, or a new schema of PostgreSQL."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
            yield f"sqlite+aiosqlite:///{folder}/relay.db"
        return
    base = os.environ.get("RELAY_BENCH_POSTGRES_URL") or os.environ.get(
        "RELAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    schema = "bench_" + uuid.uuid4().hex[:12]
    engine_url = base.replace("postgresql+psycopg://", "postgresql://")
    import psycopg

    async with await psycopg.AsyncConnection.connect(engine_url, autocommit=True) as connection:
        # pg_trgm in public, or the migration would put it in this schema and the drop below take it along
        with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        async with await psycopg.AsyncConnection.connect(engine_url, autocommit=True) as connection:
            await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextlib.contextmanager
def relay_serve(url: str, folder: Path) -> Any:
    """``relay serve`` on ``url`` on a free port, without a REST rate limit; yields its port."""
    port = free_port()
    environment = {**os.environ, "RELAY_MAX_REST_PER_SECOND": "0", "RELAY_ANALYTICS_DIR": str(folder / "analytics")}
    log = (folder / "relay.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--port", str(port), "--database-url", url, "--log-level", "WARNING"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                status, _ = Client(port, "").get("/api/health")
                if status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relay serve did not start: {(folder / 'relay.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Client:
    """One kept-alive HTTP connection to the relay, as a dashboard paging through history holds."""

    def __init__(self, port: int, token: str) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> tuple[int, Any]:
        self._connection.request("GET", path, headers=self._headers)
        response = self._connection.getresponse()
        return response.status, orjson.loads(response.read())

    def close(self) -> None:
        self._connection.close()


@dataclass(slots=True)
class Figures:
    """One measurement's times, in milliseconds."""

    shape: str
    what: str
    page: int
    alerts: int
    times_ms: list[float]
    errors: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def measure(client: Client, history: History, shape: Shape, repeats: int) -> list[Figures]:
    """Page 1 and page 1000 (or the deepest) of ``shape``, each ``repeats`` times, checked against the rows."""
    matching = [i + 1 for i in range(len(history.message) - 1, -1, -1) if shape.matches(i)]
    pages = max(1, -(-len(matching) // PAGE))
    deep = min(DEEP_PAGE, pages)
    measured = [(1, None), (deep, encode_cursor(matching[(deep - 1) * PAGE - 1]) if deep > 1 else None)]
    results = []
    for page, cursor in measured if deep > 1 else measured[:1]:
        query = {**shape.query, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        path = "/api/alerts?" + urlencode(query)
        expected = matching[(page - 1) * PAGE : page * PAGE]
        figures = Figures(shape.name, "page 1" if page == 1 else f"page {page}", page, len(expected), [])
        for _ in range(repeats):
            began = time.perf_counter()
            status, body = client.get(path)
            figures.times_ms.append((time.perf_counter() - began) * 1000)
            problem = _check(status, body, expected, more=len(matching) > page * PAGE)
            if problem and not figures.errors:
                figures.errors.append(problem)
        results.append(figures)
    return results


def _check(status: int, body: Any, expected: list[int], *, more: bool) -> str | None:
    """What is wrong with an answer, given the seqs of the alerts it should hold, or None."""
    if status != 200:
        return f"status {status}: {body}"
    got = [alert["id"] for alert in body["alerts"]]
    want = [f"alert_{uuid.UUID(int=seq).hex[-16:]}" for seq in expected]
    complete = (body["nextCursor"] is not None) == more
    if got == want and complete and (not more or body["nextCursor"] == encode_cursor(expected[-1])):
        return None
    if body.get("nextCursor") is not None and got == want[: len(got)]:
        return None  # a page cut short by the relay's budget, with a cursor to go on: allowed
    return f"expected {len(want)} alerts ({want[:2]}…, more={more}), got {len(got)} ({got[:2]}…)"


def table(results: Sequence[Figures]) -> str:
    lines = [f"{'shape':32} {'page':>9} {'alerts':>6} {'p50 ms':>9} {'p99 ms':>9}  errors"]
    lines.append("-" * len(lines[0]) + "-" * 8)
    for figures in results:
        lines.append(
            f"{figures.shape:32} {figures.what:>9} {figures.alerts:>6} {figures.p50:9.1f} {figures.p99:9.1f}  "
            f"{'; '.join(figures.errors) or '-'}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history_rest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000, help="alerts to seed (default 1,000,000)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeats", type=int, help="times each page is read (default 20, smoke 3)")
    parser.add_argument("--smoke", action="store_true", help="20,000 alerts, 3 repeats: seconds, for CI")
    parser.add_argument("--json", type=Path, help="write every time measured and the summary here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.alerts = 20_000
    args.repeats = args.repeats or (3 if args.smoke else 20)
    return args


async def run(args: argparse.Namespace) -> int:
    async with database(args.database) as url:
        token, history = await seed(url, args.alerts, progress=not args.smoke)
        with tempfile.TemporaryDirectory(prefix="bench-history-relay-") as folder:
            began = time.perf_counter()
            with relay_serve(url, Path(folder)) as port:
                print(f"relay serve ready in {time.perf_counter() - began:.1f} s", file=sys.stderr)
                client = Client(port, token)
                results: list[Figures] = []
                try:
                    for shape in shapes(history):
                        for figures in measure(client, history, shape, args.repeats):
                            results.append(figures)
                            print(
                                f"{figures.shape}: {figures.what} p50 {figures.p50:.1f} ms p99 {figures.p99:.1f} ms",
                                file=sys.stderr,
                            )
                finally:
                    client.close()
    print(f"GET /api/alerts at {args.alerts} alerts, {args.database}, {args.repeats} repeats each")
    print(table(results))
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "commit": _commit(),
                    "command": " ".join(sys.argv),
                    "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
                    "alerts": args.alerts,
                    "database": args.database,
                    "results": [
                        {
                            "shape": f.shape,
                            "page": f.page,
                            "alerts": f.alerts,
                            "p50_ms": f.p50,
                            "p99_ms": f.p99,
                            "times_ms": f.times_ms,
                            "errors": f.errors,
                        }
                        for f in results
                    ],
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 1 if any(figures.errors for figures in results) else 0


def _commit() -> str:
    completed = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return completed.stdout.strip() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
