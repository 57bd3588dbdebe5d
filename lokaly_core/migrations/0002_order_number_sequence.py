from django.db import migrations


class Migration(migrations.Migration):
    """Order numbers (``LK-000123``) come from a sequence: unique without a lock."""

    dependencies = [("core", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE SEQUENCE IF NOT EXISTS core_order_number_seq START 1",
            "DROP SEQUENCE IF EXISTS core_order_number_seq",
        ),
    ]
