"""The sans-I/O protocol: parsing, validation, both frame forms, conversions."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from relay.wire import (
    AlertIn,
    Auth,
    Ping,
    ProtocolError,
    Register,
    Subscribe,
    Unsubscribe,
    VideoFrame,
    decode_binary_frame,
    encode_binary_frame,
    error_message,
    parse_binary,
    parse_text,
)
from relay.wire.envelope import Envelope, frame_envelope
from relay.wire.video import received_binary
from tests.support import JPEG


def text(message: dict[str, object]) -> str:
    return orjson.dumps(message).decode()


def error_of(raw: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_binary(raw) if isinstance(raw, bytes) else parse_text(raw)
    return caught.value


def test_control_messages_parse_with_contract_defaults() -> None:
    assert parse_text(text({"type": "auth", "token": "t"})) == Auth("t")
    assert parse_text(text({"type": "ping"})) == Ping()
    assert parse_text(text({"type": "unsubscribe", "streamId": "stream_a"})) == Unsubscribe("stream_a")
    register = parse_text(text({"type": "register", "streamId": "stream_a"}))
    assert register == Register("stream_a", "mobile", frozenset({"video-frame"}), frozenset({"alert"}))
    subscribe = parse_text(text({"type": "subscribe", "streamId": "stream_a"}))
    assert isinstance(subscribe, Subscribe)
    assert subscribe.consumes == {"video-frame", "alert", "stream-status"}
    assert subscribe.produces == frozenset()
    assert subscribe.frame_format == "json"


def test_subscribe_with_every_field() -> None:
    message = parse_text(
        text(
            {
                "type": "subscribe",
                "clientType": "ml-service",
                "streamId": "stream_a",
                "consumes": ["video-frame"],
                "produces": ["alert"],
                "frameFormat": "binary",
                "sinceAlertId": "alert_x",
                "token": "tok",
            }
        )
    )
    assert message == Subscribe(
        "stream_a", "ml-service", frozenset({"video-frame"}), frozenset({"alert"}), "binary", "alert_x", "tok"
    )


_ALERT_WITH_FRAME_TIMESTAMP = (
    '{"type": "alert", "streamId": "s", "severity": "low", "message": "m", "frameTimestamp": VALUE}'
)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid-json"),
        ("[1, 2]", "invalid-message"),
        ('{"no": "type"}', "invalid-message"),
        ('{"type": "teleport"}', "unknown-type"),
        ('{"type": "register"}', "invalid-message"),
        ('{"type": "register", "streamId": "has space"}', "invalid-message"),
        ('{"type": "register", "streamId": "s", "produces": ["stream-status"]}', "invalid-message"),
        ('{"type": "subscribe", "streamId": "s", "consumes": "alert"}', "invalid-message"),
        ('{"type": "subscribe", "streamId": "s", "frameFormat": "png"}', "invalid-message"),
        ('{"type": "auth"}', "invalid-message"),
        ('{"type": "video-frame", "streamId": "s"}', "invalid-message"),
        ('{"type": "video-frame", "streamId": "s", "data": "AA==", "timestamp": -1}', "invalid-message"),
        ('{"type": "alert", "streamId": "s", "severity": "urgent", "message": "m"}', "invalid-message"),
        ('{"type": "alert", "streamId": "s", "severity": "low", "message": ""}', "invalid-message"),
        ('{"type": "alert", "streamId": "s", "severity": "low", "message": "m", "metadata": []}', "invalid-message"),
        *(
            (_ALERT_WITH_FRAME_TIMESTAMP.replace("VALUE", value), "invalid-message")
            for value in ("-1", "9223372036854775808", "1e300", '"5"', "true", "[5]", "{}")
        ),
    ],
)
def test_bad_text_messages_get_the_contract_codes(raw: str, code: str) -> None:
    assert error_of(raw).code == code


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"location": {"x": 0.5}}, "location"),
        ({"location": {"x": 0.5, "y": 2}}, "location.y"),
        ({"objectType": 3}, "objectType"),
    ],
)
def test_alert_metadata_shape_is_checked(metadata: dict[str, object], problem: str) -> None:
    error = error_of(
        text({"type": "alert", "streamId": "s", "severity": "low", "message": "m", "metadata": metadata, "ref": "r9"})
    )
    assert error.code == "invalid-message"
    assert problem in error.message
    assert error.ref == "r9", "a refused alert names its ref so the sender stops resending it"


def test_oversized_alerts_are_too_large() -> None:
    long_message = text({"type": "alert", "streamId": "s", "severity": "low", "message": "x" * 2001})
    assert error_of(long_message).code == "too-large"
    big_metadata = text(
        {"type": "alert", "streamId": "s", "severity": "low", "message": "m", "metadata": {"blob": "x" * 20000}}
    )
    assert error_of(big_metadata).code == "too-large"


def test_alert_defaults_timestamp_to_receive_time_and_metadata_to_empty() -> None:
    alert = parse_text(text({"type": "alert", "streamId": "s", "severity": "high", "message": "m"}), received_ms=1234)
    assert alert == AlertIn("s", "high", "m", {}, 1234, None)


def test_binary_frame_round_trip_and_byte_layout() -> None:
    data = encode_binary_frame("stream_a", JPEG, timestamp=1730000000000)
    (length,) = struct.unpack(">I", data[:4])
    header = orjson.loads(data[4 : 4 + length])
    assert header == {
        "type": "video-frame",
        "streamId": "stream_a",
        "timestamp": 1730000000000,
        "contentType": "image/jpeg",
    }
    assert data[4 + length :] == JPEG
    decoded_header, image = decode_binary_frame(data)
    assert decoded_header == header
    assert bytes(image) == JPEG


def test_binary_frame_is_forwarded_as_the_same_bytes() -> None:
    data = encode_binary_frame("stream_a", JPEG, timestamp=5)
    before = VideoFrame.conversions
    frame = parse_binary(data)
    assert frame.binary_payload() is data
    assert VideoFrame.conversions == before


def test_the_frame_factories_make_what_the_constructors_make() -> None:
    """received_binary and frame_envelope set the slots themselves (no __init__ call per frame): every slot, so
    that one added to a class and forgotten there fails here, to what the constructor's would come to."""
    message = encode_binary_frame("s", JPEG, timestamp=5, content_type="image/png")
    image_at = len(message) - len(JPEG)
    for forwardable in (True, False):
        frame = received_binary("s", 5, "image/png", message, image_at, forwardable)
        made = VideoFrame("s", 5, "image/png", memoryview(message)[image_at:], binary_payload=message)
        assert {name: getattr(frame, name) for name in ("stream_id", "timestamp", "content_type", "size")} == {
            name: getattr(made, name) for name in ("stream_id", "timestamp", "content_type", "size")
        }
        assert all(hasattr(frame, name) for name in VideoFrame.__slots__)
        assert (frame.binary_payload() is message) is forwardable
        assert frame.jpeg == JPEG
        assert frame.binary_payload() == made.binary_payload()
        assert frame.json_payload() == made.json_payload()
    envelope = frame_envelope(frame, "node:1")
    constructed = Envelope("video-frame", "s", origin="node:1", frame=frame)
    assert {name: getattr(envelope, name) for name in Envelope.__slots__} == {
        name: getattr(constructed, name) for name in Envelope.__slots__
    }


def test_json_frame_is_forwarded_as_the_same_text() -> None:
    raw = text({"type": "video-frame", "streamId": "s", "data": base64.b64encode(JPEG).decode(), "timestamp": 7})
    frame = parse_text(raw)
    assert isinstance(frame, VideoFrame)
    assert frame.json_payload() == raw.encode()


def test_conversion_happens_once_per_form() -> None:
    before = VideoFrame.conversions
    frame = parse_binary(encode_binary_frame("s", JPEG, timestamp=9))
    first = frame.json_payload()
    for _ in range(5):
        assert frame.json_payload() is first
    assert VideoFrame.conversions == before + 1
    message = orjson.loads(first)
    assert message == {
        "type": "video-frame",
        "streamId": "s",
        "timestamp": 9,
        "contentType": "image/jpeg",
        "data": base64.b64encode(JPEG).decode(),
    }
    back = parse_text(first)
    assert isinstance(back, VideoFrame)
    assert decode_binary_frame(back.binary_payload())[1] == JPEG


def test_frames_missing_a_timestamp_or_with_extra_fields_are_rebuilt() -> None:
    no_time = parse_binary(_binary({"type": "video-frame", "streamId": "s"}), received_ms=42)
    assert decode_binary_frame(no_time.binary_payload())[0]["timestamp"] == 42
    leaky = parse_text(
        text({"type": "video-frame", "streamId": "s", "data": "AAAA", "timestamp": 1, "token": "secret"})
    )
    assert isinstance(leaky, VideoFrame)
    assert b"secret" not in leaky.json_payload()


def test_a_binary_frame_is_forwarded_only_with_none_but_its_own_fields() -> None:
    own = {"type": "video-frame", "streamId": "s", "timestamp": 1}
    for header, forwarded in (
        (own, True),
        ({**own, "contentType": "image/png"}, True),
        ({**own, "token": "secret"}, False),  # four fields, but not the fourth
        ({**own, "contentType": "image/png", "token": "secret"}, False),
    ):
        data = _binary(header)
        frame = parse_binary(data)
        assert (frame.binary_payload() is data) is forwarded, header
        assert b"secret" not in frame.binary_payload()


def test_a_known_stream_id_is_taken_and_a_malformed_one_refused_all_the_same() -> None:
    frame = parse_binary(_binary({"type": "video-frame", "streamId": "s", "timestamp": 1}), known_ids={"s"})
    assert frame.stream_id == "s"
    for bad in ("s/../t", "", 7):
        with pytest.raises(ProtocolError, match="streamId"):
            parse_binary(_binary({"type": "video-frame", "streamId": bad, "timestamp": 1}), known_ids={"s"})


def _binary(header: dict[str, object], image: bytes = JPEG) -> bytes:
    encoded = orjson.dumps(header)
    return struct.pack(">I", len(encoded)) + encoded + image


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x00\x00", "invalid-message"),
        (struct.pack(">I", 1000) + b"{}", "invalid-message"),
        (struct.pack(">I", 3) + b"{{{" + JPEG, "invalid-json"),
        (_binary({"type": "alert", "streamId": "s"}), "invalid-message"),
        (_binary({"type": "video-frame", "streamId": "s"}, b""), "invalid-message"),
        (_binary({"type": "video-frame"}), "invalid-message"),
    ],
)
def test_bad_binary_messages(raw: bytes, code: str) -> None:
    assert error_of(raw).code == code


def test_error_message_echoes_ref_and_stream() -> None:
    body = orjson.loads(error_message(ProtocolError("forbidden", "no", ref="r1", stream_id="s")))
    assert body == {"type": "error", "code": "forbidden", "message": "no", "ref": "r1", "streamId": "s"}


@pytest.mark.parametrize(("given", "meant"), [(None, 5), (1.9, 1)])
def test_a_frame_is_forwarded_as_it_came_only_if_its_timestamp_is_the_one_it_is_taken_for(
    given: object, meant: int
) -> None:
    """A frame without an integer timestamp gets one (the time it arrived, or its integer part): each
    consumer must see that one, in either form, not the ``null`` or ``1.9`` it came with."""
    header = {"type": "video-frame", "streamId": "s", "timestamp": given}
    binary = parse_binary(_binary(header), received_ms=5)
    text = parse_text(orjson.dumps({**header, "data": base64.b64encode(JPEG).decode()}), received_ms=5)
    assert isinstance(text, VideoFrame)
    for frame in (binary, text):
        assert frame.timestamp == meant
        assert decode_binary_frame(frame.binary_payload())[0]["timestamp"] == meant
        assert orjson.loads(frame.json_payload())["timestamp"] == meant
