"""The framework-free heart of Lokaly: rules, the order state machine and the services.

Three layers, each importing only the ones below it (import-linter contracts check this,
and that nothing here imports Django, DRF, Channels or Redis):

- the services (``services`` for orders, ``delivery``, ``inventory``, ``picking``,
  ``history``): validate, lock, change and record events in one unit of work;
- ``ports``: what the services need from storage, the event bus and the clock;
  ``lokaly_core.orders.uow`` implements them on the Django ORM and the tests in memory;
- ``model``: the entities and values (an order and its state machine, a delivery, a
  stock level, a picking, a store's offers).

``errors``, ``backoff`` and ``notifications`` (pure rules) sit beside them.
"""
