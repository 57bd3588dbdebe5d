"""The settings mypy's Django plugin imports (pyproject.toml, ``[tool.django-stubs]``):
the test settings, with placeholder server URLs when none are set, so that a type check
never starts the embedded PostgreSQL and Redis (it connects to nothing)."""

import os

os.environ.setdefault("DATABASE_URL", "postgresql://typecheck@127.0.0.1:9/typecheck")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:9/0")

from lokaly_public.settings.test import *  # noqa: F403
