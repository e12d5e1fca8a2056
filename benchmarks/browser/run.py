"""Browser benchmark of the workbench: frames shown in a tab, and the server's CPU from 1 to 4 tabs.

    .venv/bin/python benchmarks/browser/run.py [--streams 9] [--fps 15] [--seconds 20] [--tabs 4]

It starts ``python -m workbench`` (the relay inside) on a free port with a fresh
database, a producer process sending ``--streams`` streams of real footage as
640×480 JPEG frames at ``--fps``, and Chromium with tabs logged in and showing the
3×3 grid.  It prints:

- **shown/sent**: the frames the first tab drew (its tiles' counters) over the
  frames the producer sent, in the same window (target: at least 0.95);
- **workbench CPU**: CPU seconds per second of the workbench process (from
  ``/proc``), with 0, 1, 2, … tabs open, and the ratio to one tab.  Frames go from
  the relay's fan-out straight to each tab's sockets, never through the Python
  session, so a tab should add only the relay's writes.

The machine's cores are shared by the workbench, the producer and Chromium (and
here, other work): read the ratios of one run, not absolute figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.browser.producer import run as produce
from tests.workbench.support import CHROMIUM_ARGS, Analyst, WorkbenchServer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=9)
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("--seconds", type=float, default=20, help="length of each measurement window")
    parser.add_argument("--tabs", type=int, default=4)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        parser.error("Chromium is not installed (apt-get install -y chromium)")

    with tempfile.TemporaryDirectory() as folder:
        server = WorkbenchServer(Path(folder)).start()
        producer: multiprocessing.Process | None = None
        try:
            analyst = server.user("bench")
            stream_ids = [analyst.register(f"Camera {n + 1}") for n in range(args.streams)]
            sent = multiprocessing.Value("q", 0)
            ws_url = server.base.replace("http", "ws") + "/api/streams/ws"
            producer = multiprocessing.Process(
                target=produce, args=(ws_url, analyst.token, stream_ids, args.fps, sent), daemon=True
            )
            producer.start()
            print(f"workbench pid {server.process.pid if server.process else '?'} on {server.base}; "
                  f"{args.streams} streams × {args.fps:g} fps of 640×480 JPEG; {args.seconds:g} s windows")  # fmt: skip
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                measure(server, analyst, browser, stream_ids, sent, args)
                browser.close()
        finally:
            if producer is not None:
                producer.kill()
            server.stop()
    return 0


def measure(
    server: WorkbenchServer,
    analyst: Analyst,
    browser: Browser,
    stream_ids: list[str],
    sent: Any,
    args: argparse.Namespace,
) -> None:
    assert server.process is not None
    pid = server.process.pid
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(60_000)
    pages: list[Page] = []
    rows: list[tuple[int, float, float, float | None]] = []  # tabs, CPU s/s, frames drawn/s, first tab shown/sent
    time.sleep(SETTLE_SECONDS)
    rows.append((0, cpu_per_second(pid, args.seconds), 0.0, None))
    print(f"  0 tabs: workbench CPU {rows[-1][1]:.3f} s/s (receiving the frames, no viewer)")
    for tabs in range(1, args.tabs + 1):
        pages.append(open_tab(server, analyst, context.new_page(), stream_ids, first=not pages))
        time.sleep(SETTLE_SECONDS)
        first_before, all_before = drawn(pages[0]), sum(drawn(page) for page in pages)
        sent_before, cpu_before, wall_before = sent.value, cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - wall_before
        cpu = (cpu_seconds(pid) - cpu_before) / wall
        rate = (sum(drawn(page) for page in pages) - all_before) / wall
        shown = (drawn(pages[0]) - first_before) / max(1, sent.value - sent_before)
        rows.append((tabs, cpu, rate, shown))
        print(f"  {tabs} tab(s): workbench CPU {cpu:.3f} s/s, {rate:.0f} frames drawn/s, first tab {shown:.3f}")

    one_tab = rows[1][1]
    print("\ntabs  workbench CPU s/s  ratio to 1 tab  frames drawn/s (all tabs)  first tab shown/sent")
    for tabs, cpu, rate, shown in rows:
        ratio = f"{cpu / one_tab:.2f}" if tabs else "–"
        print(f"{tabs:4d}  {cpu:17.3f}  {ratio:>14}  {rate:25.0f}  {'' if shown is None else f'{shown:20.3f}'}")
    extra = (rows[-1][1] - one_tab) / (rows[-1][0] - 1) if len(rows) > 2 else 0.0
    print(f"\nframes shown in one tab: {rows[1][3]:.3f} of sent (target ≥ 0.95)")
    last_tabs, last_cpu = rows[-1][0], rows[-1][1]
    print(f"workbench CPU, {last_tabs} tabs / 1 tab: {last_cpu / one_tab:.2f}; each extra tab {extra * 1000:.1f} ms/s")


def open_tab(server: WorkbenchServer, analyst: Analyst, page: Page, stream_ids: list[str], *, first: bool) -> Page:
    """A tab showing the 3×3 grid, once every tile draws frames (the first tab logs in)."""
    if first:
        analyst.login(page)
    else:
        page.goto(server.base + "/workbench")
    page.get_by_role("button", name="3×3").click()
    for stream_id in stream_ids:
        page.wait_for_function(
            "tile => Number(tile.dataset.frames) > 0",
            arg=page.locator(f".tile[data-stream-id='{stream_id}']").element_handle(),
        )
    return page


def drawn(page: Page) -> int:
    """Frames drawn so far by every tile of ``page``."""
    total: int = page.locator(".tile").evaluate_all("tiles => tiles.reduce((n, t) => n + Number(t.dataset.frames), 0)")
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_per_second(pid: int, seconds: float) -> float:
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


if __name__ == "__main__":
    raise SystemExit(main())
