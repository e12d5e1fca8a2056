"""The ML service's parts on real footage: what each detector finds, the alert policy, the newest-frame pipeline."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import pytest
from detectors import Analysis, Analyzer, Box, Detection, FaceDetector, MotionDetector, PeopleDetector
from footage import sample_path
from numpy.typing import NDArray
from pipeline import Pipeline
from policy import AlertPolicy

from relay.client import Frame
from relay.wire import alert_metadata_problem


def sample_frame(name: str, index: int, width: int) -> NDArray[np.uint8]:
    """Frame ``index`` of a sample video, scaled to ``width`` as a phone would send it."""
    capture = cv2.VideoCapture(str(sample_path(name)))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    assert ok
    height = round(image.shape[0] * width / image.shape[1])
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def jpeg(image: NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    return bytes(encoded.tobytes())


def test_the_people_detector_finds_the_cyclist_and_no_one_in_the_car() -> None:
    detector = PeopleDetector()
    found = detector.detect(sample_frame("bikes", 117, 640))
    assert len(found) == 1
    person = found[0]
    assert person.kind == "person"
    assert 0.9 < person.confidence <= 1
    assert person.box.height > 2 * person.box.width, "a standing person"
    assert 0.4 < person.box.x + person.box.width / 2 < 0.8, "right of the middle, where he stands"
    assert detector.detect(sample_frame("carphone", 0, 352)) == [], "head and shoulders are not a pedestrian"


def test_the_face_detector_finds_the_face_in_the_car_and_not_in_the_street_signs() -> None:
    detector = FaceDetector()
    faces = detector.detect(sample_frame("carphone", 0, 352))
    assert len(faces) == 1
    face = faces[0]
    assert 0.5 < face.confidence <= 1
    assert 0.25 < face.box.x + face.box.width / 2 < 0.75
    assert detector.detect(sample_frame("bikes", 120, 640)) == [], (
        "the cyclist's face is in profile; the sign is no face"
    )


def test_motion_is_reported_once_the_scene_is_learnt_and_something_moves() -> None:
    detector = MotionDetector(warmup=5)
    still = np.full((240, 320, 3), 90, np.uint8)
    assert [detector.detect(still) for _ in range(8)] == [[]] * 8
    moved = still.copy()
    moved[60:180, 200:300] = 250
    (motion,) = detector.detect(moved)
    assert motion.kind == "motion"
    assert motion.box == Box(0.625, 0.25, 0.3125, 0.5)
    assert motion.confidence == 1.0, "a sixth of the picture moves: more than the tenth that is certain"


def test_the_analyzer_runs_the_chosen_detectors_on_a_jpeg() -> None:
    analysis = Analyzer(("person", "face")).analyze(jpeg(sample_frame("bikes", 117, 640)))
    assert [d.kind for d in analysis.detections] == ["person"]
    assert (analysis.width, analysis.height) == (640, 272)
    with pytest.raises(ValueError, match="not an image"):
        Analyzer(("motion",)).analyze(b"not a jpeg")
    with pytest.raises(ValueError, match="unknown detectors"):
        Analyzer(("cat",))


def analysis_of(*detections: Detection) -> Analysis:
    return Analysis(list(detections), 640, 480, 0.01)


PERSON = Detection("person", 0.9, Box(0.5, 0.1, 0.2, 0.8))
FACE = Detection("face", 0.7, Box(0.4, 0.2, 0.1, 0.13))
SMALL_MOTION = Detection("motion", 0.3, Box(0.1, 0.1, 0.2, 0.2))
WIDE_MOTION = Detection("motion", 1.0, Box(0.0, 0.0, 0.9, 0.9))


def test_the_policy_raises_one_alert_per_episode_and_again_when_it_escalates() -> None:
    policy = AlertPolicy(cooldown=5)
    first = policy.decide("s", analysis_of(PERSON), 1000, now=0)
    assert [(a.severity, a.message) for a in first] == [("high", "person detected")]
    assert [policy.decide("s", analysis_of(PERSON), 1000, now=t) for t in (1, 4, 8.9)] == [[], [], []], "still there"
    assert policy.decide("other", analysis_of(PERSON), 1000, now=9), "another stream has episodes of its own"
    crowd = policy.decide("s", analysis_of(PERSON, PERSON, PERSON), 1000, now=9.5)
    assert [(a.severity, a.message) for a in crowd] == [("critical", "3 people detected")]
    assert policy.decide("s", analysis_of(PERSON), 1000, now=10) == [], "fewer again: the same episode"
    assert policy.decide("s", analysis_of(PERSON), 1000, now=15.5), "gone for the cooldown: a new episode"


def test_the_policy_grades_faces_and_motion_and_writes_valid_metadata() -> None:
    policy = AlertPolicy(cooldown=5)
    drafts = policy.decide("s", analysis_of(FACE, SMALL_MOTION), 1234, now=0)
    assert [(a.severity, a.metadata["objectType"]) for a in drafts] == [("medium", "face"), ("low", "motion")]
    assert [a.severity for a in AlertPolicy().decide("s", analysis_of(WIDE_MOTION), 1, now=0)] == ["medium"]
    face = drafts[0].metadata
    assert face["location"] == {"x": 0.4, "y": 0.2, "width": 0.1, "height": 0.13}
    assert (face["confidence"], face["count"], drafts[0].frame_timestamp) == (0.7, 1, 1234)
    for draft in drafts:
        assert alert_metadata_problem(draft.metadata) is None, "what the relay accepts"


class RecordingClient:
    """Stands in for RelayClient: records the alerts the pipeline sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_alert(self, severity: str, message: str, **fields: Any) -> str:
        self.sent.append({"severity": severity, "message": message, **fields})
        return f"ref{len(self.sent)}"


async def test_the_pipeline_analyses_only_the_newest_frame_of_each_stream() -> None:
    client = RecordingClient()
    picture = jpeg(sample_frame("bikes", 117, 640))
    with ThreadPoolExecutor(max_workers=2) as executor:
        pipeline = Pipeline(client, executor, ("person",), AlertPolicy(cooldown=60), str)  # type: ignore[arg-type]
        for timestamp in range(1, 6):  # five frames arrive before the first analysis starts
            pipeline.offer(Frame("s", timestamp, picture))
        pipeline.offer(Frame("t", 9, picture))
        await asyncio.wait_for(pipeline.drain(), 30)
    assert (pipeline.stats.analysed, pipeline.stats.skipped) == (2, 4)
    assert sorted((a["stream_id"], a["frame_timestamp"]) for a in client.sent) == [("s", 5), ("t", 9)]
    line = pipeline.stats.line(2)
    assert "2 streams" in line
    assert "4 stale frames skipped, 2 alerts sent" in line
