"""The admin API (``/api/admin/...``), one module per area."""

from lokaly_admin.api import auth, catalog, events, orders, people

urlpatterns = [
    *auth.urlpatterns,
    *orders.urlpatterns,
    *catalog.urlpatterns,
    *people.urlpatterns,
    *events.urlpatterns,
]
