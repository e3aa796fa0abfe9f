"""Commissions: HQ's rules, the append-only commission ledger of promoters and guides, and payouts.

A promoter is a member who shared the mall; a guide is a staff member whose QR code brought a
customer in. Both are beneficiaries of ledger entries; exactly one of `member` / `staff` is set.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from commissions.rules import BASIS, MAX_DEPTH
from inventory.models import Category
from members.models import Member
from o2o.ledger import AppendOnlyModel
from o2o.state_machine import StateMachine
from orders.models import Order
from stores.models import Staff

# The note of a reversal made after its earning had settled: HQ's anomaly list looks for it.
REFUNDED_AFTER_SETTLEMENT = "refunded after settlement"
# The note of a sign-up reward taken back: the customer proved to be a member already.
SIGNUP_TAKEN_BACK = "already a member: sign-up taken back"

_ONE_BENEFICIARY = (Q(member__isnull=False) & Q(staff__isnull=True)) | (Q(member__isnull=True) & Q(staff__isnull=False))


def _rate(label, default=0):
    return models.PositiveIntegerField(
        label,
        default=default,
        validators=[MaxValueValidator(BASIS)],
        help_text=_("In basis points: 100 = 1 percent of what was paid."),
    )


class CommissionSettings(models.Model):
    """HQ's commission rules; one row (pk 1), read with `commissions.selectors.commission_settings()`."""

    depth = models.PositiveSmallIntegerField(
        _("levels of member commission"),
        default=2,
        validators=[MaxValueValidator(MAX_DEPTH)],
        help_text=_(
            "Level 1 is the member who shared, level 2 their referrer, and so on; 0 turns member commission "
            "off. At most 3: more is pyramid selling under Chinese law. Above 1, mind WeChat's rules on "
            "multi-level distribution."
        ),
    )
    level_1_rate_bp = _rate(_("level 1 rate"), 500)
    level_2_rate_bp = _rate(_("level 2 rate"), 200)
    level_3_rate_bp = _rate(_("level 3 rate"), 100)
    guide_rate_bp = _rate(_("guide's rate"), 300)
    guide_signup_reward_fen = models.PositiveIntegerField(
        _("guide's sign-up reward (fen)"),
        default=500,
        help_text=_("A staff bonus for each customer who registers through the guide's QR code."),
    )
    order_cap_bp = _rate(_("at most, in all, on one order"), 2000)
    return_window_days = models.PositiveIntegerField(
        _("return window (days)"),
        default=7,
        help_text=_("Commission settles this many days after the order completes."),
    )
    min_payout_fen = models.PositiveIntegerField(_("smallest withdrawal (fen)"), default=1000)

    class Meta:
        verbose_name = _("commission rules")
        verbose_name_plural = _("commission rules")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="commission_settings_single_row"),
            models.CheckConstraint(condition=Q(depth__lte=MAX_DEPTH), name="commission_depth_at_most_3"),
            models.CheckConstraint(condition=Q(order_cap_bp__lte=BASIS), name="commission_cap_at_most_all"),
        ]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class CategoryCommissionRate(models.Model):
    """A category paying its own rate at one level (0: the guide; 1..3: the referrer chain)."""

    category = models.ForeignKey(
        Category, on_delete=models.CASCADE, related_name="commission_rates", verbose_name=_("category")
    )
    level = models.PositiveSmallIntegerField(
        _("level"), validators=[MaxValueValidator(MAX_DEPTH)], help_text=_("0: the guide; 1 to 3: the referrers.")
    )
    rate_bp = _rate(_("rate"))

    class Meta:
        verbose_name = _("category commission rate")
        verbose_name_plural = _("category commission rates")
        ordering = ["category", "level"]
        constraints = [
            models.UniqueConstraint(fields=["category", "level"], name="category_commission_rate_once"),
            models.CheckConstraint(condition=Q(level__lte=MAX_DEPTH), name="category_commission_level_at_most_3"),
        ]

    def __str__(self) -> str:
        return f"{self.category} L{self.level} {self.rate_bp} bp"


class CommissionEntry(AppendOnlyModel):
    """One line of a beneficiary's commission ledger; never deleted, and only `status` ever changes
    (pending → settled). The balance is the sum of the amounts.

    earn: positive, one per (order, beneficiary, level), pending when the order is paid;
    reverse: negative, what a refund takes back of an earn (settled at once if the earn was);
    signup: positive, a guide's reward for a customer who registered through their QR code;
    payout: negative, money paid out; adjust: HQ, either sign.
    """

    class Kind(models.TextChoices):
        EARN = "earn", _("Sales commission")
        REVERSE = "reverse", _("Reversed (refund)")
        SIGNUP = "signup", _("Sign-up reward")
        PAYOUT = "payout", _("Paid out")
        ADJUST = "adjust", _("Adjusted by HQ")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SETTLED = "settled", _("Settled")

    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("promoter")
    )
    staff = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("guide")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    level = models.PositiveSmallIntegerField(_("level"), default=0)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("order")
    )
    customer = models.ForeignKey(
        Member,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("customer"),
        help_text=_("Who bought or registered."),
    )
    base_fen = models.PositiveIntegerField(_("on (fen)"), default=0)
    rate_bp = models.PositiveIntegerField(_("rate (bp)"), default=0)
    amount_fen = models.IntegerField(_("amount (fen)"))
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    note = models.CharField(_("note"), max_length=255, blank=True)
    payout = models.ForeignKey(
        "Payout", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("payout")
    )
    created_at = models.DateTimeField(_("at"), db_index=True)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("commission entry")
        verbose_name_plural = _("commission ledger")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=_ONE_BENEFICIARY, name="commission_entry_one_beneficiary"),
            models.CheckConstraint(condition=Q(level__lte=MAX_DEPTH), name="commission_entry_level_at_most_3"),
            models.CheckConstraint(
                condition=(Q(kind__in=["earn", "signup"]) & Q(amount_fen__gt=0))
                | (Q(kind__in=["reverse", "payout"]) & Q(amount_fen__lt=0))
                | (Q(kind="adjust") & ~Q(amount_fen=0)),
                name="commission_entry_sign_by_kind",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", settled_at__isnull=True) | Q(status="settled", settled_at__isnull=False),
                name="commission_entry_settled_has_time",
            ),
            # Created once, however often the payment or the registration is reported.
            models.UniqueConstraint(
                fields=["order", "member", "level"],
                condition=Q(kind="earn", member__isnull=False),
                name="commission_earned_once_per_order_member_level",
            ),
            models.UniqueConstraint(
                fields=["order", "staff"],
                condition=Q(kind="earn", staff__isnull=False),
                name="commission_earned_once_per_order_guide",
            ),
            models.UniqueConstraint(
                fields=["customer", "staff"], condition=Q(kind="signup"), name="signup_reward_once_per_customer"
            ),
            # A payout is written to the ledger once, when it is paid.
            models.UniqueConstraint(fields=["payout"], condition=Q(kind="payout"), name="payout_recorded_once"),
            models.CheckConstraint(
                condition=Q(kind="payout", payout__isnull=False) | (~Q(kind="payout") & Q(payout__isnull=True)),
                name="commission_entry_payout_iff_kind_payout",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "status"], name="commission_member_status"),
            models.Index(fields=["staff", "status"], name="commission_staff_status"),
            models.Index(fields=["order", "kind"], name="commission_order_kind"),
            models.Index(fields=["status", "kind"], name="commission_status_kind", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_fen:+d}"


PAYOUT_STATES = StateMachine(
    {
        "requested": ["approved", "rejected"],
        "approved": ["paid", "failed"],
        "failed": ["approved", "rejected"],
    }
)
OPEN_PAYOUT_STATES = ("requested", "approved", "failed")


class Payout(models.Model):
    """A withdrawal of settled commission: requested by the promoter or guide, decided by HQ, paid
    through WeChat Pay or by hand (with a reference); recorded in the ledger when paid.

    requested → approved → paid; requested → rejected; approved → failed (the transfer did not go
    through) → approved again (a new attempt) or rejected. Moved only by `commissions.payouts`.
    A beneficiary has at most one open payout (requested, approved or failed) at a time.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        PAID = "paid", _("Paid")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    class Method(models.TextChoices):
        WECHAT = "wechat", _("WeChat Pay transfer")
        MANUAL = "manual", _("Paid by hand")

    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("promoter")
    )
    staff = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("guide")
    )
    amount_fen = models.PositiveIntegerField(_("amount (fen)"), validators=[MinValueValidator(1)])
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.REQUESTED)
    method = models.CharField(_("paid by"), max_length=10, choices=Method.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(
        _("transfer attempts"), default=0, help_text=_("Each approval after a failure is a new transfer.")
    )
    reference = models.CharField(
        _("payment reference"),
        max_length=64,
        blank=True,
        help_text=_("WeChat Pay's transfer detail id, or the bank or cash reference of a payout paid by hand."),
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payout")
        verbose_name_plural = _("payouts")
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=_ONE_BENEFICIARY, name="payout_one_beneficiary"),
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="payout_amount_positive"),
            models.UniqueConstraint(
                fields=["member"],
                condition=Q(member__isnull=False, status__in=OPEN_PAYOUT_STATES),
                name="payout_one_open_per_member",
            ),
            models.UniqueConstraint(
                fields=["staff"],
                condition=Q(staff__isnull=False, status__in=OPEN_PAYOUT_STATES),
                name="payout_one_open_per_staff",
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | (Q(paid_at__isnull=False) & ~Q(method="")), name="payout_paid_has_time"
            ),
        ]
        indexes = [models.Index(fields=["status", "method"], name="payout_status_method")]

    def __str__(self) -> str:
        return f"#{self.pk} ¥{self.amount_fen / 100:.2f}"

    @property
    def beneficiary(self) -> Member | Staff:
        return self.member if self.member_id else self.staff

    @property
    def transfer_numbers(self) -> tuple[str, str]:
        """(out_batch_no, out_detail_no) of the current attempt: letters and digits, unique per attempt,
        so asking WeChat Pay again for one attempt is the same transfer and a new attempt a new one."""
        return f"PO{self.pk}A{self.attempts}", f"PO{self.pk}A{self.attempts}D1"


class PayoutEvent(models.Model):
    """One move of a payout: who, when, from, to, why."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="events", verbose_name=_("payout"))
    from_status = models.CharField(_("from"), max_length=10, blank=True)
    to_status = models.CharField(_("to"), max_length=10)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(_("by"), max_length=64, blank=True)
    note = models.CharField(_("note"), max_length=255, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("payout event")
        verbose_name_plural = _("payout events")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status}"
