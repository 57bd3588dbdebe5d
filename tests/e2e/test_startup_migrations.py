"""Processes starting together migrate once: one holds the advisory lock, the others wait."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    base = urlsplit(os.environ.get("DATABASE_URL") or settings.DATABASE_URL)
    name = f"lokaly_migrate_{uuid.uuid4().hex[:10]}"
    admin_url = urlunsplit(base._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(base._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_three_processes_migrating_at_once_all_succeed(fresh_database_url: str) -> None:
    # given an empty database and three processes starting at the same moment
    env = {**os.environ, "DATABASE_URL": fresh_database_url,
           "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    procs = [
        subprocess.Popen([sys.executable, "manage_admin.py", "migrate_locked"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(3)
    ]

    # when they all run their start-up migration
    outputs = [p.communicate(timeout=180)[0].decode() for p in procs]

    # then every one succeeds and each migration was applied exactly once
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("Applying core.0001_initial... OK" in out for out in outputs) == 1
    with psycopg.connect(fresh_database_url) as conn:
        rows = conn.execute(
            "SELECT app, name, count(*) FROM django_migrations GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        core = conn.execute("SELECT count(*) FROM django_migrations WHERE app = 'core'").fetchone()
    assert rows == []
    assert core == (len(list((ROOT / "lokaly_core" / "migrations").glob("0*.py"))),)
