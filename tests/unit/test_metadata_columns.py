"""Arrow's reading of the metadata's well-known keys agrees with SQL's, or refuses the page.

The reference is the SQL the store filters and sorts with
(:mod:`relay.store.metadata_values`), run by SQLite on the same documents.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import column, select, table
from sqlalchemy.dialects import sqlite

from relay.history.metadata_columns import well_known
from relay.store.metadata_values import MetadataNumber, MetadataText

PATHS = ("confidence", "location.x", "location.y", "location.width", "location.height")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
locations = st.one_of(
    values, st.fixed_dictionaries({}, optional={name: values for name in ("x", "y", "width", "height")})
)
documents = st.fixed_dictionaries(
    {}, optional={"confidence": values, "location": locations, "objectType": values, "other": values}
)


def by_sql(texts: list[str]) -> list[list[Any]]:
    """What the store's SQL expressions give for each document, column by column."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE alert (metadata TEXT)")
    connection.executemany("INSERT INTO alert VALUES (?)", [(text,) for text in texts])
    alert = table("alert", column("metadata"))
    statement = select(*(MetadataNumber(path) for path in PATHS), MetadataText("objectType")).select_from(alert)
    compiled = statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    rows = connection.execute(str(compiled).replace("alert.metadata", "metadata")).fetchall()
    return [
        [None if value is None else (float(value) if index < 5 else value) for value in values]
        for index, values in enumerate(zip(*rows, strict=True))
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents, min_size=1, max_size=6))
def test_a_page_is_read_as_sql_reads_it_or_refused(page: list[dict[str, Any]]) -> None:
    texts = [json.dumps(document) for document in page]
    arrow = well_known(pa.array(texts))
    if arrow is not None:
        assert [column.to_pylist() for column in arrow] == by_sql(texts)


def test_plain_pages_are_read() -> None:
    texts = ['{"confidence": 0.5, "location": {"x": 1, "y": 2, "width": 3, "height": 4}, "objectType": "car"}', "{}"]
    arrow = well_known(pa.array(texts))
    assert arrow is not None
    assert [column.to_pylist() for column in arrow] == [
        [0.5, None],
        [1.0, None],
        [2.0, None],
        [3.0, None],
        [4.0, None],
        ["car", None],
    ]


def test_what_sql_reads_leniently_is_refused() -> None:
    for texts in (
        ['{"confidence": "0.9"}'],
        ['{"location": [1, 2]}'],
        ["null", "{}"],
        ['{"confidence": 0.5, "confidence": 0.7}'],
        ['{"confidence": 1e400}'],
    ):
        assert well_known(pa.array(texts)) is None, texts
