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

from workbench.components.stream_tile import StreamTile
from workbench.session import AnalystSession

LAYOUTS: Final = {"1": 1, "2×2": 2, "3×3": 3, "4×4": 4}
DEFAULT_LAYOUT: Final = "2×2"

_WINDOW_FILLING: Final = {"width": "100%", "max-width": "calc((100vh - 190px) * 4 / 3)", "margin": "0 auto"}
"""As wide as the page allows while a square grid of 4:3 tiles still fits the window's height."""

_NO_STREAMS = (
    "**No streams yet.** A phone registers one with `POST /api/streams/register` "
    "(see the mobile client guide); it appears here as soon as it is registered."
)


class LivePage:
    title = "Live"

    def __init__(self, session: AnalystSession) -> None:
        self._session = session
        self._tiles: dict[str, StreamTile] = {}
        self._on_screen = False
        self._first = 0
        self._enlarged: str | None = None
        self.layout = pn.widgets.RadioButtonGroup(
            name="Layout", options=list(LAYOUTS), value=DEFAULT_LAYOUT, button_type="primary", button_style="outline"
        )
        self._previous = pn.widgets.Button(name="◀", width=40, description="Previous streams")
        self._next = pn.widgets.Button(name="▶", width=40, description="Next streams")
        self._range = pn.pane.HTML("", css_classes=["live-range"], align="center")
        self._back = pn.widgets.Button(name="Back to the grid", button_type="primary", visible=False)
        self._empty = pn.pane.Markdown(_NO_STREAMS, visible=False)
        self._grid = pn.GridBox(
            ncols=LAYOUTS[DEFAULT_LAYOUT],
            sizing_mode="stretch_width",
            styles=_WINDOW_FILLING,
        )
        self._single = pn.Column(
            sizing_mode="stretch_width",
            styles=_WINDOW_FILLING,
            visible=False,
        )
        self._previous.on_click(lambda _event: self._turn(-1))
        self._next.on_click(lambda _event: self._turn(+1))
        self._back.on_click(lambda _event: self._enlarge(None))
        self.layout.param.watch(self._layout_changed, "value")
        session.param.watch(lambda _event: self._arrange(), "streams")
        self.view = pn.Column(
            pn.Row(self.layout, self._previous, self._range, self._next, self._back, align="center"),
            self._empty,
            self._grid,
            self._single,
            sizing_mode="stretch_width",
        )
        self._arrange()

    def shown(self) -> None:
        self._on_screen = True
        self._arrange()

    def hidden(self) -> None:
        """Take the tiles away, which closes their sockets: no frames for a page nobody sees."""
        self._on_screen = False
        self._arrange()

    @property
    def _per_page(self) -> int:
        side = LAYOUTS[self.layout.value]
        return side * side

    def _layout_changed(self, _event: Any) -> None:
        self._first = self._first // self._per_page * self._per_page
        self._enlarged = None
        self._arrange()

    def _turn(self, direction: int) -> None:
        self._first += direction * self._per_page
        self._arrange()

    def _enlarge(self, stream_id: str | None) -> None:
        self._enlarged = stream_id
        self._arrange()

    def _toggle(self, tile: StreamTile) -> None:
        self._enlarge(None if self._enlarged == tile.stream_id else tile.stream_id)

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

    def _arrange(self) -> None:
        """Show the tiles the layout, the page and the enlarged stream call for."""
        streams = self._session.stream_ids
        for gone in set(self._tiles) - set(streams):
            del self._tiles[gone]
        for stream_id, tile in self._tiles.items():
            tile.device_name = self._session.label(stream_id)
        if self._enlarged not in streams:
            self._enlarged = None
        per_page = self._per_page
        self._first = max(0, min(self._first, (len(streams) - 1) // per_page * per_page if streams else 0))
        shown = streams[self._first : self._first + per_page]
        paged = len(streams) > per_page and self._enlarged is None
        self._empty.visible = not streams
        self._previous.visible = self._next.visible = self._range.visible = paged
        self._previous.disabled = self._first == 0
        self._next.disabled = self._first + per_page >= len(streams)
        self._range.object = f"streams {self._first + 1}–{self._first + len(shown)} of {len(streams)}"
        self._back.visible = self._enlarged is not None
        self.layout.visible = self._enlarged is None
        if not self._on_screen:
            self._grid.objects = self._single.objects = []
            return
        if self._enlarged is not None:
            self._grid.visible = False
            self._grid.objects = []
            self._single.objects = [self._tile(self._enlarged)]
            self._single.visible = True
            return
        self._single.visible = False
        self._single.objects = []
        self._grid.ncols = LAYOUTS[self.layout.value]
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
