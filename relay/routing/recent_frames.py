"""The last few frames of each stream a node carries: where an alert's snapshot comes from.

An ML service names the frame an alert is about by its ``timestamp``
(``frameTimestamp``); by the time the alert arrives the phone has sent several
more.  So each node keeps, for every stream whose frames pass through its hub
(from its own producers or from other nodes for its consumers), the newest
frames, bounded by count and bytes per stream and by bytes in all (the
streams seen least recently give theirs up first).  They are the frames' own
bytes, already in memory: keeping a reference copies nothing.

A snapshot is the frame with exactly the named timestamp, or, when the alert
names none, the stream's newest frame; a named frame that is gone (older than
what is kept, or never seen on this node) gives no snapshot rather than a
wrong one.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from relay.wire.video import VideoFrame


class RecentFrames:
    """See the module docstring."""

    __slots__ = ("_bytes", "_frames", "_latest", "_total", "max_bytes", "max_frames", "max_total_bytes")

    def __init__(self, *, max_frames: int, max_bytes: int, max_total_bytes: int = 0) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes or max_bytes * 64
        self._frames: OrderedDict[str, deque[VideoFrame]] = OrderedDict()
        self._bytes: dict[str, int] = {}
        self._latest: str | None = None  # the stream last in _frames (seen most recently)
        self._total = 0

    def remember(self, frame: VideoFrame) -> None:
        """Keep ``frame`` as its stream's newest, giving up the stream's oldest (and then the least recent
        streams') beyond the bounds.  Runs once per frame through the hub: locals, not attributes, in the loop."""
        size = frame.size
        max_bytes = self.max_bytes
        if self.max_frames <= 0 or size > max_bytes:
            return  # off, or a frame too big to keep: the stream keeps its smaller ones
        stream_id = frame.stream_id
        streams = self._frames
        if stream_id == self._latest:  # already the last: no move_to_end (0.7k instructions a frame, issue 12)
            kept = streams[stream_id]
        else:
            found = streams.get(stream_id)
            if found is None:
                found = streams[stream_id] = deque()
                self._bytes[stream_id] = 0
            else:
                streams.move_to_end(stream_id)
            kept = found
            self._latest = stream_id
        kept.append(frame)
        before = self._bytes[stream_id]
        held = before + size
        max_frames = self.max_frames
        while kept and (len(kept) > max_frames or held > max_bytes):
            held -= kept.popleft().size
        self._bytes[stream_id] = held
        self._total += held - before
        while self._total > self.max_total_bytes and len(streams) > 1:
            self.forget(next(iter(streams)))

    def find(self, stream_id: str, timestamp: int | None) -> VideoFrame | None:
        """The frame of ``stream_id`` with this ``timestamp`` (None: the newest), if it is kept."""
        kept = self._frames.get(stream_id)
        if not kept:
            return None
        if timestamp is None:
            return kept[-1]
        for frame in reversed(kept):
            if frame.timestamp == timestamp:
                return frame
        return None

    def forget(self, stream_id: str) -> None:
        if stream_id == self._latest:
            self._latest = None
        self._frames.pop(stream_id, None)
        self._total -= self._bytes.pop(stream_id, 0)

    @property
    def bytes_held(self) -> int:
        return self._total

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._frames.values())
