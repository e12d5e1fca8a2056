"""Properties of the wire layer over arbitrary input: it answers, and what it accepts can be read back.

The relay's fuzzing found messages that made it drop connections or poison
stored history.  Here hypothesis throws arbitrary text, bytes and JSON at the
parser and checks the two promises: the parser only ever refuses with a
:class:`ProtocolError` (or says the bytes are not text at all), and whatever it
accepts can be written back by every encoder the relay uses (orjson inside a
REST answer, the standard library's json as SQLAlchemy stores it), holds no NUL
and no integer beyond 64 bits, and converts between the two frame forms.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.wire import (
    AlertIn,
    NotUtf8,
    ProtocolError,
    VideoFrame,
    parse_binary,
    parse_text,
)
from relay.wire.messages import MAX_TIMESTAMP
from relay.wire.video import LENGTH

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"x": value}
    return value


def encoded(message: dict[str, Any]) -> bytes:
    """A client's message as any JSON library may write it (big integers, escaped lone surrogates)."""
    return json.dumps(message).encode()


def readable_everywhere(value: Any) -> None:
    """What the REST answers, the exports and the database write must all manage."""
    orjson.dumps({"alerts": [{"metadata": value}], "nextCursor": None})
    json.dumps(value)
    assert "\\u0000" not in orjson.dumps(value).decode()


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_a_text_message_get_an_answer(data: bytes) -> None:
    with contextlib.suppress(ProtocolError, NotUtf8):
        parse_text(data)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_a_binary_message_get_an_answer(data: bytes) -> None:
    try:
        frame = parse_binary(data)
    except ProtocolError:
        return
    frame.json_payload()  # an accepted frame converts to the other form
    assert frame.binary_payload()


@FUZZ
@given(
    message=st.text(max_size=50),
    metadata=json_values,
    timestamp=st.one_of(st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
    ref=st.one_of(st.none(), st.text(max_size=20)),
)
def test_an_accepted_alert_can_be_stored_and_read_back(message: str, metadata: Any, timestamp: Any, ref: Any) -> None:
    body: dict[str, Any] = {"type": "alert", "streamId": "s", "severity": "low", "message": message}
    for key, value in (("metadata", metadata), ("timestamp", timestamp), ("ref", ref)):
        if value is not None:
            body[key] = value
    try:
        alert = parse_text(encoded(body))
    except ProtocolError:
        return
    assert isinstance(alert, AlertIn)
    readable_everywhere(alert.metadata)
    assert "\x00" not in alert.message
    assert alert.ref is None or "\x00" not in alert.ref
    assert 0 <= alert.timestamp <= MAX_TIMESTAMP


@FUZZ
@given(data=st.text(max_size=60), timestamp=st.integers())
def test_an_accepted_json_frame_converts_to_binary(data: str, timestamp: int) -> None:
    message = encoded({"type": "video-frame", "streamId": "s", "data": data, "timestamp": timestamp})
    try:
        frame = parse_text(message)
    except ProtocolError:
        return
    assert isinstance(frame, VideoFrame)
    assert frame.binary_payload()
    assert 0 <= frame.timestamp <= MAX_TIMESTAMP


def test_the_inputs_the_fuzzer_found_are_refused_with_an_answer() -> None:
    """Each of these once made the relay drop the connection or store what it could not read back."""
    stream = {"type": "alert", "streamId": "s", "severity": "low", "message": "m"}
    cases = [
        {**stream, "metadata": deep(40)},
        {**stream, "metadata": deep(250)},
        {**stream, "timestamp": 2**64},
        {**stream, "timestamp": -1},
        {**stream, "message": "nul \x00 inside"},
        {**stream, "metadata": {"k\x00": 1}},
        {"type": "video-frame", "streamId": "s", "data": "not base64!", "timestamp": 1},
        {"type": "video-frame", "streamId": "s", "data": "QUJD=", "timestamp": 1},
    ]
    for case in cases:
        with pytest.raises(ProtocolError) as refused:
            parse_text(encoded(case))
        assert refused.value.code in ("invalid-message", "too-large"), case
    header = b'{"type":"video-frame","streamId":"s","timestamp":18446744073709551616}'
    with pytest.raises(ProtocolError):  # a timestamp of 2**64 in a binary header
        parse_binary(LENGTH.pack(len(header)) + header + b"\xff\xd8")
    assert isinstance(parse_text(encoded({**stream, "metadata": deep(31)})), AlertIn), "32 levels are fine"
    for number in (2**70, 1e308):  # orjson reads the first as a float; JSONB gives both back as integers
        with pytest.raises(ProtocolError):
            parse_text(encoded({**stream, "metadata": {"n": number}}))
