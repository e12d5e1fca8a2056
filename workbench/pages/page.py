"""What the three pages share: each is a Viewer of one analyst's session, on screen or not.

The shell keeps every page in the document, shows the one the navigation names
and sets its :attr:`Page.on_screen`; the pages that cost something to keep up
(Live's tiles, History's refreshes) do that work only while they are on screen.
"""

from __future__ import annotations

from typing import Any, ClassVar

import panel as pn
import param

from workbench.session import AnalystSession


class Page(pn.viewable.Viewer):
    """A page of the navigation, titled :attr:`title`."""

    title: ClassVar[str]
    on_screen = param.Boolean(default=False, doc="Whether this is the page in front of the analyst.")

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._session = session
