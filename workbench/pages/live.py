"""The Live page: a grid of the analyst's streams, each a tile drawn in the browser.

The analyst picks a layout (1, 2×2, 3×3 or 4×4 tiles); with more streams than
tiles, arrows page through them in the order the streams were registered.
Clicking a tile enlarges it; clicking it again goes back to the grid.  A stream
registered while the page is open joins the grid when the session next reads the
streams.  Tiles are kept per stream, so changing the layout or the page does not
reconnect the tiles that stay; while another page is on screen there are none.
"""

from __future__ import annotations

from typing import Any, Final

import panel as pn
import param

from workbench.components.stream_tile import StreamTile
from workbench.pages.page import Page
from workbench.session import AnalystSession

LAYOUTS: Final = {"1": 1, "2×2": 2, "3×3": 3, "4×4": 4}
DEFAULT_LAYOUT: Final = "2×2"

_WINDOW_FILLING: Final = {"width": "100%", "max-width": "calc((100vh - 190px) * 4 / 3)", "margin": "0 auto"}
"""As wide as the page allows while a square grid of 4:3 tiles still fits the window's height."""

_NO_STREAMS = (
    "**No streams yet.** A phone registers one with `POST /api/streams/register` "
    "(see the mobile client guide); it appears here as soon as it is registered."
)


class LivePage(Page):
    """The tiles of :attr:`layout`'s page starting at stream :attr:`first`, or :attr:`enlarged` alone."""

    title = "Live"

    layout: param.Selector[str] = param.Selector(
        objects=list(LAYOUTS), default=DEFAULT_LAYOUT, doc="How many tiles the grid has."
    )
    first = param.Integer(
        default=0, bounds=(0, None), doc="Where the grid's page starts in the streams: a multiple of its tiles."
    )
    enlarged = param.String(default=None, allow_None=True, doc="The stream shown alone, or None for the grid.")

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(session, **params)
        self._tiles: dict[str, StreamTile] = {}
        self._layout_choice = pn.widgets.RadioButtonGroup.from_param(
            self.param.layout, name="Layout", button_type="primary", button_style="outline"
        )
        self._previous = pn.widgets.Button(name="◀", width=40, description="Previous streams")
        self._next = pn.widgets.Button(name="▶", width=40, description="Next streams")
        self._range = pn.pane.HTML("", css_classes=["live-range"], align="center")
        self._back = pn.widgets.Button(name="Back to the grid", button_type="primary", visible=False)
        self._empty = pn.pane.Markdown(_NO_STREAMS, visible=False)
        self._grid = pn.GridBox(ncols=LAYOUTS[DEFAULT_LAYOUT], sizing_mode="stretch_width", styles=_WINDOW_FILLING)
        self._single = pn.Column(sizing_mode="stretch_width", styles=_WINDOW_FILLING, visible=False)
        self._previous.on_click(lambda _event: self._turn(-1))
        self._next.on_click(lambda _event: self._turn(+1))
        self._back.on_click(self._back_to_grid)
        session.param.watch(lambda _event: self._streams_changed(), "streams")
        self._page = pn.Column(
            pn.Row(self._layout_choice, self._previous, self._range, self._next, self._back, align="center"),
            self._empty,
            self._grid,
            self._single,
            sizing_mode="stretch_width",
        )
        self._arrange()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    @property
    def _per_page(self) -> int:
        side = LAYOUTS[self.layout]
        return side * side

    def _turn(self, direction: int) -> None:
        self.first = max(0, self.first + direction * self._per_page)

    def _back_to_grid(self, _event: object) -> None:
        self.enlarged = None

    def _toggle(self, tile: StreamTile) -> None:
        self.enlarged = None if self.enlarged == tile.stream_id else tile.stream_id

    def _tile(self, stream_id: str) -> StreamTile:
        tile = self._tiles.get(stream_id)
        if tile is None:
            tile = self._tiles[stream_id] = StreamTile(
                on_click=self._toggle,
                stream_id=stream_id,
                device_name=self._session.label(stream_id),
                sizing_mode="stretch_width",
                margin=5,
            )
        return tile

    def _streams_changed(self) -> None:
        """Forget the tiles of streams that are gone, rename the others, and arrange the new list."""
        streams = self._session.stream_ids
        for gone in set(self._tiles) - set(streams):
            del self._tiles[gone]
        for stream_id, tile in self._tiles.items():
            tile.device_name = self._session.label(stream_id)
        self._arrange()

    @param.depends("layout", "first", "enlarged", "on_screen", watch=True)
    def _arrange(self) -> None:
        """Show the tiles the layout, the page and the enlarged stream call for.

        A page start that no longer fits (a new layout, fewer streams) or an enlarged
        stream that is gone is corrected first; the correction arranges again.
        """
        streams = self._session.stream_ids
        per_page = self._per_page
        last_page = (len(streams) - 1) // per_page * per_page if streams else 0
        first = min(self.first // per_page * per_page, last_page)
        enlarged = self.enlarged if self.enlarged in streams else None
        if (first, enlarged) != (self.first, self.enlarged):
            self.param.update(first=first, enlarged=enlarged)
            return
        shown = streams[first : first + per_page]
        paged = len(streams) > per_page and enlarged is None
        self._empty.visible = not streams
        self._previous.visible = self._next.visible = self._range.visible = paged
        self._previous.disabled = first == 0
        self._next.disabled = first + per_page >= len(streams)
        self._range.object = f"streams {first + 1}–{first + len(shown)} of {len(streams)}"
        self._back.visible = enlarged is not None
        self._layout_choice.visible = enlarged is None
        if not self.on_screen:  # no tiles, so no sockets and no frames, for a page nobody sees
            self._grid.objects = self._single.objects = []
            return
        if enlarged is not None:
            self._grid.visible = False
            self._grid.objects = []
            self._single.objects = [self._tile(enlarged)]
            self._single.visible = True
            return
        self._single.visible = False
        self._single.objects = []
        self._grid.ncols = LAYOUTS[self.layout]
        empty_cells = [_empty_cell() for _ in range(per_page - len(shown))] if shown else []
        self._grid.objects = [self._tile(stream_id) for stream_id in shown] + empty_cells
        self._grid.visible = True


def _empty_cell() -> pn.pane.HTML:
    """A free place in the grid, so that tiles keep the layout's size."""
    return pn.pane.HTML(
        "<div style='aspect-ratio:4/3;border:2px dashed #ccc;border-radius:6px'></div>",
        sizing_mode="stretch_width",
        margin=5,
    )
