"""The delivery, courier and dispatch-queue ports on PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import connection
from django.utils import timezone

from lokaly_core.accounts.models import Role, User
from lokaly_core.catalog.models import Store
from lokaly_core.delivery.models import CourierState, DispatchTask
from lokaly_core.delivery.models import Delivery as DeliveryRow
from lokaly_core.domain.model import delivery as d
from lokaly_core.orders.models import Order
from lokaly_core.sql import SqlParams, unnest

_STATE = CourierState._meta.db_table
_DELIVERY = DeliveryRow._meta.db_table
_USER = User._meta.db_table
_TASK = DispatchTask._meta.db_table
_ACTIVE = [s.value for s in d.ACTIVE_DELIVERY]


def _to_domain(row: DeliveryRow) -> d.Delivery:
    return d.Delivery(
        id=row.id,
        order_id=row.order_id,
        courier_id=row.courier_id,
        status=d.DeliveryStatus(row.status),
        assigned_at=row.assigned_at,
        picked_up_at=row.picked_up_at,
        delivered_at=row.delivered_at,
        ended_at=row.ended_at,
        handoff_code=row.handoff_code,
        handoff_failed_attempts=row.handoff_failed_attempts,
    )


class OrmDeliveries:
    def get(self, delivery_id: UUID) -> d.Delivery | None:
        row = DeliveryRow.objects.filter(pk=delivery_id).first()
        return _to_domain(row) if row else None

    def get_for_update(self, delivery_id: UUID) -> d.Delivery | None:
        row = DeliveryRow.objects.select_for_update().filter(pk=delivery_id).first()
        return _to_domain(row) if row else None

    def active_for_order(self, order_id: UUID) -> d.Delivery | None:
        row = DeliveryRow.objects.filter(order_id=order_id, status__in=_ACTIVE).first()
        return _to_domain(row) if row else None

    def active_for_courier(self, courier_id: UUID) -> d.Delivery | None:
        row = DeliveryRow.objects.filter(courier_id=courier_id, status__in=_ACTIVE).first()
        return _to_domain(row) if row else None

    def add(self, delivery: d.Delivery) -> None:
        DeliveryRow.objects.create(
            id=delivery.id,
            order_id=delivery.order_id,
            courier_id=delivery.courier_id,
            status=delivery.status,
            assigned_at=delivery.assigned_at,
            handoff_code=delivery.handoff_code,
            handoff_failed_attempts=delivery.handoff_failed_attempts,
        )

    def save(self, delivery: d.Delivery) -> None:
        DeliveryRow.objects.filter(pk=delivery.id).update(
            status=delivery.status,
            picked_up_at=delivery.picked_up_at,
            delivered_at=delivery.delivered_at,
            ended_at=delivery.ended_at,
            handoff_code=delivery.handoff_code,
            handoff_failed_attempts=delivery.handoff_failed_attempts,
        )

    def store_requires_handoff_code(self, store_id: UUID) -> bool:
        return bool(
            Store.objects.filter(pk=store_id).values_list("requires_handoff_code", flat=True).get()
        )

    def store_location(self, store_id: UUID) -> tuple[float, float]:
        lat, lng = Store.objects.filter(pk=store_id).values_list("lat", "lng").get()
        return float(lat), float(lng)


class OrmCouriers:
    def free_candidates(self, order_id: UUID) -> list[d.Candidate]:
        with connection.cursor() as cursor:
            cursor.execute(
                # The last decline of this order by each courier (dispatch's cooldown).
                f"SELECT s.courier_id, s.lat, s.lng, s.available_since, "  # noqa: S608 - our tables
                f"(SELECT max(coalesce(x.ended_at, x.assigned_at)) FROM {_DELIVERY} x "
                "WHERE x.order_id = %s AND x.courier_id = s.courier_id AND x.status = %s) "
                f"FROM {_STATE} s JOIN {_USER} u ON u.id = s.courier_id "
                "WHERE s.is_online AND s.current_delivery_id IS NULL AND u.is_active "
                "AND u.role = %s",
                [order_id, d.DeliveryStatus.DECLINED.value, Role.COURIER.value],
            )
            rows = cursor.fetchall()
        return [
            d.Candidate(
                courier_id=courier_id,
                lat=lat,
                lng=lng,
                available_since=since,
                declined_this_order=declined_at is not None,
                declined_at=declined_at,
            )
            for courier_id, lat, lng, since, declined_at in rows
        ]

    def try_claim(self, courier_id: UUID) -> bool:
        # SKIP LOCKED: a courier another dispatch is claiming is not waited for. When the
        # row was changed meanwhile, PostgreSQL re-checks the WHERE clause on the newest
        # version, so a courier who just got a delivery is not claimed twice. The account
        # row's KEY SHARE lock conflicts only with FOR UPDATE: a courier being deactivated
        # (courier_set_active holds it) is skipped, and a deactivation waits for this
        # claim's commit, then finds the delivery and releases it.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.courier_id FROM {_STATE} s JOIN {_USER} u ON u.id = s.courier_id "  # noqa: S608
                "WHERE s.courier_id = %s AND s.is_online AND s.current_delivery_id IS NULL "
                "AND u.is_active FOR UPDATE OF s SKIP LOCKED FOR KEY SHARE OF u SKIP LOCKED",
                [courier_id],
            )
            return cursor.fetchone() is not None

    def set_current_delivery(
        self, courier_id: UUID, delivery_id: UUID | None, *, at: datetime
    ) -> None:
        changes: dict[str, object] = {"current_delivery_id": delivery_id}
        if delivery_id is None:
            changes["available_since"] = at
        CourierState.objects.filter(pk=courier_id).update(**changes, updated_at=timezone.now())

    def set_online(self, courier_id: UUID, online: bool, *, at: datetime) -> tuple[bool, bool]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_STATE} (courier_id, is_online, available_since, updated_at) "  # noqa: S608
                "VALUES (%s, false, %s, now()) ON CONFLICT (courier_id) DO NOTHING",
                [courier_id, at],
            )
            cursor.execute(
                f"SELECT is_online, current_delivery_id IS NOT NULL FROM {_STATE} "  # noqa: S608
                "WHERE courier_id = %s FOR UPDATE",
                [courier_id],
            )
            was_online, busy = cursor.fetchone()
            if was_online != online:
                # Coming online starts the wait that dispatch ties are broken by.
                cursor.execute(
                    f"UPDATE {_STATE} SET is_online = %s, updated_at = now(), "  # noqa: S608
                    "available_since = CASE WHEN %s THEN %s ELSE available_since END "
                    "WHERE courier_id = %s",
                    [online, online, at, courier_id],
                )
        return bool(was_online), bool(busy)


class OrmDispatchQueue:
    def attempts(self, order_id: UUID) -> int:
        value = DispatchTask.objects.filter(pk=order_id).values_list("attempts", flat=True).first()
        return int(value or 0)

    def put(self, order_id: UUID, attempts: int, next_attempt_at: datetime) -> None:
        # One statement (update_or_create takes four round trips: a savepoint, a locking
        # read, the write, the release); every order that finds no free courier comes here.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_TASK} (order_id, attempts, next_attempt_at, created_at) "  # noqa: S608
                "VALUES (%s, %s, %s, now()) ON CONFLICT (order_id) DO UPDATE SET "
                "attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at",
                [order_id, attempts, next_attempt_at],
            )

    def remove(self, order_id: UUID) -> None:
        DispatchTask.objects.filter(pk=order_id).delete()


def free_courier_exists() -> bool:
    """Whether any courier could take an order now (online, active, no delivery): one
    read of the partial index of free couriers, so a queue of waiting orders costs nothing
    while nobody is free."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {_STATE} s JOIN {_USER} u ON u.id = s.courier_id "  # noqa: S608
            "WHERE s.is_online AND s.current_delivery_id IS NULL AND u.is_active "
            "AND u.role = %s)",
            [Role.COURIER.value],
        )
        return bool(cursor.fetchone()[0])


def queue_for_dispatch(due: list[tuple[UUID, datetime]]) -> int:
    """Put these orders in the dispatch queue in one statement, each with its first retry
    time, those still waiting for a courier only (dispatchable, no active delivery); an
    order already queued counts one more attempt. Returns how many rows were written.

    For a batch of confirmations when no courier is free: the per-order attempt would lock
    each order only to find nobody and queue it. An order cancelled meanwhile that slips
    in is removed by its next dispatch attempt (``NOT_NEEDED``)."""
    if not due:
        return 0
    values, params = unnest(("id", "next_at"), ("uuid", "timestamptz"), due)
    params += [[s.value for s in d.DISPATCHABLE], _ACTIVE]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TASK} (order_id, attempts, next_attempt_at, created_at) "  # noqa: S608
            f"SELECT o.id, 1, v.next_at, now() FROM {values} "
            f"JOIN {Order._meta.db_table} o ON o.id = v.id WHERE o.status = ANY(%s) "
            f"AND NOT EXISTS (SELECT 1 FROM {_DELIVERY} x WHERE x.order_id = o.id "
            "AND x.status = ANY(%s)) ORDER BY o.id "
            f"ON CONFLICT (order_id) DO UPDATE SET attempts = {_TASK}.attempts + 1, "
            "next_attempt_at = EXCLUDED.next_attempt_at",
            params,
        )
        return cursor.rowcount


def waiting_orders_query(*, limit: int, due_only: bool) -> tuple[str, SqlParams]:
    """The SQL of :func:`waiting_orders` (bench/dispatch_queue.py EXPLAINs it)."""
    # The backoff was computed with this process's clock (DispatchPolicy): compare with it.
    due = "WHERE next_attempt_at <= %s " if due_only else ""
    params: SqlParams = [timezone.now()] if due_only else []
    return (
        f"SELECT order_id FROM {_TASK} {due}ORDER BY created_at LIMIT %s",  # noqa: S608
        [*params, limit],
    )


def waiting_orders(*, limit: int, due_only: bool) -> list[UUID]:
    """Orders in the dispatch queue, the longest waiting first (``due_only``: whose backoff
    has passed)."""
    sql, params = waiting_orders_query(limit=limit, due_only=due_only)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
