"""In-memory implementations of the domain ports, for tests without a database."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self
from uuid import UUID

from lokaly_core.domain.model.catalog import Offer, StoreInfo
from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY, Candidate, Delivery, DeliveryStatus
from lokaly_core.domain.model.inventory import StockLevel
from lokaly_core.domain.model.orders import Order, OrderStatus
from lokaly_core.domain.model.picking import (
    HOLDS_STOCK,
    Picking,
    PickingLine,
    PickingStatus,
    SubstitutionStatus,
)
from lokaly_core.events import Envelope, EventPayload


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class FakeCatalog:
    def __init__(self, orders: FakeOrders | None = None) -> None:
        self.stores: dict[UUID, StoreInfo] = {}
        self.offers: dict[tuple[UUID, UUID], Offer] = {}
        self._orders = orders

    def get_store_offers(
        self, store_id: UUID, product_ids: Sequence[UUID], *, customer_id: UUID | None = None
    ) -> tuple[StoreInfo | None, dict[UUID, Offer]]:
        offers = {
            p: self.offers[(store_id, p)] for p in product_ids if (store_id, p) in self.offers
        }
        store = self.stores.get(store_id)
        if store is not None and customer_id is not None and self._orders is not None:
            done = {OrderStatus.DELIVERED, OrderStatus.CANCELLED}
            count = sum(
                1
                for order in self._orders.rows.values()
                if order.customer_id == customer_id and order.status not in done
            )
            store = dataclasses.replace(store, customer_open_orders=count)
        return store, offers


class FakeOrders:
    def __init__(self) -> None:
        self.rows: dict[UUID, Order] = {}
        self.history: dict[UUID, list] = {}
        self._numbers = itertools.count(1)
        self.picking: FakePicking | None = None  # set by FakeUnitOfWork
        self.amended: list[UUID] = []

    def next_number(self) -> str:
        return f"LK-{next(self._numbers):06d}"

    def add(self, order: Order) -> None:
        self.history.setdefault(order.id, []).extend(order.pending_changes)
        order.pending_changes.clear()
        self.rows[order.id] = copy.deepcopy(order)

    def get_for_update(self, order_id: UUID) -> Order | None:
        row = self.rows.get(order_id)
        return self._loaded(row) if row else None

    def _loaded(self, row: Order) -> Order:
        """As the real repository reads it: what it holds besides its lines is derived
        from the picking (substitutes proposed or accepted while it is started)."""
        order = copy.deepcopy(row)
        order.substitutes_held = []
        lines = self.picking.lines_by_key if self.picking else {}
        picking = self.picking.rows.get(order.id) if self.picking else None
        if picking is not None and picking.status is PickingStatus.STARTED:
            order.substitutes_held = [
                (line.substitute.product_id, line.substitute.quantity)
                for (order_id, _), line in lines.items()
                if order_id == order.id
                and line.substitute is not None
                and line.substitute.status in HOLDS_STOCK
            ]
        return order

    def save(self, order: Order) -> None:
        self.add(order)

    def amend(self, order: Order) -> None:
        self.amended.append(order.id)
        self.add(order)

    def get_many_for_update(self, order_ids: Sequence[UUID]) -> dict[UUID, Order]:
        return {i: self._loaded(self.rows[i]) for i in sorted(set(order_ids)) if i in self.rows}

    def save_many(self, orders: Sequence[Order]) -> None:
        for order in orders:
            self.add(order)


class FakeStock:
    def __init__(self) -> None:
        self.rows: dict[tuple[UUID, UUID], dict[str, int]] = {}
        self.known: set[tuple[UUID, UUID]] = set()  # store/product pairs that exist
        self.ledger: list[tuple[UUID, int, str, UUID | None]] = []

    def put(self, store_id: UUID, product_id: UUID, on_hand: int, reserved: int = 0) -> None:
        self.rows[(store_id, product_id)] = {"on_hand": on_hand, "reserved": reserved}

    def try_reserve(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> list[UUID]:
        short = [
            p
            for p, q in lines
            if (row := self.rows.get((store_id, p))) is None or row["on_hand"] - row["reserved"] < q
        ]
        if not short:
            for p, q in lines:
                self.rows[(store_id, p)]["reserved"] += q
        return short

    def lock_available(self, items: Sequence[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], int]:
        return {
            key: row["on_hand"] - row["reserved"]
            for key in items
            if (row := self.rows.get(key)) is not None
        }

    def reserve_many(self, rows: Sequence[tuple[UUID, UUID, int]]) -> None:
        for store_id, product_id, quantity in rows:
            self.rows[(store_id, product_id)]["reserved"] += quantity

    def release(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None:
        for p, q in lines:
            self.rows[(store_id, p)]["reserved"] -= q

    def consume(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None:
        for p, q in lines:
            self.rows[(store_id, p)]["reserved"] -= q
            self.rows[(store_id, p)]["on_hand"] -= q

    def get_level_for_update(self, store_id: UUID, product_id: UUID) -> StockLevel | None:
        row = self.rows.get((store_id, product_id))
        return StockLevel(store_id, product_id, row["on_hand"], row["reserved"]) if row else None

    def create_level(self, store_id: UUID, product_id: UUID) -> StockLevel | None:
        if (store_id, product_id) not in self.known:
            return None
        self.put(store_id, product_id, on_hand=0)
        return self.get_level_for_update(store_id, product_id)

    def record_adjustment(
        self, level: StockLevel, *, delta: int, reason: str, actor_id: UUID | None
    ) -> None:
        self.rows[(level.store_id, level.product_id)]["on_hand"] = level.on_hand
        self.ledger.append((level.product_id, delta, reason, actor_id))


class FakePicking:
    def __init__(self) -> None:
        self.rows: dict[UUID, Picking] = {}
        self.lines_by_key: dict[tuple[UUID, UUID], PickingLine] = {}

    def lines(self, order_id: UUID) -> list[PickingLine]:
        return [
            copy.deepcopy(line) for (o, _), line in self.lines_by_key.items() if o == order_id
        ]

    def save_line(self, line: PickingLine) -> None:
        self.lines_by_key[(line.order_id, line.product_id)] = copy.deepcopy(line)

    def due_proposals(self, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        due = sorted(
            (line.substitute.expires_at, key)
            for key, line in self.lines_by_key.items()
            if line.substitute is not None
            and line.substitute.status is SubstitutionStatus.PROPOSED
            and line.substitute.expires_at <= now
        )
        return [key for _, key in due[:limit]]

    def get(self, order_id: UUID) -> Picking | None:
        row = self.rows.get(order_id)
        return copy.deepcopy(row) if row else None

    def add(self, picking: Picking) -> None:
        self.rows[picking.order_id] = copy.deepcopy(picking)

    def save(self, picking: Picking) -> None:
        self.add(picking)


class FakeDeliveries:
    def __init__(self) -> None:
        self.rows: dict[UUID, Delivery] = {}
        self.store_locations: dict[UUID, tuple[float, float]] = {}
        self.stores_requiring_handoff: set[UUID] = set()

    def get(self, delivery_id: UUID) -> Delivery | None:
        row = self.rows.get(delivery_id)
        return copy.deepcopy(row) if row else None

    get_for_update = get

    def active_for_order(self, order_id: UUID) -> Delivery | None:
        for row in self.rows.values():
            if row.order_id == order_id and row.status in ACTIVE_DELIVERY:
                return copy.deepcopy(row)
        return None

    def active_for_courier(self, courier_id: UUID) -> Delivery | None:
        for row in self.rows.values():
            if row.courier_id == courier_id and row.status in ACTIVE_DELIVERY:
                return copy.deepcopy(row)
        return None

    def add(self, delivery: Delivery) -> None:
        self.rows[delivery.id] = copy.deepcopy(delivery)

    save = add

    def store_location(self, store_id: UUID) -> tuple[float, float]:
        return self.store_locations.get(store_id, (52.37, 4.89))

    def store_requires_handoff_code(self, store_id: UUID) -> bool:
        return store_id in self.stores_requiring_handoff


class FakeCouriers:
    """``state[courier_id]``: online, lat, lng, available_since, current delivery id."""

    def __init__(self, deliveries: FakeDeliveries) -> None:
        self.state: dict[UUID, dict[str, object]] = {}
        self.locked_elsewhere: set[UUID] = set()  # what another transaction holds
        self._deliveries = deliveries

    def put(
        self,
        courier_id: UUID,
        *,
        lat: float | None = None,
        lng: float | None = None,
        since: datetime | None = None,
        online: bool = True,
    ) -> None:
        self.state[courier_id] = {
            "online": online,
            "lat": lat,
            "lng": lng,
            "since": since or datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
            "current": None,
        }

    def free_candidates(self, order_id: UUID) -> list[Candidate]:
        declined: dict[UUID, datetime | None] = {}
        for d in self._deliveries.rows.values():
            if d.order_id == order_id and d.status is DeliveryStatus.DECLINED:
                at = d.ended_at or d.assigned_at
                declined[d.courier_id] = max(at, declined.get(d.courier_id) or at)
        return [
            Candidate(c, s["lat"], s["lng"], s["since"], c in declined, declined.get(c))  # type: ignore[arg-type]
            for c, s in self.state.items()
            if s["online"] and s["current"] is None
        ]

    def try_claim(self, courier_id: UUID) -> bool:
        s = self.state.get(courier_id)
        return bool(
            s and s["online"] and s["current"] is None and courier_id not in self.locked_elsewhere
        )

    def set_current_delivery(
        self, courier_id: UUID, delivery_id: UUID | None, *, at: datetime
    ) -> None:
        self.state[courier_id]["current"] = delivery_id
        if delivery_id is None:
            self.state[courier_id]["since"] = at

    def set_online(self, courier_id: UUID, online: bool, *, at: datetime) -> tuple[bool, bool]:
        if courier_id not in self.state:
            self.put(courier_id, online=False, since=at)
        s = self.state[courier_id]
        was, busy = bool(s["online"]), s["current"] is not None
        if online and not was:
            s["since"] = at
        s["online"] = online
        return was, busy


class FakeDispatchQueue:
    def __init__(self) -> None:
        self.rows: dict[UUID, tuple[int, datetime]] = {}

    def attempts(self, order_id: UUID) -> int:
        return self.rows[order_id][0] if order_id in self.rows else 0

    def put(self, order_id: UUID, attempts: int, next_attempt_at: datetime) -> None:
        self.rows[order_id] = (attempts, next_attempt_at)

    def remove(self, order_id: UUID) -> None:
        self.rows.pop(order_id, None)


class FakeEvents:
    def __init__(self) -> None:
        self.pending: list[Envelope] = []

    def record(self, event: EventPayload, *, aggregate_id: UUID, occurred_at: datetime) -> None:
        self.pending.append(
            Envelope.wrap(event, aggregate_id=aggregate_id, occurred_at=occurred_at)
        )


class FakeUnitOfWork:
    """Commits copy state into ``committed_*``; leaving without commit discards changes."""

    def __init__(self) -> None:
        self.orders = FakeOrders()
        self.catalog = FakeCatalog(self.orders)
        self.stock = FakeStock()
        self.picking = FakePicking()
        self.orders.picking = self.picking
        self.deliveries = FakeDeliveries()
        self.couriers = FakeCouriers(self.deliveries)
        self.dispatch = FakeDispatchQueue()
        self.events = FakeEvents()
        self.published: list[Envelope] = []
        self.commits = 0

    def __enter__(self) -> Self:
        self._snapshot = (
            copy.deepcopy(self.orders.rows),
            copy.deepcopy(self.orders.history),
            copy.deepcopy(self.stock.rows),
            copy.deepcopy(self.picking.rows),
            list(self.stock.ledger),
            copy.deepcopy(self.deliveries.rows),
            copy.deepcopy(self.couriers.state),
            copy.deepcopy(self.dispatch.rows),
            copy.deepcopy(self.picking.lines_by_key),
        )
        self._committed = False
        return self

    def commit(self) -> None:
        self.published.extend(self.events.pending)
        self.events.pending = []
        self._committed = True
        self.commits += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            (
                self.orders.rows,
                self.orders.history,
                self.stock.rows,
                self.picking.rows,
                self.stock.ledger,
                self.deliveries.rows,
                self.couriers.state,
                self.dispatch.rows,
                self.picking.lines_by_key,
            ) = self._snapshot
            self.events.pending = []

    def types(self) -> list[str]:
        return [e.type for e in self.published]
