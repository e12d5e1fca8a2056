"""The examples end to end against a real relay: phones, the ML service, the seed client, the Node client.

The simulator streams the real sample footage (people in the street, a man in
a car), the ML service runs OpenCV's detectors on it, and the detections must
come back as alerts to the phones, to a second consumer and to
``GET /api/alerts``, with metadata that makes sense for what was found.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from relay.client import Alert, Frame, RelayClient
from tests.programs import EXAMPLES, Program
from tests.support import GUARD, RelayHarness
from tests.tcp_proxy import TcpProxy

DETECTION_GUARD = 60.0
"""Seconds to wait for a real detection (the footage loops every 5–10 s; a hang, not a timing check)."""


@pytest.fixture
async def programs() -> AsyncIterator[list[Program]]:
    """Programs a test started; killed at the end if the test did not stop them."""
    started: list[Program] = []
    yield started
    for program in started:
        await program.kill()


async def first_alerts(client: RelayClient, wanted: dict[str, str]) -> dict[str, Alert]:
    """For each stream in ``wanted``, its first alert of that object type (others are skipped)."""
    found: dict[str, Alert] = {}
    async with asyncio.timeout(DETECTION_GUARD):
        while len(found) < len(wanted):
            message = await client.receive()
            if isinstance(message, Alert) and wanted.get(message.stream_id) == message.metadata.get("objectType"):
                found.setdefault(message.stream_id, message)
    return found


async def next_frame(client: RelayClient) -> Frame:
    async with asyncio.timeout(GUARD):
        async for message in client:
            if isinstance(message, Frame):
                return message
    raise AssertionError("the client closed before a frame arrived")


def assert_sensible(alert: Alert) -> None:
    """Metadata an analyst can rely on: a confidence, a box inside the picture of the right shape."""
    meta = alert.metadata
    assert 0 < meta["confidence"] <= 1
    box, frame = meta["location"], meta["frameSize"]
    assert set(box) == {"x", "y", "width", "height"}
    assert all(0 <= box[key] <= 1 for key in box)
    assert box["width"] > 0
    assert box["height"] > 0
    assert box["x"] + box["width"] <= 1.0001
    assert box["y"] + box["height"] <= 1.0001
    assert meta["count"] >= 1
    assert isinstance(alert.frame_timestamp, int)
    assert alert.has_snapshot, "the relay stored the frame the service analysed"
    aspect = (box["width"] * frame["width"]) / (box["height"] * frame["height"])
    many = meta["count"] >= 3
    if meta["objectType"] == "person":
        assert alert.severity == ("critical" if many else "high")
        assert aspect < 0.9, "a standing person is taller than wide"
    else:
        assert alert.severity == ("high" if many else "medium")
        assert 0.6 < aspect < 1.6, "a face is about square"


@pytest.mark.timeout(150)
async def test_phones_stream_real_footage_and_real_detections_come_back_as_alerts(
    relay: RelayHarness, programs: list[Program]
) -> None:
    _, token = await relay.user()
    simulator = await Program.start(
        EXAMPLES / "mobile" / "simulate.py",
        *("--url", relay.base, "--token", token, "--streams", "2", "--sample", "all"),
        *("--fps", "8", "--width", "400", "--quality", "75", "--name-prefix", "Test phone"),
    )
    programs.append(simulator)
    scenes = {}
    for number in (1, 2):
        match = await simulator.line(rf"^Test phone {number}: streaming (\S+) to (stream_\S+)")
        scenes[match.group(2)] = match.group(1)
    assert sorted(scenes.values()) == ["bikes.mp4", "carphone_pristine.mp4"], "the phones show different scenes"
    wanted = {stream_id: "person" if scene == "bikes.mp4" else "face" for stream_id, scene in scenes.items()}

    async with AsyncExitStack() as stack:
        dashboard = await stack.enter_async_context(RelayClient(relay.base, token))
        for stream_id in scenes:
            await dashboard.subscribe(stream_id, consumes=["video-frame", "alert"])
        frame = await next_frame(dashboard)
        assert frame.image().shape[1] == 400, "real footage at the width asked for"

        ml = await Program.start(
            EXAMPLES / "ml-service" / "client.py",
            *("--url", relay.base, "--token", token, "--detectors", "person,face", "--cooldown", "30"),
            *("--stats-every", "1", "--rescan", "0.2"),
        )
        programs.append(ml)
        alerts = await first_alerts(dashboard, wanted)
        later = await dashboard.register_stream("Registered later")
        await ml.line(rf"^ml: watching Registered later \({later}\)$")

    for stream_id, alert in alerts.items():
        assert_sensible(alert)
        await simulator.line(
            rf"^Test phone \d {stream_id} ALERT {alert.severity} {wanted[stream_id]} .*\[{alert.id}\]$"
        )
        await ml.line(rf"^ml: ALERT {alert.severity} {wanted[stream_id]} .*\({stream_id}\)$")
        listed = (await relay.api("GET", f"/api/alerts?streamId={stream_id}", token=token)).json["alerts"]
        stored = next(a for a in listed if a["id"] == alert.id)
        assert (stored["severity"], stored["message"], stored["metadata"]) == (
            alert.severity,
            alert.message,
            alert.metadata,
        )
    stats = await ml.line(r"(\d+\.\d) frames/s analysed .*lag median (\d+) ms")
    assert float(stats.group(1)) > 0
    assert await ml.stop() == 0
    assert await simulator.stop() == 0
    assert (await simulator.line(r"^stats: 2 phones")).group(0)


async def test_the_seed_client_still_works(relay: RelayHarness, programs: list[Program]) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    async with RelayClient(relay.base, token) as ml:
        await ml.subscribe(stream_id, consumes=["video-frame"], produces=["alert"], frame_format="json")
        seed = await Program.start(
            EXAMPLES / "seed_client.py",
            *("--url", relay.base, "--token", token, "--stream", stream_id),
            *("--frames", "3", "--fps", "20", "--wait-alerts", "1", "--timeout", str(GUARD)),
        )
        programs.append(seed)
        frame = await next_frame(ml)
        assert frame.image().shape == (2, 2, 3), "the seed's base64 JPEG arrived intact"
        ref = await ml.send_alert("high", "seen by the seed", stream_id=stream_id, metadata={"objectType": "person"})
        alert_id = await asyncio.wait_for(ml.alert_stored(ref), GUARD)
    received = json.loads((await seed.line(r'^\{"type": "alert".*\}$')).group(0))
    assert (received["id"], received["ref"], received["message"]) == (alert_id, ref, "seen by the seed")
    assert await seed.wait() == 0


needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="node and npm are not on PATH"
)


async def node_example(tmp_path: Path, programs: list[Program]) -> Path:
    """A copy of ``examples/js`` with its dependency installed (``npm ci`` unless examples/js has it)."""
    source = EXAMPLES / "js"
    copy = tmp_path / "js"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("node_modules"))
    if (source / "node_modules" / "ws").is_dir():
        (copy / "node_modules").symlink_to(source / "node_modules")
        return copy
    npm = await Program.start(shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund", cwd=copy)
    programs.append(npm)
    assert await npm.wait(within=150) == 0, npm
    return copy


@needs_node
@pytest.mark.timeout(180)
async def test_the_javascript_example_runs_against_the_relay(
    relay: RelayHarness, programs: list[Program], tmp_path: Path
) -> None:
    _, token = await relay.user()
    folder = await node_example(tmp_path, programs)
    for auth in ("header", "query", "message"):
        demo = await Program.start(
            shutil.which("node") or "node",
            *(folder / "demo.mjs", "--url", relay.base, "--token", token, "--auth", auth, "--timeout", str(GUARD)),
            cwd=folder,
        )
        programs.append(demo)
        assert await demo.wait(within=GUARD + 5) == 0, demo
        summary = json.loads(demo.stdout[-1])
        assert summary["ok"] is True
        assert summary["framesReceived"] == summary["framesSent"]
        assert (summary["alertsReceived"], summary["dashboardAlertsReceived"]) == (1, 1)


@needs_node
@pytest.mark.timeout(180)
async def test_the_javascript_client_resumes_alerts_after_the_network_comes_back(
    relay: RelayHarness, programs: list[Program], tmp_path: Path
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    folder = await node_example(tmp_path, programs)
    shutil.copy(Path(__file__).parent / "resume_check.mjs", folder)
    async with AsyncExitStack() as stack:
        network = TcpProxy(relay.port)
        await network.start()
        stack.push_async_callback(network.close)
        ml = await stack.enter_async_context(RelayClient(relay.base, token))
        await ml.subscribe(stream_id, consumes=[], produces=["alert"])
        check = await Program.start(
            shutil.which("node") or "node", "resume_check.mjs", network.url, token, stream_id, "4", cwd=folder
        )
        programs.append(check)
        await check.line("^ready$")

        async def alert(message: str) -> None:
            await asyncio.wait_for(ml.alert_stored(await ml.send_alert("high", message, stream_id=stream_id)), GUARD)

        await alert("a0")
        await check.line("^producer a0$")
        await check.line("^dashboard a0$")
        network.cut()
        await network.attempt_while_cut()
        await alert("a1")
        await alert("a2")
        network.restore()
        await alert("a3")
        assert await check.wait() == 0, check
    for role in ("producer", "dashboard"):
        assert [line.split()[1] for line in check.stdout if line.startswith(role)] == ["a0", "a1", "a2", "a3"]
