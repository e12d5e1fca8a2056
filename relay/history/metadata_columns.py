"""The metadata's well-known keys picked out of a page of JSON text by Arrow's JSON reader.

The alert table (:mod:`relay.history.table`) has a column for each of
``confidence``, ``location.x`` … ``location.height`` and ``objectType``.  SQL
can pick them out (:mod:`relay.store.metadata_values`), but SQLite then parses
each alert's JSON twice per key: twelve parses a row, half of the time an
export of a SQLite file spent reading.  Arrow's reader parses each document
once, in C, for a page at a time (about 2 µs an alert here).

It is strict where SQL is lenient: a key of another JSON type in any alert of
the page (a ``confidence`` of ``"0.9"``, a ``location`` that is a list), a key
given twice, a number no double holds, or a string with a lone surrogate makes
it refuse the whole page, and :func:`well_known` answers None: the caller then
reads that page with the SQL expressions.  So a page it answers for has exactly
the values SQL gives (NULL for a missing key, a number for a JSON number), and a
page it refuses loses nothing.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

_LOCATION: Final = ("x", "y", "width", "height")
_SHAPE: Final = pa.schema(
    [
        ("confidence", pa.float64()),
        ("location", pa.struct([(name, pa.float64()) for name in _LOCATION])),
        ("objectType", pa.string()),
    ]
)
_PARSING: Final = pa_json.ParseOptions(explicit_schema=_SHAPE, unexpected_field_behavior="ignore")


def well_known(metadata: pa.Array) -> list[pa.Array] | None:
    """``confidence``, the four ``location`` numbers and ``objectType`` of each alert's metadata (JSON
    object text, never null), in that order; None where the reader refuses the page (see above)."""
    if not len(metadata) or not pc.all(pc.starts_with(metadata, "{")).as_py():
        return None  # an empty page, or a document that is not an object (a first ``null`` crashes pyarrow 26)
    documents = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(metadata)], pa.int32()), metadata), "\n")
    text = documents[0].as_buffer()
    try:
        parsed = pa_json.read_json(
            pa.BufferReader(text),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, text.size + 1)),
            parse_options=_PARSING,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if parsed.num_rows != len(metadata):  # a document with a newline of its own: not one per line
        return None
    location = parsed.column("location").combine_chunks()
    return [
        parsed.column("confidence").combine_chunks(),
        *(pc.struct_field(location, name) for name in _LOCATION),
        parsed.column("objectType").combine_chunks(),
    ]
