"""``manage_admin.py seed_demo``: demo stores, products, stock and accounts (safe to re-run)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from lokaly_core.accounts.models import Role, User
from lokaly_core.catalog.models import Product, Store
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
    ("admin@lokaly.test", "Demo Admin", Role.ADMIN),
    ("superadmin@lokaly.test", "Demo Super Admin", Role.SUPER_ADMIN),
]


class Command(BaseCommand):
    help = (
        "Create demo stores, products with stock, and one account per role; print the credentials."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--password",
            default=os.environ.get("DEMO_PASSWORD", "lokaly-demo-pass"),
            help="Password of every demo account (default: DEMO_PASSWORD or lokaly-demo-pass).",
        )
        parser.add_argument(
            "--stock", type=int, default=100, help="Units of each product per store."
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
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
                user = User.objects.create_user(email, options["password"], name=name, role=role)
            user.role = role
            user.is_superuser = role == Role.SUPER_ADMIN
            user.set_password(options["password"])
            user.save()
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(
            f"Stores: {', '.join(s[0] for s in STORES)}; {len(PRODUCTS)} products each."
        )
        self.stdout.write("Accounts (email / password / role):")
        for email, _name, role in ACCOUNTS:
            self.stdout.write(f"  {email} / {options['password']} / {role}")
