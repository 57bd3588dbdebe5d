"""Small helpers for the hand-written SQL of the hot paths (see docs/performance.md)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Model


def insert_rows(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, list[object]]:
    """``INSERT INTO <table> (<columns>) VALUES (...), (...)`` and its parameters."""
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - ours
        f"VALUES {', '.join([placeholder] * len(rows))}"
    )
    return sql, [value for row in rows for value in row]
