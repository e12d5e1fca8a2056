"""The documentation's examples are checked against the code."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

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


async def test_the_python_phone_of_the_mobile_guide_runs(relay: RelayHarness) -> None:
    text = (DOCS / "MOBILE_CLIENT.md").read_text()
    code = text.split("## 17. The Python client")[1].split("```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "MOBILE_CLIENT.md", "exec"), namespace)
    await relay.user("guide", "pw")
    stored = await asyncio.wait_for(namespace["phone"](relay.base, "guide", "pw", [JPEG] * 3), GUARD)
    assert [(a.severity, a.message) for a in stored] == [("critical", "panic button pressed")]
