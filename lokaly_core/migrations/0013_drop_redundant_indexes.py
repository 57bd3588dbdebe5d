"""Drop the indexes that others already cover (docs/performance.md, sixth session).

Django indexes every foreign key column; where a composite index or unique constraint
leads with the same column, that one serves the queries and the foreign key checks, and
the column's own index only costs a new entry for every row written (for the orders,
every status change too). ``Order.number``'s ``unique=True`` also built a LIKE index
(varchar_pattern_ops) that no query uses; its unique constraint becomes
``order_number_uniq``.

The state is Django's ``AlterField``s; the database only drops the indexes and renames
the constraint (the ``AlterField``s alone would drop and re-add each foreign key,
re-checking every row of the tables under lock).
"""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0012_picking_lines'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='idempotencykey',
                    name='customer',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='notification',
                    name='user',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='order',
                    name='customer',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='order',
                    name='number',
                    field=models.CharField(max_length=20),
                ),
                migrations.AlterField(
                    model_name='order',
                    name='store',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='core.store'),
                ),
                migrations.AlterField(
                    model_name='orderline',
                    name='order',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='lines', to='core.order'),
                ),
                migrations.AlterField(
                    model_name='orderstatuschange',
                    name='order',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='history', to='core.order'),
                ),
                migrations.AlterField(
                    model_name='delivery',
                    name='courier',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='deliveries', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='delivery',
                    name='order',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='core.order'),
                ),
                migrations.AlterField(
                    model_name='loginsession',
                    name='user',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='login_sessions', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='pickingline',
                    name='order',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='picking_lines', to='core.order'),
                ),
                migrations.AlterField(
                    model_name='stock',
                    name='store',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='stock', to='core.store'),
                ),
                migrations.AlterField(
                    model_name='stockadjustment',
                    name='stock',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='adjustments', to='core.stock'),
                ),
                migrations.AddConstraint(
                    model_name='order',
                    constraint=models.UniqueConstraint(fields=('number',), name='order_number_uniq'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql="""
DROP INDEX IF EXISTS core_idempotencykey_customer_id_eceb87ed;
DROP INDEX IF EXISTS core_notification_user_id_6e341aac;
DROP INDEX IF EXISTS core_order_customer_id_9e4576b7;
DROP INDEX IF EXISTS core_order_store_id_1217b9c1;
DROP INDEX IF EXISTS core_order_number_945ff09f_like;
DROP INDEX IF EXISTS core_orderline_order_id_d1e120b2;
DROP INDEX IF EXISTS core_orderstatuschange_order_id_8b197060;
DROP INDEX IF EXISTS core_delivery_courier_id_80700860;
DROP INDEX IF EXISTS core_delivery_order_id_09245801;
DROP INDEX IF EXISTS core_loginsession_user_id_bc002d3c;
DROP INDEX IF EXISTS core_pickingline_order_id_5fc14c67;
DROP INDEX IF EXISTS core_stock_store_id_e4c201d0;
DROP INDEX IF EXISTS core_stockadjustment_stock_id_a2574697;
ALTER TABLE core_order RENAME CONSTRAINT core_order_number_key TO order_number_uniq;
""",
                    reverse_sql="""
ALTER TABLE core_order RENAME CONSTRAINT order_number_uniq TO core_order_number_key;
CREATE INDEX core_stockadjustment_stock_id_a2574697 ON core_stockadjustment (stock_id);
CREATE INDEX core_stock_store_id_e4c201d0 ON core_stock (store_id);
CREATE INDEX core_pickingline_order_id_5fc14c67 ON core_pickingline (order_id);
CREATE INDEX core_loginsession_user_id_bc002d3c ON core_loginsession (user_id);
CREATE INDEX core_delivery_order_id_09245801 ON core_delivery (order_id);
CREATE INDEX core_delivery_courier_id_80700860 ON core_delivery (courier_id);
CREATE INDEX core_orderstatuschange_order_id_8b197060 ON core_orderstatuschange (order_id);
CREATE INDEX core_orderline_order_id_d1e120b2 ON core_orderline (order_id);
CREATE INDEX core_order_number_945ff09f_like ON core_order (number varchar_pattern_ops);
CREATE INDEX core_order_store_id_1217b9c1 ON core_order (store_id);
CREATE INDEX core_order_customer_id_9e4576b7 ON core_order (customer_id);
CREATE INDEX core_notification_user_id_6e341aac ON core_notification (user_id);
CREATE INDEX core_idempotencykey_customer_id_eceb87ed ON core_idempotencykey (customer_id);
""",
                ),
            ],
        ),
    ]
