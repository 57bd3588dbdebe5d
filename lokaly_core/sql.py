"""Small helpers for the hand-written SQL of the hot paths (see docs/performance.md)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model

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


def insert_unnest(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, SqlParams]:
    """``INSERT INTO <table> (<columns>) SELECT * FROM unnest(...)``: ``insert_rows`` for a
    batch (see ``unnest``), each array cast to its column's type."""
    source, params = unnest(columns, [_column_type(model, c) for c in columns], rows)
    sql = f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT * FROM {source}"  # noqa: S608
    return sql, params


@functools.lru_cache(maxsize=256)
def _column_type(model: type[Model], column: str) -> str:
    field: Any = model._meta.get_field(column)
    return str(field.db_type(connection))
