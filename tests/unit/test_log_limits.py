"""The access log's limit on 429 lines, on records alone, with a clock the test moves."""

from __future__ import annotations

import logging

from relay.logs import LimitRefusals


def access(status: int) -> logging.LogRecord:
    """A record as Tornado's ``log_request`` makes it."""
    return logging.LogRecord(
        "tornado.access", logging.WARNING, "web.py", 1, "%d %s %.2fms", (status, "GET /x", 1.0), None
    )


def test_a_few_429_lines_a_window_then_one_that_says_how_many_were_left_out() -> None:
    now = [0.0]
    limit = LimitRefusals(most=3, window=10, clock=lambda: now[0])
    assert [limit.filter(access(429)) for _ in range(5)] == [True, True, True, False, False]
    assert limit.filter(access(200)), "other answers always pass"
    now[0] = 10.0
    record = access(429)
    assert limit.filter(record)
    assert record.getMessage() == "429 GET /x 1.00ms (and 2 more 429 answers before it, not logged)"
    assert limit.filter(access(429))
    assert limit.filter(logging.LogRecord("tornado.access", logging.WARNING, "", 1, "plain", None, None))
