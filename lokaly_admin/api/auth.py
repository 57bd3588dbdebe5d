"""Admin API: staff login and token refresh (ADMIN realm: its own secret and audience)."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_admin import throttle
from lokaly_core.accounts.tokens import ADMIN, issue_pair, rotate_refresh
from lokaly_core.web.errors import ApiError


class CredentialsSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


LOCKOUT = (
    "After 5 failed logins for one email within 15 minutes, every attempt for that email "
    "is 429 `rate_limited` with `Retry-After` until the 15 minutes have passed; a "
    "successful login clears the count."
)


class TokenApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=CredentialsSerializer,
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(description="Wrong credentials, or not a staff account."),
            429: OpenApiResponse(description="Too many failed logins for this account."),
        },
        description=f"Staff accounts (`admin`, `super_admin`) only. {LOCKOUT}",
    )
    def post(self, request: Request) -> Response:
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"].strip().lower()
        throttle.ensure_not_locked(email)
        user = authenticate(request, username=email, password=serializer.validated_data["password"])
        if user is None or user.role not in ADMIN.roles:
            throttle.record_failure(email)
            raise ApiError(401, "not_authenticated", "Email or password is wrong.")
        throttle.reset(email)
        return Response(issue_pair(ADMIN, user))


class TokenRefreshApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RefreshSerializer,
        responses={200: TokenPairSerializer},
        description=(
            "Exchange an admin refresh token for a new pair. Each refresh token works once; "
            "a public refresh token, a used one or one of a deactivated account is 401."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(rotate_refresh(ADMIN, serializer.validated_data["refresh"]))


urlpatterns = [
    path("api/admin/auth/token", TokenApi.as_view()),
    path("api/admin/auth/token/refresh", TokenRefreshApi.as_view()),
]
