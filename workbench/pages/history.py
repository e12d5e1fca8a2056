"""The History page: the analyst's stored alerts, filtered, paged on the server, reviewed, exportable.

Filters (severity, stream, time range, object type, text in the message, review
state, confidence range) make a :class:`~workbench.history_query.HistoryQuery`.
Only one page of rows is ever read, with the query of ``GET /api/alerts``
(newest first, keyset paging on the storage order, so pages do not shift while
alerts arrive), plus a count of all matches; the browser never holds more than
that page.

**Sorting is the server's.**  A click on a column header does not sort the rows
the browser holds (Tabulator's ``sortMode`` is ``remote``): it asks the store
for the first page of the *whole* filtered history in that column's order
(:meth:`relay.store.Alerts.sorted_page`, keyset on the column and the storage
order), and the pages after it follow that order.  Clicking a
row shows the alert's details and its snapshot; the export links download every
matching alert as CSV or Parquet from ``GET /api/alerts/export`` with the same
filters.

**Review.**  Rows are selected with their checkboxes; the buttons (or the keys
``r`` reviewed, ``f`` false positive, ``u`` unreviewed) mark the selected rows —
or, with none selected, the alert shown in the details — and "all matching"
marks every alert the filters select.  A review is stored, then reaches every
tab as ``alert-updated`` (:class:`~workbench.session.AnalystSession`), which
changes the row where it is shown.  ``j`` and ``k`` show the next and previous
row's details.

**New alerts do not move the rows.**  While the first page is shown, live
alerts are counted in a "N new alerts" button instead of reshuffling the rows
under the analyst's cursor; a click (or ``n``) pulls them in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import partial
from html import escape
from typing import Any, Final

import pandas as pd
import panel as pn
import param
from param.parameterized import Event

from relay.history.palette import SEVERITY_COLOURS
from relay.store import Sort, SortKey
from relay.store.sorting import Cursor
from relay.wire import SEVERITIES
from workbench.alerts import LiveAlert, ReviewUpdate, format_time
from workbench.components.shortcuts import Shortcuts
from workbench.history_query import REVIEW_STATES, HistoryQuery
from workbench.pages.page import Page
from workbench.session import AnalystSession
from workbench.widgets.alert_detail import VERDICTS, AlertDetail

PAGE_SIZES: Final = (25, 50, 100)
_TABLE_COLUMNS: Final = [
    *("Snapshot", "Stored (UTC)", "Stream", "Severity", "Message", "Object", "Confidence", "Review", "id"),
]
_KEYS: Final = {"r": "reviewed", "f": "false positive", "u": "unreviewed"}
_SORT_KEYS: Final = {
    "Stored (UTC)": SortKey.STORED,
    "Stream": SortKey.STREAM,
    "Severity": SortKey.SEVERITY,
    "Message": SortKey.MESSAGE,
    "Object": SortKey.OBJECT_TYPE,
    "Confidence": SortKey.CONFIDENCE,
    "Review": SortKey.REVIEW,
}
"""What a click on each column's header sorts the history by (the snapshot column sorts nothing)."""


def _no_filters() -> dict[str, Any]:
    """Every filter of the page as "Clear filters" leaves it (new lists each time: params keep what they get)."""
    return {
        "severities": [],
        "stream_ids": [],
        "since": None,
        "until": None,
        "object_type": "",
        "text": "",
        "review": "all",
        "confidence": (0.0, 1.0),
    }


class HistoryPage(Page):
    """One page of the alerts the filters ask for, the newest first; its detail; its export."""

    title = "History"

    severities = param.ListSelector(
        default=[], objects=list(SEVERITIES), label="Severity", doc="Only these severities; none chosen: all."
    )
    stream_ids = param.ListSelector(
        default=[], objects=[], label="Streams", doc="Only these streams (offered by name); none chosen: all."
    )
    since = param.Date(default=None, label="From (UTC)", doc="Only alerts stored from then on.")
    until = param.Date(default=None, label="Until (UTC)", doc="Only alerts stored before then.")
    object_type = param.String(default="", label="Object type", doc="Only alerts of this object type.")
    text = param.String(default="", label="Message contains", doc="Only alerts whose message contains this.")
    review: param.Selector[str] = param.Selector(
        objects=list(REVIEW_STATES), default="all", label="Review", doc="Only alerts in this review state."
    )
    confidence = param.Range(
        default=(0.0, 1.0),
        bounds=(0.0, 1.0),
        label="Confidence",
        doc="Only alerts whose confidence is in this range; the whole range: every alert, with a confidence or not.",
    )
    sort = param.ClassSelector(class_=Sort, default=Sort(), doc="The order of the rows: newest first by default.")
    page_size: param.Selector[int] = param.Selector(
        objects=list(PAGE_SIZES), default=PAGE_SIZES[0], label="Rows", doc="Alerts per page."
    )
    page_starts = param.List[Cursor | None](
        default=[None],
        doc="For each page visited since the filters or the order last changed, the cursor its alerts come "
        "after (None: the first page); the last is the page shown.",
    )

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(session, **params)
        self._rows: list[LiveAlert] = []
        self._next_page: Cursor | None = None
        self._generation = 0
        self._newest_seq: int | None = None
        self._offer_streams()

        severity = pn.widgets.CheckButtonGroup.from_param(self.param.severities, button_type="default")
        streams = pn.widgets.MultiChoice.from_param(
            self.param.stream_ids, placeholder="all streams", sizing_mode="stretch_width"
        )
        since = pn.widgets.DatetimeInput.from_param(self.param.since, width=170)
        until = pn.widgets.DatetimeInput.from_param(self.param.until, width=170)
        object_type = pn.widgets.TextInput.from_param(self.param.object_type, placeholder="e.g. person", width=140)
        text = pn.widgets.TextInput.from_param(self.param.text, placeholder="search text", width=200)
        review = pn.widgets.RadioButtonGroup.from_param(self.param.review, button_type="default")
        confidence = pn.widgets.EditableRangeSlider.from_param(
            self.param.confidence, step=0.05, format="0.00", width=260, css_classes=["history-confidence"]
        )
        page_size = pn.widgets.Select.from_param(self.param.page_size, width=80)
        clear = pn.widgets.Button(name="Clear filters", button_type="light", align="end")
        clear.on_click(lambda _event: self._clear_filters())
        self._newer = pn.widgets.Button(name="◀ Newer", disabled=True)
        self._older = pn.widgets.Button(name="Older ▶", disabled=True)
        self._newer.on_click(lambda _event: self._turn(-1))
        self._older.on_click(lambda _event: self._turn(+1))
        self.new_alerts = pn.widgets.Button(
            name="", button_type="warning", visible=False, css_classes=["history-new-alerts"], align="center"
        )
        self.new_alerts.on_click(lambda _event: self._pull_new())
        self._review_buttons = {
            verdict: pn.widgets.Button(
                name=label, description=f"{description} (key {key})", disabled=True, css_classes=[f"review-{css}"]
            )
            for verdict, label, description, key, css in (
                ("reviewed", "✓ Reviewed", "Mark the selected alerts reviewed", "r", "reviewed"),
                ("false positive", "✗ False positive", "Mark the selected alerts false positives", "f", "false"),
                ("unreviewed", "↺ Unreviewed", "Mark the selected alerts unreviewed again", "u", "unreviewed"),
            )
        }
        for verdict, button in self._review_buttons.items():
            button.on_click(partial(self._button_clicked, verdict))
        self.review_all = pn.widgets.MenuButton(
            name="All matching…",
            items=[("Mark all reviewed", "reviewed"), ("Mark all false positives", "false positive")],
            css_classes=["review-all"],
        )
        self.review_all.on_click(lambda event: self._review_matching(event.new))
        self.review_status = pn.pane.HTML("", css_classes=["review-status"], align="center")
        self.status = pn.pane.HTML("", css_classes=["history-status"], align="center")
        self.problem = pn.pane.Alert("", alert_type="warning", visible=False)
        self.exports = pn.pane.HTML("", css_classes=["history-exports"])
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=_TABLE_COLUMNS),
            disabled=True,
            show_index=False,
            selectable="checkbox",
            hidden_columns=["id"],
            formatters={"Severity": {"type": "html"}, "Snapshot": {"type": "html"}, "Review": {"type": "html"}},
            header_filters=False,
            layout="fit_data_stretch",
            # A page is at most 100 rows: render them all.  Sorting is asked of the store (see the module).
            configuration={"renderVertical": "basic", "sortMode": "remote", "columnHeaderSortMulti": False},
            sortable={"Snapshot": False},
            sizing_mode="stretch_width",
            css_classes=["history-table"],
        )
        self.table.on_click(self._clicked)
        self.table.param.watch(self._selection_changed, "selection")
        self.table.param.watch(self._sorters_changed, "sorters")
        self.detail = AlertDetail(session)
        self.detail.param.watch(self._selection_changed, "alert")
        session.param.watch(lambda _event: self._offer_streams(), "streams")
        session.param.watch(self._alert_arrived, "latest_alert")
        session.param.watch(self._update_arrived, "latest_update")
        self.shortcuts = Shortcuts(self._key, shortcut_keys=[*_KEYS, "j", "k", "n"], visible=False)
        """Not in the page's layout: the shell puts it in the header (see :mod:`workbench.components.shortcuts`)."""

        self._page = pn.Column(
            pn.Row(severity, streams, sizing_mode="stretch_width"),
            pn.Row(since, until, object_type, text, clear),
            pn.Row(review, confidence, align="start"),
            self.problem,
            pn.Row(self._newer, self._older, page_size, self.status, self.new_alerts, self.exports, align="center"),
            pn.Row(*self._review_buttons.values(), self.review_all, self.review_status, align="center"),
            self.table,
            self.detail,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    # ------------------------------------------------------------------ what is asked

    def query(self) -> HistoryQuery:
        return HistoryQuery(
            severities=tuple(self.severities),
            stream_ids=tuple(self.stream_ids),
            since=as_utc(self.since),
            until=as_utc(self.until),
            object_type=self.object_type,
            text=self.text,
            review=self.review,
            confidence=self.confidence,
        )

    def _clear_filters(self) -> None:
        """Every filter back to "all" in one update, so the first page is read once."""
        self.param.update(_no_filters())

    def show_unreviewed(self) -> None:
        """Every unreviewed alert of the analyst (from the header's counter)."""
        self.param.update(_no_filters(), review="unreviewed")

    def _offer_streams(self) -> None:
        """Offer every stream by name; Bokeh's MultiChoice renders option labels as HTML, so they are escaped."""
        self.param.stream_ids.objects = {
            escape(self._session.label(stream_id)): stream_id for stream_id in self._session.stream_ids
        }

    # ------------------------------------------------------------------ paging

    @param.depends("on_screen", watch=True)
    def _refresh_when_shown(self) -> None:
        if self.on_screen:
            self._restart()

    @param.depends(
        *("severities", "stream_ids", "since", "until", "object_type", "text", "review", "confidence"),
        *("sort", "page_size"),
        watch=True,
    )
    def _restart(self) -> None:
        """Go back to the first page of what the filters now ask for.

        The place of the next page belongs to the old filters and order: it is
        forgotten here, not when the new page arrives (a sorted page can take
        seconds), so that "Older" clicked meanwhile cannot read the new order
        from the old order's place.
        """
        self.page_starts = [None]
        self._next_page = None
        self._older.disabled = self._newer.disabled = True
        pn.state.execute(self._read)

    def _turn(self, direction: int) -> None:
        if direction > 0 and self._next_page is not None:
            self.page_starts = [*self.page_starts, self._next_page]
        elif direction < 0 and len(self.page_starts) > 1:
            self.page_starts = self.page_starts[:-1]
        pn.state.execute(self._read)

    async def _read(self) -> None:
        """Read the current page and the count of matches; only the newest request's answer is shown."""
        self._generation += 1
        generation = self._generation
        query = self.query()
        problem = query.problem()
        self.problem.object = problem or ""
        self.problem.visible = problem is not None
        if problem is not None:
            return
        self.exports.object = _export_links(query)
        size = self.page_size
        where = query.alert_filter(self._session.user_id)
        alerts = self._session.relay.store.alerts
        self.table.loading = True
        try:
            sorted_page = await alerts.sorted_page(where, self.sort, limit=size, after=self.page_starts[-1])
            total = await alerts.count(where)
            newest = None
            if len(self.page_starts) == 1:
                newest_first = self.sort == Sort()
                newest = sorted_page.alerts[0].seq if newest_first and sorted_page.alerts else None
                newest = newest if newest is not None else await alerts.newest_seq(where)
        finally:
            if generation == self._generation:
                self.table.loading = False
        if generation != self._generation:
            return
        page = sorted_page.alerts
        self._next_page = sorted_page.next_after
        if newest is not None:
            self._newest_seq = newest
            self.new_alerts.visible = False
        rows_now = [LiveAlert.from_row(row) for row in page]
        if [alert.id for alert in rows_now] != [alert.id for alert in self._rows]:
            self.table.selection = []  # ticks are by row number: other alerts in those rows are not ticked
        self._rows = rows_now
        self.table.value = self._frame(self._rows)
        first = (len(self.page_starts) - 1) * size
        self.status.object = f"alerts {first + 1}–{first + len(page)} of {total}" if page else "no alerts match"
        self._newer.disabled = len(self.page_starts) == 1
        self._older.disabled = self._next_page is None

    def _frame(self, alerts: list[LiveAlert]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                [
                    _thumbnail(alert),
                    format_time(alert.created_at).removesuffix(" UTC"),
                    self._session.label(alert.stream_id),
                    _severity_cell(alert.severity),
                    alert.message,
                    alert.object_type or "",
                    alert.confidence,
                    _verdict_cell(alert),
                    alert.id,
                ]
                for alert in alerts
            ],
            columns=_TABLE_COLUMNS,
        )

    def _sorters_changed(self, event: Event) -> None:
        """A header was clicked: the order of the whole history changes, from its first page."""
        sorters: list[dict[str, Any]] = event.new or []
        key = _SORT_KEYS.get(sorters[0].get("field", "")) if sorters else None
        self.sort = Sort() if key is None else Sort(key, descending=sorters[0].get("dir") != "asc")

    def _clicked(self, event: Any) -> None:
        if 0 <= event.row < len(self._rows) and event.column != "_selection":
            self.detail.alert = self._rows[event.row]

    def _step(self, direction: int) -> None:
        """Show the details of the next (+1) or previous (-1) row."""
        if not self._rows:
            return
        ids = [alert.id for alert in self._rows]
        shown = self.detail.alert
        at = ids.index(shown.id) + direction if shown is not None and shown.id in ids else 0
        self.detail.alert = self._rows[min(max(at, 0), len(self._rows) - 1)]

    def _key(self, key: str) -> None:
        if not self.on_screen:
            return
        if key in _KEYS:
            self._review_selected(_KEYS[key])
        elif key in ("j", "k"):
            self._step(+1 if key == "j" else -1)
        elif key == "n" and self.new_alerts.visible:
            self._pull_new()

    # ------------------------------------------------------------------ review

    def _selection_changed(self, _event: Event | None = None) -> None:
        """The review buttons act on the selected rows, or on the alert shown; with neither they are off."""
        nothing = not self.table.selection and self.detail.alert is None
        for button in self._review_buttons.values():
            button.disabled = nothing

    def _chosen(self) -> list[LiveAlert]:
        chosen = [self._rows[row] for row in self.table.selection if 0 <= row < len(self._rows)]
        return chosen or ([self.detail.alert] if self.detail.alert is not None else [])

    def _button_clicked(self, verdict: str, _event: object) -> None:
        self._review_selected(verdict)

    def _review_selected(self, verdict: str) -> None:
        chosen = self._chosen()
        if chosen:
            pn.state.execute(partial(self._review, [alert.id for alert in chosen], verdict))

    def _review_matching(self, verdict: str) -> None:
        pn.state.execute(partial(self._review, None, verdict))

    async def _review(self, ids: list[str] | None, verdict: str) -> None:
        """Store the verdict for ``ids`` (None: every alert the filters select); the rows change when the
        relay's ``alert-updated`` comes back, as in every other tab."""
        query = self.query()
        if query.problem() is not None:
            return
        where = query.alert_filter(self._session.user_id)
        changed, more = await self._session.review(where, ids=ids, **VERDICTS[verdict])
        what = "alert" if changed == 1 else "alerts"
        more_text = " — more match: choose again to go on" if more else ""
        self.review_status.object = f"{changed} {what} marked {verdict}{more_text}"
        self.table.selection = []

    def _update_arrived(self, event: Event) -> None:
        """An alert's review changed (here or in another tab): its row follows (the details follow by themselves)."""
        update: ReviewUpdate = event.new
        for row, alert in enumerate(self._rows):
            if alert.id == update.id:
                self._rows[row] = alert.reviewed_as(update)
                self.table.patch({"Review": [(row, _verdict_cell(self._rows[row]))]})

    # ------------------------------------------------------------------ live

    def _alert_arrived(self, _event: Event) -> None:
        """A live alert: counted in "N new alerts" while the first page is shown, never moving its rows."""
        if self._newest_seq is None or len(self.page_starts) > 1:
            return
        pn.state.execute(self._count_new)

    async def _count_new(self) -> None:
        newest = self._newest_seq
        query = self.query()
        if newest is None or query.problem() is not None:
            return
        where = query.alert_filter(self._session.user_id)
        new = await self._session.relay.store.alerts.count(where, after_seq=newest)
        self.new_alerts.name = f"{new} new alert{'' if new == 1 else 's'} — show"
        self.new_alerts.visible = new > 0

    def _pull_new(self) -> None:
        self.new_alerts.visible = False
        self.page_starts = [None]
        pn.state.execute(self._read)


def as_utc(moment: date | None) -> datetime | None:
    """The inputs' naive times are UTC, as the page says; a bare date is its midnight."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _severity_cell(severity: str) -> str:
    return (
        f"<span style='color:{SEVERITY_COLOURS[severity]};font-weight:700'>●</span> {escape(severity)}"
        if severity in SEVERITY_COLOURS
        else escape(severity)
    )


def _thumbnail(alert: LiveAlert) -> str:
    """The alert's snapshot, small, loaded by the browser only when its row scrolls into view."""
    url = alert.snapshot_url
    if url is None:
        return "<span class='no-snapshot' title='no snapshot'>–</span>"
    return f"<img class='snapshot-thumbnail' src='{escape(url)}' loading='lazy' alt='snapshot' height='36'>"


def _verdict_cell(alert: LiveAlert) -> str:
    marks = {"false positive": "✗", "reviewed": "✓", "unreviewed": "·"}
    verdict = alert.verdict
    title = f" title='by {escape(alert.reviewed_by)}'" if alert.reviewed_by else ""
    return f"<span class='verdict verdict-{verdict.replace(' ', '-')}'{title}>{marks[verdict]} {verdict}</span>"


def _export_links(query: HistoryQuery) -> str:
    links = " ".join(
        f"<a class='export-{format}' href='{escape(query.export_url(format))}' download>{label}</a>"
        for format, label in (("csv", "⬇ CSV"), ("parquet", "⬇ Parquet"))
    )
    report = f"<a class='report-link' href='{escape(query.report_url())}' download>⬇ Report</a>"
    return f"Export these alerts: {links} · {report}"
