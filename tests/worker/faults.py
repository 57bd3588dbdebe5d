"""Helpers of the fault-injection tests: the environment and start of a worker subprocess
(tests/worker/worker_process.py) on the test database and this session's streams."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from django.conf import settings

from tests.live import live_database_url, spawn


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process on the test database, reading this session's
    event stream and writing its dead-letter stream (``settings.EVENT_STREAM`` ...)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test",
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EVENT_STREAM": settings.EVENT_STREAM,
        "DEAD_LETTER_STREAM": settings.DEAD_LETTER_STREAM,
        "EVENT_CONSUMER_GROUP": settings.EVENT_CONSUMER_GROUP,
        "CACHE_KEY_PREFIX": str(settings.CACHES["default"]["KEY_PREFIX"]),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_worker_process(
    mode: str, consumer: str, env: dict[str, str], logs: dict[str, Path]
) -> subprocess.Popen[bytes]:
    return spawn(consumer, ["-m", "tests.worker.worker_process", mode, consumer], env, logs)
