"""Telling an account's open sockets to look at the account again.

HTTP requests see a deactivation, a revoked session or a role change on their next request
(``RealmJWTAuthentication``). An open socket authenticated once, at connect; so every change
that can end an account's sessions announces itself to the Channels group of that account,
``account_group(user_id)``, which each of its sockets joins. A socket that receives
``{"type": "account.changed"}`` checks its token again (``sessions.token_still_good``) and
closes with 4401 when the answer is no (contract v1.1, "Sessions and logins": within 5 s).

The announcement is sent after the change commits: a socket that checked earlier than the
commit would find the account unchanged.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from lokaly_core.broadcast import get_broadcaster

logger = logging.getLogger("lokaly.accounts")

ACCOUNT_CHANGED = "account.changed"


def account_group(user_id: uuid.UUID | str) -> str:
    return f"account.{user_id}"


def announce_account_change(
    user_id: uuid.UUID | str, *, reason: str, session_id: uuid.UUID | str | None = None
) -> None:
    """After the current transaction commits (at once outside one), tell the account's
    sockets to re-check their tokens. ``reason``: ``deactivated``, ``role_changed``,
    ``logout``, ``password_changed``, ``session_revoked``; ``session_id`` when only one
    session ended. A failed send is logged, not raised: sockets still close at their
    token's expiry."""

    message = {
        "type": ACCOUNT_CHANGED,
        "reason": reason,
        "session": None if session_id is None else str(session_id),
    }

    def send() -> None:
        try:
            get_broadcaster().group_send(account_group(user_id), message)
        except Exception:
            logger.warning(
                "account change not announced to sockets",
                extra={"user_id": str(user_id), "reason": reason},
                exc_info=True,
            )

    transaction.on_commit(send)
