"""The frames a node keeps for snapshots: the named one or the newest, within every bound (no sockets)."""

from __future__ import annotations

import base64

from relay.routing.recent_frames import RecentFrames
from relay.wire.video import VideoFrame


def frame(stream_id: str, timestamp: int, size: int = 10) -> VideoFrame:
    return VideoFrame(stream_id, timestamp, "image/jpeg", jpeg=bytes(size))


def test_the_named_frame_or_the_newest_and_nothing_for_one_that_is_gone() -> None:
    frames = RecentFrames(max_frames=3, max_bytes=1000)
    for timestamp in range(1, 6):
        frames.remember(frame("a", timestamp))
    assert frames.find("a", None).timestamp == 5  # type: ignore[union-attr]
    assert frames.find("a", 3).timestamp == 3  # type: ignore[union-attr]
    assert frames.find("a", 2) is None, "older than the three kept"
    assert frames.find("b", None) is None
    assert len(frames) == 3


def test_bytes_per_stream_bound_what_one_stream_keeps() -> None:
    frames = RecentFrames(max_frames=30, max_bytes=25)
    for timestamp in range(1, 5):
        frames.remember(frame("a", timestamp, size=10))
    assert [frames.find("a", t) is not None for t in range(1, 5)] == [False, False, True, True]
    assert frames.bytes_held == 20
    frames.remember(frame("a", 9, size=40))
    assert frames.find("a", 9) is None, "a frame over the bound is not kept"
    assert frames.find("a", 4) is not None, "nor does it push out the smaller ones"


def test_the_node_bound_gives_up_the_stream_seen_least_recently() -> None:
    frames = RecentFrames(max_frames=5, max_bytes=100, max_total_bytes=240)
    for stream_id in ("a", "b", "c"):
        frames.remember(frame(stream_id, 1, size=100))
    assert frames.find("a", None) is None, "a was seen least recently"
    assert frames.find("b", None) is not None
    assert frames.find("c", None) is not None
    frames.remember(frame("b", 2, size=50))  # b is now the most recent
    frames.remember(frame("d", 1, size=100))
    assert frames.find("c", None) is None
    assert frames.find("b", 2) is not None
    assert frames.bytes_held == 150
    frames.forget("b")
    assert frames.bytes_held == 100, "d alone"


def test_a_stream_remembered_again_after_it_was_forgotten_is_the_most_recent() -> None:
    """The buffer does not move a stream to the end again for each of its frames in a row; one forgotten meanwhile
    is a new stream when it comes back, seen more recently than the others."""
    frames = RecentFrames(max_frames=5, max_bytes=100, max_total_bytes=200)
    frames.remember(frame("a", 1, size=100))
    frames.remember(frame("b", 1, size=50))
    frames.remember(frame("b", 2, size=50))
    frames.forget("b")
    frames.remember(frame("b", 3, size=100))
    frames.remember(frame("c", 1, size=100))  # over the node's bound: a, seen least recently, goes
    assert frames.find("a", None) is None
    assert frames.find("b", 3) is not None
    assert frames.find("c", 1) is not None
    assert frames.bytes_held == 200


def test_no_frames_are_kept_when_snapshots_are_off() -> None:
    frames = RecentFrames(max_frames=0, max_bytes=0)
    frames.remember(frame("a", 1))
    assert frames.find("a", None) is None
    assert frames.bytes_held == 0


def test_a_json_frame_counts_its_decoded_size_before_and_after_it_is_decoded() -> None:
    frames = RecentFrames(max_frames=2, max_bytes=1000)
    for image in (b"a", b"ab", b"abc", b"abcd"):  # two, one and no padding characters
        b64 = base64.b64encode(image).decode()
        json_frame = VideoFrame("a", len(image), "image/jpeg", b64=b64)
        assert json_frame.size == len(image)
        frames.remember(json_frame)
        assert json_frame.jpeg == image  # decoded (for a snapshot, a binary consumer) while it is kept
        assert json_frame.size == len(image)
    assert frames.bytes_held == 3 + 4, "what was added is what is taken away: the newest two are held"
    frames.forget("a")
    assert frames.bytes_held == 0
