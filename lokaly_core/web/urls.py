"""URLs every Lokaly server has: health, readiness, the OpenAPI schema and its docs page."""

from typing import Any

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from lokaly_core.web import health

_open: dict[str, Any] = {"permission_classes": [], "authentication_classes": []}

service_urlpatterns = [
    path("health", health.health),
    path("health/ready", health.ready),
    path("api/schema/", SpectacularAPIView.as_view(**_open), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **_open)),
]
