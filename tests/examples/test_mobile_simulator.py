"""The phone simulator's parts: footage in, JPEG out, and its command line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from footage import Footage, sample_path
from phone import describe
from simulate import footage_for, parse_args

from relay.client import Alert


def test_sample_footage_comes_out_as_jpeg_at_the_width_asked_for() -> None:
    footage = Footage(sample_path("carphone"), width=320, quality=60)
    try:
        picture = footage.capture()
    finally:
        footage.close()
    assert (picture.width, picture.height) == (320, 262)
    image = cv2.imdecode(np.frombuffer(picture.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (262, 320, 3)
    assert picture.captured_ms > 1_700_000_000_000


def test_a_video_file_loops_forever(tmp_path: Path) -> None:
    path = tmp_path / "three-frames.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 1000, (64, 48))
    for shade in (40, 120, 200):
        writer.write(np.full((48, 64, 3), shade, np.uint8))
    writer.release()
    footage = Footage(path, width=64, quality=90)
    try:
        shades = {
            round(float(cv2.imdecode(np.frombuffer(footage.capture().jpeg, np.uint8), 0).mean()), -1) for _ in range(30)
        }
    finally:
        footage.close()
    assert shades <= {40, 120, 200}
    assert len(shades) > 1, "it moves on through the file, and past its end"


def test_a_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(OSError, match="cannot open camera 97"):
        Footage(97, width=320, quality=70)


def test_phones_take_turns_between_the_samples() -> None:
    args = parse_args(["--token", "t", "--streams", "3"])
    scenes = [footage_for(args, i).args[0].name for i in range(3)]
    assert scenes == ["bikes.mp4", "carphone_pristine.mp4", "bikes.mp4"]
    one = parse_args(["--token", "t", "--streams", "2", "--sample", "carphone"])
    assert {footage_for(one, i).args[0].name for i in range(2)} == {"carphone_pristine.mp4"}


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "--token is required"),
        (["--token", "t", "--camera", "0", "--streams", "2"], "a camera can feed one phone"),
        (["--token", "t", "--quality", "0"], "--quality must be between 1 and 100"),
        (["--token", "t", "--fps", "0"], "--fps must be between"),
        (["--token", "t", "--video", "/no/such.mp4"], "no such video file"),
        (["--token", "t", "--video", "a.mp4", "--sample", "bikes"], "not allowed with argument"),
    ],
)
def test_bad_usage_is_refused_with_the_reason(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAY_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert complaint in capsys.readouterr().err


def test_an_alert_is_described_on_one_line() -> None:
    alert = Alert(
        "alert_1",
        "stream_1",
        "high",
        "person detected",
        {
            "objectType": "person",
            "confidence": 0.8712,
            "location": {"x": 0.42, "y": 0.31, "width": 0.2, "height": 0.55},
        },
        1,
        "2026-11-25T20:09:14.123Z",
    )
    assert describe(alert) == "high person 0.87 at (0.42, 0.31) 0.20x0.55: person detected [alert_1]"
    bare = Alert("alert_2", "stream_1", "low", "panic", {}, 1, "2026-11-25T20:09:14.123Z")
    assert describe(bare) == "low -: panic [alert_2]"
