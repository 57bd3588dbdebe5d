"""Inspecting the event streams and handling dead letters (the admin API and ``events``).

- ``stream_stats``: length, consumer groups, pending and lag of the event stream and the
  dead-letter stream (XINFO), the dead-letter count and the outbox backlog.
- ``dead_letters``: a page of the dead-letter stream, oldest first, after a cursor.
- ``dead_letter_replay``: move one dead letter back onto the event stream (XADD + XDEL in
  one MULTI, under WATCH so two concurrent replays cannot both put it back).
- ``dead_letter_discard``: drop one dead letter (XDEL).

Dead-letter entries are written by the worker (``lokaly_worker.consumer``) with the fields
``source_id, event_id, type, error, attempts, failed_at, envelope``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis
from django.conf import settings

from lokaly_core.domain.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from lokaly_core.events import Envelope
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import StreamEntry, get_redis

ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_PAGE = 100


class UnreadableDeadLetter(DomainError):
    code = ErrorCode.CONFLICT
    default_message = (
        "This dead letter's envelope cannot be parsed, so a replay would fail again; "
        "discard it instead."
    )


@dataclass(frozen=True)
class DeadLetter:
    id: str
    source_id: str
    event_id: str
    type: str
    error: str
    attempts: int
    failed_at: str
    envelope: str

    @property
    def payload(self) -> Any:
        """The parsed envelope, or None when it is not JSON."""
        try:
            return json.loads(self.envelope)
        except ValueError:
            return None

    def parsed_envelope(self) -> Envelope | None:
        """The envelope as the worker reads it; None when it cannot (a replay would fail)."""
        try:
            return Envelope.from_json(self.envelope)
        except (KeyError, ValueError, TypeError):
            return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.type,
            "error": self.error,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
            "payload": self.payload,
        }


def is_entry_id(value: str) -> bool:
    return bool(ENTRY_ID.match(value))


# -- stats ------------------------------------------------------------------------------


def stream_stats(*, client: redis.Redis | None = None) -> dict[str, Any]:
    """``{streams: [...], dead_letters, outbox_unpublished}``; a missing stream is empty."""
    client = client or get_redis()
    streams = [
        _one_stream(client, settings.EVENT_STREAM),
        _one_stream(client, settings.DEAD_LETTER_STREAM),
    ]
    return {
        "streams": streams,
        "dead_letters": streams[1]["length"],
        "outbox_unpublished": OutboxEvent.objects.filter(published_at__isnull=True).count(),
    }


def _one_stream(client: redis.Redis, name: str) -> dict[str, Any]:
    try:
        info = cast("dict[str, Any]", client.xinfo_stream(name))
        groups = cast("list[dict[str, Any]]", client.xinfo_groups(name))
    except redis.ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return {"name": name, "length": 0, "groups": []}
    return {
        "name": name,
        "length": int(info["length"]),
        "groups": [
            {
                "name": _text(g["name"]),
                "pending": int(g["pending"]),
                # None when Redis cannot tell (entries were deleted or trimmed behind it).
                "lag": None if g.get("lag") is None else int(g["lag"]),
                "consumers": int(g["consumers"]),
            }
            for g in groups
        ],
    }


# -- dead letters -----------------------------------------------------------------------


def dead_letters(
    *, after: str | None = None, count: int = 20, client: redis.Redis | None = None
) -> tuple[list[DeadLetter], str | None]:
    """Up to ``count`` dead letters after the entry id ``after``, oldest first, and the
    cursor of the next page (None on the last page)."""
    client = client or get_redis()
    if after is not None and not is_entry_id(after):
        raise ValidationFailed({"cursor": ["Use the id of a dead letter (e.g. 1700000000000-0)."]})
    count = max(1, min(count, MAX_PAGE))
    start = f"({after}" if after else "-"
    entries = cast(
        "list[StreamEntry]",
        client.xrange(settings.DEAD_LETTER_STREAM, min=start, max="+", count=count + 1),
    )
    page = [_dead_letter(entry_id, fields) for entry_id, fields in entries[:count]]
    return page, (page[-1].id if len(entries) > count else None)


def dead_letter_replay(*, entry_id: str, client: redis.Redis | None = None) -> str:
    """Put the dead letter's envelope back on the event stream and remove the dead letter,
    in one MULTI; returns the new event stream entry id. Raises ``NotFound`` when the dead
    letter is gone (replayed or discarded meanwhile)."""
    client = client or get_redis()
    _require_entry_id(entry_id)
    dead_stream = settings.DEAD_LETTER_STREAM

    def move(pipe: redis.client.Pipeline) -> None:
        entries = cast("list[StreamEntry]", pipe.xrange(dead_stream, min=entry_id, max=entry_id))
        if not entries:
            raise NotFound("No dead letter has this id.")
        letter = _dead_letter(*entries[0])
        envelope = letter.parsed_envelope()
        if envelope is None:
            raise UnreadableDeadLetter(details={"id": entry_id})
        pipe.multi()
        # The fields the outbox relay writes (lokaly_core.outbox.relay._xadd_all).
        pipe.xadd(
            settings.EVENT_STREAM,
            {
                "event_id": str(envelope.event_id),
                "type": envelope.type,
                "envelope": letter.envelope,
            },
        )
        pipe.xdel(dead_stream, entry_id)

    new_id, _deleted = cast("list[Any]", client.transaction(move, dead_stream))
    return _text(new_id)


def dead_letter_discard(*, entry_id: str, client: redis.Redis | None = None) -> None:
    client = client or get_redis()
    _require_entry_id(entry_id)
    if not client.xdel(settings.DEAD_LETTER_STREAM, entry_id):
        raise NotFound("No dead letter has this id.")


def dead_letters_replay_all(
    *,
    client: redis.Redis | None = None,
    on_progress: Callable[[int, int, DeadLetter, str | None], None] | None = None,
) -> tuple[int, int]:
    """Replay every dead letter present when called; returns (replayed, skipped).

    Skipped are unreadable ones (left in place) and ones another operator handled
    meanwhile. ``on_progress(done, total, letter, new_id or None)`` after each.
    """
    client = client or get_redis()
    total = cast(int, client.xlen(settings.DEAD_LETTER_STREAM))
    replayed = skipped = done = 0
    for letter in _iter_dead_letters(client):
        try:
            new_id: str | None = dead_letter_replay(entry_id=letter.id, client=client)
            replayed += 1
        except (NotFound, UnreadableDeadLetter):
            new_id = None
            skipped += 1
        done += 1
        if on_progress:
            on_progress(done, max(total, done), letter, new_id)
    return replayed, skipped


def _iter_dead_letters(client: redis.Redis) -> Iterator[DeadLetter]:
    """Each dead letter once, oldest first; ones added after the call began are left."""
    newest = cast("list[StreamEntry]", client.xrevrange(settings.DEAD_LETTER_STREAM, count=1))
    if not newest:
        return
    last = _id_key(_text(newest[0][0]))
    after: str | None = None
    while True:
        page, after = dead_letters(after=after, count=MAX_PAGE, client=client)
        for letter in page:
            if _id_key(letter.id) > last:
                return
            yield letter
        if after is None:
            return


def _dead_letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    f = {_text(k): _text(v) for k, v in fields.items()}
    try:
        attempts = int(f.get("attempts", "0"))
    except ValueError:
        attempts = 0
    return DeadLetter(
        id=_text(entry_id),
        source_id=f.get("source_id", ""),
        event_id=f.get("event_id", ""),
        type=f.get("type", ""),
        error=f.get("error", ""),
        attempts=attempts,
        failed_at=f.get("failed_at", ""),
        envelope=f.get("envelope", ""),
    )


def _require_entry_id(entry_id: str) -> None:
    # Redis answers an error (not an empty result) for an id it cannot parse.
    if not is_entry_id(entry_id):
        raise NotFound("No dead letter has this id.")


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
