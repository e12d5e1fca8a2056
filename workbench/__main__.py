"""``python -m workbench``: the workbench and its relay, started from Python.

The same server as ``panel serve workbench`` (the same app directory, login,
``/api`` routes and ``RELAY_*`` settings), for scripts and tests that want to
choose the port and address without Panel's command line.  It prints the URL
once it listens, and stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import panel as pn
from bokeh.util.logconfig import basicConfig
from panel.io.application import build_single_handler_application

from relay import logs
from workbench.server import runtime
from workbench.server.login import PROVIDER

APP_DIRECTORY = Path(__file__).parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5006, help="port to listen on (default 5006; 0 picks a free one)")
    parser.add_argument("--address", help="interface to listen on (default: all, as panel serve does)")
    parser.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a host the pages may also be opened from (repeatable); localhost and 127.0.0.1 always may, "
        "or with --port 0 only localhost",
    )
    parser.add_argument("--show", action="store_true", help="open the workbench in a browser")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install_redaction()

    application = build_single_handler_application(str(APP_DIRECTORY))  # runs app_hooks.py: the login
    server = pn.serve(
        {"workbench": application},
        port=args.port,
        address=args.address,
        websocket_origin=_origins(args.port, args.allow_websocket_origin),
        show=args.show,
        start=False,
        verbose=False,
        title="Vigil workbench",
        oauth_provider=PROVIDER,
        cookie_secret=pn.config.cookie_secret,
        extra_patterns=runtime.relay().routes(),
    )
    print(f"Vigil workbench at http://{args.address or 'localhost'}:{server.port}/workbench", flush=True)
    server.run_until_shutdown()
    return 0


def _origins(port: int, extra: list[str]) -> list[str] | None:
    """Where the pages may be opened from; None lets Bokeh allow the port it picks for port 0."""
    if port == 0:
        return extra or None
    return [f"localhost:{port}", f"127.0.0.1:{port}", *extra]


if __name__ == "__main__":
    raise SystemExit(main())
