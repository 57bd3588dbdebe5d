from django.contrib import admin
from django.urls import include, path

from lokaly_core.web import errors
from lokaly_core.web.urls import service_urlpatterns

urlpatterns = [
    *service_urlpatterns,
    path("admin/", admin.site.urls),
    path("", include("lokaly_admin.api.urls")),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.not_found
handler500 = errors.server_error
