"""Accounts the back office manages: couriers, staff, and the customer directory."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from lokaly_core.accounts import revocation
from lokaly_core.accounts.models import STAFF_ROLES, Role, User
from lokaly_core.domain.delivery import courier_drop_out
from lokaly_core.domain.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from lokaly_core.domain.model.delivery import DeclineReason
from lokaly_core.orders.uow import DjangoUnitOfWork


class EmailTaken(DomainError):
    code = ErrorCode.CONFLICT
    default_message = "An account with this email already exists."


class LastSuperAdmin(DomainError):
    code = ErrorCode.CONFLICT
    default_message = "This is the last active super admin; promote another one first."


def user_create(*, email: str, password: str, name: str, role: Role) -> User:
    """Create an account; the email is compared case-insensitively (stored lower-case).

    The password goes through Django's validators (``AUTH_PASSWORD_VALIDATORS``).
    """
    email = email.strip().lower()
    try:
        validate_password(password, User(email=email, name=name, role=role))
    except DjangoValidationError as exc:
        raise ValidationFailed({"password": list(exc.messages)}) from exc
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken(details={"email": ["An account with this email already exists."]})
    try:
        with transaction.atomic():
            return User.objects.create_user(
                email=email,
                password=password,
                name=name,
                role=role,
                is_superuser=role == Role.SUPER_ADMIN,  # as createsuperuser makes them
            )
    except IntegrityError as exc:  # a concurrent sign-up took it between check and insert
        raise EmailTaken(details={"email": ["An account with this email already exists."]}) from exc


# -- couriers ---------------------------------------------------------------------------


def couriers_all() -> QuerySet[User]:
    return User.objects.filter(role=Role.COURIER)


def courier_set_active(*, courier_id: UUID, is_active: bool) -> User:
    """Activate or deactivate a courier; a deactivated courier's tokens stop working at once
    (authentication loads only active users), its open sockets are told to look again, and
    a delivery it was assigned and had not picked up is released (``courier_deactivated``)."""
    with transaction.atomic():
        courier = couriers_all().select_for_update().filter(pk=courier_id).first()
        if courier is None:
            raise NotFound("No such courier.")
        if courier.is_active != is_active:
            courier.is_active = is_active
            courier.save(update_fields=["is_active"])
            if not is_active:
                revocation.announce_account_change(courier.pk, reason="deactivated")
                # In the same transaction: a delivery assigned and not picked up is
                # released and dispatched again (the user row's lock comes before the
                # order's here; no order path locks a user row).
                courier_drop_out(
                    uow=DjangoUnitOfWork(),
                    clock=timezone.now,
                    courier_id=courier.pk,
                    reason=DeclineReason.COURIER_DEACTIVATED,
                )
    return courier


# -- customers --------------------------------------------------------------------------


def customers_with_order_counts(*, search: str = "") -> QuerySet[User]:
    """Customers annotated with ``order_count`` (one grouped query, not one per row)."""
    qs = User.objects.filter(role=Role.CUSTOMER)
    if search:
        qs = qs.filter(Q(email__icontains=search) | Q(name__icontains=search))
    return qs.annotate(order_count=Count("orders"))


# -- staff ------------------------------------------------------------------------------


def staff_all() -> QuerySet[User]:
    return User.objects.filter(role__in=list(STAFF_ROLES))


def staff_update(
    *, staff_id: UUID, role: Role | None = None, is_active: bool | None = None
) -> User:
    """Change a staff account's role or active flag; never leaves no active super admin.

    Locks every active super admin (in pk order) before the target, so two concurrent
    demotions of the last two cannot both pass the check.
    """
    with transaction.atomic():
        supers = list(
            User.objects.select_for_update()
            .filter(role=Role.SUPER_ADMIN, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        member = staff_all().select_for_update().filter(pk=staff_id).first()
        if member is None:
            raise NotFound("No such staff account.")
        new_role = role if role is not None else member.role
        new_active = is_active if is_active is not None else member.is_active
        stays_super = new_role == Role.SUPER_ADMIN and new_active
        if member.pk in supers and not stays_super and len(supers) == 1:
            raise LastSuperAdmin()
        changed_role, deactivated = new_role != member.role, member.is_active and not new_active
        member.role, member.is_active = new_role, new_active
        member.is_superuser = new_role == Role.SUPER_ADMIN
        member.save(update_fields=["role", "is_active", "is_superuser"])
        # Tokens carry the role: a role change ends them on the next request, and the
        # account's open sockets are told to look again.
        if deactivated:
            revocation.announce_account_change(member.pk, reason="deactivated")
        elif changed_role:
            revocation.announce_account_change(member.pk, reason="role_changed")
    return member
