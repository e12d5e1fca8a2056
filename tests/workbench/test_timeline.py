"""The Timeline page in Chromium: its legend, why it is empty, and its date range."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from relay.clock import utcnow
from relay.history.palette import SEVERITY_COLOURS
from tests.workbench.support import WorkbenchServer, seed_alerts

pytestmark = pytest.mark.browser

IN_SOURCE = "id => Bokeh.documents[0].get_model_by_name('timeline-alerts')?.data.id.includes(id)"
NOT_IN_SOURCE = "id => !Bokeh.documents[0].get_model_by_name('timeline-alerts')?.data.id.includes(id)"


def open_timeline(page: Page) -> None:
    page.get_by_role("button", name="Timeline").click()
    expect(page.locator(".timeline-legend").filter(visible=True)).to_be_visible()


def test_the_legend_names_all_four_severities_in_the_shared_palette(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    analyst.login(page)
    open_timeline(page)
    items = page.locator(".timeline-legend-item").filter(visible=True)
    expect(items).to_have_text(list(SEVERITY_COLOURS))
    colours = items.locator(".dot").evaluate_all("dots => dots.map(dot => getComputedStyle(dot).backgroundColor)")
    wanted = [f"rgb({int(c[1:3], 16)}, {int(c[3:5], 16)}, {int(c[5:7], 16)})" for c in SEVERITY_COLOURS.values()]
    assert colours == wanted
    expect(page.locator(".timeline-empty").filter(visible=True)).to_contain_text("No streams yet")


def test_an_empty_range_says_so_and_a_picked_range_shows_its_alerts(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Loading dock")
    three_days_ago = utcnow() - timedelta(days=3)
    (old,) = seed_alerts(
        workbench,
        [{"stream_id": stream_id, "severity": "high", "message": "an old one", "created_at": three_days_ago}],
    )
    analyst.login(page)
    open_timeline(page)
    empty = page.locator(".timeline-empty").filter(visible=True)
    expect(empty).to_have_text(re.compile(r"No alerts between \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC and now\."))

    start, end = three_days_ago - timedelta(days=1), three_days_ago + timedelta(days=1)
    picker = page.get_by_role("textbox", name="Alerts stored between (UTC)").filter(visible=True)
    picker.fill(f"{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S}")
    picker.press("Enter")
    page.wait_for_function(IN_SOURCE, arg=old)
    expect(empty).to_have_count(0)

    page.get_by_role("button", name="Last 24 hours and live").click()
    page.wait_for_function(NOT_IN_SOURCE, arg=old)
    expect(empty).to_have_text(re.compile(r"No alerts between .* UTC and now\."))
