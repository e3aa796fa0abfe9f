"""Carts, orders with their lines and status history, and the payment ledger (payments, refunds)."""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from inventory.models import SKU
from members.models import Member
from o2o.state_machine import StateMachine
from stores.models import Store


class MallSettings(models.Model):
    """HQ's checkout rules; one row (pk 1), read with `orders.selectors.mall_settings()`."""

    unpaid_order_minutes = models.PositiveIntegerField(_("minutes to pay before an order expires"), default=15)
    delivery_fee_fen = models.PositiveIntegerField(_("delivery fee (fen)"), default=800)
    free_delivery_from_fen = models.PositiveIntegerField(
        _("free delivery from (fen)"), default=9900, help_text=_("Items subtotal at or above which delivery is free.")
    )

    class Meta:
        verbose_name = _("mall settings")
        verbose_name_plural = _("mall settings")
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="mall_settings_single_row")]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class CartLine(models.Model):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="cart_lines", verbose_name=_("member"))
    sku = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"))
    quantity = models.PositiveIntegerField(_("quantity"))
    added_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        verbose_name = _("cart line")
        verbose_name_plural = _("cart lines")
        ordering = ["added_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["member", "sku"], name="cart_line_unique_sku"),
            models.CheckConstraint(condition=Q(quantity__gte=1) & Q(quantity__lte=99), name="cart_line_quantity_range"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} × {self.quantity}"


class Order(models.Model):
    class Fulfilment(models.TextChoices):
        PICKUP = "pickup", _("Store pickup")
        DELIVERY = "delivery", _("Delivery")

    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", _("Awaiting payment")
        PAID = "paid", _("Paid, waiting for the store")
        AWAITING_DISPATCH = "awaiting_dispatch", _("Paid, awaiting dispatch")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired unpaid")

    MACHINE = StateMachine(
        {
            Status.PENDING_PAYMENT: {Status.PAID, Status.AWAITING_DISPATCH, Status.CANCELLED, Status.EXPIRED},
            Status.PAID: {Status.CANCELLED},
            Status.AWAITING_DISPATCH: {Status.CANCELLED},
        }
    )

    number = models.CharField(_("order number"), max_length=20, unique=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="orders", verbose_name=_("member"))
    fulfilment = models.CharField(_("fulfilment"), max_length=10, choices=Fulfilment.choices)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT, db_index=True
    )
    pickup_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pickup_orders",
        verbose_name=_("pickup store"),
    )
    credited_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="credited_orders",
        verbose_name=_("credited store"),
        help_text=_("The member's home store: the branch this sale counts for."),
    )
    recipient_name = models.CharField(_("recipient"), max_length=50, blank=True)
    recipient_phone = models.CharField(_("recipient phone"), max_length=16, blank=True)
    delivery_address = models.CharField(_("delivery address"), max_length=255, blank=True)
    delivery_latitude = models.DecimalField(
        _("latitude (GCJ-02)"), max_digits=9, decimal_places=6, null=True, blank=True
    )
    delivery_longitude = models.DecimalField(
        _("longitude (GCJ-02)"), max_digits=9, decimal_places=6, null=True, blank=True
    )
    items_fen = models.PositiveIntegerField(_("items (fen)"))
    delivery_fee_fen = models.PositiveIntegerField(_("delivery fee (fen)"), default=0)
    total_fen = models.PositiveIntegerField(_("total (fen)"))
    pickup_code = models.CharField(_("pickup code"), max_length=6, blank=True)
    expires_at = models.DateTimeField(_("pay before"), db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_fen=F("items_fen") + F("delivery_fee_fen")), name="order_total_is_items_plus_fee"
            ),
            models.CheckConstraint(
                condition=(Q(fulfilment="pickup") & Q(pickup_store__isnull=False))
                | (Q(fulfilment="delivery") & Q(delivery_latitude__isnull=False) & Q(delivery_longitude__isnull=False)),
                name="order_has_pickup_store_or_delivery_point",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    """An order's line, with the SKU's name, spec and price as they were when it was placed."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order"))
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU"))
    product_name = models.CharField(_("product"), max_length=120)
    spec = models.CharField(_("specification"), max_length=80, blank=True)
    unit_price_fen = models.PositiveIntegerField(_("unit price (fen)"))
    quantity = models.PositiveIntegerField(_("quantity"))
    line_total_fen = models.PositiveIntegerField(_("line total (fen)"))

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        ordering = ["order", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_line_quantity_positive"),
            models.CheckConstraint(
                condition=Q(line_total_fen=F("unit_price_fen") * F("quantity")), name="order_line_total_exact"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} {self.spec} × {self.quantity}".strip()


class OrderEvent(models.Model):
    """Every status change of an order: who, when, from which state, to which, why."""

    class Actor(models.TextChoices):
        MEMBER = "member", _("Member")
        STAFF = "staff", _("Staff")
        SYSTEM = "system", _("System")
        PAYMENT = "payment", _("Payment")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", verbose_name=_("order"))
    from_status = models.CharField(_("from"), max_length=20, blank=True)
    to_status = models.CharField(_("to"), max_length=20)
    actor_type = models.CharField(_("by"), max_length=10, choices=Actor.choices)
    actor_label = models.CharField(_("who"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["order", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class Payment(models.Model):
    """Money received for an order, once per WeChat Pay transaction (a replayed notice finds it here)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments", verbose_name=_("order"))
    transaction_id = models.CharField(_("transaction id"), max_length=64, unique=True)
    amount_fen = models.PositiveIntegerField(_("amount (fen)"))
    paid_at = models.DateTimeField(_("paid at"))
    is_development = models.BooleanField(_("development payment"), default=False)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.transaction_id


class Refund(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing", _("Processing")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("payment"))
    out_refund_no = models.CharField(_("refund number"), max_length=64, unique=True)
    amount_fen = models.PositiveIntegerField(_("amount (fen)"))
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PROCESSING)
    refund_id = models.CharField(_("WeChat refund id"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at", "-pk"]
        constraints = [models.CheckConstraint(condition=Q(amount_fen__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return self.out_refund_no
