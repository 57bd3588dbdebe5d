"""The public server's URLs plus one view with a bug, for the tests of unhandled errors."""

from django.urls import path

from lokaly_public.urls import handler400, handler403, handler404, handler500, urlpatterns
from tests.debug_errors import BrokenApi

urlpatterns = [path("api/broken", BrokenApi.as_view()), *urlpatterns]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
