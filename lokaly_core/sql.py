"""Small helpers for the hand-written SQL of the hot paths (see docs/performance.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
