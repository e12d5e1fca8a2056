"""The History page in Chromium: filters narrow the rows, pages come from the server, exports match.

History is seeded straight into the database with chosen storage times (so the
time range can be tested); what each filter should leave is computed from the
seed with plain Python, independently of the store's query.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.workbench.support import WorkbenchServer, seed_alerts
from workbench.history_query import HistoryQuery

Seeded = dict[str, Any]


@pytest.fixture
def seeded(workbench: WorkbenchServer, page: Page) -> tuple[list[Seeded], dict[str, str]]:
    """40 alerts of two streams over two days; the analyst logged in on the History page."""
    analyst = workbench.user()
    streams = {"North gate": analyst.register("North gate"), "South gate": analyst.register("South gate")}
    start = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    alerts = [
        {
            "stream": "North gate",
            "severity": ("low", "medium", "high")[i % 3],
            "object": "car" if i % 5 == 0 else "person",
            "message": f"north movement {i}",
            "created_at": start + timedelta(hours=i),
        }
        for i in range(30)
    ] + [
        {
            "stream": "South gate",
            "severity": "critical" if j % 2 == 0 else "high",
            "object": "person",
            "message": f"south INTRUDER {j}",
            "created_at": start + timedelta(hours=40 + j),
        }
        for j in range(10)
    ]
    ids = seed_alerts(
        workbench,
        [
            {
                "stream_id": streams[alert["stream"]],
                "severity": alert["severity"],
                "message": alert["message"],
                "created_at": alert["created_at"],
                "metadata": {"objectType": alert["object"], "confidence": 0.5},
            }
            for alert in alerts
        ],
    )
    for alert, alert_id in zip(alerts, ids, strict=True):
        alert["id"] = alert_id
    analyst.login(page, "/workbench?page=History")
    return alerts, streams


def column(page: Page, name: str) -> list[str]:
    return page.locator(f".tabulator-row .tabulator-cell[tabulator-field='{name}']").all_inner_texts()


def shows(page: Page, expected: list[Seeded]) -> None:
    """The table shows the first page (newest first) of ``expected``, and counts all of it."""
    expect(page.locator(".history-status")).to_contain_text(f"of {len(expected)}")
    newest_first = list(reversed(expected))[:25]
    expect(page.locator(".tabulator-row")).to_have_count(len(newest_first))
    assert column(page, "Message") == [alert["message"] for alert in newest_first]


def clear(page: Page, everything: list[Seeded]) -> None:
    page.get_by_role("button", name="Clear filters").click()
    shows(page, everything)


def fill(page: Page, label: str, text: str) -> None:
    field = page.get_by_label(label).filter(visible=True)
    field.fill(text)
    field.press("Enter")


@pytest.mark.browser
def test_history_filters_narrow_the_rows(seeded: tuple[list[Seeded], dict[str, str]], page: Page) -> None:
    alerts, _streams = seeded
    shows(page, alerts)

    def only(keep: Callable[[Seeded], bool]) -> list[Seeded]:
        return [alert for alert in alerts if keep(alert)]

    page.get_by_role("button", name="critical", exact=True).click()
    shows(page, only(lambda alert: alert["severity"] == "critical"))
    assert set(column(page, "Severity")) == {"● critical"}
    page.get_by_role("button", name="high", exact=True).click()
    shows(page, only(lambda alert: alert["severity"] in ("critical", "high")))
    clear(page, alerts)

    page.locator(".choices:visible").click()
    page.locator(".choices__item--choice:visible", has_text="South gate").click()
    shows(page, only(lambda alert: alert["stream"] == "South gate"))
    assert set(column(page, "Stream")) == {"South gate"}
    clear(page, alerts)

    fill(page, "Object type", "car")
    shows(page, only(lambda alert: alert["object"] == "car"))
    clear(page, alerts)

    fill(page, "Message contains", "intruder")
    shows(page, only(lambda alert: "intruder" in alert["message"].lower()))
    clear(page, alerts)

    since, until = alerts[10]["created_at"], alerts[20]["created_at"]
    fill(page, "From (UTC)", since.strftime("%Y-%m-%d %H:%M:%S"))
    fill(page, "Until (UTC)", until.strftime("%Y-%m-%d %H:%M:%S"))
    shows(page, only(lambda alert: since <= alert["created_at"] < until))
    fill(page, "From (UTC)", until.strftime("%Y-%m-%d %H:%M:%S"))
    expect(page.get_by_text("The start of the time range must be before its end.")).to_be_visible()


@pytest.mark.browser
def test_history_pages_on_the_server_and_exports_the_filtered_rows(
    seeded: tuple[list[Seeded], dict[str, str]], page: Page, tmp_path: Path
) -> None:
    alerts, _streams = seeded
    shows(page, alerts)
    newest_first = list(reversed(alerts))
    page.get_by_role("button", name="Older ▶").click()
    expect(page.locator(".history-status")).to_contain_text("alerts 26–40 of 40")
    expect(page.locator(".tabulator-row")).to_have_count(15)
    assert column(page, "Message") == [alert["message"] for alert in newest_first[25:]]
    browser_rows = page.evaluate(
        "() => [...Bokeh.documents[0].all_models].find(m => m.type?.includes('Tabulator')).source.data.id.length"
    )
    assert browser_rows == 15, "the browser holds one page, never the whole history"
    page.get_by_role("button", name="◀ Newer").click()
    expect(page.locator(".history-status")).to_contain_text("alerts 1–25 of 40")

    page.get_by_role("button", name="high", exact=True).click()
    page.get_by_role("button", name="medium", exact=True).click()
    wanted = [alert for alert in alerts if alert["severity"] in ("high", "medium")]
    shows(page, wanted)

    csv_url = page.locator("a.export-csv").get_attribute("href")
    assert csv_url is not None
    exported = list(csv.DictReader(io.StringIO(page.evaluate("url => fetch(url).then(r => r.text())", csv_url))))
    assert [row["id"] for row in exported] == [alert["id"] for alert in wanted]  # oldest first, every page

    with page.expect_download() as download:
        page.locator("a.export-parquet").click()
    path = tmp_path / "alerts.parquet"
    download.value.save_as(path)
    frame = pd.read_parquet(path)
    assert list(frame["id"]) == [alert["id"] for alert in wanted]
    assert set(frame["severity"]) == {"high", "medium"}


@pytest.mark.browser
def test_a_header_click_sorts_the_whole_filtered_history(
    seeded: tuple[list[Seeded], dict[str, str]], page: Page
) -> None:
    alerts, _streams = seeded
    shows(page, alerts)
    by_message = sorted(alerts, key=lambda alert: alert["message"])
    assert by_message[0] not in list(reversed(alerts))[:25], "the first by message is not on the newest page"
    header = page.locator(".tabulator-col[tabulator-field='Message'] .tabulator-col-title")
    header.click()
    expect(page.locator(".tabulator-row").first).to_contain_text(by_message[0]["message"])
    assert column(page, "Message") == [alert["message"] for alert in by_message[:25]]
    expect(page.locator(".history-status")).to_contain_text("alerts 1–25 of 40")
    page.get_by_role("button", name="Older ▶").click()
    expect(page.locator(".history-status")).to_contain_text("alerts 26–40 of 40")
    assert column(page, "Message") == [alert["message"] for alert in by_message[25:]]

    header.click()  # the other way round, from the first page
    expect(page.locator(".history-status")).to_contain_text("alerts 1–25 of 40")
    expect(page.locator(".tabulator-row").first).to_contain_text(by_message[-1]["message"])
    assert column(page, "Message") == [alert["message"] for alert in reversed(by_message[15:])]

    page.get_by_role("button", name="critical", exact=True).click()  # a filter keeps the order
    critical = [alert for alert in by_message if alert["severity"] == "critical"]
    expect(page.locator(".history-status")).to_contain_text(f"of {len(critical)}")
    assert column(page, "Message") == [alert["message"] for alert in reversed(critical)]


def test_a_history_query_asks_the_export_for_what_it_asks_the_store() -> None:
    since = datetime(2026, 11, 24, 8, tzinfo=UTC)
    query = HistoryQuery(
        severities=("high", "critical"),
        stream_ids=("stream_a", "stream_b"),
        since=since,
        until=since + timedelta(hours=2),
        object_type=" person ",
        text="door & gate",
    )
    where = query.alert_filter("user_1")
    assert (where.user_id, list(where.stream_ids), list(where.severities)) == (
        "user_1", ["stream_a", "stream_b"], ["high", "critical"],
    )  # fmt: skip
    assert (where.since, where.until, where.object_type, where.text) == (
        since, since + timedelta(hours=2), "person", "door & gate",
    )  # fmt: skip
    assert query.export_url("csv") == (
        "/api/alerts/export?format=csv&streamId=stream_a&streamId=stream_b&severity=high%2Ccritical"
        "&since=2026-11-24T08%3A00%3A00.000Z&until=2026-11-24T10%3A00%3A00.000Z&objectType=person&q=door+%26+gate"
    )
    assert HistoryQuery().export_url("parquet") == "/api/alerts/export?format=parquet"
    assert HistoryQuery(since=since, until=since).problem() is not None
    assert HistoryQuery(since=since).problem() is None


@pytest.mark.parametrize(
    ("review", "reviewed", "false_positive", "query"),
    [
        ("all", None, None, ""),
        ("unreviewed", False, None, "?reviewed=false"),
        ("false positives", None, True, "?falsePositive=true"),
        ("confirmed", True, False, "?reviewed=true&falsePositive=false"),
    ],
)
def test_the_review_filter_is_asked_of_the_store_and_the_export_alike(
    review: str, reviewed: bool | None, false_positive: bool | None, query: str
) -> None:
    asked = HistoryQuery(review=review)
    where = asked.alert_filter("user_1")
    assert (where.reviewed, where.false_positive) == (reviewed, false_positive)
    assert asked.report_url() == "/api/alerts/report" + query
