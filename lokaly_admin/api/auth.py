"""Admin API: staff login, token refresh and logout (ADMIN realm: its own secret and
audience). The failed-login lockout is the authentication backend's
(``lokaly_core.accounts.lockout``), shared with the public API and the admin site."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.accounts import lockout
from lokaly_core.accounts.tokens import ADMIN, issue_pair, logout, rotate_refresh
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
    "After `LOGIN_MAX_FAILURES` (5) failed logins for one email within "
    "`LOGIN_FAILURE_WINDOW_SECONDS` (900), counted across every login path of both APIs "
    "and the admin site (`/admin/login/`), every attempt for that email is 429 "
    "`rate_limited` with `Retry-After` until the window has passed; a successful login "
    "clears the count."
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
        user = authenticate(request, username=email, password=serializer.validated_data["password"])
        if user is None or user.role not in ADMIN.roles:
            if user is not None:  # right password, not a staff account: counted as wrong
                lockout.record_failure(email)
            raise ApiError(401, "not_authenticated", "Email or password is wrong.")
        return Response(issue_pair(ADMIN, user))


class TokenRefreshApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RefreshSerializer,
        responses={200: TokenPairSerializer},
        description=(
            "Exchange an admin refresh token for a new pair of the same session. Each "
            "refresh token works once: reusing one is 401 and ends its whole session; a "
            "public refresh token or one of a deactivated account is 401."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(rotate_refresh(ADMIN, serializer.validated_data["refresh"]))


class LogoutApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RefreshSerializer,
        responses={204: None, 401: OpenApiResponse(description="Not a valid admin refresh token.")},
        description=(
            "Ends the session of this refresh token: its access and refresh tokens stop "
            "working; the account's other sessions keep theirs."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        logout(ADMIN, serializer.validated_data["refresh"])
        return Response(status=204)


urlpatterns = [
    path("api/admin/auth/token", TokenApi.as_view()),
    path("api/admin/auth/token/refresh", TokenRefreshApi.as_view()),
    path("api/admin/auth/logout", LogoutApi.as_view()),
]
