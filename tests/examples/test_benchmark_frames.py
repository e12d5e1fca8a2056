"""The benchmark's frame stamp survives both forms, as a consumer of either relay reads it."""

from __future__ import annotations

import base64

import orjson
import pytest

from benchmarks.frames import MIN_FRAME_BYTES, FrameMaker, read_frame
from relay.wire import VideoFrame, decode_binary_frame, parse_binary, parse_text


@pytest.mark.parametrize("size", [MIN_FRAME_BYTES, 2048, 100 * 1024 + 1, 100 * 1024 + 2])
def test_binary_frame_carries_stamp_and_size(size: int) -> None:
    message = FrameMaker(3, "stream_abc", size, "binary").build(41, 1_730_000_000_123.5)
    assert isinstance(message, bytes)
    header, image = decode_binary_frame(message)
    assert header == {
        "type": "video-frame",
        "streamId": "stream_abc",
        "timestamp": 1_730_000_000_123,
        "contentType": "image/jpeg",
    }
    assert len(image) == size
    assert bytes(image[:4]) == b"\xff\xd8\xff\xe0"
    received = read_frame(message)
    assert received is not None
    assert (received.stream_index, received.sequence, received.sent_ms, received.image_bytes) == (
        3,
        41,
        1_730_000_000_123.5,
        size,
    )


@pytest.mark.parametrize("size", [MIN_FRAME_BYTES, 2048, 100 * 1024 + 1, 100 * 1024 + 2])
def test_json_frame_is_valid_base64_of_the_whole_image(size: int) -> None:
    maker = FrameMaker(0, "stream_abc", size, "json")
    message = maker.build(7, 1000.25)
    assert isinstance(message, str)
    decoded = orjson.loads(message)
    assert decoded["type"] == "video-frame"
    assert decoded["timestamp"] == 1000
    image = base64.b64decode(decoded["data"], validate=True)
    assert len(image) == size
    assert image[20:] == b"\x5a" * (size - 20)
    received = read_frame(message.encode())
    assert received is not None
    assert (received.sequence, received.sent_ms, received.image_bytes) == (7, 1000.25, size)


def test_frames_converted_by_the_relay_read_the_same() -> None:
    """A binary frame the relay turns into JSON (and back) still carries its stamp."""
    binary = FrameMaker(1, "stream_abc", 5000, "binary").build(9, 5.5)
    assert isinstance(binary, bytes)
    as_json = parse_binary(binary).json_payload()
    text = FrameMaker(1, "stream_abc", 5000, "json").build(9, 5.5)
    assert isinstance(text, str)
    frame = parse_text(text)
    assert isinstance(frame, VideoFrame)
    for message in (as_json, frame.binary_payload()):
        received = read_frame(message)
        assert received is not None
        assert (received.stream_index, received.sequence, received.sent_ms, received.image_bytes) == (1, 9, 5.5, 5000)


def test_control_messages_are_not_frames() -> None:
    assert read_frame(b'{"type":"subscribed","streamId":"stream_abc"}') is None


def test_a_frame_without_the_stamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="stamp"):
        read_frame(b'{"type":"video-frame","streamId":"s","data":"' + base64.b64encode(b"x" * 30) + b'"}')
