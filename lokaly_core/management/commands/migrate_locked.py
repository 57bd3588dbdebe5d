"""Migrate under a PostgreSQL advisory lock, so processes starting together migrate once."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from lokaly_core.conf import servers
from lokaly_core.redis_client import get_redis

# Any fixed 64-bit number, the same in every process: "lokaly migrations".
MIGRATION_LOCK_ID = 0x10CA1F_0001


class Command(BaseCommand):
    help = (
        "Check that PostgreSQL and Redis are new enough, then apply migrations while holding "
        "an advisory lock (the others wait, then find nothing to do)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with connection.cursor() as cursor:
            problems = servers.check_connections(cursor=cursor, redis_client=get_redis())
            if problems:
                raise CommandError(" ".join(problems))
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
            try:
                call_command("migrate", interactive=False, verbosity=options["verbosity"])
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
