"""Proof of delivery (contract v1.1): the hand-off code and its bounded attempts.

A store may require a code: at pickup the delivery gets a random 4-digit code, which
only the order's customer is shown; the courier completes the delivery with it. A wrong
code counts against the delivery; after ``MAX_HANDOFF_ATTEMPTS`` wrong codes the delivery
is locked, also for the right code, until staff complete it. A missing code is refused
without counting: it is no guess.

The attempts are counted under the order's and the delivery's row locks (the caller's
unit of work holds both), so concurrent tries are serialized and each one is counted.
"""

from __future__ import annotations

import secrets

from lokaly_core.domain.errors import DomainError, HandoffLocked, InvalidHandoffCode
from lokaly_core.domain.model.delivery import HANDOFF_CODE_DIGITS, Delivery


def new_handoff_code() -> str:
    """A fresh code: ``HANDOFF_CODE_DIGITS`` decimal digits from the OS's CSPRNG."""
    return f"{secrets.randbelow(10**HANDOFF_CODE_DIGITS):0{HANDOFF_CODE_DIGITS}d}"


def handoff_verify(delivery: Delivery, given: str | None) -> DomainError | None:
    """None when the delivery may be completed with ``given``, else the refusal to raise.

    A wrong code is counted on ``delivery`` (the caller saves it, and commits before
    raising, so the count outlives the refusal). Call with the delivery's row locked.
    """
    if delivery.handoff_code is None:
        return None  # the store requires no code (v1 behaviour): anything goes
    if delivery.handoff_locked:
        return HandoffLocked(details={"attempts_left": 0})
    if not given:
        return InvalidHandoffCode(
            "This delivery needs the customer's hand-off code.",
            details={"attempts_left": delivery.handoff_attempts_left},
        )
    # Bytes: compare_digest refuses non-ASCII str.
    if secrets.compare_digest(given.encode(), delivery.handoff_code.encode()):
        return None
    delivery.handoff_failed_attempts += 1
    return InvalidHandoffCode(details={"attempts_left": delivery.handoff_attempts_left})
