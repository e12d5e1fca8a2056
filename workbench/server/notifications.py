"""A repair of Panel's toast script, needed until Panel fixes it.

Panel 1.9's ``NotificationArea`` script loops with ``for (notification of ...)``
without ``let``/``const``, so every toast's dismiss and timeout callbacks mark
the *last* toast of the loop as gone: a short toast expiring makes Panel forget a
sticky one.  :func:`repair_notification_area` declares the loop variable, once,
before the first session renders; it does nothing on a Panel without the bug.
"""

from __future__ import annotations

from panel.io.notifications import NotificationArea

BUGGY_LOOP = "for (notification of"

_repaired = False


def repair_notification_area() -> None:
    global _repaired
    script = NotificationArea._scripts["notifications"]
    if not isinstance(script, str) or BUGGY_LOOP not in script:
        return
    _repaired = True
    NotificationArea._scripts = {
        **NotificationArea._scripts,
        "notifications": script.replace(BUGGY_LOOP, "for (const notification of").replace(
            "function destroy() {", "const destroy = () => {"
        ),
    }


def repaired() -> bool:
    """Whether this process found the bug and repaired it."""
    return _repaired
