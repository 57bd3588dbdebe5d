"""The oldest PostgreSQL and Redis Lokaly runs on, and the check that refuses older ones.

Production (docker-compose.yml) runs PostgreSQL 16 and Valkey 8.1, the embedded servers of
``make dev`` / ``make test`` the same major versions (lokaly_core/conf/embedded.py); CI also
runs the suite against this machine's PostgreSQL 15 and Redis 7.0. Older servers lack
what the code relies on: Redis 7.0 added the consumer-group ``lag`` that ``events stats``
and the worker's gauges report (6.2 answers without it), PostgreSQL 15 is the oldest the
suite has run on. Valkey reports ``redis_version`` 7.2.4, the Redis API it implements.

Checked where a wrong server would otherwise show up as puzzling failures much later: at
the start of a test session (tests/conftest.py) and by ``migrate_locked`` before a server
or ``make dev`` starts.
"""

from __future__ import annotations

from typing import Any

MIN_POSTGRES = (15, 0)
MIN_REDIS = (7, 0)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def postgres_version(server_version_num: int | str) -> tuple[int, int]:
    """``SHOW server_version_num`` (e.g. ``160002``) as ``(16, 2)``."""
    number = int(server_version_num)
    return number // 10000, number % 10000


def redis_version(info: dict[str, Any]) -> tuple[int, ...]:
    """``INFO server``'s ``redis_version`` (``"7.2.4"``) as ``(7, 2, 4)``."""
    return tuple(int(part) for part in str(info["redis_version"]).split(".")[:3])


def version_problems(
    *, postgres: tuple[int, int] | None, redis: tuple[int, ...] | None, where: str = ""
) -> list[str]:
    """What is too old, each in a sentence that says what to do; empty when both are fine.

    ``None`` skips a server (not checked here); ``where`` names the servers' URLs.
    """
    problems = []
    hint = (
        " Unset DATABASE_URL / REDIS_URL to use the embedded servers (make stop-embedded first"
        " if an older embedded one is still running), or point them at newer servers."
    )
    if postgres is not None and postgres < MIN_POSTGRES:
        problems.append(
            f"PostgreSQL {_dotted(postgres)} is older than {_dotted(MIN_POSTGRES)}, the oldest"
            f" Lokaly supports{where}.{hint}"
        )
    if redis is not None and redis < MIN_REDIS:
        problems.append(
            f"Redis {_dotted(redis)} is older than {_dotted(MIN_REDIS)}, the oldest Lokaly"
            f" supports (consumer-group lag, reported by events stats, came in 7.0){where}."
            f"{hint}"
        )
    return problems


def check_connections(*, cursor: Any, redis_client: Any, where: str = "") -> list[str]:
    """:func:`version_problems` for the servers behind a DB-API cursor and a redis client."""
    cursor.execute("SHOW server_version_num")
    postgres = postgres_version(cursor.fetchone()[0])
    return version_problems(
        postgres=postgres, redis=redis_version(redis_client.info("server")), where=where
    )
