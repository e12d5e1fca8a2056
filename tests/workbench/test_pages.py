"""The pages and their widgets in-process, without a browser: params, what they read, what they show.

As Panel tests its own components, a page is built and driven through its params
and its widgets' values, and its layout is inspected as Python objects.  The
session is a real :class:`AnalystSession` on a real SQLite store; there is no
document, so ``pn.state.execute`` runs changes at once, and the store reads the
pages start are awaited by :func:`settle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import pandas as pd
import panel as pn
import pytest

from relay.clock import now_ms
from relay.store import AlertFilter, Sort, SortKey, Store
from relay.wire import AlertIn
from tests.workbench.support import GUARD
from workbench.alerts import LiveAlert, ReviewUpdate
from workbench.components.stream_tile import StreamTile
from workbench.history_query import HistoryQuery
from workbench.pages.history import HistoryPage
from workbench.pages.live import LivePage
from workbench.pages.timeline import TimelinePage
from workbench.session import AnalystSession
from workbench.widgets.unreviewed_counter import UnreviewedCounter

Found = TypeVar("Found", bound=pn.viewable.Viewable)


@dataclass
class Analyst:
    store: Store
    session: AnalystSession

    async def register(self, *names: str) -> list[str]:
        """New streams of the analyst, in this order; the session reads them as its refresh would."""
        ids = [(await self.store.streams.register(self.session.user_id, name, "phone", {})).id for name in names]
        await self.session.refresh_streams()
        return ids

    async def alert(self, stream_id: str, message: str, severity: str = "low", **metadata: Any) -> LiveAlert:
        stored = await self.store.alerts.add(AlertIn(stream_id, severity, message, metadata, now_ms()))
        return LiveAlert.from_row(stored.alert)


@pytest.fixture
async def analyst(sqlite_url: str) -> AsyncIterator[Analyst]:
    store = await Store.open(sqlite_url)
    try:
        user = await store.users.add_or_issue_token("ana")
        relay = SimpleNamespace(
            store=store, announced=[], announce_reviews=lambda alerts: relay.announced.extend(alerts)
        )
        yield Analyst(store, AnalystSession(relay, user.user_id, user.username))  # type: ignore[arg-type]
    finally:
        await store.close()


async def settle(done: Callable[[], bool]) -> None:
    """Let the page's store reads run until ``done()`` (a page has no event to await, so this polls)."""
    async with asyncio.timeout(GUARD):
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def find(page: pn.viewable.Viewer, kind: type[Found], **match: Any) -> Found:
    """The one object of ``kind`` in the page's layout whose params have these values."""
    found = [
        widget
        for widget in page.__panel__().select(kind)
        if all(getattr(widget, name) == value for name, value in match.items())
    ]
    assert len(found) == 1, f"{len(found)} {kind.__name__} with {match}"
    return found[0]


def tiles(page: LivePage) -> list[str]:
    return [tile.stream_id for tile in page.__panel__().select(StreamTile)]


def status(page: HistoryPage) -> str:
    return str(find(page, pn.pane.HTML, css_classes=["history-status"]).object)


# ------------------------------------------------------------------ Live


async def test_live_pages_through_the_streams_in_the_chosen_layout(analyst: Analyst) -> None:
    streams = await analyst.register(*(f"camera {n}" for n in range(6)))
    page = LivePage(analyst.session)
    assert tiles(page) == [], "no tiles, so no sockets, while the page is off screen"

    page.on_screen = True
    assert tiles(page) == streams[:4]
    assert find(page, pn.pane.HTML, css_classes=["live-range"]).object == "streams 1–4 of 6"

    find(page, pn.widgets.Button, name="▶").clicks += 1
    assert (page.first, tiles(page)) == (4, streams[4:])
    assert find(page, pn.widgets.Button, name="▶").disabled

    find(page, pn.widgets.RadioButtonGroup, name="Layout").value = "3×3"
    assert (page.layout, page.first, tiles(page)) == ("3×3", 0, streams), "a new layout starts on a page of its own"
    assert not find(page, pn.widgets.Button, name="▶").visible, "every stream fits: no paging"

    page.layout = "1"
    page.first = 5
    assert tiles(page) == streams[5:]
    page.on_screen = False
    assert tiles(page) == []


async def test_live_enlarges_a_clicked_tile_and_forgets_streams_that_are_gone(analyst: Analyst) -> None:
    hall, yard = await analyst.register("Hall", "Back yard")
    page = LivePage(analyst.session, on_screen=True)
    tile = next(tile for tile in page.__panel__().select(StreamTile) if tile.stream_id == yard)

    tile._handle_msg({"type": "toggle-enlarged"})
    assert (page.enlarged, tiles(page)) == (yard, [yard])
    assert find(page, pn.widgets.Button, name="Back to the grid").visible
    assert not find(page, pn.widgets.RadioButtonGroup, name="Layout").visible
    find(page, pn.widgets.Button, name="Back to the grid").clicks += 1
    assert (page.enlarged, tiles(page)) == (None, [hall, yard])

    page.enlarged = yard
    analyst.session.streams = analyst.session.streams[:1]
    assert (page.enlarged, tiles(page)) == (None, [hall]), "the grid is back once the enlarged stream is gone"

    analyst.session.streams = []
    (empty,) = [pane for pane in page.__panel__().select(pn.pane.Markdown) if "No streams yet" in pane.object]
    assert empty.visible
    assert tiles(page) == []


# ------------------------------------------------------------------ Timeline


async def test_the_timeline_plots_stored_then_live_alerts_once_each(analyst: Analyst) -> None:
    gate, door = await analyst.register("Gate", "Door")
    stored = await analyst.alert(gate, "stored before the feed subscribed")
    page = TimelinePage(analyst.session)
    assert list(page.figure.y_range.factors) == [door, gate], "one row per stream, the first on top"

    analyst.session.subscription_started(gate)
    await settle(lambda: stored.id in page.source.data["id"])
    live = await analyst.alert(gate, "while the feed listens", severity="critical", objectType="person")
    analyst.session.receive(live)
    analyst.session.receive(live)  # a feed that reconnects may replay it
    missed = await analyst.alert(gate, "stored while the feed reconnected")
    analyst.session.subscription_started(gate)  # the same stream again: what was stored meanwhile is read
    await settle(lambda: missed.id in page.source.data["id"])
    assert list(page.source.data["id"]) == [stored.id, live.id, missed.id]
    assert list(page.source.data["object_type"]) == ["", "person", ""]
    assert analyst.session.unreviewed == 1, "the replayed alert is counted once"

    page.source.selected.indices = [1]
    assert page.detail.alert == live

    (kitchen,) = await analyst.register("Kitchen")
    assert list(page.figure.y_range.factors) == [kitchen, door, gate]


async def test_the_timeline_shows_the_range_picked_and_says_why_it_is_empty(analyst: Analyst) -> None:
    page = TimelinePage(analyst.session)
    assert page.empty.visible
    assert "No streams yet" in page.empty.object
    (gate,) = await analyst.register("Gate")
    assert "No alerts between" in page.empty.object
    assert "and now." in page.empty.object
    now = await analyst.alert(gate, "now")
    analyst.session.receive(now)
    assert list(page.source.data["id"]) == [now.id]
    assert not page.empty.visible

    days_ago = datetime.now(UTC) - timedelta(days=3)
    page.param.update(since=days_ago, until=days_ago + timedelta(days=1))
    assert page.range_picker.value == (
        days_ago.replace(tzinfo=None),
        (days_ago + timedelta(days=1)).replace(tzinfo=None),
    )
    await settle(lambda: page.empty.visible)
    later = await analyst.alert(gate, "live, but after the range")
    analyst.session.receive(later)
    assert list(page.source.data["id"]) == []
    assert "No alerts between" in page.empty.object
    assert "and now" not in page.empty.object

    page.range_picker.value = (
        days_ago.replace(tzinfo=None),
        datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1),
    )
    assert page.until is None, "an end from now on is live"
    await settle(lambda: set(page.source.data["id"]) == {now.id, later.id})
    assert not page.empty.visible


# ------------------------------------------------------------------ History


async def test_history_filters_are_params_that_its_widgets_edit(analyst: Analyst) -> None:
    north, south = await analyst.register("North & gate", "South gate")
    for n in range(3):
        await analyst.alert(north, f"north {n}", severity="high", objectType="car")
    await analyst.alert(south, "south intruder", severity="critical", objectType="person")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: status(page) == "alerts 1–4 of 4")

    find(page, pn.widgets.CheckButtonGroup, name="Severity").value = ["critical"]
    assert page.severities == ["critical"]
    await settle(lambda: status(page) == "alerts 1–1 of 1")

    streams = find(page, pn.widgets.MultiChoice, name="Streams")
    assert streams.options == {"North &amp; gate": north, "South gate": south}, "labels are escaped HTML"
    page.param.update(severities=[], stream_ids=[north])
    assert streams.value == [north]
    await settle(lambda: status(page) == "alerts 1–3 of 3")

    find(page, pn.widgets.TextInput, name="Object type").value = "person"
    assert page.query().object_type == "person"
    await settle(lambda: status(page) == "no alerts match")

    page.since = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    page.until = page.since
    problem = find(page, pn.pane.Alert)
    await settle(lambda: problem.visible)
    assert problem.object == "The start of the time range must be before its end."


FILTERS: dict[str, Any] = {
    "severities": [],
    "stream_ids": [],
    "since": None,
    "until": None,
    "object_type": "",
    "text": "",
    "review": "all",
    "confidence": (0.0, 1.0),
}
"""Every filter of the History page, as Clear leaves it."""


async def test_history_clear_resets_every_filter_in_one_update(analyst: Analyst) -> None:
    (north,) = await analyst.register("North gate")
    await analyst.alert(north, "north", severity="high", objectType="car", confidence=0.9)
    await analyst.alert(north, "another")
    page = HistoryPage(analyst.session)
    page.param.update(
        severities=["high"],
        stream_ids=[north],
        since=datetime(2020, 1, 1),
        until=datetime(2999, 1, 1),
        object_type="car",
        text="north",
        review="unreviewed",
        confidence=(0.5, 1.0),
    )
    await settle(lambda: status(page) == "alerts 1–1 of 1")
    batches: list[set[str]] = []
    page.param.watch(lambda *events: batches.append({event.name for event in events}), list(FILTERS))

    find(page, pn.widgets.Button, name="Clear filters").clicks += 1
    assert batches == [set(FILTERS)], "one batch of changes, so the page restarts once"
    assert {name: getattr(page, name) for name in FILTERS} == FILTERS
    assert find(page, pn.widgets.TextInput, name="Message contains").value == ""
    assert page.query() == HistoryQuery()
    await settle(lambda: status(page) == "alerts 1–2 of 2")


async def test_history_pages_back_and_forth_and_a_filter_goes_back_to_the_first(analyst: Analyst) -> None:
    (gate,) = await analyst.register("Gate")
    for n in range(30):
        await analyst.alert(gate, f"alert {n}")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: status(page) == "alerts 1–25 of 30")
    older, newer = find(page, pn.widgets.Button, name="Older ▶"), find(page, pn.widgets.Button, name="◀ Newer")
    assert (newer.disabled, older.disabled) == (True, False)

    older.clicks += 1
    await settle(lambda: status(page) == "alerts 26–30 of 30")
    assert len(page.page_starts) == 2
    assert (newer.disabled, older.disabled) == (False, True)
    assert list(find(page, pn.widgets.Tabulator).value["Message"]) == [f"alert {n}" for n in reversed(range(5))]

    page.page_size = 50
    await settle(lambda: status(page) == "alerts 1–30 of 30")
    assert page.page_starts == [None]


async def test_a_header_click_sorts_the_whole_history_on_the_server(analyst: Analyst) -> None:
    (gate,) = await analyst.register("Gate")
    confidences = [round((n * 37 % 30) / 30, 3) for n in range(30)]  # the highest are not the newest
    for n, confidence in enumerate(confidences):
        await analyst.alert(gate, f"alert {n}", confidence=confidence)
    await analyst.alert(gate, "no confidence")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: status(page) == "alerts 1–25 of 31")
    table = find(page, pn.widgets.Tabulator)

    table.sorters = [{"field": "Confidence", "dir": "desc"}]  # what Tabulator sends when the header is clicked
    assert page.sort == Sort(SortKey.CONFIDENCE, descending=True)
    highest_first = sorted(confidences, reverse=True)
    await settle(lambda: list(table.value["Confidence"]) == highest_first[:25])
    find(page, pn.widgets.Button, name="Older ▶").clicks += 1
    await settle(lambda: status(page) == "alerts 26–31 of 31")
    shown = list(table.value["Confidence"])
    assert shown[:5] == highest_first[25:]
    assert pd.isna(shown[5]), "no confidence sorts last"

    table.sorters = [{"field": "Severity", "dir": "asc"}]
    await settle(lambda: page.page_starts == [None] and status(page) == "alerts 1–25 of 31")
    table.sorters = []
    assert page.sort == Sort()
    await settle(lambda: table.value["Message"].iloc[0] == "no confidence")


async def test_older_clicked_while_a_new_order_is_read_does_not_use_the_old_orders_place(analyst: Analyst) -> None:
    north, south = await analyst.register("North", "South")
    for n in range(30):
        await analyst.alert(north if n % 2 else south, f"alert {n}")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: status(page) == "alerts 1–25 of 30")
    table, older = find(page, pn.widgets.Tabulator), find(page, pn.widgets.Button, name="Older ▶")
    table.sorters = [{"field": "Stream", "dir": "asc"}]
    older.clicks += 1  # at once, before the first page of the new order is read
    await settle(lambda: list(table.value["Stream"]) == ["North"] * 15 + ["South"] * 10)
    assert status(page) == "alerts 1–25 of 30", "still the first page of the new order"
    assert page.page_starts == [None]


async def test_the_confidence_range_narrows_the_rows(analyst: Analyst) -> None:
    (gate,) = await analyst.register("Gate")
    for confidence in (0.1, 0.4, 0.6, 0.9):
        await analyst.alert(gate, f"seen {confidence}", confidence=confidence)
    await analyst.alert(gate, "no confidence")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: status(page) == "alerts 1–5 of 5")
    slider = find(page, pn.widgets.EditableRangeSlider, name="Confidence")
    slider.value = (0.3, 0.7)
    assert page.confidence == (0.3, 0.7)
    await settle(lambda: status(page) == "alerts 1–2 of 2")
    assert "minConfidence=0.3" in page.query().export_url("csv")
    page.confidence = (0.8, 0.2)
    problem = find(page, pn.pane.Alert)
    await settle(lambda: problem.visible)
    assert problem.object == "The lowest confidence must not be above the highest."
    slider.value = (0.0, 1.0)
    await settle(lambda: status(page) == "alerts 1–5 of 5")
    assert not problem.visible
    assert "Confidence" not in page.query().export_url("csv"), "the whole range is no filter"


async def test_ticked_rows_are_reviewed_and_a_new_page_ticks_nothing(analyst: Analyst) -> None:
    (gate,) = await analyst.register("Gate")
    for n in range(30):
        await analyst.alert(gate, f"alert {n}")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: status(page) == "alerts 1–25 of 30")
    page.table.selection = [0, 2]
    find(page, pn.widgets.Button, css_classes=["review-false"]).clicks += 1
    await settle(lambda: "2 alerts marked false positive" in str(page.review_status.object))
    announced = [alert.message for alert in analyst.session.relay.announced]  # type: ignore[attr-defined]
    assert sorted(announced) == ["alert 27", "alert 29"], "the newest and the third newest"
    page.table.selection = [1]
    find(page, pn.widgets.Button, name="Older ▶").clicks += 1
    await settle(lambda: status(page) == "alerts 26–30 of 30")
    assert page.table.selection == [], "a tick belongs to the alert that was in that row"


# ------------------------------------------------------------------ widgets


async def test_the_unreviewed_counter_is_the_stores_count_and_a_click_opens_them(analyst: Analyst) -> None:
    (gate,) = await analyst.register("Gate")
    stored = [await analyst.alert(gate, f"someone at the gate {n}") for n in range(3)]
    await analyst.session.count_unreviewed()
    opened = []
    button = UnreviewedCounter(analyst.session, lambda: opened.append(True)).__panel__()
    assert (button.name, button.button_type) == ("3 unreviewed", "danger")
    analyst.session.receive(await analyst.alert(gate, "and another"))
    assert button.name == "4 unreviewed"
    changed = await analyst.session.review(AlertFilter(), ids=[stored[0].id, stored[1].id], false_positive=True)
    assert changed == (2, False)
    assert [alert.id for alert in analyst.session.relay.announced] == [stored[0].id, stored[1].id]  # type: ignore[attr-defined]
    assert button.name == "2 unreviewed", "counted again from the store"
    await analyst.session.review(AlertFilter(), reviewed=True)
    assert (button.name, button.button_type) == ("0 unreviewed", "light")
    button.clicks += 1
    assert opened == [True]


async def test_an_update_from_another_tab_changes_the_row_and_the_count(analyst: Analyst) -> None:
    (gate,) = await analyst.register("Gate")
    first = await analyst.alert(gate, "first")
    await analyst.alert(gate, "second")
    page = HistoryPage(analyst.session)
    page.on_screen = True
    await settle(lambda: len(page.table.value) == 2)
    another_tab = AnalystSession(analyst.session.relay, analyst.session.user_id, "bo")
    await another_tab.review(AlertFilter(), ids=[first.id], false_positive=True)
    (stored,) = analyst.session.relay.announced  # type: ignore[attr-defined]
    analyst.session.receive_update(
        ReviewUpdate(stored.id, stored.stream_id, True, True, stored.reviewed_by, stored.reviewed_at)
    )
    await settle(lambda: "false positive" in page.table.value["Review"].iloc[1])
    assert "unreviewed" in page.table.value["Review"].iloc[0]
    await settle(lambda: analyst.session.unreviewed == 1)


# ------------------------------------------------------------------ what the relay accepts, the pages show


async def test_an_event_time_beyond_the_year_9999_is_shown_as_milliseconds(analyst: Analyst) -> None:
    """The relay takes any timestamp up to 2**63 - 1 ms; a datetime stops at the year 9999."""
    from workbench.widgets.alert_detail import AlertDetail

    (stream_id,) = await analyst.register("cam")
    stored = await analyst.store.alerts.add(AlertIn(stream_id, "high", "far future", {}, 2**63 - 1))
    alert = LiveAlert.from_row(stored.alert)
    assert alert.event_time is None
    detail = AlertDetail(analyst.session, alert=alert)
    assert f"{2**63 - 1} ms" in str(find(detail, pn.pane.HTML, css_classes=["alert-detail"]).object)
