"""An alert's metadata keys as SQL values that never fail, on SQLite and PostgreSQL alike.

Clients put anything in metadata: a ``confidence`` of ``"high"``, a
``location`` that is a list.  A plain ``CAST(metadata ->> 'confidence' AS
FLOAT)`` raises on PostgreSQL for the first such row it meets, and one such
alert would make every history query that filters or sorts by the key fail.
These expressions are NULL wherever the key is missing or of another JSON type
(or, on PostgreSQL, a number no double can hold, which JSONB keeps), so a filter
skips such alerts and a sort puts them last.

Each is a :class:`~sqlalchemy.sql.expression.ColumnClause` whose name is the
key's path (so SQLAlchemy's statement cache tells ``confidence`` from
``location.x``: the name is part of the cache key) and which compiles to the
dialect's own JSON functions.  That lets every reader use one expression
without knowing its database: the store's filters, the history table's
columns, the analytics copy.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Float, Numeric, String, and_, case, cast, func, literal, or_
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from relay.store.models import Alert


class MetadataNumber(ColumnClause[float]):
    """``alert.metadata`` at a dotted path as a number; NULL unless it is a JSON number (``"0.9"`` is not)."""

    inherit_cache = True

    def __init__(self, path: str) -> None:
        super().__init__(path, type_=Float())


class MetadataText(ColumnClause[str]):
    """``alert.metadata`` at a top-level key as text; NULL unless it is a JSON string."""

    inherit_cache = True

    def __init__(self, key: str) -> None:
        super().__init__(key, type_=String())


def _sqlite_path(dotted: str) -> str:
    return "$." + ".".join(f'"{part}"' for part in dotted.split("."))


def _postgresql_node(dotted: str) -> ColumnElement[Any]:
    parts = tuple(dotted.split("."))
    return Alert.meta[parts] if len(parts) > 1 else Alert.meta[parts[0]]


@compiles(MetadataNumber, "sqlite")
def _number_on_sqlite(element: MetadataNumber, compiler: SQLCompiler, **kw: Any) -> str:
    path = _sqlite_path(element.name)
    number = case((func.json_type(Alert.meta, path).in_(["real", "integer"]), func.json_extract(Alert.meta, path)))
    return compiler.process(number, **kw)


_LARGEST: Final = literal(Decimal("1e308"), Numeric())
_SMALLEST: Final = literal(Decimal("1e-307"), Numeric())
"""JSONB holds numbers of any size; a double holds these (as ``numeric``: compared as doubles they would overflow)."""


@compiles(MetadataNumber, "postgresql")
def _number_on_postgresql(element: MetadataNumber, compiler: SQLCompiler, **kw: Any) -> str:
    node = _postgresql_node(element.name)
    exact = cast(node.as_string(), Numeric)
    size = func.abs(exact)
    fits = and_(size <= _LARGEST, or_(size >= _SMALLEST, exact == 0))
    number = case((func.jsonb_typeof(node) == "number", case((fits, cast(node.as_string(), Float)))))
    return compiler.process(number, **kw)


@compiles(MetadataText, "sqlite")
def _text_on_sqlite(element: MetadataText, compiler: SQLCompiler, **kw: Any) -> str:
    path = _sqlite_path(element.name)
    text = case((func.json_type(Alert.meta, path) == "text", func.json_extract(Alert.meta, path)))
    return compiler.process(text, **kw)


@compiles(MetadataText, "postgresql")
def _text_on_postgresql(element: MetadataText, compiler: SQLCompiler, **kw: Any) -> str:
    node = _postgresql_node(element.name)
    text = case((func.jsonb_typeof(node) == "string", node.as_string()))
    return compiler.process(text, **kw)


@compiles(MetadataNumber)
@compiles(MetadataText)
def _elsewhere(_element: ColumnClause[Any], compiler: SQLCompiler, **_kw: Any) -> str:
    """Any other database: an error, not a bare quoted name that would mean something else."""
    raise CompileError(f"alert metadata values are written for SQLite and PostgreSQL, not {compiler.dialect.name}")
