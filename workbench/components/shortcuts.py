"""Keyboard shortcuts: keys pressed anywhere on the page, outside text fields, handed to Python.

An analyst reviewing alerts moves row by row and marks each: a mouse trip per alert
is what keyboard shortcuts save.  :class:`Shortcuts` is an invisible browser-side
component (``shortcuts.js``) that listens on the document for the keys in
:attr:`shortcut_keys` and calls ``on_key`` with each; a key typed into an input, a text
area or a select is the field's, never a shortcut.  What comes back from the
browser is checked: only the keys asked for are passed on.

It belongs in a part of the document that is never hidden (the shell's header):
inside a page that is hidden and shown again, the browser was seen to hang
while loading the workbench.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import param
from panel.custom import JSComponent

from workbench.components.scripts import module


class Shortcuts(JSComponent):
    """Calls ``on_key`` with each key of :attr:`shortcut_keys` the analyst presses."""

    shortcut_keys = param.List(item_type=str, doc="The keys (KeyboardEvent.key values) that are shortcuts.")

    _esm = module("shortcuts.js")

    def __init__(self, on_key: Callable[[str], None], **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._on_key = on_key

    def _handle_msg(self, data: Any) -> None:
        key = data.get("key") if isinstance(data, dict) else None
        if isinstance(key, str) and key in self.shortcut_keys:
            self._on_key(key)
