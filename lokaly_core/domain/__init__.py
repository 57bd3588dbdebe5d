"""The framework-free heart of Lokaly: rules, the order state machine and the services.

Nothing in this package imports Django, DRF, Channels or Redis (an import-linter
contract checks it). Services talk to storage and the event bus through the ports in
``ports.py``; ``lokaly_core.orders.uow`` implements them on the Django ORM and the tests
implement them in memory.
"""
