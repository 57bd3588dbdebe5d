"""v1.1: the customer hears of a substitute proposed and of the order amended."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from lokaly_core.domain.notifications import NotificationDraft, notification_drafts, notifies
from lokaly_core.events import AmendedLine, OrderAmended, OrderSubstitutionAnswered
from lokaly_core.events import contracts as c

ORDER, CUSTOMER, MILK, OAT = (uuid.uuid4() for _ in range(4))


def _proposed(timezone: str) -> c.OrderSubstitutionProposed:
    return c.OrderSubstitutionProposed(
        order_id=ORDER,
        customer_id=CUSTOMER,
        store_id=uuid.uuid4(),
        product_id=MILK,
        product_name="Milk 1L",
        substitute_product_id=OAT,
        substitute_name="Oat drink 1L",
        quantity=2,
        unit_price_cents=189,
        expires_at=datetime(2026, 12, 1, 14, 5, tzinfo=UTC),
        timezone=timezone,
    )


def test_a_proposed_substitute_tells_the_customer_what_instead_of_what_and_until_when() -> None:
    [draft] = notification_drafts(_proposed("Europe/Amsterdam"), order_number="LK-000042")

    assert draft == NotificationDraft(
        user_id=CUSTOMER,
        type="order.substitution_proposed",
        title="A substitute for your order",
        body="Milk 1L is short for your order LK-000042: the store proposes 2 x Oat drink 1L "
        "(1.89 each) instead; answer by 15:05.",
        order_id=ORDER,
    )


def test_an_unknown_time_zone_says_the_time_in_utc() -> None:
    [draft] = notification_drafts(_proposed("Mars/Olympus"), order_number="LK-1")

    assert draft.body.endswith("answer by 14:05 UTC.")


def test_an_amended_order_tells_the_new_total() -> None:
    event = OrderAmended(
        order_id=ORDER,
        customer_id=CUSTOMER,
        previous_total_cents=875,
        total_cents=995,
        subtotal_cents=796,
        currency="EUR",
        lines=(AmendedLine(MILK, "Milk 1L", 3, 1, 129),),
    )

    [draft] = notification_drafts(event, order_number="LK-000042")

    assert notifies(event)
    assert (draft.user_id, draft.type, draft.title) == (CUSTOMER, "order.amended", "Order updated")
    assert "new total is 9.95 EUR (was 8.75 EUR)" in draft.body


def test_an_answer_notifies_nobody() -> None:
    event = OrderSubstitutionAnswered(
        order_id=ORDER,
        customer_id=CUSTOMER,
        product_id=MILK,
        substitute_product_id=OAT,
        accepted=False,
        status="expired",
    )

    assert not notifies(event) and notification_drafts(event, order_number="LK-1") == []
