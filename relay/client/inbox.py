"""Messages received and not yet read by the application.

Alerts, statuses and error reports wait here however long the application
takes: losing one would break the client's promise that no alert is missed.
Video frames are different: a late frame is worth less than the next one, so at
most ``max_frames`` wait and a new frame pushes out the oldest waiting frame
(counted in :attr:`Inbox.frames_dropped`).  An application that reads slower than
the camera therefore always gets the newest frames, never a growing backlog.
"""

from __future__ import annotations

import asyncio
from collections import deque

from relay.client.messages import Frame, Message


class Inbox:
    """The queue behind ``async for message in client``; see the module docstring."""

    def __init__(self, max_frames: int = 8) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.max_frames = max_frames
        self.frames_dropped = 0
        self._items: deque[Message] = deque()
        self._frames = 0
        self._changed = asyncio.Event()
        self._end: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> None:
        """Add a message; a frame beyond ``max_frames`` replaces the oldest waiting frame."""
        if isinstance(message, Frame):
            if self._frames >= self.max_frames:
                self._drop_oldest_frame()
            self._frames += 1
        self._items.append(message)
        self._changed.set()

    def end(self, reason: BaseException) -> None:
        """No more messages will come: readers get what waits, then ``reason`` is raised."""
        if self._end is None:
            self._end = reason
        self._changed.set()

    async def get(self) -> Message:
        """The oldest waiting message; raises the end reason once none is left."""
        while not self._items:
            if self._end is not None:
                raise self._end
            self._changed.clear()
            await self._changed.wait()
        message = self._items.popleft()
        if isinstance(message, Frame):
            self._frames -= 1
        return message

    def _drop_oldest_frame(self) -> None:
        for index, waiting in enumerate(self._items):
            if isinstance(waiting, Frame):
                del self._items[index]
                self._frames -= 1
                self.frames_dropped += 1
                return
