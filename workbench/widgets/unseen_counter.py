"""The header's count of live alerts the analyst has not looked at yet.

Every live alert counts; clicking the counter marks them all seen (the toasts
are the place to read them as they come, the history to read them later).
"""

from __future__ import annotations

from typing import Any

import panel as pn

from workbench.session import AnalystSession


class UnseenCounter(pn.viewable.Viewer):
    """A button showing :attr:`AnalystSession.unseen`, red while it is not zero."""

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._button = pn.widgets.Button(
            name=pn.bind(_text, session.param.unseen),
            button_type=pn.bind(_button_type, session.param.unseen),
            css_classes=["unseen-counter"],
            width=150,
        )
        self._button.on_click(lambda _event: session.mark_seen())

    def __panel__(self) -> pn.viewable.Viewable:
        return self._button


def _text(count: int) -> str:
    return f"{count} unseen alert" + ("" if count == 1 else "s")


def _button_type(count: int) -> str:
    return "danger" if count else "light"
