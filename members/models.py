"""Members: one membership for online and offline. Identity, phone, home store and join date."""

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
