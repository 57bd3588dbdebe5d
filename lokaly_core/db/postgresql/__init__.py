"""Django's PostgreSQL backend with cheaper connection health checks (``base.py``)."""
