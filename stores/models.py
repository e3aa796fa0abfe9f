"""Stores of the chain (HQ and branches), their weekly opening hours, and their staff."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from o2o.geo import Point

code_validator = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", _("Use letters, digits, hyphens and underscores only."))
phone_validator = RegexValidator(
    r"^(\+?86)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$",
    _("Enter a mainland China mobile (11 digits starting with 1) or a landline with area code."),
)


class Store(models.Model):
    class Kind(models.TextChoices):
        HQ = "hq", _("HQ")
        BRANCH = "branch", _("Branch")

    class Operation(models.TextChoices):
        DIRECT = "direct", _("Directly operated")
        FRANCHISE = "franchise", _("Franchise")

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.BRANCH)
    operation = models.CharField(_("operation"), max_length=10, choices=Operation.choices, default=Operation.DIRECT)
    address = models.CharField(_("address"), max_length=255)
    city = models.CharField(_("city"), max_length=50, db_index=True)
    district = models.CharField(_("district"), max_length=50, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, validators=[phone_validator])
    email = models.EmailField(_("notification e-mail"), blank=True)
    latitude = models.DecimalField(
        _("latitude (GCJ-02)"),
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(Decimal("-90")), MaxValueValidator(Decimal("90"))],
    )
    longitude = models.DecimalField(
        _("longitude (GCJ-02)"),
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(Decimal("-180")), MaxValueValidator(Decimal("180"))],
    )
    delivery_radius_km = models.DecimalField(
        _("delivery radius (km)"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("3.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal(settings.O2O_MAX_DELIVERY_RADIUS_KM))],
    )
    offers_pickup = models.BooleanField(_("offers store pickup"), default=True)
    delivers = models.BooleanField(_("delivers"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["code"]
        indexes = [
            # The nearest-store prefilter: a latitude range scan, longitude checked from the index.
            models.Index(fields=["latitude", "longitude"], name="store_lat_lng_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(latitude__gte=-90) & Q(latitude__lte=90), name="store_latitude_range"),
            models.CheckConstraint(
                condition=Q(longitude__gte=-180) & Q(longitude__lte=180), name="store_longitude_range"
            ),
            models.CheckConstraint(
                condition=Q(delivery_radius_km__gte=0) & Q(delivery_radius_km__lte=settings.O2O_MAX_DELIVERY_RADIUS_KM),
                name="store_delivery_radius_range",
            ),
            models.UniqueConstraint(fields=["kind"], condition=Q(kind="hq"), name="store_single_hq"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def point(self) -> Point:
        return Point(float(self.latitude), float(self.longitude))

    @property
    def delivery_radius_m(self) -> float:
        return float(self.delivery_radius_km) * 1000.0


class OpeningHours(models.Model):
    """One opening interval on one weekday; a store may have several a day.

    A closing time at or before the opening time means the interval runs past
    midnight into the next day. A store with no intervals is never open.
    """

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="opening_hours", verbose_name=_("store"))
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens at"))
    closes_at = models.TimeField(_("closes at"))

    class Meta:
        verbose_name = _("opening hours")
        verbose_name_plural = _("opening hours")
        ordering = ["store_id", "weekday", "opens_at"]  # store_id: no join to sort by the store
        constraints = [
            models.CheckConstraint(condition=Q(weekday__gte=0) & Q(weekday__lte=6), name="opening_hours_weekday_range"),
            models.UniqueConstraint(fields=["store", "weekday", "opens_at"], name="opening_hours_unique_start"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"


class Staff(models.Model):
    """A Django user who works in one store: its manager, a clerk or a shopping guide."""

    class Role(models.TextChoices):
        MANAGER = "manager", _("Store manager")
        CLERK = "clerk", _("Clerk")
        GUIDE = "guide", _("Shopping guide")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff", verbose_name=_("user")
    )
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="staff", verbose_name=_("store"))
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.CLERK)
    staff_code = models.CharField(_("staff code"), max_length=32, unique=True, validators=[code_validator])
    display_name = models.CharField(_("display name"), max_length=50)
    phone = models.CharField(_("mobile"), max_length=20, blank=True, validators=[phone_validator])
    wechat_openid = models.CharField(
        _("WeChat openid"),
        max_length=64,
        blank=True,
        help_text=_("The official account's openid of this person, for new-order messages."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")
        ordering = ["store", "staff_code"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.staff_code})"
