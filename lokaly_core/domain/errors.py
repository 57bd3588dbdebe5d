"""Domain errors: a stable ``code`` each, mapped to HTTP in one place per API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    INVALID_TRANSITION = "invalid_transition"
    INSUFFICIENT_STOCK = "insufficient_stock"
    CONFLICT = "conflict"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    STORE_CLOSED = "store_closed"
    TOO_MANY_OPEN_ORDERS = "too_many_open_orders"
    INVALID_HANDOFF_CODE = "invalid_handoff_code"
    HANDOFF_LOCKED = "handoff_locked"


class DomainError(Exception):
    code: ErrorCode = ErrorCode.CONFLICT
    default_message = "The request conflicts with the current state."

    def __init__(self, message: str | None = None, *, details: Mapping[str, Any] | None = None):
        self.message = message or self.default_message
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(self.message)


class ValidationFailed(DomainError):
    code = ErrorCode.VALIDATION_ERROR
    default_message = "The request has invalid fields."

    def __init__(
        self,
        errors: Mapping[str, Sequence[str]],
        message: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ):
        """``errors``: field -> messages; ``extra``: figures beside them in ``details``."""
        details: dict[str, Any] = {field: list(msgs) for field, msgs in errors.items()}
        details.update(extra or {})
        super().__init__(message, details=details)


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND
    default_message = "Not found."


class PermissionDenied(DomainError):
    code = ErrorCode.PERMISSION_DENIED
    default_message = "You are not allowed to do this."


class InvalidTransition(DomainError):
    code = ErrorCode.INVALID_TRANSITION
    default_message = "The order cannot make this change in its current status."


class InsufficientStock(DomainError):
    code = ErrorCode.INSUFFICIENT_STOCK
    default_message = "Not enough stock."


class StoreClosed(DomainError):
    code = ErrorCode.STORE_CLOSED
    default_message = "The store is not taking orders now."


class TooManyOpenOrders(DomainError):
    code = ErrorCode.TOO_MANY_OPEN_ORDERS
    default_message = "You have too many orders on their way; wait until one is delivered."


class InvalidHandoffCode(DomainError):
    code = ErrorCode.INVALID_HANDOFF_CODE
    default_message = "The hand-off code is wrong or missing."


class HandoffLocked(DomainError):
    code = ErrorCode.HANDOFF_LOCKED
    default_message = (
        "Too many wrong hand-off codes: the delivery is locked until staff complete it."
    )
