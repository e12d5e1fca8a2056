"""relay/tornado/framing.py: where a client frame starts and ends, for the connection's own reader."""

from __future__ import annotations

import pytest
from websockets.utils import apply_mask

from relay.tornado.framing import PLAIN_BINARY, PLAIN_TEXT, frame_header, unmask
from tests.raw_websocket import client_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_every_length_encoding_is_read_and_the_header_is_none_until_whole(size: int) -> None:
    frame = client_frame(0x2, b"x" * size)
    header_size = len(frame) - size
    for cut in range(header_size):
        assert frame_header(memoryview(frame), 0, cut) is None, cut
    assert frame_header(memoryview(frame), 0, header_size) == (PLAIN_BINARY, True, header_size, size)


def test_a_header_is_read_at_any_offset_and_unmasked_frames_say_so() -> None:
    data = b"junk" + client_frame(0x1, b"hello", masked=False) + client_frame(0x9, b"p", fin=False)
    view = memoryview(data)
    assert frame_header(view, 4, len(data)) == (PLAIN_TEXT, False, 2, 5)
    assert frame_header(view, 11, len(data)) == (0x09, True, 6, 1)


def test_unmask_is_the_library_apply_mask() -> None:
    payload, mask = bytes(range(256)) * 3 + b"xyz", b"\x12\x34\x56\x78"
    assert unmask(memoryview(payload), mask) == apply_mask(payload, mask)
