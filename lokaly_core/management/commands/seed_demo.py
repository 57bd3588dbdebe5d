"""``manage_admin.py seed_demo``: demo stores, products, stock, accounts and couriers
(online, with a location near a store), safe to re-run.

With DEBUG off (a production-like deployment) it refuses unless ``--force`` is given, and
then never uses the documented demo password: each account gets a random one (or
``--password``, if given and not the documented one), printed once. A re-run resets them.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from lokaly_core.accounts.models import Role, User
from lokaly_core.catalog.models import Product, Store
from lokaly_core.delivery.models import CourierState
from lokaly_core.inventory.models import Stock

PRODUCTS = [
    ("MILK-1L", "Milk 1L", 129),
    ("BREAD-WHOLE", "Wholegrain bread", 289),
    ("EGGS-10", "Eggs, 10 pack", 349),
    ("BANANA-1KG", "Bananas 1kg", 199),
    ("COFFEE-250", "Coffee beans 250g", 699),
    ("PASTA-500", "Spaghetti 500g", 149),
    ("TOMATO-CAN", "Chopped tomatoes 400g", 99),
    ("OLIVE-OIL", "Olive oil 500ml", 549),
]
STORES = [
    ("Lokaly Centrum", "Damrak 1, 1012 LG Amsterdam", 52.3745, 4.8979),
    ("Lokaly Oost", "Linnaeusstraat 10, 1092 CK Amsterdam", 52.3600, 4.9260),
]
ACCOUNTS = [
    ("customer@lokaly.test", "Demo Customer", Role.CUSTOMER),
    ("courier@lokaly.test", "Demo Courier", Role.COURIER),
    ("courier2@lokaly.test", "Second Courier", Role.COURIER),
    ("courier3@lokaly.test", "Third Courier", Role.COURIER),
    ("admin@lokaly.test", "Demo Admin", Role.ADMIN),
    ("superadmin@lokaly.test", "Demo Super Admin", Role.SUPER_ADMIN),
]


DOCUMENTED_PASSWORD = "lokaly-demo-pass"  # noqa: S105 - the development one, refused here

# Where the demo couriers start (a few hundred metres from the stores).
COURIER_LOCATIONS = {
    "courier@lokaly.test": (52.3731, 4.8922),
    "courier2@lokaly.test": (52.3622, 4.9201),
    "courier3@lokaly.test": (52.3676, 4.9041),
}


class Command(BaseCommand):
    help = (
        "Create demo stores, products with stock, and one account per role; print the credentials."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--password",
            default=None,
            help=(
                "Password of every demo account (default: DEMO_PASSWORD or lokaly-demo-pass; "
                "with DEBUG off and --force: a random one per account)."
            ),
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run with DEBUG off too (the accounts then get random passwords, printed).",
        )
        parser.add_argument(
            "--stock", type=int, default=100, help="Units of each product per store."
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Leave the demo couriers off shift (default: online, so orders get a courier).",
        )

    def _passwords(self, options: dict[str, Any]) -> dict[str, str]:
        """Each demo account's password. In DEBUG: --password, DEMO_PASSWORD or the
        documented one; with DEBUG off (and --force): random, or a --password that is not
        the documented one."""
        if settings.DEBUG:
            chosen = options["password"] or os.environ.get("DEMO_PASSWORD") or DOCUMENTED_PASSWORD
            return {email: chosen for email, _name, _role in ACCOUNTS}
        if not options["force"]:
            raise CommandError(
                "DEBUG is off: seed_demo would create staff accounts (superadmin@lokaly.test) "
                "with known emails. If you really want demo data here, run it again with "
                "--force; each account then gets a random password, printed once."
            )
        chosen = options["password"]
        if chosen == DOCUMENTED_PASSWORD:
            raise CommandError(
                f"DEBUG is off: the documented demo password ({DOCUMENTED_PASSWORD}) is refused; "
                "leave --password out for random ones."
            )
        return {email: chosen or secrets.token_urlsafe(16) for email, _name, _role in ACCOUNTS}

    def handle(self, *args: Any, **options: Any) -> None:
        passwords = self._passwords(options)
        with transaction.atomic():
            self._seed(options, passwords)

    def _seed(self, options: dict[str, Any], passwords: dict[str, str]) -> None:
        products = [
            Product.objects.update_or_create(
                sku=sku, defaults={"name": name, "price_cents": price, "currency": "EUR"}
            )[0]
            for sku, name, price in PRODUCTS
        ]
        for name, address, lat, lng in STORES:
            store, _ = Store.objects.update_or_create(
                name=name, defaults={"address": address, "lat": lat, "lng": lng}
            )
            for product in products:
                Stock.objects.get_or_create(
                    store=store, product=product, defaults={"on_hand": options["stock"]}
                )
        for email, name, role in ACCOUNTS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email, passwords[email], name=name, role=role)
            user.role = role
            user.is_superuser = role == Role.SUPER_ADMIN
            user.set_password(passwords[email])
            user.save()
            if email in COURIER_LOCATIONS:
                lat, lng = COURIER_LOCATIONS[email]
                now = timezone.now()
                state, _ = CourierState.objects.get_or_create(
                    courier=user, defaults={"available_since": now}
                )
                state.lat, state.lng, state.location_at = lat, lng, now
                state.is_online = not options["offline"]
                state.save()
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(
            f"Stores: {', '.join(s[0] for s in STORES)}; {len(PRODUCTS)} products each."
        )
        self.stdout.write("Accounts (email / password / role):")
        for email, _name, role in ACCOUNTS:
            self.stdout.write(f"  {email} / {passwords[email]} / {role}")
        shift = "off shift" if options["offline"] else "online"
        self.stdout.write(f"Couriers: {len(COURIER_LOCATIONS)}, {shift}, located near the stores.")
