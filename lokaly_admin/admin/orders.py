"""Orders on the admin site: read-only, with cancellation as an action through the domain.

An order's page also shows its picking (v1.1, "short picks and substitutions"): the lines
staff recorded with the substitutes they proposed and the customer's answers, and, once
the picking completed, the amendment (picked quantities, substitute lines, the total
before and after). Staff record lines through the admin API, not here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from lokaly_admin.admin.formatting import money
from lokaly_admin.admin.permissions import ReadOnlyInline, RoleActionsMixin, role_allows
from lokaly_core.delivery.models import Delivery
from lokaly_core.delivery.selectors import CURRENT
from lokaly_core.domain.errors import DomainError
from lokaly_core.domain.model.delivery import MAX_HANDOFF_ATTEMPTS
from lokaly_core.domain.model.orders import Actor, OrderStatus
from lokaly_core.domain.picking import NOTHING_PICKED
from lokaly_core.domain.services import order_cancel
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.picking.models import Picking, PickingLine


def handoff_state(order: Order) -> str:
    """The order's proof-of-delivery state for staff (v1.1), without the code itself."""
    delivery = (
        Delivery.objects.filter(order_id=order.id, status__in=CURRENT)
        .order_by("-assigned_at")
        .only("handoff_code", "handoff_failed_attempts")
        .first()
    )
    if delivery is None or delivery.handoff_code is None:
        if order.store.requires_handoff_code and order.status not in _PAST_PICKUP:
            return "required (the code is made when the courier picks the order up)"
        return "not required"
    wrong = delivery.handoff_failed_attempts
    if wrong >= MAX_HANDOFF_ATTEMPTS:
        return f"required; LOCKED after {wrong} wrong codes: staff must complete the delivery"
    return f"required; {wrong} wrong code(s) so far, {MAX_HANDOFF_ATTEMPTS - wrong} left"


_PAST_PICKUP = frozenset(
    s.value for s in (OrderStatus.OUT_FOR_DELIVERY, OrderStatus.DELIVERED, OrderStatus.CANCELLED)
)
CANCEL_REASON_MAX_LENGTH = OrderStatusChange._meta.get_field("reason").max_length


class OrderLineInline(ReadOnlyInline, admin.TabularInline):
    model = OrderLine
    read_action = "orders.read"
    fields = ("product", "name", "quantity", "picked", "substitute_of", "unit_price", "line_total")
    readonly_fields = fields

    @admin.display(description="picked")
    def picked(self, line: OrderLine) -> str:
        """What the amendment kept of ``quantity``; empty while never amended (v1)."""
        if line.picked_quantity is None:
            return "-"
        if line.substitute_for_id is None and line.picked_quantity < line.quantity:
            return f"{line.picked_quantity} (short by {line.quantity - line.picked_quantity})"
        return str(line.picked_quantity)

    @admin.display(description="substitute for")
    def substitute_of(self, line: OrderLine) -> str:
        return "-" if line.substitute_for is None else str(line.substitute_for)

    @admin.display(description="unit price")
    def unit_price(self, line: OrderLine) -> str:
        return money(line.unit_price_cents, line.order.currency)

    @admin.display(description="line total")
    def line_total(self, line: OrderLine) -> str:
        return money(line.line_total_cents, line.order.currency)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        return super().get_queryset(request).select_related("order", "product", "substitute_for")


class PickingLineInline(ReadOnlyInline, admin.TabularInline):
    """The lines staff recorded while picking, each with its substitute proposal."""

    model = PickingLine
    read_action = "orders.read"
    verbose_name = "picking line"
    verbose_name_plural = "picking: lines recorded and substitutes proposed"
    fields = (
        "product",
        "ordered_quantity",
        "picked_quantity",
        "substitute_offered",
        "proposal_status",
        "expires_at",
        "answered_at",
        "recorded_by",
        "recorded_at",
    )
    readonly_fields = fields

    @admin.display(description="substitute")
    def substitute_offered(self, line: PickingLine) -> str:
        if line.substitute_id is None:
            return "-"
        price = money(line.substitute_unit_price_cents or 0, line.order.currency)
        return f"{line.substitute_quantity} x {line.substitute_name} at {price}"

    @admin.display(description="proposal")
    def proposal_status(self, line: PickingLine) -> str:
        return proposal_state(line, timezone.now())

    def get_queryset(self, request: HttpRequest) -> QuerySet[PickingLine]:
        return (
            super()
            .get_queryset(request)
            .select_related("order", "product", "recorded_by")
            .order_by("id")
        )


def proposal_state(line: PickingLine, now: datetime) -> str:
    """A proposal's status for staff; an open one past its expiry counts as expired
    (the worker's sweep or the next answer or completion records it so)."""
    status = line.substitution_status
    if status is None:
        return "-"
    if status == PickingLine.SubstitutionStatus.PROPOSED and line.expires_at is not None:
        if line.expires_at <= now:
            return "proposed, past its expiry (counts as expired)"
        return "proposed, waiting for the customer"
    return str(status)


def picking_state(order: Order) -> str:
    picking = (
        Picking.objects.filter(order_id=order.id)
        .select_related("started_by", "completed_by")
        .first()
    )
    if picking is None:
        return "not started"
    started = f"started {_when(picking.started_at)}{_by(picking.started_by)}"
    if picking.completed_at is None:
        return started
    return f"completed {_when(picking.completed_at)}{_by(picking.completed_by)}; {started}"


def amendment_state(order: Order, lines: list[OrderLine]) -> str:
    """The total before and after the picking amended the order, from its lines (the
    ordered lines at their ordered quantity made the total before), and the
    ``order.amended`` event while the outbox still keeps it."""
    if all(line.picked_quantity is None for line in lines):
        if order.cancel_reason == NOTHING_PICKED:
            return "not amended: nothing was picked, so the order was cancelled (nothing_picked)"
        return "not amended"
    before = sum(
        line.unit_price_cents * line.quantity for line in lines if line.substitute_for_id is None
    )
    fee = order.delivery_fee_cents
    short = sum(
        1
        for line in lines
        if line.substitute_for_id is None and (line.picked_quantity or 0) < line.quantity
    )
    substitutes = sum(1 for line in lines if line.substitute_for_id is not None)
    text = (
        f"total {money(before + fee, order.currency)} -> {money(order.total_cents, order.currency)}"
        f" (subtotal {money(before, order.currency)} -> "
        f"{money(order.subtotal_cents, order.currency)}); {short} line(s) short, "
        f"{substitutes} substitute(s)"
    )
    event = (
        OutboxEvent.objects.filter(aggregate_id=order.id, type="order.amended")
        .only("event_id", "occurred_at", "payload")
        .order_by("occurred_at")
        .first()
    )
    if event is not None:
        text += f"; order.amended {event.event_id} {_when(event.occurred_at)}"
    return text


def _when(moment: datetime) -> str:
    return f"at {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _by(user: Any) -> str:
    return "" if user is None else f" by {user.email}"


class OrderStatusChangeInline(ReadOnlyInline, admin.TabularInline):
    model = OrderStatusChange
    read_action = "orders.read"
    verbose_name = "status change"
    verbose_name_plural = "history"
    fields = ("status_version", "previous_status", "status", "occurred_at", "reason", "actor")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderStatusChange]:
        return super().get_queryset(request).select_related("actor")


class CancelOrdersForm(forms.Form):
    reason = forms.CharField(
        max_length=CANCEL_REASON_MAX_LENGTH,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Recorded in each order's history and sent with the order.cancelled event.",
    )


@admin.register(Order)
class OrderAdmin(RoleActionsMixin, admin.ModelAdmin):
    read_action = "orders.read"
    # No write_action: an order changes only through the domain (see the cancel action).
    list_display = ("number", "status", "store", "customer_email", "total", "created_at")
    list_filter = ("status", "store", "created_at")
    search_fields = ("=number", "customer__email")
    search_help_text = "An order number, or (part of) the customer's email address."
    list_select_related = ("store", "customer")
    ordering = ("-created_at",)
    show_full_result_count = False
    list_per_page = 50
    inlines = (OrderLineInline, PickingLineInline, OrderStatusChangeInline)
    actions = ("cancel_selected_orders",)
    fieldsets = (
        (None, {"fields": ("number", "status", "status_version", "store", "customer")}),
        (
            "Amounts",
            {"fields": ("subtotal", "delivery_fee", "total", "stock_state")},
        ),
        ("Picking", {"fields": ("picking_progress", "amendment")}),
        ("Delivery", {"fields": ("delivery_address", "note", "cancel_reason", "handoff")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "number",
        "status",
        "status_version",
        "store",
        "customer",
        "subtotal",
        "delivery_fee",
        "total",
        "stock_state",
        "picking_progress",
        "amendment",
        "delivery_address",
        "note",
        "cancel_reason",
        "handoff",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).select_related("store", "customer")

    @admin.display(description="customer", ordering="customer__email")
    def customer_email(self, order: Order) -> str:
        return order.customer.email

    @admin.display(description="total", ordering="total_cents")
    def total(self, order: Order) -> str:
        return money(order.total_cents, order.currency)

    @admin.display(description="subtotal")
    def subtotal(self, order: Order) -> str:
        return money(order.subtotal_cents, order.currency)

    @admin.display(description="delivery fee")
    def delivery_fee(self, order: Order) -> str:
        return money(order.delivery_fee_cents, order.currency)

    @admin.display(description="picking")
    def picking_progress(self, order: Order) -> str:
        return picking_state(order)

    @admin.display(description="amendment")
    def amendment(self, order: Order) -> str:
        """Previous vs new total once the picking amended the order (v1.1)."""
        return amendment_state(order, list(order.lines.all()))

    @admin.display(description="proof of delivery")
    def handoff(self, order: Order) -> str:
        """Whether the delivery needs the customer's code, and its tries; never the code."""
        return handoff_state(order)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return role_allows(request, "orders.cancel")

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_selected_orders(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """Ask for a reason, then cancel each order through ``order_cancel`` as the admin."""
        form = CancelOrdersForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            orders = list(queryset.select_related(None).only("id", "number"))
            self._cancel_each(request, orders, reason=form.cleaned_data["reason"])
            return None  # back to the list, with one message per order
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel orders",
            "opts": self.opts,
            "orders": queryset.select_related("store").order_by("number"),
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "cancel_selected_orders",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "lokaly_admin/order_cancel.html", context)

    def _cancel_each(self, request: HttpRequest, orders: list[Order], *, reason: str) -> None:
        for order in orders:
            try:
                order_cancel(
                    uow=DjangoUnitOfWork(),
                    clock=timezone.now,
                    order_id=order.id,
                    actor=Actor.ADMIN,
                    reason=reason,
                )
            except DomainError as exc:
                self.message_user(
                    request, f"{order.number} not cancelled: {exc.message}", messages.ERROR
                )
            else:
                self.log_change(request, order, f"Cancelled: {reason}")
                self.message_user(request, f"{order.number} cancelled.", messages.SUCCESS)
