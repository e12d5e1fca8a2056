"""The header's count of live alerts the analyst has not looked at yet.

Every live alert counts; clicking the counter marks them all seen (the toasts
are the place to read them as they come, the history to read them later).
"""

from __future__ import annotations

from typing import Any

import panel as pn

from workbench.session import AnalystSession


class UnseenCounter:
    def __init__(self, session: AnalystSession) -> None:
        self._session = session
        self.button = pn.widgets.Button(
            name=self._name(session.unseen), button_type="light", css_classes=["unseen-counter"], width=150
        )
        self.button.on_click(lambda _event: session.mark_seen())
        session.param.watch(self._update, "unseen")

    def _update(self, event: Any) -> None:
        self.button.name = self._name(event.new)
        self.button.button_type = "danger" if event.new else "light"

    @staticmethod
    def _name(count: int) -> str:
        return f"{count} unseen alert" + ("" if count == 1 else "s")
