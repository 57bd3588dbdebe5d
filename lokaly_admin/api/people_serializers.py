"""Input validation and the documented shapes of the admin people endpoints."""

from __future__ import annotations

from rest_framework import serializers

from lokaly_core.accounts.models import Role


class AccountInSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    name = serializers.CharField(max_length=150)


class CourierPatchSerializer(serializers.Serializer):
    is_active = serializers.BooleanField()


class CourierOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    is_active = serializers.BooleanField()
    date_joined = serializers.DateTimeField()


class CustomerOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    date_joined = serializers.DateTimeField()
    order_count = serializers.IntegerField()


STAFF_ROLE_CHOICES = [Role.ADMIN.value, Role.SUPER_ADMIN.value]


class StaffInSerializer(AccountInSerializer):
    role = serializers.ChoiceField(choices=STAFF_ROLE_CHOICES)


class StaffPatchSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=STAFF_ROLE_CHOICES, required=False)
    is_active = serializers.BooleanField(required=False)


class StaffOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.CharField()
    is_active = serializers.BooleanField()
    date_joined = serializers.DateTimeField()
