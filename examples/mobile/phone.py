"""One simulated phone: a stream of its own, a camera, and the alerts that come back.

A phone registers its stream over REST (reusing the stream of the same name if
the user has one, as a real app keeps its ``streamId``), registers on the
WebSocket with :class:`relay.client.RelayClient`, and sends a picture every
``1/fps`` seconds, for as long as it runs.  The client reconnects by itself:
while it is away pictures are dropped, never queued, and alerts raised
meanwhile arrive once it is back.  Every alert is printed as one line.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass

from footage import Footage

from relay.client import Alert, ErrorReport, RelayClient, StreamInfo
from relay.client.attachments import FrameForm


@dataclass(frozen=True, slots=True)
class Camera:
    """How a phone films: pictures per second and the form frames travel in."""

    fps: float
    form: FrameForm


class Phone:
    """See the module docstring.  ``footage`` is opened by the phone and closed when it stops."""

    def __init__(self, name: str, client: RelayClient, footage: Callable[[], Footage], camera: Camera) -> None:
        self.name = name
        self.client = client
        self.camera = camera
        self.stream_id = ""
        self.alerts_received = 0
        self.frames_captured = 0
        self._open_footage = footage

    async def start(self, known_streams: list[StreamInfo]) -> None:
        """Find or register this phone's stream, then register on the relay."""
        existing = [s.id for s in known_streams if s.device_name == self.name and s.device_type == "simulator"]
        if existing:
            self.stream_id = existing[0]
        else:
            self.stream_id = await self.client.register_stream(self.name, "simulator", {"simulated": True})
        await self.client.register(self.stream_id)

    async def film(self) -> None:
        """Send pictures at the camera's pace until cancelled."""
        footage = await asyncio.to_thread(self._open_footage)
        loop = asyncio.get_running_loop()
        interval = 1 / self.camera.fps
        next_shot = loop.time()
        try:
            print(f"{self.name}: streaming {footage.name} to {self.stream_id}", flush=True)
            while True:
                picture = await asyncio.to_thread(footage.capture)
                self.frames_captured += 1
                await self.client.send_frame(picture.jpeg, timestamp=picture.captured_ms, form=self.camera.form)
                next_shot = max(next_shot + interval, loop.time())  # late: do not burst to catch up
                await asyncio.sleep(next_shot - loop.time())
        finally:
            footage.close()

    async def listen(self) -> None:
        """Print every alert (and relay error) that reaches this phone, until cancelled."""
        async for message in self.client:
            if isinstance(message, Alert):
                self.alerts_received += 1
                print(f"{self.name} {self.stream_id} ALERT {describe(message)}", flush=True)
            elif isinstance(message, ErrorReport):
                print(f"{self.name}: relay error {message.code}: {message.message}", file=sys.stderr, flush=True)


def describe(alert: Alert) -> str:
    """``high person 0.87 at (0.42, 0.31) 0.20x0.55: person detected [alert_…]``."""
    parts = [alert.severity, str(alert.metadata.get("objectType", "-"))]
    confidence = alert.metadata.get("confidence")
    if isinstance(confidence, int | float):
        parts.append(f"{confidence:.2f}")
    location = alert.metadata.get("location")
    if isinstance(location, dict) and {"x", "y"} <= location.keys():
        where = f"at ({location['x']:.2f}, {location['y']:.2f})"
        if "width" in location and "height" in location:
            where += f" {location['width']:.2f}x{location['height']:.2f}"
        parts.append(where)
    return f"{' '.join(parts)}: {alert.message} [{alert.id}]"
