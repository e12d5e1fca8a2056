"""Take the README's screenshots of a running workbench (normally ``make demo``'s).

    .venv/bin/python docs/images/capture.py [--url http://localhost:5006] [--user demo --password demo]

Logs in with Chromium, waits until the Live grid shows frames on every tile and the
Timeline has alerts, and writes ``live.png`` and ``timeline.png`` (960 pixels wide)
beside this file.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WAIT_MS = 120_000
README_WIDTH = 960


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5006")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--alerts", type=int, default=8, help="alerts to wait for before the Timeline shot")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        parser.error("Chromium is not installed (apt-get install -y chromium)")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(WAIT_MS)
        page.goto(args.url + "/workbench")
        page.fill("input[name=username]", args.user)
        page.fill("input[name=password]", args.password)
        page.click("button[type=submit], input[type=submit]")
        page.locator(".analyst").wait_for()
        page.locator(".tile").first.wait_for()
        for tile in page.locator(".tile").all():
            page.wait_for_function("tile => Number(tile.dataset.frames) > 20", arg=tile.element_handle())
        page.locator(".tile .alert").first.wait_for()
        save(page.screenshot(), HERE / "live.png")

        page.get_by_role("button", name="Timeline").click()
        page.get_by_text("Alerts of the last 24 hours").wait_for(state="visible")
        page.wait_for_function(
            "n => (Bokeh.documents[0].get_model_by_name('timeline-alerts')?.data.id.length ?? 0) >= n", arg=args.alerts
        )
        for dismiss in page.locator(".notyf__dismiss-btn").all():  # the toasts would cover the plot
            dismiss.click()
        page.locator(".notyf__toast").first.wait_for(state="detached")
        page.mouse.move(0, 0)
        save(page.screenshot(), HERE / "timeline.png")
        browser.close()
    return 0


def save(png: bytes, path: Path) -> None:
    """Write the screenshot at README size (960 pixels wide), compressed."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    image = cv2.resize(image, (README_WIDTH, height * README_WIDTH // width), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
