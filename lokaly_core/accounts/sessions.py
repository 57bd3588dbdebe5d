"""Login sessions (contract v1.1, "Sessions and logins").

``token_still_good`` is what an open socket asks when its account changed (see
``revocation``): the same answer the next HTTP request with that token would get.
"""

from __future__ import annotations

from typing import Any

from lokaly_core.accounts import session_store
from lokaly_core.accounts.tokens import active_user


def token_still_good(payload: dict[str, Any]) -> bool:
    """True while the token's account is active with the token's role and its session (if
    it has one: tokens of an earlier build carry no ``sid``) is not revoked."""
    user = active_user(payload.get("user_id"))
    if user is None or user.role != payload.get("role"):
        return False
    sid = payload.get("sid")
    return sid is None or not session_store.session_revoked(str(sid))
