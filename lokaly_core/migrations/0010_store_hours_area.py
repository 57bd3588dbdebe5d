"""v1.1 stores: opening hours in a time zone, the pause, the delivery radius, the hand-off
code setting; and the index behind the open-orders limit of order intake.

v1's ``is_open`` flag becomes ``accepting_orders`` (same column data: a store staff had
marked closed stays closed); ``is_open`` is computed from it and the hours from now on.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0009_login_sessions"),
    ]

    operations = [
        migrations.RenameField(model_name="store", old_name="is_open", new_name="accepting_orders"),
        migrations.AlterField(
            model_name="store",
            name="accepting_orders",
            field=models.BooleanField(
                default=True,
                help_text="Off: the store takes no orders until staff turn it on again.",
            ),
        ),
        migrations.AddField(
            model_name="store",
            name="timezone",
            field=models.CharField(
                default="UTC",
                help_text="IANA time zone name, e.g. Europe/Amsterdam.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="store",
            name="opening_hours",
            field=models.JSONField(
                blank=True,
                help_text=(
                    'Per weekday, local intervals: {"mon": [["08:00", "22:00"]], "sat": '
                    '[["22:00", "02:00"]]} (past midnight belongs to the day it starts; a day '
                    "left out is closed). Empty: always open."
                ),
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="store",
            name="delivery_radius_m",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Delivers within this many metres (100 to 50,000); empty: no limit.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="store",
            name="requires_handoff_code",
            field=models.BooleanField(
                default=False,
                help_text="Couriers must enter the customer's 4-digit code on delivery.",
            ),
        ),
        migrations.AddConstraint(
            model_name="store",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("delivery_radius_m__isnull", True),
                    models.Q(("delivery_radius_m__gte", 100), ("delivery_radius_m__lte", 50000)),
                    _connector="OR",
                ),
                name="store_delivery_radius_range",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("status__in", ["delivered", "cancelled"]), _negated=True),
                fields=["customer"],
                name="order_customer_open_idx",
            ),
        ),
    ]
