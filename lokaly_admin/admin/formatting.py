from __future__ import annotations


def money(cents: int, currency: str) -> str:
    """``1234, "EUR"`` -> ``"12.34 EUR"``; integer arithmetic, no float rounding."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole}.{rest:02d} {currency}"
