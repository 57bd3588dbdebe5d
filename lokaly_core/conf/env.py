"""Reading configuration from the environment (every variable is listed in .env.example)."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

INSECURE_PREFIX = "insecure-dev-"


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
    """A secret from the environment. Outside DEBUG a missing or development default refuses."""
    value = os.environ.get(name, "")
    if value and not value.startswith(INSECURE_PREFIX):
        return value
    if not debug:
        raise ImproperlyConfigured(
            f"{name} is missing or still the development default; set a long random value "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    return value or f"{INSECURE_PREFIX}{name.lower()}-change-me-0123456789abcdef"
