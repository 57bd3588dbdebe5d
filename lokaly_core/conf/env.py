"""Reading configuration from the environment (every variable is listed in .env.example)."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

INSECURE_PREFIX = "insecure-dev-"
# The shortest secret accepted (Django's own check, security.W009, wants 50 for SECRET_KEY).
MIN_SECRET_LENGTH = 32
MIN_SECRET_LENGTHS = {"DJANGO_SECRET_KEY": 50}
GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
# The two JWT secrets; each settings project reads the other's variable, when it is set,
# only to refuse the two being equal (then only the audience would separate the realms).
JWT_SECRET_NAMES = ("PUBLIC_JWT_SECRET", "ADMIN_JWT_SECRET")


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"Set the environment variable {name} (see .env.example).")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None


def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in env(name, default).split(",") if part.strip()]


def secret(name: str, *, debug: bool) -> str:
    """A secret from the environment, at least ``MIN_SECRET_LENGTH`` characters (50 for
    DJANGO_SECRET_KEY). Outside DEBUG a missing or development default refuses; in DEBUG
    an unset one gets a development default. A set but short value refuses in both."""
    value = os.environ.get(name, "")
    minimum = MIN_SECRET_LENGTHS.get(name, MIN_SECRET_LENGTH)
    if value and not value.startswith(INSECURE_PREFIX):
        if len(value) < minimum:
            raise ImproperlyConfigured(
                f"{name} is {len(value)} characters long; use a random value of at least "
                f"{minimum} characters (for example: {GENERATE_HINT})."
            )
        return value
    if not debug:
        raise ImproperlyConfigured(
            f"{name} is missing or still the development default (DEBUG is off); set a random "
            f"value of at least {minimum} characters (for example: {GENERATE_HINT})."
        )
    return value or f"{INSECURE_PREFIX}{name.lower()}-change-me-0123456789abcdef"


def check_distinct_secrets() -> None:
    """Refuse to start when two of the secrets are equal.

    Each settings project reads the other's JWT secret from the environment for this check
    only (docker-compose.yml gives the admin server and the worker both, the public server
    only its own, so the admin side is where a compose deployment is checked).
    """
    names = ("DJANGO_SECRET_KEY", *JWT_SECRET_NAMES)
    values = {name: os.environ.get(name, "") for name in names}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if values[first] and values[first] == values[second]:
                raise ImproperlyConfigured(
                    f"{first} and {second} are equal; each needs its own random value "
                    f"(for example: {GENERATE_HINT})."
                )
