"""The detectors of the ML service: people, faces and motion, all shipped with OpenCV.

Each detector takes one BGR picture and returns :class:`Detection` values whose
box is normalised to the picture (0..1, as the relay's ``location`` wants) and
whose confidence is in 0..1.  OpenCV's detectors give scores, not
probabilities; how each score becomes a confidence is written beside it.

* :class:`PeopleDetector` — the HOG + linear SVM pedestrian detector (Dalal and
  Triggs).  The picture is scaled to a fixed working width (its cost grows with
  the area), and padded with a black border first: a person whose head or feet
  leave the frame, the usual case in phone footage, is only found when the
  64×128 window may extend past the edge.  Scores under ``min_score`` are
  mostly lamp posts and car lights, and are dropped.
* :class:`FaceDetector` — the Haar cascade ``frontalface_alt2``.  A real face is
  found by many overlapping windows, a false one by few, so the number of
  neighbours is the score.
* :class:`MotionDetector` — MOG2 background subtraction.  It learns the scene
  over the first frames, so it keeps state: one per stream, fed that stream's
  frames in order.

None of them is thread-safe; the service gives each stream its own
:class:`Analyzer` and never runs two frames of a stream at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import cv2
import cv2.data
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]

KINDS = ("person", "face", "motion")


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle relative to the picture: ``x``, ``y`` its top-left corner; all in 0..1."""

    x: float
    y: float
    width: float
    height: float

    @classmethod
    def from_pixels(cls, x: float, y: float, width: float, height: float, size: tuple[int, int]) -> Box:
        """From pixels of a picture of ``size`` (width, height), clipped to the picture."""
        frame_width, frame_height = size
        left, top = max(0.0, float(x)), max(0.0, float(y))
        right, bottom = min(float(frame_width), float(x + width)), min(float(frame_height), float(y + height))
        return cls(
            round(left / frame_width, 4),
            round(top / frame_height, 4),
            round(max(0.0, right - left) / frame_width, 4),
            round(max(0.0, bottom - top) / frame_height, 4),
        )

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class Detection:
    """Something found in a picture: what (``person``, ``face``, ``motion``), how sure, where."""

    kind: str
    confidence: float
    box: Box


class Detector(Protocol):
    def detect(self, image: Image) -> list[Detection]: ...


def _scaled(image: Image, width: int) -> tuple[Image, float]:
    """``image`` at ``width`` pixels wide (aspect kept), and the factor applied."""
    factor = width / image.shape[1]
    if factor == 1:
        return image, 1.0
    height = max(1, round(image.shape[0] * factor))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=interpolation), dtype=np.uint8), factor


class PeopleDetector:
    """People, by HOG; see the module docstring.

    Confidence is the logistic of the SVM score, ``1 / (1 + e^-score)``: the
    default threshold 1.2 is 0.77, a clear pedestrian (score 3) 0.95.
    """

    def __init__(self, work_width: int = 400, min_score: float = 1.2) -> None:
        self.work_width = work_width
        self.min_score = min_score
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))

    def detect(self, image: Image) -> list[Detection]:
        small, _ = _scaled(image, self.work_width)
        height, width = small.shape[:2]
        pad_y, pad_x = height // 4, width // 16
        padded = cv2.copyMakeBorder(small, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        rects, scores = self._hog.detectMultiScale(padded, winStride=(8, 8), padding=(8, 8), scale=1.05)
        boxes = [[int(v) for v in rect] for rect in rects]
        flat = [float(s) for s in np.ravel(scores)]
        keep = cv2.dnn.NMSBoxes(boxes, flat, self.min_score, 0.4) if boxes else []
        return [
            Detection(
                "person",
                round(1 / (1 + math.exp(-flat[i])), 3),
                Box.from_pixels(boxes[i][0] - pad_x, boxes[i][1] - pad_y, boxes[i][2], boxes[i][3], (width, height)),
            )
            for i in np.ravel(keep)
        ]


class FaceDetector:
    """Frontal faces, by a Haar cascade; see the module docstring.

    Confidence grows with the number of neighbouring windows that agree,
    ``1 - e^(-neighbours / 10)``: the minimum of 8 is 0.55; the faces of the
    sample footage have 10 to 26 (0.63 to 0.93), the false ones 5 to 7.
    """

    def __init__(self, max_width: int = 480, min_neighbours: int = 8) -> None:
        self.max_width = max_width
        self.min_neighbours = min_neighbours
        path = cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise OSError(f"cannot load the face cascade {path}")

    def detect(self, image: Image) -> list[Detection]:
        small, _ = _scaled(image, min(self.max_width, image.shape[1]))
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbours, minSize=(24, 24)
        )
        size = (gray.shape[1], gray.shape[0])
        return [
            Detection("face", round(1 - math.exp(-int(n) / 10), 3), Box.from_pixels(x, y, width, height, size))
            for (x, y, width, height), n in zip(rects, np.ravel(neighbours), strict=True)
        ]


class MotionDetector:
    """Motion, by MOG2 background subtraction; see the module docstring.

    Reports one detection when more than ``min_fraction`` of the picture moves
    (after ``warmup`` frames of learning the scene): the box around the moving
    regions, and ``fraction`` of the picture moving as its confidence scale
    (a tenth of the picture moving is confidence 1).
    """

    def __init__(self, work_width: int = 320, min_fraction: float = 0.02, warmup: int = 10) -> None:
        self.work_width = work_width
        self.min_fraction = min_fraction
        self.warmup = warmup
        self._frames = 0
        self._subtractor = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def detect(self, image: Image) -> list[Detection]:
        small, _ = _scaled(image, self.work_width)
        mask = self._subtractor.apply(small)
        self._frames += 1
        if self._frames <= self.warmup:
            return []
        moving = cv2.morphologyEx(np.where(mask == 255, 255, 0).astype(np.uint8), cv2.MORPH_OPEN, self._open)
        fraction = float(np.count_nonzero(moving)) / moving.size
        if fraction < self.min_fraction:
            return []
        x, y, width, height = cv2.boundingRect(moving)
        size = (moving.shape[1], moving.shape[0])
        return [Detection("motion", round(min(1.0, fraction * 10), 3), Box.from_pixels(x, y, width, height, size))]


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one picture held, and how long finding it took."""

    detections: list[Detection]
    width: int
    height: int
    seconds: float


class Analyzer:
    """The detectors of one stream, run on its pictures one at a time."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown detectors {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
        makers: dict[str, type[PeopleDetector] | type[FaceDetector] | type[MotionDetector]] = {
            "person": PeopleDetector,
            "face": FaceDetector,
            "motion": MotionDetector,
        }
        self.detectors: list[Detector] = [makers[kind]() for kind in kinds]

    def analyze(self, jpeg: bytes) -> Analysis:
        """Decode the JPEG and run every detector on it.  ValueError if it is not an image."""
        started = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"a frame of {len(jpeg)} bytes is not an image")
        picture = np.asarray(image, dtype=np.uint8)
        detections = [found for detector in self.detectors for found in detector.detect(picture)]
        return Analysis(detections, picture.shape[1], picture.shape[0], time.perf_counter() - started)
