"""Members: one membership for online and offline. Identity, phone, home store, and purchases by store."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from stores.models import Store


class Member(models.Model):
    """A shopper. Signs in through WeChat (openid / unionid); never a Django user."""

    class HomeStoreSource(models.TextChoices):
        STORE_QR = "store_qr", _("Store QR code")
        PRODUCT_QR = "product_qr", _("Product QR code")
        FIRST_ORDER = "first_order", _("First order")
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
    joined_at = models.DateTimeField(_("joined at"), auto_now_add=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-joined_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(home_store__isnull=True) | ~Q(home_store_source=""), name="member_home_store_has_source"
            ),
        ]

    def __str__(self) -> str:
        return self.nickname or self.phone or f"#{self.pk}"


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
