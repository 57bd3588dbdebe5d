"""JWTs per realm: the public API and the admin API sign with different secrets and audiences.

simplejwt's token classes read one global configuration; here each realm builds its own
``TokenBackend`` from settings at call time, so one process (and one test run) can hold
both and a token of one realm never validates in the other, even if the secrets were the
same (the audience differs).
"""

from __future__ import annotations

import base64
import functools
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication
from rest_framework.request import Request
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

from lokaly_core.accounts import session_store
from lokaly_core.accounts.models import PUBLIC_ROLES, STAFF_ROLES, UsedRefreshToken, User

# How far past its expiry a token is still taken (clocks differ).
_LEEWAY_SECONDS = 10


@dataclass(frozen=True)
class Realm:
    name: str
    audience: str
    secret_setting: str
    roles: frozenset[str]

    def backend(self) -> TokenBackend:
        return _backend(self.audience, getattr(settings, self.secret_setting))


@functools.lru_cache(maxsize=8)
def _backend(audience: str, signing_key: str) -> TokenBackend:
    """One backend per audience and secret: building one is not free (its prepared key
    builds a ``PyJWS`` with every algorithm pyjwt knows, ~5 % of a public process at 32
    customers when it was built per token; docs/performance.md), and a backend holds no
    state but its configuration. Keyed on the secret, so a changed setting (a test's
    override, a rotated secret) gets its own."""
    return TokenBackend(
        "HS256",
        signing_key=signing_key,
        audience=audience,
        leeway=timedelta(seconds=_LEEWAY_SECONDS),
    )


PUBLIC = Realm("public", "lokaly-public", "PUBLIC_JWT_SECRET", frozenset(PUBLIC_ROLES))
ADMIN = Realm("admin", "lokaly-admin", "ADMIN_JWT_SECRET", frozenset(STAFF_ROLES))


def _token_class(
    base: type[Token], realm: Realm, lifetime_setting: str, **extra: Any
) -> type[Token]:
    def get_token_backend(self: Token) -> TokenBackend:
        return realm.backend()

    lifetime = property(lambda self: timedelta(seconds=getattr(settings, lifetime_setting)))
    attrs = {"get_token_backend": get_token_backend, "lifetime": lifetime, **extra}
    return type(f"{realm.name.title()}{base.__name__}", (base,), attrs)


_ACCESS = {r.name: _token_class(AccessToken, r, "JWT_ACCESS_TTL_SECONDS") for r in (PUBLIC, ADMIN)}
_REFRESH = {
    r.name: _token_class(
        RefreshToken, r, "JWT_REFRESH_TTL_SECONDS", access_token_class=_ACCESS[r.name]
    )
    for r in (PUBLIC, ADMIN)
}


def issue_pair(realm: Realm, user: User, *, session_id: object | None = None) -> dict[str, str]:
    """A new token pair of ``user`` in ``session_id``'s session, or in a new session (a
    login). Both tokens carry ``sid`` (the access token copies the refresh token's claims)."""
    if session_id is None:
        session_id = session_store.session_start(user, realm.name).pk
    refresh = _REFRESH[realm.name].for_user(user)
    refresh["role"] = user.role
    refresh["sid"] = str(session_id)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}  # type: ignore[attr-defined]


def peek_sid(realm: Realm, raw: str) -> str | None:
    """The ``sid`` claim of an access token *without verifying it*: which revocation marker
    to fetch in the same Redis round trip as the rate limiter's counter, before the
    authentication class verifies the token (and compares the sid it verified with this
    one). A token verified before answers from the verified cache."""
    payload = _VERIFIED.get((realm.name, getattr(settings, realm.secret_setting), raw))
    if payload is None:
        try:
            segment = raw.split(".")[1]
            payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (IndexError, ValueError, TypeError):
            return None
        if not isinstance(payload, dict):
            return None
    sid = payload.get("sid")
    return sid if isinstance(sid, str) and len(sid) <= 64 else None


def bearer_token(header: str) -> str | None:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return raw.strip()


# Access tokens already verified, by (realm, signing key, token): a client sends the same
# token with every request for its lifetime, and the signature and claims checks cost
# about a third of authenticating one (docs/performance.md, "Lean intake"). Only the
# expiry can change a verified token's answer, and it is checked on every hit as simplejwt
# checks it (``exp`` past now minus the leeway). The account is still loaded per request.
_VERIFIED: dict[tuple[str, str, str], dict[str, Any]] = {}
_VERIFIED_MAX = 10_000


def validate_access(realm: Realm, raw: str) -> dict[str, Any]:
    """The payload of a valid access token of ``realm``; raises ``InvalidToken`` otherwise."""
    key = (realm.name, getattr(settings, realm.secret_setting), raw)
    payload = _VERIFIED.get(key)
    if payload is None or payload["exp"] <= time.time() - _LEEWAY_SECONDS:
        try:
            token = _ACCESS[realm.name](raw)  # type: ignore[arg-type]
        except TokenError as exc:
            _VERIFIED.pop(key, None)
            raise InvalidToken(str(exc)) from exc
        payload = token.payload
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[key] = payload
    if payload.get("role") not in realm.roles:
        raise InvalidToken("The token's role is not allowed here.")
    return dict(payload)


def validate_refresh(realm: Realm, raw: str) -> Token:
    """A valid refresh token of ``realm`` (signature, audience, expiry); raises
    ``InvalidToken`` otherwise."""
    try:
        return _REFRESH[realm.name](raw)  # type: ignore[arg-type]
    except TokenError as exc:
        raise InvalidToken(str(exc)) from exc


def _mark_used(refresh: Token) -> bool:
    """Record the refresh token as exchanged; False when it already was."""
    expires_at = datetime.fromtimestamp(refresh["exp"], tz=UTC)
    _, created = UsedRefreshToken.objects.get_or_create(
        jti=refresh["jti"], defaults={"expires_at": expires_at}
    )
    return created


def rotate_refresh(realm: Realm, raw: str) -> dict[str, str]:
    """Exchange a refresh token for a new pair of the same session; each refresh token
    works once, and reusing one revokes its whole session (contract v1.1). A refresh token
    without ``sid`` (issued by an earlier build) is exchanged into a new session."""
    refresh = validate_refresh(realm, raw)
    user_id = refresh.payload.get("user_id")
    user = None if user_id is None else User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or user.role not in realm.roles:
        raise InvalidToken("The account behind this token is not active here.")
    sid = refresh.payload.get("sid")
    if not _mark_used(refresh):
        if sid is not None:
            session_store.session_revoke(sid, reason="refresh_reused")
        raise InvalidToken("This refresh token was already used.")
    if sid is not None and session_store.session_revoked(str(sid)):
        raise InvalidToken("This session has ended.")
    return issue_pair(realm, user, session_id=sid)


def logout(realm: Realm, raw: str) -> None:
    """End the session of a refresh token of ``realm`` (idempotent for a session already
    ended). A token without ``sid`` is only marked used."""
    refresh = validate_refresh(realm, raw)
    sid = refresh.payload.get("sid")
    _mark_used(refresh)
    if sid is not None:
        sid_uuid, user_uuid = _uuid_or_none(sid), _uuid_or_none(refresh.get("user_id"))
        session = None
        if sid_uuid is not None and user_uuid is not None:
            session = session_store.LoginSession.objects.filter(
                pk=sid_uuid, realm=realm.name, user_id=user_uuid
            ).first()
        if session is None:
            raise InvalidToken("No such session.")
        session_store.session_revoke(session.pk, reason="logout")


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# In the model's field order, as ``Model.from_db`` expects the values.
_USER_FIELDS = tuple(
    f.attname
    for f in User._meta.concrete_fields
    if f.attname in {"id", "email", "name", "role", "is_active", "is_superuser", "date_joined"}
)
_USER_SQL = (
    f"SELECT {', '.join(_USER_FIELDS)} FROM {User._meta.db_table} "  # noqa: S608 - ours
    "WHERE id = %s AND is_active"
)


def active_user(user_id: object) -> User | None:
    """The active user with this id, loaded with the fields requests need.

    One hand-written query (every authenticated request makes it; the ORM's query cost
    was a third of a small request's CPU here). The instance has the other fields
    deferred, so a ``save()`` on it writes only these fields, never a blank password.
    """
    try:
        user_uuid = uuid.UUID(str(user_id))
    except ValueError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_USER_SQL, [user_uuid])
        row = cursor.fetchone()
    return User.from_db("default", _USER_FIELDS, row) if row else None


class RealmJWTAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <access>`` for one realm; the user must be active in it."""

    realm: Realm = PUBLIC
    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[User, dict[str, Any]] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        raw = bearer_token(header)
        if raw is None:
            raise InvalidToken("Use 'Authorization: Bearer <access token>'.")
        payload = validate_access(self.realm, raw)
        sid = payload.get("sid")
        # Tokens of an earlier build carry no sid: they work until they expire.
        if sid is not None:
            http_request = getattr(request, "_request", request)
            stashed = getattr(http_request, session_store.REQUEST_ATTR, None)
            if session_store.session_revoked(str(sid), stashed):
                raise InvalidToken("This session has ended.")
        user = active_user(payload.get("user_id"))
        # The role is compared with the token's: a role change ends the account's tokens.
        if user is None or user.role not in self.realm.roles or user.role != payload.get("role"):
            raise InvalidToken("The account behind this token is not active here.")
        return user, payload

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


class PublicJWTAuthentication(RealmJWTAuthentication):
    realm = PUBLIC


class AdminJWTAuthentication(RealmJWTAuthentication):
    realm = ADMIN


class RealmJWTScheme(OpenApiAuthenticationExtension):
    """Declares ``Authorization: Bearer <JWT>`` in each API's OpenAPI schema."""

    target_class = RealmJWTAuthentication
    match_subclasses = True
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(
            header_name="HTTP_AUTHORIZATION",
            token_prefix="Bearer",  # noqa: S106 - the scheme's name, not a secret
            bearer_format="JWT",
        )
