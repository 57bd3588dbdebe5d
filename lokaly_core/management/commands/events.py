"""``manage_admin.py events stats|dead-letters|replay <id>|replay --all|discard <id>|reconcile``.

The operator's view of the event streams, the same figures and actions as the admin API's
``/api/admin/events/...`` (both use ``lokaly_core.outbox.streams``). See
docs/operations.md.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lokaly_core.domain.errors import DomainError, NotFound
from lokaly_core.outbox import reconcile as lost_events
from lokaly_core.outbox import streams
from lokaly_core.pipeline_health import PipelineHealth, pipeline_health


class Command(BaseCommand):
    help = (
        "Inspect the event streams and handle dead letters: "
        "stats | dead-letters | replay <id> | replay --all | discard <id> | reconcile."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="subcommand")
        stats = sub.add_parser(
            "stats",
            help="Stream lengths, consumer groups (pending, lag), dead letters, outbox backlog.",
        )
        stats.add_argument("--json", action="store_true", help="Print the figures as JSON.")
        letters = sub.add_parser("dead-letters", help="List dead letters, oldest first.")
        letters.add_argument("--count", type=int, default=20, help="At most this many (<= 100).")
        letters.add_argument("--after", help="Start after this dead-letter id (paging).")
        letters.add_argument("--json", action="store_true", help="Print them as JSON.")
        replay = sub.add_parser(
            "replay",
            help="Put dead letters back on the event stream for the worker to process again.",
        )
        target = replay.add_mutually_exclusive_group(required=True)
        target.add_argument("id", nargs="?", help="The dead-letter id (from dead-letters).")
        target.add_argument(
            "--all", action="store_true", help="Replay every dead letter present now."
        )
        discard = sub.add_parser("discard", help="Delete one dead letter without replaying it.")
        discard.add_argument("id", help="The dead-letter id (from dead-letters).")
        reconcile = sub.add_parser(
            "reconcile",
            help="Publish again the events published but never processed nor dead-lettered "
            "whose stream entry is gone (Redis lost its data).",
        )
        reconcile.add_argument(
            "--older-than",
            type=float,
            default=60,
            metavar="SECONDS",
            help="Only events published at least this long ago (default 60).",
        )
        reconcile.add_argument(
            "--dry-run", action="store_true", help="List what would be published; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        handlers = {
            "stats": self.stats,
            "dead-letters": self.dead_letters,
            "replay": self.replay,
            "discard": self.discard,
            "reconcile": self.reconcile,
        }
        try:
            handlers[options["subcommand"]](options)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise CommandError(f"Redis is unreachable: {exc}") from exc
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    # -- subcommands ---------------------------------------------------------------------

    def stats(self, options: dict[str, Any]) -> None:
        figures = streams.stream_stats()
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        for stream in figures["streams"]:
            self.stdout.write(f"stream {stream['name']}: {stream['length']} entries")
            if not stream["groups"]:
                self.stdout.write("  no consumer groups")
            for group in stream["groups"]:
                lag = "unknown" if group["lag"] is None else group["lag"]
                self.stdout.write(
                    f"  group {group['name']}: pending {group['pending']}, lag {lag}, "
                    f"consumers {group['consumers']}"
                )
        self.stdout.write(f"dead letters: {figures['dead_letters']}")
        self.stdout.write(f"outbox unpublished: {figures['outbox_unpublished']}")
        # The ages behind the worker's gauges (lokaly_worker.metrics), text output only:
        # --json stays the admin API's figures.
        self._write_ages(pipeline_health())

    def _write_ages(self, health: PipelineHealth) -> None:
        for group in health.groups:
            age = group.oldest_pending_age_s
            self.stdout.write(
                f"oldest pending in {group.name}: "
                + ("none" if age is None else f"{age:.1f} s old")
            )
        age = health.outbox_oldest_unpublished_age_s
        self.stdout.write(
            "oldest unpublished outbox row: " + ("none" if age is None else f"{age:.1f} s old")
        )
        wait = health.dispatch_oldest_wait_s
        self.stdout.write(
            f"orders waiting for a courier: {health.dispatch_waiting}"
            + ("" if wait is None else f", the longest for {wait:.1f} s")
        )
        self.stdout.write(
            f"notifications to send: {health.notifications_pending}, "
            f"given up: {health.notifications_failed}"
        )

    def dead_letters(self, options: dict[str, Any]) -> None:
        page, next_after = streams.dead_letters(after=options["after"], count=options["count"])
        if options["json"]:
            payload = {"results": [d.as_dict() for d in page], "next": next_after}
            self.stdout.write(json.dumps(payload, indent=2))
            return
        if not page:
            self.stdout.write("No dead letters.")
            return
        for letter in page:
            self.stdout.write(
                f"{letter.id}  {letter.type or '?'}  event {letter.event_id or '?'}  "
                f"attempts {letter.attempts}  failed {letter.failed_at}"
            )
            self.stdout.write(f"    {letter.error}")
        if next_after:
            self.stdout.write(f"More: events dead-letters --after {next_after}")

    def replay(self, options: dict[str, Any]) -> None:
        if options["all"]:
            self._replay_all()
            return
        entry_id = options["id"]
        try:
            new_id = streams.dead_letter_replay(entry_id=entry_id)
        except NotFound:
            # Already replayed or discarded (e.g. a second run): nothing left to do.
            self.stderr.write(f"No dead letter {entry_id}: already replayed or discarded?")
            return
        self.stdout.write(f"Replayed {entry_id} as event stream entry {new_id}.")

    def _replay_all(self) -> None:
        def progress(done: int, total: int, letter: streams.DeadLetter, new_id: str | None):
            outcome = f"-> {new_id}" if new_id else "skipped (unreadable or already handled)"
            self.stdout.write(f"[{done}/{total}] {letter.id} {letter.type or '?'} {outcome}")

        replayed, skipped = streams.dead_letters_replay_all(on_progress=progress)
        if replayed == skipped == 0:
            self.stdout.write("No dead letters to replay.")
            return
        self.stdout.write(f"Replayed {replayed}, skipped {skipped}.")

    def discard(self, options: dict[str, Any]) -> None:
        entry_id = options["id"]
        try:
            streams.dead_letter_discard(entry_id=entry_id)
        except NotFound:
            self.stderr.write(f"No dead letter {entry_id}: already replayed or discarded?")
            return
        self.stdout.write(f"Discarded {entry_id}.")

    def reconcile(self, options: dict[str, Any]) -> None:
        dry_run = options["dry_run"]
        verb = "would publish" if dry_run else "published"

        def progress(totals: lost_events.ReconcileResult, lost: list[Any]) -> None:
            for row in lost:
                self.stdout.write(f"  {verb} {row.type} {row.event_id}")
            self.stdout.write(
                f"[{totals.checked} checked] {totals.on_stream} still on the stream, "
                f"{totals.republished} {verb} again"
            )

        result = lost_events.reconcile(
            older_than_s=max(options["older_than"], 0), dry_run=dry_run, on_batch=progress
        )
        self.stdout.write(
            f"Reconciled: {result.checked} unsettled events older than "
            f"{options['older_than']:g}s, {result.on_stream} still on the stream, "
            f"{result.republished} {verb} again{' (dry run)' if dry_run else ''}."
        )
