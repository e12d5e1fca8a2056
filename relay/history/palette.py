"""The colour of each severity, one palette for everything that draws alerts.

The workbench (toasts, tiles, the timeline, the history table) and ``relay
report`` read the same colours, so a severity looks the same in a report mailed
from the relay as on the analyst's screen.  The relay never imports the
workbench, so the palette lives here and the workbench imports it.
"""

from __future__ import annotations

from typing import Final

SEVERITY_COLOURS: Final = {"low": "#4e79a7", "medium": "#c9a227", "high": "#f28e2b", "critical": "#e15759"}
"""One colour per severity of :data:`relay.wire.SEVERITIES`, in the same order."""
