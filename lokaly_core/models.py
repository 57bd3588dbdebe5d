"""Every ORM model of the ``core`` app, defined per business area and gathered here."""

from lokaly_core.accounts.models import Role, UsedRefreshToken, User
from lokaly_core.catalog.models import Product, Store
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import IdempotencyKey, Order, OrderLine, OrderStatusChange
from lokaly_core.outbox.models import OutboxEvent, ProcessedEvent

__all__ = [
    "IdempotencyKey",
    "Order",
    "OrderLine",
    "OrderStatusChange",
    "OutboxEvent",
    "ProcessedEvent",
    "Product",
    "Role",
    "Stock",
    "Store",
    "UsedRefreshToken",
    "User",
]
