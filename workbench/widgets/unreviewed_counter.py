"""The header's count of the analyst's alerts that nobody has reviewed yet.

The count is the store's (:attr:`AnalystSession.unreviewed`), so it survives a
reload and every tab shows the same number: a review in one tab reaches the
others as ``alert-updated`` and they count again.  Clicking it opens History on
the unreviewed alerts, where they are reviewed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn

from workbench.session import AnalystSession


class UnreviewedCounter(pn.viewable.Viewer):
    """A button showing :attr:`AnalystSession.unreviewed`, red while it is not zero; a click calls ``open``."""

    def __init__(self, session: AnalystSession, open: Callable[[], None], **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._button = pn.widgets.Button(
            name=pn.bind(_text, session.param.unreviewed),
            button_type=pn.bind(_button_type, session.param.unreviewed),
            css_classes=["unreviewed-counter"],
            description="Show the unreviewed alerts in History",
            width=150,
        )
        self._button.on_click(lambda _event: open())

    def __panel__(self) -> pn.viewable.Viewable:
        return self._button


def _text(count: int) -> str:
    return f"{count:,} unreviewed"


def _button_type(count: int) -> str:
    return "danger" if count else "light"
