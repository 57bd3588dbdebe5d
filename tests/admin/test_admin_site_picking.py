"""The admin site's order page shows the picking of contract v1.1 ("short picks and
substitutions"): the lines staff recorded, each substitute proposal with its status and
expiry, and once amended the picked quantities, the substitute lines and the total before
and after. Read-only: staff record lines through the admin API.

Most states are written as the picking services leave them (rows of ``PickingLine`` and
amended ``OrderLine``), so that each state the page must render, an open proposal past its
expiry included, is set up exactly; the last tests go through the services themselves
(accepted, rejected, expired, nothing picked).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lokaly_core.accounts.models import Role, User
from lokaly_core.catalog.models import Product
from lokaly_core.domain.picking import picking_complete, picking_start
from lokaly_core.domain.services import ItemRequest, PlaceOrder, order_reserve_stock, place_order
from lokaly_core.domain.substitutions import (
    SubstituteRequest,
    picking_record_line,
    substitution_answer,
)
from lokaly_core.orders.models import Order, OrderLine
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.picking.models import Picking, PickingLine
from tests.admin.conftest import DELIVERY_ADDRESS
from tests.factories import ProductFactory, StockFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db

FEE = 199


class Shop:
    """A store carrying milk (1.29), bread (2.89) and pasta (1.49), and an order of
    2 milk and 1 bread, confirmed (stock reserved) through the domain services."""

    def __init__(self) -> None:
        store = StoreFactory.create()
        self.milk = ProductFactory.create(name="Milk 1L", price_cents=129)
        self.bread = ProductFactory.create(name="Wholegrain bread", price_cents=289)
        self.pasta = ProductFactory.create(name="Spaghetti 500g", price_cents=149)
        for product in (self.milk, self.bread, self.pasta):
            StockFactory.create(store=store, product=product, on_hand=10)
        customer = UserFactory.create(role=Role.CUSTOMER)
        placed = place_order(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            command=PlaceOrder(
                customer_id=customer.id,
                store_id=store.id,
                items=[ItemRequest(self.milk.id, 2), ItemRequest(self.bread.id, 1)],
                delivery_address=DELIVERY_ADDRESS,
            ),
            delivery_fee_cents=FEE,
        )
        order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=placed.id)
        self.order = Order.objects.get(pk=placed.id)

    def start_picking(self, staff: User) -> Picking:
        return Picking.objects.create(
            order=self.order, started_at=timezone.now() - timedelta(minutes=3), started_by=staff
        )

    def record(
        self,
        product: Product,
        *,
        ordered: int,
        picked: int,
        staff: User,
        substitute: Product | None = None,
        status: str | None = None,
        expires_in: timedelta = timedelta(minutes=5),
    ) -> PickingLine:
        now = timezone.now()
        proposal: dict[str, Any] = {}
        if substitute is not None:
            proposal = {
                "substitute": substitute,
                "substitute_name": substitute.name,
                "substitute_quantity": 1,
                "substitute_unit_price_cents": substitute.price_cents,
                "substitution_status": status,
                "expires_at": now + expires_in,
                "answered_at": None if status == "proposed" else now,
            }
        return PickingLine.objects.create(
            order=self.order,
            product=product,
            ordered_quantity=ordered,
            picked_quantity=picked,
            recorded_by=staff,
            recorded_at=now,
            **proposal,
        )

    def amend(self, staff: User) -> None:
        """What completion leaves: 1 of 2 milk, 0 bread, 1 pasta substituting the bread."""
        Picking.objects.filter(order=self.order).update(
            status=Picking.Status.COMPLETED, completed_at=timezone.now(), completed_by=staff
        )
        OrderLine.objects.filter(order=self.order, product=self.milk).update(
            picked_quantity=1, line_total_cents=129
        )
        OrderLine.objects.filter(order=self.order, product=self.bread).update(
            picked_quantity=0, line_total_cents=0
        )
        OrderLine.objects.create(
            order=self.order,
            product=self.pasta,
            name=self.pasta.name,
            quantity=1,
            picked_quantity=1,
            substitute_for=self.bread,
            unit_price_cents=149,
            line_total_cents=149,
        )
        Order.objects.filter(pk=self.order.pk).update(subtotal_cents=278, total_cents=278 + FEE)


def _page(client: Client, order: Order) -> str:
    response = client.get(reverse("admin:core_order_change", args=[order.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _field(html: str, name: str) -> str:
    """The text of a read-only field of the order (``<div class="readonly">``)."""
    match = re.search(
        rf'class="form-row[^"]*field-{name}".*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert match, f"no read-only field {name} on the page"
    return match.group(1).strip()


def _cells(html: str, column: str) -> list[str]:
    """The texts of an inline's column, row by row (``<td class="field-<column>">``)."""
    cells = re.findall(rf'<td class="field-{column}">(.*?)</td>', html, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def test_an_order_never_picked_shows_no_picking_and_no_amendment(site_client: Client) -> None:
    shop = Shop()

    html = _page(site_client, shop.order)

    assert _field(html, "picking_progress") == "not started"
    assert _field(html, "amendment") == "not amended"
    assert _cells(html, "ordered_quantity") == []  # the picking lines' table is empty
    assert _cells(html, "picked") == ["-", "-"]  # v1 lines: never amended


def test_recorded_lines_show_the_proposal_its_status_and_expiry(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    shop.start_picking(staff_admin)
    shop.record(shop.milk, ordered=2, picked=1, staff=staff_admin)
    line = shop.record(
        shop.bread, ordered=1, picked=0, staff=staff_admin, substitute=shop.pasta, status="proposed"
    )

    html = _page(site_client, shop.order)

    assert "Picking: lines recorded and substitutes proposed" in html
    assert _field(html, "picking_progress").startswith("started at ")
    assert f"by {staff_admin.email}" in _field(html, "picking_progress")
    assert _cells(html, "ordered_quantity") == ["2", "1"]
    assert _cells(html, "picked_quantity") == ["1", "0"]
    assert _cells(html, "substitute_offered") == ["-", "1 x Spaghetti 500g at 1.49 EUR"]
    assert _cells(html, "proposal_status") == ["-", "proposed, waiting for the customer"]
    expiry = _cells(html, "expires_at")
    assert expiry[0] == "-" and expiry[1] not in ("", "-")
    assert line.expires_at is not None
    assert str(line.expires_at.astimezone(timezone.get_current_timezone()).year) in expiry[1]
    assert _cells(html, "recorded_by") == [staff_admin.email, staff_admin.email]
    assert _field(html, "amendment") == "not amended"


def test_an_open_proposal_past_its_expiry_reads_as_expired(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    shop.start_picking(staff_admin)
    shop.record(
        shop.bread,
        ordered=1,
        picked=0,
        staff=staff_admin,
        substitute=shop.pasta,
        status="proposed",
        expires_in=timedelta(seconds=-1),
    )

    html = _page(site_client, shop.order)

    assert _cells(html, "proposal_status") == ["proposed, past its expiry (counts as expired)"]


@pytest.mark.parametrize("status", ["accepted", "rejected", "expired"])
def test_answered_proposals_show_the_answer_and_when(
    site_client: Client, staff_admin: User, status: str
) -> None:
    shop = Shop()
    shop.start_picking(staff_admin)
    shop.record(
        shop.bread, ordered=1, picked=0, staff=staff_admin, substitute=shop.pasta, status=status
    )

    html = _page(site_client, shop.order)

    assert _cells(html, "proposal_status") == [status]
    assert _cells(html, "answered_at")[0] not in ("", "-")


def test_the_amendment_shows_picked_quantities_substitutes_and_both_totals(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    shop.start_picking(staff_admin)
    shop.record(shop.milk, ordered=2, picked=1, staff=staff_admin)
    shop.record(
        shop.bread, ordered=1, picked=0, staff=staff_admin, substitute=shop.pasta, status="accepted"
    )
    shop.amend(staff_admin)

    html = _page(site_client, shop.order)

    # The order's lines: milk 1 of 2, bread 0 of 1, pasta substituting the bread.
    assert _cells(html, "name") == ["Milk 1L", "Wholegrain bread", "Spaghetti 500g"]
    assert _cells(html, "quantity") == ["2", "1", "1"]
    assert _cells(html, "picked") == ["1 (short by 1)", "0 (short by 1)", "1"]
    assert _cells(html, "substitute_of") == ["-", "-", str(shop.bread)]
    assert _cells(html, "line_total") == ["1.29 EUR", "0.00 EUR", "1.49 EUR"]
    # Before: 2 x 1.29 + 2.89 + 1.99 = 7.46; after: 1.29 + 1.49 + 1.99 = 4.77.
    amendment = _field(html, "amendment")
    assert amendment.startswith(
        "total 7.46 EUR -&gt; 4.77 EUR (subtotal 5.47 EUR -&gt; 2.78 EUR); "
        "2 line(s) short, 1 substitute(s)"
    ), amendment
    assert "order.amended" not in amendment  # no event in the outbox (pruned, or none)
    assert _field(html, "total") == "4.77 EUR"
    progress = _field(html, "picking_progress")
    assert progress.startswith("completed at ") and f"by {staff_admin.email}" in progress


def test_the_amendment_names_the_order_amended_event_while_the_outbox_keeps_it(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    shop.start_picking(staff_admin)
    shop.record(shop.milk, ordered=2, picked=1, staff=staff_admin)
    shop.amend(staff_admin)
    event_id = uuid.uuid4()
    OutboxEvent.objects.create(
        event_id=event_id,
        type="order.amended",
        schema_version=1,
        occurred_at=timezone.now(),
        aggregate_id=shop.order.id,
        payload={"order_id": str(shop.order.id), "previous_total_cents": 746},
    )

    amendment = _field(_page(site_client, shop.order), "amendment")

    assert f"order.amended {event_id} at " in amendment


def test_the_order_page_takes_as_many_queries_for_many_picking_lines_as_for_one(
    site_client: Client, staff_admin: User
) -> None:
    def queries(lines: int) -> int:
        shop = Shop()
        shop.start_picking(staff_admin)
        for product in (shop.milk, shop.bread)[:lines]:
            shop.record(
                product, ordered=1, picked=0, staff=staff_admin, substitute=shop.pasta,
                status="rejected",
            )
        with CaptureQueriesContext(connection) as captured:
            _page(site_client, shop.order)
        return len(captured)

    assert queries(2) == queries(1)


def test_picking_lines_cannot_be_changed_on_the_site(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    shop.start_picking(staff_admin)
    shop.record(shop.milk, ordered=2, picked=1, staff=staff_admin)

    html = _page(site_client, shop.order)

    assert 'name="picking_lines-0-picked_quantity"' not in html
    assert 'name="picking_lines-TOTAL_FORMS"' in html  # the inline is there, read-only
    assert site_client.post(
        reverse("admin:core_order_change", args=[shop.order.pk]),
        {"picking_lines-0-picked_quantity": "2"},
    ).status_code == 403
    assert PickingLine.objects.get(order=shop.order).picked_quantity == 1


# -- through the picking services (what the admin API and the public API call) ----------


def _services_pick(shop: Shop, staff: User, *, accept: bool | None) -> None:
    """Start, record milk 1 of 2 and bread 0 of 1 with pasta proposed, the customer's
    answer (``None``: none, the proposal left to expire), then complete."""
    uow = DjangoUnitOfWork
    order_id = shop.order.id
    picking_start(uow=uow(), clock=timezone.now, order_id=order_id, staff_id=staff.id)
    picking_record_line(
        uow=uow(), clock=timezone.now, order_id=order_id, product_id=shop.milk.id,
        picked_quantity=1, substitute=None, staff_id=staff.id, timeout=timedelta(minutes=5),
    )
    picking_record_line(
        uow=uow(), clock=timezone.now, order_id=order_id, product_id=shop.bread.id,
        picked_quantity=0, substitute=SubstituteRequest(shop.pasta.id, 1), staff_id=staff.id,
        timeout=timedelta(minutes=5) if accept is not None else timedelta(0),
    )
    if accept is not None:
        substitution_answer(
            uow=uow(), clock=timezone.now, order_id=order_id, product_id=shop.bread.id,
            customer_id=shop.order.customer_id, accept=accept,
        )
    picking_complete(uow=uow(), clock=timezone.now, order_id=order_id, staff_id=staff.id)


def test_a_short_pick_with_an_accepted_substitute_through_the_services(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    _services_pick(shop, staff_admin, accept=True)

    html = _page(site_client, shop.order)

    assert _cells(html, "picked") == ["1 (short by 1)", "0 (short by 1)", "1"]
    assert _cells(html, "substitute_of") == ["-", "-", str(shop.bread)]
    assert _cells(html, "proposal_status") == ["-", "accepted"]
    amendment = _field(html, "amendment")
    assert amendment.startswith("total 7.46 EUR -&gt; 4.77 EUR (subtotal 5.47 EUR -&gt; 2.78 EUR)")
    event = OutboxEvent.objects.get(aggregate_id=shop.order.id, type="order.amended")
    assert event.payload["previous_total_cents"] == 746  # the page agrees with the event
    assert event.payload["total_cents"] == 477
    assert f"order.amended {event.event_id} at " in amendment


def test_a_rejected_substitute_through_the_services(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    _services_pick(shop, staff_admin, accept=False)

    html = _page(site_client, shop.order)

    assert _cells(html, "picked") == ["1 (short by 1)", "0 (short by 1)"]
    assert _cells(html, "proposal_status") == ["-", "rejected"]
    assert _field(html, "amendment").startswith("total 7.46 EUR -&gt; 3.28 EUR")


def test_an_expired_substitute_through_the_services(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    _services_pick(shop, staff_admin, accept=None)  # expired at completion

    html = _page(site_client, shop.order)

    assert _cells(html, "proposal_status") == ["-", "expired"]
    assert _field(html, "amendment").startswith("total 7.46 EUR -&gt; 3.28 EUR")


def test_an_order_with_nothing_picked_says_it_was_cancelled(
    site_client: Client, staff_admin: User
) -> None:
    shop = Shop()
    uow = DjangoUnitOfWork
    picking_start(uow=uow(), clock=timezone.now, order_id=shop.order.id, staff_id=staff_admin.id)
    for product in (shop.milk, shop.bread):
        picking_record_line(
            uow=uow(), clock=timezone.now, order_id=shop.order.id, product_id=product.id,
            picked_quantity=0, substitute=None, staff_id=staff_admin.id,
            timeout=timedelta(minutes=5),
        )
    picking_complete(
        uow=uow(), clock=timezone.now, order_id=shop.order.id, staff_id=staff_admin.id
    )

    html = _page(site_client, shop.order)

    assert _field(html, "amendment") == (
        "not amended: nothing was picked, so the order was cancelled (nothing_picked)"
    )
    assert _cells(html, "picked_quantity") == ["0", "0"]
    assert _field(html, "status") == "Cancelled"
