"""The documentation's examples are checked against the code."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from relay.wire import encode_binary_frame
from tests.support import GUARD, JPEG, RelayHarness

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_byte_level_binary_frame_example_is_exact() -> None:
    text = (DOCS / "API.md").read_text()
    dump = text.split("Byte by byte")[1].split("```text")[1].split("```")[0]
    hex_bytes = "".join(
        re.match(r"^((?:[0-9a-f]{2} )*[0-9a-f]{2})", line.strip()).group(1) for line in dump.strip().splitlines()
    )  # type: ignore[union-attr]
    documented = bytes.fromhex(hex_bytes)
    assert documented == encode_binary_frame("stream_A", b"\xff\xd8\xff", timestamp=1730000000000)


def test_every_error_code_is_documented() -> None:
    from typing import get_args

    from relay.wire import ErrorCode

    text = (DOCS / "API.md").read_text()
    for code in get_args(ErrorCode):
        assert f"| `{code}` |" in text, code


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


async def test_the_python_phone_of_the_mobile_guide_runs(relay: RelayHarness) -> None:
    text = (DOCS / "MOBILE_CLIENT.md").read_text()
    code = text.split("## 17. The Python client")[1].split("```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "MOBILE_CLIENT.md", "exec"), namespace)
    await relay.user("guide", "pw")
    stored = await asyncio.wait_for(namespace["phone"](relay.base, "guide", "pw", [JPEG] * 3), GUARD)
    assert [(a.severity, a.message) for a in stored] == [("critical", "panic button pressed")]


# ---------------------------------------------------------------------- everything a user can set or meet is documented
# (in the style of Datasette's docs tests: the test names what is missing)


def _api_doc() -> str:
    return (DOCS / "API.md").read_text()


def test_every_setting_is_documented() -> None:
    from dataclasses import fields

    from relay.config import Settings

    text = _api_doc()
    missing = [f"RELAY_{spec.name.upper()}" for spec in fields(Settings) if f"RELAY_{spec.name.upper()}" not in text]
    assert not missing, f"docs/API.md does not mention {', '.join(missing)}"


def test_every_cli_flag_is_documented() -> None:
    import argparse

    from relay.cli import _parser

    text = _api_doc()
    missing = []

    def walk(parser: argparse.ArgumentParser, command: str) -> None:
        for action in parser._actions:  # argparse has no public walk over its actions
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{command} {name}".strip())
            for flag in action.option_strings:
                documented = re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)
                if flag.startswith("--") and flag not in ("--help", "--version") and not documented:
                    missing.append(f"relay {command} {flag}")

    walk(_parser(), "")
    assert not missing, f"docs/API.md does not mention {', '.join(missing)}"


def test_every_message_type_is_documented() -> None:
    """Every message a client may send and every message the relay sends is in the protocol section."""
    from relay.wire.parsing import PARSERS

    relay_sends = {
        "auth-ok",
        "registered",
        "subscribed",
        "unsubscribed",
        "alert-stored",
        "stream-status",
        "pong",
        "error",
    }
    text = _api_doc()
    missing = [kind for kind in sorted({*PARSERS, "video-frame", *relay_sends}) if f'"type": "{kind}"' not in text]
    assert not missing, f"docs/API.md shows no message of type {', '.join(missing)}"


def test_every_close_code_the_relay_sends_is_documented() -> None:
    import ast

    from relay.wire import CloseCode

    sent: set[int] = {1002, 1007, 1009}  # the websockets protocol's own: protocol error, bad data, too big
    for path in (Path(__file__).resolve().parents[1] / "relay").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "CloseCode":
                sent.add(CloseCode[node.attr].value)
    text = _api_doc()
    missing = [str(code) for code in sorted(sent) if f"| {code} |" not in text]
    assert not missing, f"the close-code table of docs/API.md lacks {', '.join(missing)}"
