"""The severities' palette: the one source of colour for the workbench and ``relay report``."""

from __future__ import annotations

import re

from relay.history.palette import SEVERITY_COLOURS
from relay.wire import SEVERITIES


def test_every_severity_has_one_colour_in_the_wire_order() -> None:
    assert tuple(SEVERITY_COLOURS) == SEVERITIES
    assert all(re.fullmatch(r"#[0-9a-f]{6}", colour) for colour in SEVERITY_COLOURS.values())
