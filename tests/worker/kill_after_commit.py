"""Fault injection for ``test_commit_publish``: place one order, then die by SIGKILL right
after its transaction committed and before the outbox relay was handed its events.

Run as ``python -m tests.worker.kill_after_commit CUSTOMER_ID STORE_ID PRODUCT_ID`` with
the test database in ``DATABASE_URL``. Prints the order id before committing. No hook in
the production code: ``on_commit`` callbacks run in the order they were registered, so a
SIGKILL registered before the unit of work registers its publish runs between the commit
and the publish.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import uuid


def main(customer_id: str, store_id: str, product_id: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lokaly_admin.settings.test")
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from lokaly_core.domain.model.orders import Address
    from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
    from lokaly_core.orders.uow import DjangoUnitOfWork

    command = PlaceOrder(
        uuid.UUID(customer_id),
        uuid.UUID(store_id),
        [ItemRequest(uuid.UUID(product_id), 1)],
        Address("Keizersgracht 1", "Amsterdam", "1015 CJ", 52.37, 4.89),
    )
    with transaction.atomic():
        transaction.on_commit(functools.partial(os.kill, os.getpid(), signal.SIGKILL))
        order = place_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, command=command, delivery_fee_cents=199
        )
        sys.stdout.write(f"{order.id}\n")
        sys.stdout.flush()
    sys.exit("still alive after the commit: the SIGKILL did not happen")


if __name__ == "__main__":
    main(*sys.argv[1:4])
