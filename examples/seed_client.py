"""The seed's own minimal client, to prove that old clients still work.

A phone as the seed wrote it: ``websocket-client``, JSON text messages, frames
as base64 in ``data``, and the token in the first ``register`` message.  It
sends a few frames, then prints every alert it receives as a line of JSON.

    python examples/seed_client.py --url http://127.0.0.1:8000 --token TOKEN \\
        [--stream ID] [--image photo.jpg] [--frames 10] [--fps 5] [--wait-alerts 0] [--timeout 30]

Without ``--stream`` it registers a new stream over REST first.  With
``--wait-alerts N`` it exits 0 once N alerts arrived (1 if ``--timeout`` passes
first); with 0 it listens until the timeout and exits 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

# A 2×2 JPEG, so the client needs no camera and no image library.
TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABsSFBcUERsXFhceHBsgKEIrKCUlKFE6PTBCYFVlZF9VXVtqeJmBanGQc1tdhbWGkJ6jq62rZ4C8ybqm"
    "x5moq6T/2wBDARweHigjKE4rK06kbl1upKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKT/wAARCAACAAIDAS"
    "IAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEI"
    "I0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKj"
    "pKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcI"
    "CQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNE"
    "RUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna"
    "4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDVooooA//Z"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("RELAY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("RELAY_TOKEN"))
    parser.add_argument("--stream", help="an existing stream id (default: register a new one)")
    parser.add_argument("--image", type=Path, help="a JPEG to send (default: a tiny built-in one)")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--wait-alerts", type=int, default=0, help="exit once this many alerts arrived")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    args = parser.parse_args()
    if not args.token:
        parser.error("--token is required (or set RELAY_TOKEN)")
    if args.fps <= 0 or args.frames < 0 or args.wait_alerts < 0 or args.timeout <= 0:
        parser.error("--fps and --timeout must be positive, --frames and --wait-alerts not negative")
    return args


def register_stream(url: str, token: str) -> str:
    request = urllib.request.Request(
        url.rstrip("/") + "/api/streams/register",
        data=json.dumps({"deviceName": "seed client", "deviceType": "mobile"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["streamId"])


def receive(ws: websocket.WebSocket) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv())
    return message


def main() -> int:
    args = parse_args()
    jpeg = args.image.read_bytes() if args.image else TINY_JPEG
    stream_id = args.stream or register_stream(args.url, args.token)
    ws_url = args.url.rstrip("/").replace("http", "ws", 1) + "/api/streams/ws"
    deadline = time.monotonic() + args.timeout
    ws = websocket.create_connection(ws_url, timeout=args.timeout)
    try:
        ws.send(json.dumps({"type": "register", "streamId": stream_id, "clientType": "mobile", "token": args.token}))
        while (message := receive(ws))["type"] != "registered":
            if message["type"] == "error":
                print(f"seed client: {message['code']}: {message['message']}", file=sys.stderr)
                return 1
        print(f"seed client: registered {stream_id}", flush=True)
        for _ in range(args.frames):
            data = base64.b64encode(jpeg).decode()
            ws.send(
                json.dumps(
                    {"type": "video-frame", "streamId": stream_id, "data": data, "timestamp": time.time_ns() // 10**6}
                )
            )
            time.sleep(1 / args.fps)
        print(f"seed client: sent {args.frames} frames", flush=True)
        alerts = 0
        while args.wait_alerts == 0 or alerts < args.wait_alerts:
            ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = receive(ws)
            except websocket.WebSocketTimeoutException:
                if args.wait_alerts:
                    print(f"seed client: {alerts} of {args.wait_alerts} alerts before the timeout", file=sys.stderr)
                    return 1
                return 0
            if message["type"] == "alert":
                alerts += 1
                print(json.dumps(message), flush=True)
        return 0
    except websocket.WebSocketConnectionClosedException:
        print(f"seed client: the relay closed the connection ({ws.status})", file=sys.stderr)
        return 1
    finally:
        ws.close()


if __name__ == "__main__":
    sys.exit(main())
