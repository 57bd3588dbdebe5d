"""The admin server's URLs plus one view with a bug, for the tests of unhandled errors."""

from typing import NoReturn

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from lokaly_admin.urls import handler400, handler403, handler404, handler500, urlpatterns


class BrokenApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> NoReturn:
        raise RuntimeError("a bug in a view")


urlpatterns = [path("api/broken", BrokenApi.as_view()), *urlpatterns]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
