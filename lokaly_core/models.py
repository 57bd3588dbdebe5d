"""Every ORM model of the ``core`` app, defined per business area and gathered here."""

from lokaly_core.accounts.models import LoginSession, Role, UsedRefreshToken, User
from lokaly_core.catalog.models import Product, Store
from lokaly_core.delivery.models import CourierState, Delivery, DispatchTask
from lokaly_core.inventory.models import Stock, StockAdjustment
from lokaly_core.notifications.models import Notification
from lokaly_core.orders.models import IdempotencyKey, Order, OrderLine, OrderStatusChange
from lokaly_core.outbox.models import OutboxEvent, ProcessedEvent
from lokaly_core.picking.models import Picking, PickingLine

__all__ = [
    "CourierState",
    "Delivery",
    "DispatchTask",
    "Notification",
    "IdempotencyKey",
    "LoginSession",
    "Order",
    "OrderLine",
    "OrderStatusChange",
    "OutboxEvent",
    "Picking",
    "PickingLine",
    "ProcessedEvent",
    "Product",
    "Role",
    "Stock",
    "StockAdjustment",
    "Store",
    "UsedRefreshToken",
    "User",
]
