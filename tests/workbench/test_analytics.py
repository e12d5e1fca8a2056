"""The Analytics page in Chromium: the charts of the analyst's streams, an unusual hour that leads to History.

History is seeded straight into the database: two weeks in which the north
gate sees two people every morning at nine and one morning forty; the south
gate a car now and then.  The page must find that one morning, and clicking it
must show exactly those forty alerts in History; its report must say the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.workbench.support import WorkbenchServer, seed_alerts

BURST = 40


@pytest.mark.browser
def test_an_unusual_hour_on_analytics_opens_its_alerts_in_history(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    north, south = analyst.register("North gate"), analyst.register("South gate")
    start = (datetime.now(UTC) - timedelta(days=15)).replace(hour=0, minute=0, second=0, microsecond=0)
    burst_day = start + timedelta(days=12)
    alerts = [
        {"stream_id": north, "severity": "low", "message": f"person {day}.{n}",
         "created_at": start + timedelta(days=day, hours=9, minutes=20 * n),
         "metadata": {"objectType": "person", "confidence": 0.8}}
        for day in range(14) if day != 12 for n in range(2)
    ] + [
        {"stream_id": north, "severity": "high", "message": f"crowd {n}",
         "created_at": burst_day + timedelta(hours=9, minutes=n), "metadata": {"objectType": "person"}}
        for n in range(BURST)
    ] + [
        {"stream_id": south, "severity": "medium", "message": f"car {day}",
         "created_at": start + timedelta(days=day, hours=15), "metadata": {"objectType": "car", "confidence": 0.6}}
        for day in range(0, 14, 3)
    ]  # fmt: skip
    seed_alerts(workbench, alerts)
    analyst.login(page, "/workbench?page=Analytics")
    page.get_by_role("button", name="Refresh").click()  # the seed bypassed the relay: bring its copy up to date
    status = page.locator(".analytics-status")
    expect(status).to_contain_text(f"{len(alerts)} alerts, 1 unusual hours")
    expect(page.locator("canvas:visible").nth(5)).to_be_visible()  # the six charts are drawn

    rows = page.locator(".unusual-hours .tabulator-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("North gate")
    expect(rows.first).to_contain_text(burst_day.strftime("%Y-%m-%d") + " 09:00")
    report_url = page.locator(".analytics-report a.report-link").get_attribute("href")
    assert report_url is not None
    report = page.evaluate("url => fetch(url).then(r => r.text())", report_url)
    assert "North gate" in report
    assert f"&lt;b&gt;{len(alerts)}&lt;/b&gt; on 2 streams" in report, "the report counts what the page counts"

    rows.first.get_by_text("North gate").click()
    expect(page.locator(".history-status")).to_contain_text(f"of {BURST}")
    messages = page.locator(".tabulator-row .tabulator-cell[tabulator-field='Message']").all_inner_texts()
    assert set(messages) <= {f"crowd {n}" for n in range(BURST)}
    assert len(messages) == 25, "the first page of the hour's alerts, newest first"

    page.goto(workbench.base + "/workbench?page=Analytics")
    expect(status).to_contain_text(f"{len(alerts)} alerts")
    page.locator(".analytics-page .choices").click()
    page.locator(".analytics-page .choices__item--choice", has_text="South gate").click()
    expect(status).to_contain_text("5 alerts, 0 unusual hours")
