"""Small helpers for the hand-written SQL of the hot paths (see docs/performance.md)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection
from django.db.models import Model
from psycopg.types.json import Jsonb

# Query parameters, Any each: psycopg adapts more than django-stubs' parameter type lists
# (Jsonb, str enums), and the hand-written SQL passes its values as they are.
SqlParams = list[Any]


def insert_rows(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, SqlParams]:
    """``INSERT INTO <table> (<columns>) VALUES (...), (...)`` and its parameters."""
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - ours
        f"VALUES {', '.join([placeholder] * len(rows))}"
    )
    return sql, [value for row in rows for value in row]


def unnest(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, SqlParams]:
    """``unnest(%s::<type>[], ...) AS v(<columns>)`` over ``rows``, and its parameters: one
    array per column.

    For the statements of a batch, whose number of rows varies: the text is the same for
    any number, so psycopg's query cache serves it. A ``VALUES`` list is a new text for
    every row count, and past 50 parameters psycopg does not cache it at all: parsing such
    texts was a quarter of the worker's CPU (docs/performance.md).
    """
    placeholders = ", ".join(f"%s::{kind}[]" for kind in types)
    arrays: SqlParams = (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in types]
    )
    return f"unnest({placeholders}) AS v({', '.join(columns)})", arrays


def recordset(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, SqlParams]:
    """``jsonb_to_recordset(%s::jsonb) AS v(<column> <type>, ...)`` over ``rows``, and its
    one parameter: the rows as a JSON document. ``unnest``'s text for any number of rows,
    for the rows a batch *inserts*: one JSON document, serialized by orjson, costs a third
    of the client CPU per row of one array per column (which psycopg dumps element by
    element in Python), and a seventh of it for a ``jsonb`` column (docs/performance.md,
    fifth session). Not for a source joined to a table: PostgreSQL estimates such a
    function at 100 rows whatever it holds, and the dispatch queue's join, tried with it,
    chose a scan of every confirmed order (6.5 ms a batch instead of under 1 ms).

    Values are what orjson serializes: str (and str enums), int, float, bool, None, UUID,
    datetimes, and dicts and lists for a ``jsonb`` column (or psycopg's ``Jsonb``).
    """
    definition = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
    document = orjson.dumps(
        [dict(zip(columns, row, strict=True)) for row in rows],
        default=_json_default,
        option=orjson.OPT_NON_STR_KEYS,
    )
    return f"jsonb_to_recordset(%s::jsonb) AS v({definition})", [document.decode()]


def _json_default(value: object) -> object:
    if isinstance(value, Jsonb):
        return value.obj
    raise TypeError(f"{type(value).__name__} is not a value of a batch row")


def insert_recordset(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, SqlParams]:
    """``INSERT INTO <table> (<columns>) SELECT ... FROM jsonb_to_recordset(...)``:
    ``insert_rows`` for a batch (see ``recordset``), each value read as its column's type."""
    source, params = recordset(columns, [_column_type(model, c) for c in columns], rows)
    names = ", ".join(columns)
    sql = f"INSERT INTO {model._meta.db_table} ({names}) SELECT {names} FROM {source}"  # noqa: S608
    return sql, params


@functools.lru_cache(maxsize=256)
def _column_type(model: type[Model], column: str) -> str:
    field: Any = model._meta.get_field(column)
    return str(field.db_type(connection))
