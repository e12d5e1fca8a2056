"""An ML client's alert, end to end: a toast, the unreviewed counter, the tile, the Timeline and the History.

Also the checks on alerts that come back from the browser (:class:`LiveAlert`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.workbench.support import Phone, WorkbenchServer, send_alert, wait_for_alert_feed
from workbench.alerts import LiveAlert

PERSON = {"confidence": 0.87, "location": {"x": 0.25, "y": 0.2, "width": 0.3, "height": 0.5}, "objectType": "person"}

POINT_ON_SCREEN = """alertId => {
  const doc = Bokeh.documents[0];
  const plot = doc.get_model_by_name("timeline-plot"), source = doc.get_model_by_name("timeline-alerts");
  const view = plot && Bokeh.index.find_one(plot);
  const i = source ? source.data.id.indexOf(alertId) : -1;
  if (!view || i < 0 || !view.is_idle) return null;
  const data = source.data, box = view.canvas_view.el.getBoundingClientRect();
  const x = view.frame.x_scale.compute(data.time[i]), y = view.frame.y_scale.compute(data.stream[i]);
  return Number.isFinite(x) && Number.isFinite(y) ? [box.left + x, box.top + y] : null;
}"""


@pytest.mark.browser
def test_an_ml_alert_toasts_counts_and_shows_on_the_tile_timeline_and_history(
    workbench: WorkbenchServer, page: Page
) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Loading bay")
    side_door = analyst.register("Side door")
    phone = Phone(analyst, stream_id).stream()
    try:
        analyst.login(page)
        expect(page.locator(f".tile[data-stream-id='{stream_id}'] .badge")).to_have_text("streaming")
        counter = page.locator(".unreviewed-counter button")
        expect(counter).to_have_text("0 unreviewed")
        wait_for_alert_feed(page, stream_id)
        wait_for_alert_feed(page, side_door)

        critical = send_alert(
            analyst, stream_id, severity="critical", message="person in the loading bay", metadata=PERSON
        )
        critical_toast = page.locator(".notyf__toast.vigil-toast-critical", has_text="person in the loading bay")
        expect(critical_toast).to_be_visible()
        expect(critical_toast).to_contain_text("Loading bay")
        marker = page.locator(f".tile[data-stream-id='{stream_id}'] .alert-box[data-alert-id='{critical}']")
        expect(marker).to_contain_text("person in the loading bay")
        expect(marker).to_have_attribute("style", re.compile(r"left: 25%; top: 20%; width: 30%; height: 50%"))

        send_alert(analyst, side_door, severity="low", message="a passing shadow", metadata={"objectType": "motion"})
        low_toast = page.locator(".notyf__toast.vigil-toast-low", has_text="a passing shadow")
        expect(low_toast).to_be_visible()
        expect(counter).to_have_text("2 unreviewed")
        expect(low_toast).to_have_count(0)  # low toasts fade ...
        expect(critical_toast).to_be_visible()  # ... critical ones stay until dismissed
        counter.click()
        expect(page.locator(".history-table .tabulator-row").filter(visible=True)).to_have_count(2)

        page.get_by_role("button", name="Timeline").click()
        later = send_alert(analyst, side_door, severity="medium", message="while the timeline is open")
        page.wait_for_function(
            "id => Bokeh.documents[0].get_model_by_name('timeline-alerts')?.data.id.includes(id)", arg=later
        )
        point = page.wait_for_function(POINT_ON_SCREEN, arg=critical).json_value()
        page.mouse.click(*point)
        detail = page.locator(f"table.alert-detail-table[data-alert-id='{critical}']:visible")
        expect(detail).to_contain_text("person in the loading bay")
        expect(detail).to_contain_text("0.87")

        page.get_by_role("button", name="History").click()
        row = page.locator(".tabulator-row", has_text="person in the loading bay")
        expect(row).to_be_visible()
        expect(page.locator(".tabulator-row", has_text="a passing shadow")).to_be_visible()
        row.click()
        detail = page.locator(f"table.alert-detail-table[data-alert-id='{critical}']:visible")
        expect(detail).to_contain_text("person")
        expect(detail).to_contain_text("x 0.25, y 0.20, width 0.30, height 0.50")
    finally:
        phone.close()


GOOD: dict[str, Any] = {
    "type": "alert",
    "id": "alert_1",
    "streamId": "stream_1",
    "severity": "high",
    "message": "person",
    "metadata": {"confidence": 0.5},
    "timestamp": 1730000000000,
    "createdAt": "2026-11-25T20:09:14.123Z",
    "ref": "r1",
}


def test_an_alert_from_the_browser_is_read_as_the_relay_sent_it() -> None:
    alert = LiveAlert.from_message(GOOD)
    assert (alert.id, alert.stream_id, alert.severity, alert.confidence, alert.ref) == (
        "alert_1", "stream_1", "high", 0.5, "r1",
    )  # fmt: skip
    assert alert.created_at.isoformat() == "2026-11-25T20:09:14.123000+00:00"
    assert not alert.has_snapshot
    assert LiveAlert.from_message({**GOOD, "hasSnapshot": True}).has_snapshot


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "no spaces allowed"}, "URL-safe"),
        ({"streamId": None}, "strings"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"message": ""}, "message"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"createdAt": "not a time"}, "Invalid isoformat"),
    ],
)
def test_a_malformed_alert_from_the_browser_is_refused(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        LiveAlert.from_message({**GOOD, **change})


@pytest.mark.browser
def test_device_names_and_alert_text_are_shown_as_text_never_run(workbench: WorkbenchServer, page: Page) -> None:
    planted = '<img src=x onerror="window.planted = (window.planted || 0) + 1">'
    analyst = workbench.user()
    stream_id = analyst.register(f"camera {planted}")
    analyst.login(page)
    wait_for_alert_feed(page, stream_id)
    send_alert(
        analyst, stream_id, severity="high", message=f"alert {planted}", metadata={"objectType": planted, "x": planted}
    )
    expect(page.locator(".notyf__toast", has_text=f"alert {planted}")).to_be_visible()
    expect(page.locator(".tile .name")).to_have_text(f"camera {planted}")
    for name in ("Timeline", "History"):
        page.get_by_role("button", name=name).click()
    row = page.locator(".tabulator-row", has_text=f"alert {planted}")
    row.click()
    expect(page.locator(".alert-detail-table:visible")).to_contain_text(planted)
    page.locator(".choices:visible").click()
    expect(page.locator(".choices__item--choice:visible", has_text=f"camera {planted}")).to_be_visible()
    assert page.evaluate("window.planted") is None


@pytest.mark.browser
def test_toasts_show_three_at_most_count_the_rest_and_show_the_alerts_frame(
    workbench: WorkbenchServer, page: Page
) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Car park")
    phone = Phone(analyst, stream_id).stream()  # frames the relay keeps, for the alerts' snapshots
    try:
        analyst.login(page)
        expect(page.locator(f".tile[data-stream-id='{stream_id}']")).to_have_attribute("data-status", "streaming")
        wait_for_alert_feed(page, stream_id)
        for number in range(1, 6):
            send_alert(analyst, stream_id, severity="critical", message=f"intruder {number}")
            expect(page.locator(".notyf__toast", has_text=f"intruder {number}")).to_be_visible()
    finally:
        phone.close()
    toasts = page.locator(".notyf__toast.vigil-toast-critical")
    expect(toasts).to_have_count(3)
    for number in (3, 4, 5):  # the newest stay
        expect(toasts.filter(has_text=f"intruder {number}")).to_be_visible()
    expect(page.locator(".notyf__toast.vigil-toast-more")).to_have_text(re.compile(r"\+2 more alerts"))

    picture = toasts.filter(has_text="intruder 5").locator("img.vigil-toast-snapshot")
    expect(picture).to_have_attribute("src", re.compile(r"^/api/alerts/alert_[\w-]+/snapshot$"))
    size = page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0 && [img.naturalWidth, img.naturalHeight]",
        arg=picture.element_handle(),
    ).json_value()
    assert size == [320, 240], "the toast shows the phone's frame, loaded with the login cookie"
