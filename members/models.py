"""Members: one membership for online and offline. Identity, phone, home store, purchases by store,
points, tiers, follow-up calls, and the segments and campaigns of marketing messages."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from inventory.models import Category, Product
from o2o.ledger import AppendOnlyModel
from o2o.state_machine import StateMachine
from stores.models import Staff, Store


class Tier(models.TextChoices):
    """How close a member is to the chain (潜在 / 普通 / 忠诚 / 倡导者)."""

    POTENTIAL = "potential", _("Potential")
    ORDINARY = "ordinary", _("Ordinary")
    LOYAL = "loyal", _("Loyal")
    ADVOCATE = "advocate", _("Advocate")


class Member(models.Model):
    """A shopper. Signs in through WeChat (openid / unionid); never a Django user."""

    class HomeStoreSource(models.TextChoices):
        STORE_QR = "store_qr", _("Store QR code")
        PRODUCT_QR = "product_qr", _("Product QR code")
        FIRST_ORDER = "first_order", _("First order")
        GUIDE_QR = "guide_qr", _("Guide's QR code")
        HQ = "hq", _("Set by HQ")

    openid = models.CharField(_("WeChat openid"), max_length=64, unique=True, null=True, blank=True)
    unionid = models.CharField(_("WeChat unionid"), max_length=64, unique=True, null=True, blank=True)
    nickname = models.CharField(_("nickname"), max_length=64, blank=True)
    avatar_url = models.CharField(_("avatar"), max_length=500, blank=True)  # WeChat's headimgurl
    phone = models.CharField(_("mobile"), max_length=16, unique=True, null=True, blank=True)
    home_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="members",
        verbose_name=_("home store"),
        help_text=_("The branch credited with this member's online orders."),
    )
    home_store_source = models.CharField(
        _("home store set by"), max_length=16, choices=HomeStoreSource.choices, blank=True
    )
    home_store_set_at = models.DateTimeField(_("home store set at"), null=True, blank=True)
    card_number = models.CharField(
        _("member card number"), max_length=12, unique=True, null=True, blank=True, editable=False
    )
    card_secret = models.CharField(_("card secret"), max_length=40, blank=True, editable=False)
    points_balance = models.IntegerField(
        _("points"), default=0, editable=False, help_text=_("Always the sum of the member's points ledger.")
    )
    do_not_call = models.BooleanField(_("do not call"), default=False, help_text=_("Asked not to be called again."))
    marketing_consent = models.BooleanField(
        _("agrees to marketing messages"),
        default=False,
        help_text=_("Asked apart from the service terms; campaigns reach only members who agreed."),
    )
    marketing_consent_at = models.DateTimeField(_("marketing choice made at"), null=True, blank=True)
    closed_at = models.DateTimeField(
        _("account closed at"), null=True, blank=True, help_text=_("Personal data erased; the ledgers are kept.")
    )
    closed_phone_digest = models.CharField(
        _("closed number's digest"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("A keyed digest of the closed account's number, so that a CRM cannot recreate the account."),
    )
    referrer = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referrals",
        verbose_name=_("referred by"),
        help_text=_("The member whose share link brought this one in; set once, at registration."),
    )
    guide = models.ForeignKey(
        Staff,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
        verbose_name=_("shopping guide"),
        help_text=_("The guide whose QR code brought this member in; they make the member's follow-up calls."),
    )
    bound_at = models.DateTimeField(_("referral bound at"), null=True, blank=True)
    referral_code = models.CharField(
        _("referral code"), max_length=12, unique=True, null=True, blank=True, editable=False
    )
    signup_device = models.CharField(
        _("registered from device"), max_length=32, blank=True, db_index=True, editable=False
    )
    tier = models.CharField(_("tier"), max_length=10, choices=Tier.choices, default=Tier.POTENTIAL, db_index=True)
    tier_since = models.DateTimeField(_("tier since"), null=True, blank=True)
    joined_at = models.DateTimeField(_("joined at"), auto_now_add=True)
    is_active = models.BooleanField(_("active"), default=True)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        verbose_name=_("merged into"),
        help_text=_(
            "This WeChat sign-up proved the mobile number of a membership opened in a store, and took it over."
        ),
    )
    merged_at = models.DateTimeField(_("merged at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-joined_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(home_store__isnull=True) | ~Q(home_store_source=""), name="member_home_store_has_source"
            ),
            models.CheckConstraint(condition=~Q(referrer=models.F("pk")), name="member_not_own_referrer"),
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | (Q(is_active=False) & Q(openid__isnull=True)),
                name="member_merged_is_retired",
            ),
        ]
        indexes = [
            models.Index(
                fields=["closed_phone_digest"], condition=~Q(closed_phone_digest=""), name="member_closed_phone"
            ),
        ]

    def __str__(self) -> str:
        return self.nickname or self.phone or f"#{self.pk}"


class PhoneCode(models.Model):
    """A one-time code texted to a mobile number, which a signed-in member types back to prove the
    number is theirs (see docs/member-identity.md). Only a keyed digest of the code is kept."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"))
    phone = models.CharField(_("mobile"), max_length=16)
    digest = models.CharField(_("code digest"), max_length=64)
    created_at = models.DateTimeField(_("sent at"))
    expires_at = models.DateTimeField(_("expires at"))
    attempts = models.PositiveSmallIntegerField(_("wrong attempts"), default=0)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("verification code")
        verbose_name_plural = _("verification codes")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["phone", "created_at"], name="phone_code_phone_time"),
            models.Index(fields=["member", "created_at"], name="phone_code_member_time"),
        ]

    def __str__(self) -> str:
        return f"{self.phone[:-8]}****{self.phone[-4:]}"


class Purchase(models.Model):
    """A member's purchase at a store, online or at the POS: the member's own record of where they buy.

    The latest purchase names the member's affinity store for dispatch. One row per
    (channel, reference): recording the same sale twice changes nothing.
    """

    class Channel(models.TextChoices):
        ONLINE = "online", _("Online order")
        POS = "pos", _("Store till (POS)")

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="purchases", verbose_name=_("member"))
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="purchases", verbose_name=_("store"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    reference = models.CharField(_("reference"), max_length=64, help_text=_("Order number or POS receipt."))
    amount_fen = models.PositiveIntegerField(_("amount (fen)"))
    purchased_at = models.DateTimeField(_("purchased at"))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        ordering = ["-purchased_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "store", "reference"], name="purchase_unique_reference"),
        ]
        indexes = [models.Index(fields=["member", "-purchased_at"], name="purchase_member_latest")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.reference}"


class PurchaseLine(models.Model):
    """What a purchase held: a product, how many, and the money paid for them.

    Members' own record of products bought (orders sit to its right), for segments by
    product or category. Purchases recorded before lines were kept have none.
    """

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="lines", verbose_name=_("purchase"))
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", verbose_name=_("product"))
    quantity = models.PositiveIntegerField(_("quantity"), validators=[MinValueValidator(1)])
    amount_fen = models.PositiveIntegerField(_("amount paid (fen)"))

    class Meta:
        verbose_name = _("purchase line")
        verbose_name_plural = _("purchase lines")
        ordering = ["purchase", "pk"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gte=1), name="purchase_line_quantity_positive")]
        indexes = [models.Index(fields=["product", "purchase"], name="purchase_line_product")]

    def __str__(self) -> str:
        return f"{self.product_id} × {self.quantity}"


class LoyaltySettings(models.Model):
    """HQ's points rules; one row (pk 1), read with `members.selectors.loyalty_settings()`."""

    points_per_yuan = models.PositiveIntegerField(
        _("points per yuan paid"), default=1, validators=[MaxValueValidator(100)]
    )
    point_value_fen = models.PositiveIntegerField(
        _("value of one point (fen)"), default=1, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    max_redeem_percent = models.PositiveIntegerField(
        _("points may pay at most (percent of an order)"), default=50, validators=[MaxValueValidator(100)]
    )
    points_valid_months = models.PositiveIntegerField(
        _("points expire after (months)"), default=0, help_text=_("0: points never expire.")
    )
    tier_window_days = models.PositiveIntegerField(
        _("tiers count purchases of the last (days)"), default=365, validators=[MinValueValidator(30)]
    )
    first_use_check_after_days = models.PositiveIntegerField(
        _("first-use check, days after a first purchase"), default=3, validators=[MinValueValidator(1)]
    )
    replenish_call_before_days = models.PositiveIntegerField(
        _("replenishment call, days before it runs out"), default=5
    )
    loyal_min_purchases = models.PositiveIntegerField(_("loyal: at least this many purchases"), default=4)
    loyal_min_amount_fen = models.PositiveIntegerField(_("loyal: at least this much spent (fen)"), default=100000)
    advocate_min_referrals = models.PositiveIntegerField(
        _("advocate: loyal, and brought at least this many members who bought"),
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("Members they referred with a purchase within the same window."),
    )
    follow_up_missed_after_days = models.PositiveIntegerField(
        _("a call not made this many days after its date counts as missed"),
        default=14,
        validators=[MinValueValidator(1)],
    )

    class Meta:
        verbose_name = _("loyalty settings")
        verbose_name_plural = _("loyalty settings")
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="loyalty_settings_single_row")]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class CategoryPointsRate(models.Model):
    """A category earning at its own rate (e.g. formula at 2 points per yuan)."""

    category = models.OneToOneField(
        Category, on_delete=models.CASCADE, related_name="points_rate", verbose_name=_("category")
    )
    points_per_yuan = models.PositiveIntegerField(_("points per yuan paid"), validators=[MaxValueValidator(100)])

    class Meta:
        verbose_name = _("category points rate")
        verbose_name_plural = _("category points rates")

    def __str__(self) -> str:
        return f"{self.category} × {self.points_per_yuan}"


class PointsEntry(AppendOnlyModel):
    """One change of a member's points, never edited or deleted; the balance is their sum.

    earn: positive, for a purchase (`expires_at` when HQ sets a validity); redeem: negative,
    paying part of an order; reverse: negative, what a refund takes back of an earn;
    expire: negative, earned points past their date and not yet spent; adjust: HQ, either sign.
    """

    class Kind(models.TextChoices):
        EARN = "earn", _("Earned")
        REDEEM = "redeem", _("Redeemed")
        REVERSE = "reverse", _("Reversed (refund)")
        REFUND_REDEMPTION = "unredeem", _("Redemption refunded")
        EXPIRE = "expire", _("Expired")
        ADJUST = "adjust", _("Adjusted by HQ")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="points_entries", verbose_name=_("member")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    points = models.IntegerField(_("points"))
    balance_after = models.IntegerField(_("balance after"))
    reference = models.CharField(_("reference"), max_length=64, blank=True, help_text=_("Order number or POS receipt."))
    note = models.CharField(_("note"), max_length=255, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points ledger")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="earn") & Q(points__gt=0))
                | (Q(kind__in=["redeem", "reverse", "expire"]) & Q(points__lt=0))
                | (Q(kind="unredeem") & Q(points__gt=0))
                | (Q(kind="adjust") & ~Q(points=0)),
                name="points_entry_sign_by_kind",
            ),
            # One earn per purchase, however often its completion is reported.
            models.UniqueConstraint(
                fields=["member", "reference"], condition=Q(kind="earn"), name="points_earned_once_per_purchase"
            ),
        ]
        indexes = [models.Index(fields=["member", "kind", "reference"], name="points_member_kind_ref")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.points:+d}"


class TierChange(models.Model):
    """Every change of a member's tier: from, to, why, when (append-only)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes", verbose_name=_("member"))
    from_tier = models.CharField(_("from"), max_length=10, choices=Tier.choices)
    to_tier = models.CharField(_("to"), max_length=10, choices=Tier.choices)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    changed_at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        ordering = ["-changed_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.from_tier} → {self.to_tier}"


class FollowUp(models.Model):
    """A call a store owes a member in an opportunity window: a first-use check, or a replenishment call.

    Opened when the member buys a product with a consumption rate; a new purchase of the same
    product moves the replenishment call. The store (the member's home store, else where they
    bought) makes it; its clerks record the outcome.
    """

    class Kind(models.TextChoices):
        FIRST_USE = "first_use", _("First-use check")
        REPLENISH = "replenish", _("Replenishment call")

    class Status(models.TextChoices):
        OPEN = "open", _("To call")
        DONE = "done", _("Done")
        MISSED = "missed", _("Missed")
        CANCELLED = "cancelled", _("Cancelled")

    class Outcome(models.TextChoices):
        REACHED = "reached", _("Reached")
        NO_ANSWER = "no_answer", _("No answer")
        ORDERED = "ordered", _("Ordered")
        NOT_INTERESTED = "not_interested", _("Not interested")
        DO_NOT_CALL = "do_not_call", _("Do not call again")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="follow_ups", verbose_name=_("member"))
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="follow_ups", verbose_name=_("store"))
    guide = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_ups", verbose_name=_("guide")
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", verbose_name=_("product"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    due_on = models.DateField(_("call on"))
    runs_out_on = models.DateField(_("runs out on"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    outcome = models.CharField(_("outcome"), max_length=15, choices=Outcome.choices, blank=True)
    note = models.CharField(_("note"), max_length=255, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("by"),
    )
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    source_reference = models.CharField(_("opened by purchase"), max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("follow-up")
        verbose_name_plural = _("follow-ups")
        ordering = ["due_on", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "product", "kind", "source_reference"], name="follow_up_once_per_purchase"
            ),
        ]
        indexes = [models.Index(fields=["store", "status", "due_on"], name="follow_up_store_due")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.due_on}"


class ReferralVisit(models.Model):
    """Someone opened a promoter's share link or a guide's QR code (for their results and HQ's
    anomaly list). `device` is a hash of the browser's device cookie, never the cookie itself."""

    sharer = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("shared by")
    )
    guide = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("guide")
    )
    visitor = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("visitor")
    )
    device = models.CharField(_("device"), max_length=32, blank=True)
    visited_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("referral visit")
        verbose_name_plural = _("referral visits")
        ordering = ["-visited_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(sharer__isnull=False) & Q(guide__isnull=True))
                | (Q(sharer__isnull=True) & Q(guide__isnull=False)),
                name="referral_visit_one_source",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sharer or self.guide} {self.visited_at:%Y-%m-%d %H:%M}"


class ReferralChange(models.Model):
    """HQ moved a member to another referrer or guide: who, when, from, to, why (append-only)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="referral_changes")
    from_referrer = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_referrer = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    from_guide = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_guide = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(_("reason"), max_length=255)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("by")
    )
    changed_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("referral change")
        verbose_name_plural = _("referral changes")
        ordering = ["-changed_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.member}: {self.reason}"


# --- segments and campaigns -----------------------------------------------------------------------


class Segment(models.Model):
    """A group of members chosen by filters, evaluated when it is used (so it stays current).

    HQ's segments (no owner store) may choose any home store; a store manager's segment belongs to
    their store and only ever reaches members whose home store it is. Filters left empty do not
    filter. Closed accounts are never in a segment.
    """

    name = models.CharField(_("name"), max_length=80)
    store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="segments",
        verbose_name=_("owner store"),
        help_text=_("Empty: HQ's segment. A store's segment reaches only the members of that store."),
    )
    tiers = models.JSONField(_("tiers"), default=list, blank=True, help_text=_("Empty: every tier."))
    home_store = models.ForeignKey(
        Store, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("home store")
    )
    bought_within_days = models.PositiveIntegerField(
        _("bought within the last (days)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Recent buyers: their last purchase is at most this many days old."),
    )
    not_bought_for_days = models.PositiveIntegerField(
        _("has not bought for (days)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Lapsed buyers: they have bought, but not within this many days."),
    )
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("bought product")
    )
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("bought in category"),
        help_text=_("Includes its subcategories."),
    )
    min_points = models.IntegerField(_("points at least"), null=True, blank=True)
    max_points = models.IntegerField(_("points at most"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_points__isnull=True) | Q(max_points__isnull=True) | Q(min_points__lte=F("max_points")),
                name="segment_points_range",
            ),
            models.CheckConstraint(
                condition=Q(bought_within_days__isnull=True) | Q(bought_within_days__gte=1),
                name="segment_bought_within_positive",
            ),
            models.CheckConstraint(
                condition=Q(not_bought_for_days__isnull=True) | Q(not_bought_for_days__gte=1),
                name="segment_not_bought_for_positive",
            ),
            # A store's segment never names another store's members.
            models.CheckConstraint(
                condition=Q(store__isnull=True) | Q(home_store=F("store")), name="segment_store_owns_its_home_store"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignSettings(models.Model):
    """HQ's limits on marketing messages; one row (pk 1), read with `members.selectors.campaign_settings()`."""

    max_messages = models.PositiveIntegerField(
        _("at most this many marketing messages per member"), default=2, validators=[MinValueValidator(1)]
    )
    per_days = models.PositiveIntegerField(
        _("within this many days"), default=7, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )

    class Meta:
        verbose_name = _("campaign settings")
        verbose_name_plural = _("campaign settings")
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="campaign_settings_single_row")]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class Campaign(models.Model):
    """A message sent to a segment's members by WeChat template message or SMS.

    draft → queued → sending → done; a campaign not done can be cancelled. Counters say how
    many of its members were sent to, failed, or skipped and why; `total` is the segment's size
    when it was queued, and at the end the number of members it went through.
    """

    class Channel(models.TextChoices):
        WECHAT = "wechat", _("WeChat template message")
        SMS = "sms", _("Text message (SMS)")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    MACHINE = StateMachine(
        {
            Status.DRAFT: {Status.QUEUED, Status.CANCELLED},
            Status.QUEUED: {Status.SENDING, Status.CANCELLED},
            Status.SENDING: {Status.DONE, Status.CANCELLED},
        }
    )

    name = models.CharField(_("name"), max_length=80)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="campaigns", verbose_name=_("segment"))
    store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        verbose_name=_("owner store"),
        help_text=_("Empty: HQ's campaign."),
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    title = models.CharField(_("title"), max_length=40, blank=True, help_text=_("WeChat: the message's first line."))
    body = models.CharField(_("text"), max_length=200)
    link = models.URLField(_("link"), max_length=500, blank=True, help_text=_("WeChat: the page the message opens."))
    wechat_template_id = models.CharField(_("WeChat template"), max_length=64, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    total = models.PositiveIntegerField(_("members"), default=0)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    skipped_no_consent = models.PositiveIntegerField(_("skipped: no consent"), default=0)
    skipped_capped = models.PositiveIntegerField(_("skipped: frequency cap"), default=0)
    skipped_no_address = models.PositiveIntegerField(_("skipped: no number or WeChat"), default=0)
    skipped_closed = models.PositiveIntegerField(_("skipped: account closed"), default=0)
    # Members are sent to in primary-key order; this is the last one handled.
    last_member_id = models.BigIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["store", "-created_at"], name="campaign_store_latest")]

    def __str__(self) -> str:
        return self.name

    @property
    def skipped(self) -> int:
        return self.skipped_no_consent + self.skipped_capped + self.skipped_no_address + self.skipped_closed

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.skipped


class CampaignEvent(models.Model):
    """Every status change of a campaign: who, when, from, to, why (append-only)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events", verbose_name=_("campaign"))
    from_status = models.CharField(_("from"), max_length=10, choices=Campaign.Status.choices)
    to_status = models.CharField(_("to"), max_length=10, choices=Campaign.Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("by"),
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("campaign event")
        verbose_name_plural = _("campaign events")
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class CampaignMessage(models.Model):
    """The send log: what became of one campaign's message to one member.

    One row per (campaign, member), written before the provider is called, so a campaign run
    twice never messages anyone twice. `pending` means the provider is being called; pending and
    sent messages count against HQ's frequency cap.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Being sent")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED_NO_CONSENT = "skipped_no_consent", _("Skipped: no marketing consent")
        SKIPPED_CAPPED = "skipped_capped", _("Skipped: frequency cap")
        SKIPPED_NO_ADDRESS = "skipped_no_address", _("Skipped: no number or WeChat")
        SKIPPED_CLOSED = "skipped_closed", _("Skipped: account closed")

    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="messages", verbose_name=_("campaign")
    )
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="campaign_messages", verbose_name=_("member")
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Campaign.Channel.choices)
    status = models.CharField(_("result"), max_length=20, choices=Status.choices)
    provider_message_id = models.CharField(_("provider's message id"), max_length=64, blank=True)
    error = models.CharField(_("error"), max_length=255, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("campaign message")
        verbose_name_plural = _("campaign messages")
        ordering = ["-at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "member"], name="campaign_message_once_per_member"),
        ]
        indexes = [
            # The frequency cap: a member's recent pending and sent messages.
            models.Index(fields=["member", "status", "at"], name="campaign_message_member_recent"),
            models.Index(fields=["campaign", "status"], name="campaign_message_by_status"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.member_id} {self.status}"
