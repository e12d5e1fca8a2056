"""The JavaScript and CSS of the browser-side components, read from the files beside them.

Panel takes a component's module as one piece of text, so helpers shared by
several components (``relay_socket.js``) are prepended to the component's own file
rather than imported.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def module(*names: str) -> str:
    """The ES module made of these ``.js`` files, in order."""
    return "\n".join((HERE / name).read_text(encoding="utf-8") for name in names)


def stylesheet(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")
