"""What the router publishes and the hub delivers: one message, encoded once.

An :class:`Envelope` carries one relay → client message through the broker to the
hub.  The hub asks it for the bytes to put on each consumer's socket, in the form
that consumer wants; those bytes (:func:`~relay.wire.frames.websocket_frame`) are
built once per form and shared by every consumer.

Envelopes also know how to cross a process boundary (:meth:`Envelope.to_bytes`,
:meth:`Envelope.from_bytes`) for the Redis broker: a frame travels in its binary
form, everything else as its JSON text.
"""

from __future__ import annotations

import orjson

from relay.wire.frames import Wire, websocket_frame
from relay.wire.messages import VIDEO_FRAME
from relay.wire.parsing import parse_binary
from relay.wire.video import VideoFrame


class Envelope:
    """A message on its way from the router to the consumers of one stream.

    ``origin`` is the id of the connection that caused it (so an alert is not
    echoed to its sender); ``seq`` is an alert's place among its stream's alerts
    (so a consumer that is replaying stored alerts can drop a live one it
    already replayed).  A video frame's is made by :func:`frame_envelope`.
    """

    __slots__ = ("_text", "_wire_binary", "_wire_text", "arrived", "frame", "origin", "seq", "stream_id", "type")

    def __init__(
        self,
        type: str,
        stream_id: str,
        origin: str = "",
        seq: int = 0,
        frame: VideoFrame | None = None,
        text: bytes | None = None,
    ) -> None:
        self.type = type
        self.stream_id = stream_id
        self.origin = origin
        self.seq = seq
        self.frame = frame
        self._text = text
        self._wire_text: Wire | None = None
        self._wire_binary: Wire | None = None
        self.arrived = 0.0  # perf_counter() at arrival, on the frames whose delivery latency is measured

    @classmethod
    def for_message(cls, type: str, stream_id: str, text: bytes, *, origin: str = "", seq: int = 0) -> Envelope:
        return cls(type, stream_id, origin=origin, seq=seq, text=text)

    @property
    def payload(self) -> bytes | None:
        """The JSON text of a message that is not a frame (None for a frame)."""
        return self._text

    def wire(self, binary: bool = False) -> Wire:
        """The WebSocket frame for this message, in binary or JSON form, built once."""
        if binary:
            wire = self._wire_binary
            if wire is None:
                assert self.frame is not None, "only video frames have a binary form"
                wire = self._wire_binary = websocket_frame(self.frame.binary_payload(), binary=True)
            return wire
        wire = self._wire_text
        if wire is None:
            text = self._text if self.frame is None else self.frame.json_payload()
            assert text is not None
            wire = self._wire_text = websocket_frame(text, binary=False)
        return wire

    def to_bytes(self) -> bytes:
        """Serialise for another relay node: a small JSON head, a newline, the payload."""
        head = orjson.dumps({"t": self.type, "s": self.stream_id, "o": self.origin, "q": self.seq})
        if self.frame is not None:
            return head + b"\n" + self.frame.binary_payload()
        assert self._text is not None
        return head + b"\n" + self._text

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """The inverse of :meth:`to_bytes`."""
        split = data.index(b"\n")
        head = orjson.loads(data[:split])
        payload = data[split + 1 :]
        if head["t"] == VIDEO_FRAME:
            return frame_envelope(parse_binary(payload), head["o"])
        return cls.for_message(head["t"], head["s"], payload, origin=head["o"], seq=head["q"])


_new = object.__new__


def frame_envelope(frame: VideoFrame, origin: str = "") -> Envelope:
    """``Envelope(VIDEO_FRAME, frame.stream_id, origin=origin, frame=frame)``, made without a call of ``__init__``.

    One is made per frame.  Calling a class runs its ``__init__`` in an
    interpreter frame of its own entered from C (the class call is not
    specialised in Python 3.11); a plain function that sets the same slots
    costs about 0.5k instructions less per frame (``benchmarks/RESULTS.md``,
    issue 12).  It sets every slot ``__init__`` sets, to what it would
    (tests/unit/test_wire.py compares them).
    """
    envelope = _new(Envelope)
    envelope.type = VIDEO_FRAME
    envelope.stream_id = frame.stream_id
    envelope.origin = origin
    envelope.seq = 0
    envelope.frame = frame
    envelope._text = None
    envelope._wire_text = None
    envelope._wire_binary = None
    envelope.arrived = 0.0
    return envelope
