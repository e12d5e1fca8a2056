"""A live tile of one stream, drawn in the browser from the relay's binary frames.

The tile's JavaScript (``stream_tile.js``) subscribes to the relay with the
page's login cookie and draws every frame on a canvas itself, so frames cost the
server only the relay's fan-out, never the Python session: many tabs and feeds
add no per-frame work here.  Python knows the tile's stream and name, and hears
only the analyst's click (to enlarge the tile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import param
from panel.custom import JSComponent

from relay.history.palette import SEVERITY_COLOURS
from workbench.components.scripts import module, stylesheet


class StreamTile(JSComponent):
    """Live video, device name, status badge, fps/delay and latest alert of one stream."""

    stream_id = param.String(doc="The stream shown; the relay checks that it is the analyst's.")
    device_name = param.String(doc="The name shown on the tile.")
    severity_colours = param.Dict(default=SEVERITY_COLOURS, doc="The colour of each severity's alert marker.")

    _esm = module("relay_socket.js", "stream_tile.js")
    _stylesheets = [stylesheet("stream_tile.css")]  # noqa: RUF012 (Panel's class attribute)

    def __init__(self, on_click: Callable[[StreamTile], None] | None = None, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._on_click = on_click

    def _handle_msg(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("type") == "toggle-enlarged" and self._on_click is not None:
            self._on_click(self)
