"""Retention: old alerts go (with their snapshots), kept ones stay, once a day on one node, or now by the CLI."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from relay.clock import utcnow
from relay.store import AlertFilter, Review, Snapshot, Store
from relay.store.models import Alert, AlertSnapshot, JobRun
from relay.wire import AlertIn
from tests.relay.test_cli_management import relay_cli
from tests.support import RelayHarness, running_relay


async def _seed(store: Store, user_id: str, stream_id: str) -> dict[str, str]:
    """Alerts 40, 20 and 0 days old, one old one kept, each with a snapshot; their ids by name."""
    ids = {}
    now = utcnow()
    for name, age in (("ancient", 40), ("old", 20), ("kept", 40), ("new", 0)):
        stored = await store.alerts.add(
            AlertIn(stream_id, "high", name, {"objectType": name}, 1, frame_timestamp=1),
            created_at=now - timedelta(days=age),
            snapshot=Snapshot(b"\xff\xd8" + name.encode(), 1),
        )
        ids[name] = stored.alert.id
    await store.alerts.review(ids["kept"], user_id, Review("ana", keep=True))
    return ids


async def _messages(store: Store) -> list[str]:
    async with store.engine.connect() as connection:
        return list(await connection.scalars(select(Alert.message).order_by(Alert.seq)))


async def test_a_prune_deletes_in_batches_and_spares_what_is_kept(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        issued = await store.users.add_or_issue_token("ana")
        stream = await store.streams.register(issued.user_id, "cam", "mobile", {})
        await _seed(store, issued.user_id, stream.id)
        for extra in range(5):  # more than a batch
            await store.alerts.add(
                AlertIn(stream.id, "low", f"x{extra}", {}, 1), created_at=utcnow() - timedelta(days=50)
            )
        pruned = await store.jobs.prune(utcnow() - timedelta(days=30), batch=2)
        assert pruned.deleted == 6
        assert pruned.days == sorted({(utcnow() - timedelta(days=age)).date() for age in (40, 50)})
        assert await _messages(store) == ["old", "kept", "new"]
        async with store.engine.connect() as connection:
            assert await connection.scalar(select(func.count()).select_from(AlertSnapshot)) == 3
        assert (await store.jobs.prune(utcnow() - timedelta(days=30))).deleted == 0
        found = await store.alerts.search(AlertFilter(user_id=issued.user_id, text="ancient"), limit=5)
        assert found.alerts == [], "gone from the text index too"
    finally:
        await store.close()


async def test_the_daily_run_is_claimed_by_one_node_only(database_url: str) -> None:
    stores = [await Store.open(database_url) for _ in range(3)]
    try:
        claims = await asyncio.gather(*(store.jobs.claim("retention", timedelta(days=1)) for store in stores))
        assert sorted(claims) == [False, False, True]
        assert not await stores[0].jobs.claim("retention", timedelta(days=1)), "not due again for a day"
        assert await stores[0].jobs.claim("retention", timedelta(0)), "due at once with no interval"
        assert await stores[1].jobs.claim("a-new-job", timedelta(days=1)), "a job without a row gets one"
    finally:
        for store in stores:
            await store.close()


async def test_relays_with_a_retention_prune_once_on_one_node(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        issued = await store.users.add_or_issue_token("ana")
        stream = await store.streams.register(issued.user_id, "cam", "mobile", {})
        await _seed(store, issued.user_id, stream.id)
    finally:
        await store.close()
    options = {"ping_interval": 0, "retention_days": 30}
    async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
        for node in (first, second):
            async with asyncio.timeout(10):
                await node.relay.retention.looked.wait()
        runs = [node.relay.retention.last for node in (first, second)]
        assert sorted(run is None for run in runs) == [False, True], "exactly one node ran it"
        assert [run.deleted for run in runs if run is not None] == [1]
        assert await _messages(first.relay.store) == ["old", "kept", "new"]
        async with first.relay.store.engine.connect() as connection:
            ran_at = await connection.scalar(select(JobRun.ran_at).where(JobRun.name == "retention"))
        assert ran_at is not None
        assert utcnow() - ran_at < timedelta(minutes=5)
        assert await first.relay.retention.run_if_due() is None, "not due again today"


async def test_relay_prune_deletes_now_and_the_analytics_copy_forgets(
    relay: RelayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, token = await relay.user()
    stream_id = await relay.stream(token)
    await _seed(relay.relay.store, user_id, stream_id)
    assert (await relay.api("POST", "/api/analytics/refresh", token=token)).json["alertsWritten"] == 4
    monkeypatch.setenv("RELAY_ANALYTICS_DIR", relay.relay.settings.analytics_dir)
    db = ("--database-url", relay.relay.settings.database_url)
    done = await relay_cli("prune", "--older-than", "10", *db)
    assert "deleted 2 alerts older than 10 days" in done.stdout
    assert await _messages(relay.relay.store) == ["kept", "new"]
    rows = (await relay.api("GET", "/api/analytics/top-object-types", token=token)).json["rows"]
    assert sorted(row[0] for row in rows) == ["kept", "new"]
    assert "deleted 0 alerts" in (await relay_cli("prune", "--older-than", "10", *db)).stdout
    for wrong in ("0", "-3", "soon"):
        await relay_cli("prune", "--older-than", wrong, *db, status=2)
