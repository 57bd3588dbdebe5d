"""Admin events view: stream stats, the dead-letter list, replay and discard."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role
from lokaly_core.accounts.tokens import ADMIN, issue_pair
from lokaly_core.events import Envelope, PickingStarted
from lokaly_core.outbox.models import OutboxEvent
from tests.factories import UserFactory
from tests.public.conftest import assert_error

DEAD = "/api/admin/events/dead-letters"


def client_for_role(role: Role) -> APIClient:
    client = APIClient()
    token = issue_pair(ADMIN, UserFactory.create(role=role))["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def admin(db: None) -> APIClient:
    return client_for_role(Role.ADMIN)


@pytest.fixture
def su(db: None) -> APIClient:
    return client_for_role(Role.SUPER_ADMIN)


def make_envelope() -> Envelope:
    order_id = uuid.uuid4()
    event = PickingStarted(order_id=order_id, store_id=uuid.uuid4())
    return Envelope.wrap(event, aggregate_id=order_id, occurred_at=timezone.now())


def add_dead_letter(redis_client: Any, event: Envelope | None = None, **fields: str) -> str:
    """A dead letter as the worker writes it (lokaly_worker.consumer._dead_letter)."""
    envelope = event or make_envelope()
    entry = {
        "source_id": "1-0",
        "event_id": str(envelope.event_id),
        "type": envelope.type,
        "error": "ValueError: boom",
        "attempts": "5",
        "failed_at": "2026-11-27T03:00:00+00:00",
        "envelope": envelope.to_json(),
        **fields,
    }
    return redis_client.xadd(settings.DEAD_LETTER_STREAM, entry).decode()


def _outbox_row(published: bool) -> None:
    OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type="picking.started",
        schema_version=1,
        occurred_at=timezone.now(),
        aggregate_id=uuid.uuid4(),
        payload={},
        published_at=timezone.now() if published else None,
    )


# -- stats ------------------------------------------------------------------------------


def test_stats_with_no_streams_yet_are_zeros_not_an_error(admin: APIClient) -> None:
    response = admin.get("/api/admin/events/stats")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "streams": [
            {"name": settings.EVENT_STREAM, "length": 0, "groups": []},
            {"name": settings.DEAD_LETTER_STREAM, "length": 0, "groups": []},
        ],
        "dead_letters": 0,
        "outbox_unpublished": 0,
    }


def test_stats_show_length_pending_lag_consumers_dead_letters_and_backlog(
    admin: APIClient, redis_client: Any
) -> None:
    # given 5 events, a group whose one consumer read 2 of them and acked 1
    stream = settings.EVENT_STREAM
    ids = [redis_client.xadd(stream, {"n": str(n)}) for n in range(5)]
    redis_client.xgroup_create(stream, "workers", id="0")
    redis_client.xreadgroup("workers", "c1", {stream: ">"}, count=2)
    redis_client.xack(stream, "workers", ids[0])
    add_dead_letter(redis_client)
    add_dead_letter(redis_client)
    _outbox_row(published=False)
    _outbox_row(published=True)

    body = admin.get("/api/admin/events/stats").json()

    events, dead = body["streams"]
    assert events == {
        "name": stream,
        "length": 5,
        "groups": [{"name": "workers", "pending": 1, "lag": 3, "consumers": 1}],
    }
    assert dead == {"name": settings.DEAD_LETTER_STREAM, "length": 2, "groups": []}
    assert body["dead_letters"] == 2
    assert body["outbox_unpublished"] == 1


# -- the list ---------------------------------------------------------------------------


def test_dead_letters_are_listed_oldest_first_with_the_parsed_envelope(
    admin: APIClient, redis_client: Any
) -> None:
    envelopes = [make_envelope() for _ in range(3)]
    ids = [add_dead_letter(redis_client, e) for e in envelopes]

    first = admin.get(f"{DEAD}?page_size=2").json()
    second = admin.get(first["next"]).json()

    assert [d["id"] for d in first["results"]] == ids[:2]
    assert [d["id"] for d in second["results"]] == ids[2:]
    assert first["previous"] is None and second["next"] is None
    row = first["results"][0]
    assert row == {
        "id": ids[0],
        "event_id": str(envelopes[0].event_id),
        "type": "picking.started",
        "error": "ValueError: boom",
        "attempts": 5,
        "failed_at": "2026-11-27T03:00:00+00:00",
        "payload": envelopes[0].to_dict(),
    }


def test_an_unreadable_dead_letter_is_listed_with_a_null_payload(
    admin: APIClient, redis_client: Any
) -> None:
    add_dead_letter(redis_client, envelope="{oops", attempts="x")

    [row] = admin.get(DEAD).json()["results"]

    assert (row["payload"], row["attempts"]) == (None, 0)


def test_a_forged_cursor_is_400(admin: APIClient) -> None:
    details = assert_error(admin.get(f"{DEAD}?cursor=0-0);DROP"), 400, "validation_error")
    assert "cursor" in details


def test_an_empty_dead_letter_stream_is_an_empty_page(admin: APIClient) -> None:
    assert admin.get(f"{DEAD}?page_size=abc").json() == {
        "results": [],
        "next": None,
        "previous": None,
    }


# -- replay and discard -----------------------------------------------------------------


def test_replay_puts_the_event_back_and_removes_the_dead_letter(
    su: APIClient, redis_client: Any
) -> None:
    envelope = make_envelope()
    dead_id = add_dead_letter(redis_client, envelope)
    other = add_dead_letter(redis_client)

    response = su.post(f"{DEAD}/{dead_id}/replay")

    assert response.status_code == 202, response.content
    new_id = response.json()["stream_id"]
    assert response.json()["id"] == dead_id
    [(entry_id, fields)] = redis_client.xrange(settings.EVENT_STREAM)
    assert entry_id.decode() == new_id
    assert fields[b"event_id"].decode() == str(envelope.event_id)
    assert fields[b"type"] == b"picking.started"
    assert Envelope.from_json(fields[b"envelope"]) == envelope
    remaining = [i.decode() for i, _ in redis_client.xrange(settings.DEAD_LETTER_STREAM)]
    assert remaining == [other]


def test_replaying_twice_is_404_the_second_time(su: APIClient, redis_client: Any) -> None:
    dead_id = add_dead_letter(redis_client)

    assert su.post(f"{DEAD}/{dead_id}/replay").status_code == 202
    assert_error(su.post(f"{DEAD}/{dead_id}/replay"), 404, "not_found")

    assert redis_client.xlen(settings.EVENT_STREAM) == 1


def test_an_unreadable_dead_letter_cannot_be_replayed_but_can_be_discarded(
    su: APIClient, redis_client: Any
) -> None:
    dead_id = add_dead_letter(redis_client, envelope="not json")

    assert_error(su.post(f"{DEAD}/{dead_id}/replay"), 409, "conflict")
    assert redis_client.xlen(settings.DEAD_LETTER_STREAM) == 1
    assert redis_client.exists(settings.EVENT_STREAM) == 0

    assert su.post(f"{DEAD}/{dead_id}/discard").status_code == 204
    assert redis_client.xlen(settings.DEAD_LETTER_STREAM) == 0


def test_discard_removes_only_that_dead_letter(su: APIClient, redis_client: Any) -> None:
    gone, kept = add_dead_letter(redis_client), add_dead_letter(redis_client)

    response = su.post(f"{DEAD}/{gone}/discard")

    assert response.status_code == 204
    assert response.content == b""
    assert [i.decode() for i, _ in redis_client.xrange(settings.DEAD_LETTER_STREAM)] == [kept]
    assert redis_client.exists(settings.EVENT_STREAM) == 0
    assert_error(su.post(f"{DEAD}/{gone}/discard"), 404, "not_found")


@pytest.mark.parametrize("entry_id", ["1-1", "999999999999-0", "abc", "1-x", "0-0;", "-", "+"])
@pytest.mark.parametrize("action", ["replay", "discard"])
def test_unknown_or_malformed_ids_are_404(su: APIClient, entry_id: str, action: str) -> None:
    assert_error(su.post(f"{DEAD}/{entry_id}/{action}"), 404, "not_found")


@pytest.mark.parametrize("action", ["replay", "discard"])
def test_admin_role_cannot_replay_or_discard(
    admin: APIClient, redis_client: Any, action: str
) -> None:
    dead_id = add_dead_letter(redis_client)

    assert_error(admin.post(f"{DEAD}/{dead_id}/{action}"), 403, "permission_denied")

    assert redis_client.xlen(settings.DEAD_LETTER_STREAM) == 1
    assert redis_client.exists(settings.EVENT_STREAM) == 0


def test_events_need_an_admin_token(db: None) -> None:
    assert_error(APIClient().get("/api/admin/events/stats"), 401, "not_authenticated")


def test_an_unreachable_redis_is_503_not_500(admin: APIClient, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    assert_error(admin.get("/api/admin/events/stats"), 503, "unavailable")
    assert_error(admin.get(DEAD), 503, "unavailable")
