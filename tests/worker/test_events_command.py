"""``manage_admin.py events``: stats, dead letters, replay (one or all) and discard."""

from __future__ import annotations

import json
import uuid
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from lokaly_core.events import Envelope, PickingStarted
from lokaly_core.outbox import streams
from lokaly_core.outbox.models import ProcessedEvent
from lokaly_worker.registry import Registry
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db


def make_envelope() -> Envelope:
    order_id = uuid.uuid4()
    event = PickingStarted(order_id=order_id, store_id=uuid.uuid4())
    return Envelope.wrap(event, aggregate_id=order_id, occurred_at=timezone.now())


def add_dead_letter(redis_client: Any, raw: str | None = None) -> tuple[str, Envelope]:
    envelope = make_envelope()
    entry_id = redis_client.xadd(
        settings.DEAD_LETTER_STREAM,
        {
            "source_id": "1-0",
            "event_id": str(envelope.event_id),
            "type": envelope.type,
            "error": "ValueError: boom",
            "attempts": "5",
            "failed_at": "2026-11-27T03:00:00+00:00",
            "envelope": envelope.to_json() if raw is None else raw,
        },
    )
    return entry_id.decode(), envelope


def events(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("events", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def dead_ids(redis_client: Any) -> list[str]:
    return [i.decode() for i, _ in redis_client.xrange(settings.DEAD_LETTER_STREAM)]


# -- stats and the list -----------------------------------------------------------------


def test_stats_on_empty_streams(redis_client: Any) -> None:
    out, _ = events("stats")

    assert f"stream {settings.EVENT_STREAM}: 0 entries" in out
    assert f"stream {settings.DEAD_LETTER_STREAM}: 0 entries" in out
    assert "dead letters: 0" in out
    assert "outbox unpublished: 0" in out


def test_stats_as_json_match_the_api_figures(redis_client: Any) -> None:
    stream = settings.EVENT_STREAM
    for n in range(3):
        redis_client.xadd(stream, {"n": str(n)})
    redis_client.xgroup_create(stream, "workers", id="0")
    redis_client.xreadgroup("workers", "c1", {stream: ">"}, count=1)
    add_dead_letter(redis_client)

    out, _ = events("stats", "--json")

    figures = json.loads(out)
    assert figures == streams.stream_stats()
    assert figures["streams"][0]["groups"] == [
        {"name": "workers", "pending": 1, "lag": 2, "consumers": 1}
    ]
    assert figures["dead_letters"] == 1
    text, _ = events("stats")
    assert "group workers: pending 1, lag 2, consumers 1" in text


def test_dead_letters_lists_them_with_a_next_page_hint(redis_client: Any) -> None:
    ids = [add_dead_letter(redis_client)[0] for _ in range(3)]

    out, _ = events("dead-letters", "--count", "2")
    rest, _ = events("dead-letters", "--after", ids[1])

    assert ids[0] in out and ids[1] in out and ids[2] not in out
    assert "ValueError: boom" in out
    assert f"--after {ids[1]}" in out
    assert ids[2] in rest
    assert len(json.loads(events("dead-letters", "--json")[0])["results"]) == 3


def test_no_dead_letters_says_so(redis_client: Any) -> None:
    assert events("dead-letters")[0].strip() == "No dead letters."


# -- replay and discard -----------------------------------------------------------------


def test_replay_one_moves_it_back_and_is_safe_to_run_twice(redis_client: Any) -> None:
    dead_id, envelope = add_dead_letter(redis_client)

    out, _ = events("replay", dead_id)
    again, warning = events("replay", dead_id)

    assert f"Replayed {dead_id}" in out
    assert again == ""
    assert "already replayed or discarded" in warning
    [(_id, fields)] = redis_client.xrange(settings.EVENT_STREAM)
    assert Envelope.from_json(fields[b"envelope"]) == envelope
    assert dead_ids(redis_client) == []


def test_replay_all_shows_progress_and_skips_unreadable_ones(redis_client: Any) -> None:
    readable = [add_dead_letter(redis_client)[0] for _ in range(3)]
    broken, _ = add_dead_letter(redis_client, raw="{not json")

    out, _ = events("replay", "--all")
    again, _ = events("replay", "--all")

    assert "[1/4]" in out and "[4/4]" in out
    assert "Replayed 3, skipped 1." in out
    assert redis_client.xlen(settings.EVENT_STREAM) == 3
    assert dead_ids(redis_client) == [broken]
    assert readable[0] not in dead_ids(redis_client)
    assert "Replayed 0, skipped 1." in again  # the unreadable one stays for a discard
    assert redis_client.xlen(settings.EVENT_STREAM) == 3


def test_replay_all_with_nothing_to_do(redis_client: Any) -> None:
    assert events("replay", "--all")[0].strip() == "No dead letters to replay."


def test_discard_deletes_one_and_is_safe_to_run_twice(redis_client: Any) -> None:
    gone, _ = add_dead_letter(redis_client)
    kept, _ = add_dead_letter(redis_client)

    out, _ = events("discard", gone)
    _, warning = events("discard", gone)

    assert f"Discarded {gone}." in out
    assert "already replayed or discarded" in warning
    assert dead_ids(redis_client) == [kept]
    assert redis_client.exists(settings.EVENT_STREAM) == 0


@pytest.mark.parametrize("subcommand", [[], ["stats"], ["dead-letters"], ["replay"], ["discard"]])
def test_every_subcommand_has_help(subcommand: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_command("events", *subcommand, "--help")
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_replay_needs_an_id_or_all(redis_client: Any) -> None:
    # (on the command line, argparse's usage error and exit status 2)
    with pytest.raises(CommandError, match="one of the arguments id --all is required"):
        call_command("events", "replay")
    with pytest.raises(CommandError, match="not allowed with"):
        call_command("events", "replay", "1-0", "--all")


# -- the worker processes a replayed event ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_replayed_dead_letter_is_processed_by_the_worker(redis_client: Any) -> None:
    # given a handler that fails until it is fixed, and an event it dead-lettered
    fixed = {"now": False}
    seen: list[uuid.UUID] = []
    reg = Registry()

    @reg.handles(PickingStarted)
    def flaky(envelope: Envelope, event: Any) -> None:
        if not fixed["now"]:
            raise RuntimeError("downstream is down")
        seen.append(envelope.event_id)

    worker = make_worker(reg, max_attempts=2, retry_base_ms=20, retry_max_ms=40)
    envelope = make_envelope()
    redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    run_until(worker, lambda: redis_client.xlen(settings.DEAD_LETTER_STREAM))

    # when the cause is fixed and the operator replays every dead letter
    fixed["now"] = True
    events("replay", "--all")
    run_until(worker, lambda: seen)

    # then the event was processed once, and nothing is dead or pending any more
    assert seen == [envelope.event_id]
    assert ProcessedEvent.objects.filter(event_id=envelope.event_id).count() == 1
    assert redis_client.xlen(settings.DEAD_LETTER_STREAM) == 0
    [group] = streams.stream_stats()["streams"][0]["groups"]
    assert (group["pending"], group["lag"]) == (0, 0)
