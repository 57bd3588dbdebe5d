"""Stores, products and stock on the admin site; stock changes only by adjustment."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import DataError
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone as dj_timezone

from lokaly_admin.admin.formatting import money
from lokaly_admin.admin.permissions import ReadOnlyInline, RoleActionsMixin, role_allows
from lokaly_core.catalog.models import (
    MAX_DELIVERY_RADIUS_M,
    MIN_DELIVERY_RADIUS_M,
    Product,
    Store,
)
from lokaly_core.domain.errors import DomainError, ValidationFailed
from lokaly_core.domain.hours import WEEKDAYS, InvalidHours, hours_as_json, parse_hours, zone
from lokaly_core.domain.inventory import MAX_DELTA, MAX_REASON_LENGTH, stock_adjust
from lokaly_core.inventory.models import Stock, StockAdjustment
from lokaly_core.orders.uow import DjangoUnitOfWork


class OpeningHoursField(forms.JSONField):
    """The weekly hours as staff read them: one weekday a line, Monday first (PostgreSQL
    keeps a JSON object's keys in its own order)."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, dict) and set(value) <= set(WEEKDAYS):
            days = [
                f"  {json.dumps(day)}: {json.dumps(value[day])}" for day in WEEKDAYS if day in value
            ]
            return "{\n" + ",\n".join(days) + "\n}" if days else "{}"
        return str(super().prepare_value(value))


class StoreForm(forms.ModelForm):
    """The store's v1.1 settings checked by the same rules as the admin API's."""

    opening_hours = OpeningHoursField(
        required=False,
        help_text=Store._meta.get_field("opening_hours").help_text,
        widget=forms.Textarea(attrs={"rows": 9, "cols": 60}),
    )
    # Not the model's PositiveIntegerField (its own "greater than or equal to 0" would
    # come first): every out-of-range radius gets the API's message.
    delivery_radius_m = forms.IntegerField(
        required=False, help_text=Store._meta.get_field("delivery_radius_m").help_text
    )

    class Meta:
        model = Store
        fields = (
            "name", "address", "lat", "lng", "is_active", "accepting_orders", "timezone",
            "opening_hours", "delivery_radius_m", "requires_handoff_code",
        )

    def clean_timezone(self) -> str:
        name: str = self.cleaned_data["timezone"]
        try:
            zone(name)
        except InvalidHours as exc:
            raise forms.ValidationError(exc.messages) from exc
        return name

    def clean_opening_hours(self) -> Any:
        raw = self.cleaned_data.get("opening_hours")
        try:
            return hours_as_json(parse_hours(raw))
        except InvalidHours as exc:
            raise forms.ValidationError(exc.messages) from exc

    def clean_delivery_radius_m(self) -> int | None:
        radius: int | None = self.cleaned_data.get("delivery_radius_m")
        if radius is not None and not MIN_DELIVERY_RADIUS_M <= radius <= MAX_DELIVERY_RADIUS_M:
            raise forms.ValidationError(
                f"From {MIN_DELIVERY_RADIUS_M} to {MAX_DELIVERY_RADIUS_M:,} metres, or empty."
            )
        return radius


@admin.register(Store)
class StoreAdmin(RoleActionsMixin, admin.ModelAdmin):
    read_action = "catalog.read"
    write_action = "catalog.write"
    form = StoreForm
    list_display = (
        "name", "address", "is_active", "accepting_orders", "open_now", "timezone",
        "delivery_radius_m", "requires_handoff_code", "created_at",
    )
    list_filter = ("is_active", "accepting_orders", "requires_handoff_code")
    search_fields = ("name", "address")
    readonly_fields = ("open_now", "next_opening", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "address", "lat", "lng", "is_active")}),
        (
            "Taking orders",
            {
                "fields": (
                    "accepting_orders", "open_now", "next_opening", "timezone", "opening_hours",
                    "delivery_radius_m", "requires_handoff_code",
                )
            },
        ),
        (None, {"fields": ("created_at",)}),
    )

    @admin.display(description="open now", boolean=True)
    def open_now(self, store: Store) -> bool | None:
        if store.pk is None:
            return None
        return store.is_open_at(dj_timezone.now())


    @admin.display(description="next opening")
    def next_opening(self, store: Store) -> str:
        """When a closed store takes orders again (what ``store_closed`` tells customers)."""
        if store.pk is None:
            return "-"
        now = dj_timezone.now()
        hours = store.hours
        if hours.is_open(now):
            return "open now"
        if not store.accepting_orders:
            return "paused: takes no orders until 'accepting orders' is turned on again"
        at = hours.next_opening_at(now)
        if at is None:
            return "never by itself: no opening hours in the week"
        local = at.astimezone(hours.timezone)
        return f"{at:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {store.timezone})"


@admin.register(Product)
class ProductAdmin(RoleActionsMixin, admin.ModelAdmin):
    read_action = "catalog.read"
    write_action = "catalog.write"
    list_display = ("sku", "name", "price", "is_active", "created_at")
    list_filter = ("is_active", "currency")
    search_fields = ("=sku", "name")
    readonly_fields = ("created_at",)
    fields = ("sku", "name", "price_cents", "currency", "is_active", "created_at")

    @admin.display(description="price", ordering="price_cents")
    def price(self, product: Product) -> str:
        return money(product.price_cents, product.currency)


class StockAdjustmentInline(ReadOnlyInline, admin.TabularInline):
    model = StockAdjustment
    read_action = "stock.read"
    verbose_name = "adjustment"
    verbose_name_plural = "ledger"
    fields = ("created_at", "delta", "on_hand_after", "reason", "actor")
    readonly_fields = fields
    ordering = ("-created_at", "-id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockAdjustment]:
        return super().get_queryset(request).select_related("actor")


class StockAdjustForm(forms.Form):
    delta = forms.IntegerField(
        min_value=-MAX_DELTA,
        max_value=MAX_DELTA,
        help_text="Units to add (a delivery) or, negative, to take away (breakage, a count).",
    )
    reason = forms.CharField(max_length=MAX_REASON_LENGTH, widget=forms.TextInput({"size": 60}))

    def clean_delta(self) -> int:
        delta: int = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError("A non-zero whole number of units.")
        return delta


@admin.register(Stock)
class StockAdmin(RoleActionsMixin, admin.ModelAdmin):
    """Stock levels; ``on_hand`` moves only through ``stock_adjust`` (the adjust page),
    which keeps the ledger and never takes it below what orders hold."""

    read_action = "stock.read"
    list_display = ("product", "store", "on_hand", "reserved", "available", "updated_at")
    list_filter = ("store",)
    search_fields = ("=product__sku", "product__name")
    list_select_related = ("store", "product")
    readonly_fields = ("store", "product", "on_hand", "reserved", "available", "updated_at")
    fields = readonly_fields
    inlines = (StockAdjustmentInline,)
    change_form_template = "lokaly_admin/stock_change_form.html"

    @admin.display(description="available", ordering=F("on_hand") - F("reserved"))
    def available(self, stock: Stock) -> int:
        return stock.available

    def get_urls(self) -> list[URLPattern]:
        adjust = path(
            "<path:object_id>/adjust/",
            self.admin_site.admin_view(self.adjust_view),
            name="core_stock_adjust",
        )
        return [adjust, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        can_adjust = role_allows(request, "stock.adjust")
        extra_context = {**(extra_context or {}), "can_adjust": can_adjust}
        return super().change_view(request, object_id, form_url, extra_context)

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Ask for a delta and a reason, then call ``stock_adjust`` as the logged-in user."""
        if not role_allows(request, "stock.adjust"):
            raise PermissionDenied
        stock = self.get_object(request, unquote(object_id))
        if stock is None:
            raise Http404("No such stock row.")
        form = StockAdjustForm(request.POST if request.method == "POST" else None)
        if form.is_valid() and self._adjust(request, stock, form):
            return HttpResponseRedirect(reverse("admin:core_stock_change", args=[stock.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust stock: {stock.product} at {stock.store}",
            "opts": self.opts,
            "original": stock,
            "form": form,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "lokaly_admin/stock_adjust.html", context)

    def _adjust(self, request: HttpRequest, stock: Stock, form: StockAdjustForm) -> bool:
        delta = form.cleaned_data["delta"]
        try:
            level = stock_adjust(
                uow=DjangoUnitOfWork(),
                store_id=stock.store_id,
                product_id=stock.product_id,
                delta=delta,
                reason=form.cleaned_data["reason"],
                actor_id=request.user.pk,
            )
        except ValidationFailed as exc:
            for field, errors in exc.details.items():
                form.add_error(field if field in form.fields else None, errors)
            return False
        except DomainError as exc:
            self.message_user(request, f"Not adjusted: {exc.message}", messages.ERROR)
            return False
        except DataError:  # on_hand past the integer column's range (the API: 409)
            form.add_error("delta", "On hand would exceed the largest quantity a store can hold.")
            return False
        self.log_change(request, stock, f"Adjusted by {delta:+d}: {form.cleaned_data['reason']}")
        self.message_user(
            request,
            f"Adjusted by {delta:+d}: {level.on_hand} on hand, {level.available} available.",
            messages.SUCCESS,
        )
        return True
