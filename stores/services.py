"""Writes of stores and staff. Every rule about them lives here."""

from datetime import time
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext as _

from o2o.errors import ApplicationError
from stores.models import OpeningHours, Staff, Store


def create_store(**fields: Any) -> Store:
    """Create a store after full validation (ranges, phone, code), so bad input changes nothing."""
    store = Store(**fields)
    store.full_clean()
    store.save()
    return store


@transaction.atomic
def set_opening_hours(*, store: Store, weekly: dict[int, list[tuple[time, time]]]) -> list[OpeningHours]:
    """Replace a store's weekly hours: {weekday (0 = Monday): [(opens, closes), …]}."""
    for weekday in weekly:
        if weekday not in range(7):
            raise ApplicationError(_("Weekday must be 0 (Monday) to 6 (Sunday)."), code="invalid_weekday")
    OpeningHours.objects.filter(store=store).delete()
    rows = [
        OpeningHours(store=store, weekday=weekday, opens_at=opens, closes_at=closes)
        for weekday, intervals in sorted(weekly.items())
        for opens, closes in intervals
    ]
    return OpeningHours.objects.bulk_create(rows)


@transaction.atomic
def create_staff(
    *,
    store: Store,
    username: str,
    password: str | None,
    display_name: str,
    role: str = Staff.Role.CLERK,
    staff_code: str,
    phone: str = "",
    email: str = "",
) -> Staff:
    """Create a store account: a Django user bound to one store with a role and a unique staff code."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ApplicationError(_("The username is taken."), code="username_taken", details={"username": [username]})
    if Staff.objects.filter(staff_code=staff_code).exists():
        raise ApplicationError(
            _("The staff code is taken."), code="staff_code_taken", details={"staff_code": [staff_code]}
        )
    user: AbstractBaseUser = User.objects.create_user(username=username, password=password, email=email)
    staff = Staff(user=user, store=store, role=role, staff_code=staff_code, display_name=display_name, phone=phone)
    staff.full_clean()
    staff.save()
    return staff
