"""Carts, orders with their lines and status history, and the payment ledger (payments, refunds)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from inventory.models import SKU
from members.models import Member
from o2o.db import CurrentTransactionId
from o2o.state_machine import StateMachine
from stores.models import Staff, Store


class ShortagePolicy(models.TextChoices):
    TRANSFER = "transfer", _("Assign to the best store and transfer the rest from other stores")
    EXCEPTION = "exception", _("Send the order to HQ's exception queue")


class MallSettings(models.Model):
    """HQ's checkout and dispatch rules; one row (pk 1), read with `orders.selectors.mall_settings()`."""

    unpaid_order_minutes = models.PositiveIntegerField(_("minutes to pay before an order expires"), default=15)
    delivery_fee_fen = models.PositiveIntegerField(_("delivery fee (fen)"), default=800)
    free_delivery_from_fen = models.PositiveIntegerField(
        _("free delivery from (fen)"), default=9900, help_text=_("Items subtotal at or above which delivery is free.")
    )
    acceptance_minutes = models.PositiveIntegerField(
        _("minutes for a store to accept an order"),
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text=_("After this, the order goes to the next store (delivery) or to the exception queue (pickup)."),
    )
    shortage_policy = models.CharField(
        _("when no single store holds everything"),
        max_length=10,
        choices=ShortagePolicy.choices,
        default=ShortagePolicy.TRANSFER,
    )
    auto_complete_hours = models.PositiveIntegerField(
        _("hours after delivery until an order completes by itself"),
        default=24,
        help_text=_("Unless the shopper confirms receipt earlier."),
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
        ASSIGNED = "assigned", _("Assigned to a store")
        EXCEPTION = "exception", _("Waiting for HQ")
        ACCEPTED = "accepted", _("Accepted by the store")
        PREPARING = "preparing", _("Being prepared")
        OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
        DELIVERED = "delivered", _("Delivered")
        READY = "ready", _("Ready for pickup")
        COMPLETED = "completed", _("Completed")
        RETURNED = "returned", _("Returned")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired unpaid")

    MACHINE = StateMachine(
        {
            Status.PENDING_PAYMENT: {Status.PAID, Status.AWAITING_DISPATCH, Status.CANCELLED, Status.EXPIRED},
            # Pickup: offered to the pickup store while paid.
            Status.PAID: {Status.ACCEPTED, Status.EXCEPTION, Status.CANCELLED},
            Status.AWAITING_DISPATCH: {Status.ASSIGNED, Status.EXCEPTION, Status.CANCELLED},
            # Declined or not accepted in time: back to dispatch for the next store.
            Status.ASSIGNED: {Status.ACCEPTED, Status.AWAITING_DISPATCH, Status.EXCEPTION, Status.CANCELLED},
            Status.EXCEPTION: {Status.ASSIGNED, Status.PAID, Status.CANCELLED},
            Status.ACCEPTED: {Status.PREPARING, Status.READY, Status.CANCELLED},
            Status.PREPARING: {Status.OUT_FOR_DELIVERY, Status.CANCELLED},
            Status.OUT_FOR_DELIVERY: {Status.DELIVERED},
            Status.DELIVERED: {Status.COMPLETED, Status.RETURNED},
            Status.READY: {Status.COMPLETED, Status.CANCELLED},
            Status.COMPLETED: {Status.RETURNED},
        }
    )
    # Before a store has accepted it, the shopper may call the order off.
    SHOPPER_CANCELLABLE = frozenset(
        {Status.PENDING_PAYMENT, Status.PAID, Status.AWAITING_DISPATCH, Status.ASSIGNED, Status.EXCEPTION}
    )
    # The goods have not left the store: HQ or the store may still cancel (with a full refund).
    STORE_CANCELLABLE = frozenset({Status.ACCEPTED, Status.PREPARING, Status.READY})

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
    fulfilling_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fulfilled_orders",
        verbose_name=_("fulfilling store"),
        help_text=_("The store that accepted the order and hands the goods over."),
    )
    courier = models.ForeignKey(
        Staff,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deliveries",
        verbose_name=_("out for delivery with"),
    )
    exception_reason = models.CharField(_("why HQ must decide"), max_length=255, blank=True)
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
    points_used = models.PositiveIntegerField(_("points used"), default=0)
    points_discount_fen = models.PositiveIntegerField(_("paid with points (fen)"), default=0)
    total_fen = models.PositiveIntegerField(_("total (fen)"), help_text=_("What the shopper pays with money."))
    pickup_code = models.CharField(_("pickup code"), max_length=6, blank=True)
    expires_at = models.DateTimeField(_("pay before"), db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True, db_index=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_fen=F("items_fen") + F("delivery_fee_fen") - F("points_discount_fen")),
                name="order_total_is_items_plus_fee_less_points",
            ),
            models.CheckConstraint(
                condition=Q(points_discount_fen__lte=F("items_fen")), name="order_points_pay_only_items"
            ),
            models.CheckConstraint(
                condition=(Q(fulfilment="pickup") & Q(pickup_store__isnull=False))
                | (Q(fulfilment="delivery") & Q(delivery_latitude__isnull=False) & Q(delivery_longitude__isnull=False)),
                name="order_has_pickup_store_or_delivery_point",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def items_paid_fen(self) -> int:
        """What was paid in money for the items: they earn points, and returns refund a share of it."""
        return self.items_fen - self.points_discount_fen

    @property
    def reference(self) -> str:
        """The stock ledger's reference for this order's reservations and hand-overs."""
        return f"order:{self.number}"


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
        HQ = "hq", _("HQ")
        SYSTEM = "system", _("System")
        PAYMENT = "payment", _("Payment")
        ERP = "erp", _("Store system (ERP)")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", verbose_name=_("order"))
    from_status = models.CharField(_("from"), max_length=20, blank=True)
    to_status = models.CharField(_("to"), max_length=20)
    actor_type = models.CharField(_("by"), max_length=10, choices=Actor.choices)
    actor_label = models.CharField(_("who"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)
    # The writing transaction's id, set by the database: the ERP's change feed hands out only
    # rows whose transaction has ended, in (xact_id, id) order (integrations.order_feed).
    xact_id = models.BigIntegerField(_("transaction"), db_default=CurrentTransactionId(), editable=False)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["order", "created_at", "pk"]
        indexes = [models.Index(fields=["xact_id", "id"], name="order_event_feed")]

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


class Assignment(models.Model):
    """One offer of an order to one store, which must accept it before the deadline.

    An order has at most one open (offered or accepted) assignment. Each assignment
    ends with exactly one outcome: accepted, declined, expired or withdrawn.
    """

    class Status(models.TextChoices):
        OFFERED = "offered", _("Waiting for the store")
        ACCEPTED = "accepted", _("Accepted")
        DECLINED = "declined", _("Declined")
        EXPIRED = "expired", _("Not accepted in time")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class Basis(models.TextChoices):
        AFFINITY = "affinity", _("The member's usual store")
        NEAREST = "nearest", _("The nearest store")
        TRANSFER = "transfer", _("Best store, with stock transfers")
        PICKUP = "pickup", _("The shopper's pickup store")
        HQ = "hq", _("Assigned by HQ")

    MACHINE = StateMachine({Status.OFFERED: {Status.ACCEPTED, Status.DECLINED, Status.EXPIRED, Status.WITHDRAWN}})
    OPEN = (Status.OFFERED, Status.ACCEPTED)

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("order"))
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="assignments", verbose_name=_("store"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OFFERED)
    basis = models.CharField(_("chosen as"), max_length=10, choices=Basis.choices)
    distance_m = models.PositiveIntegerField(_("distance (m)"), null=True, blank=True)
    offered_at = models.DateTimeField(_("offered at"))
    deadline = models.DateTimeField(_("accept before"))
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("decided by"),
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        ordering = ["-offered_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["order"], condition=Q(status__in=["offered", "accepted"]), name="assignment_one_open_per_order"
            ),
            models.CheckConstraint(condition=Q(deadline__gt=F("offered_at")), name="assignment_deadline_after_offer"),
        ]
        indexes = [
            models.Index(fields=["deadline"], condition=Q(status="offered"), name="assignment_offered_deadline"),
            models.Index(fields=["store", "status"], name="assignment_store_status"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} → {self.store_id} ({self.status})"


class Return(models.Model):
    """Goods of an order brought back to a store, with the refund they are owed."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="returns", verbose_name=_("order"))
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="returns", verbose_name=_("store"))
    token = models.CharField(_("form token"), max_length=32, help_text=_("One return per submitted form."))
    amount_fen = models.PositiveIntegerField(_("refund (fen)"))
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    refund = models.OneToOneField(
        Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="store_return", verbose_name=_("refund")
    )
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("received by")
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("return")
        verbose_name_plural = _("returns")
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["order", "token"], name="return_once_per_form")]

    def __str__(self) -> str:
        return f"{self.order_id} #{self.pk}"


class ReturnLine(models.Model):
    return_record = models.ForeignKey(Return, on_delete=models.CASCADE, related_name="lines", verbose_name=_("return"))
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="returned", verbose_name=_("line"))
    quantity = models.PositiveIntegerField(_("quantity"))

    class Meta:
        verbose_name = _("returned line")
        verbose_name_plural = _("returned lines")
        constraints = [models.CheckConstraint(condition=Q(quantity__gte=1), name="return_line_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.order_line} × {self.quantity}"


class DispatchException(Order):
    """HQ's exception queue: paid orders no store could take (the admin lists them apart)."""

    class Meta:
        proxy = True
        verbose_name = _("dispatch exception")
        verbose_name_plural = _("dispatch exceptions")


class PosSale(models.Model):
    """A sale at a store's till (POS), reported by the till through the ERP API: one per (store, receipt).

    A sale to a member counts as an order does (their purchase at this store, points, follow-up
    calls); `reference` (`POS:<store>:<receipt>`) names it in the stock moves, the points ledger
    and the purchase record. Lines whose units the store's stock did not show as available carry a
    `shortfall` for the stock team to count. See docs/erp-api.md, "POS sales and returns".
    """

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="pos_sales", verbose_name=_("store"))
    receipt_id = models.CharField(_("receipt"), max_length=32)
    reference = models.CharField(_("reference"), max_length=64, unique=True)
    sold_at = models.DateTimeField(_("sold at"))
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="pos_sales", verbose_name=_("member")
    )
    guide = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="pos_sales", verbose_name=_("guide")
    )
    total_fen = models.PositiveIntegerField(_("total (fen)"), help_text=_("The sum of the lines."))
    paid_fen = models.PositiveIntegerField(
        _("paid (fen)"), help_text=_("What was paid in money; points are earned on it.")
    )
    points_earned = models.PositiveIntegerField(_("points earned"), default=0)
    content_digest = models.CharField(
        _("content digest"),
        max_length=64,
        help_text=_("Tells a repeated report from another sale under the same receipt."),
    )
    reported_by = models.CharField(_("reported by"), max_length=100, blank=True, help_text=_("The API client."))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("POS sale")
        verbose_name_plural = _("POS sales")
        ordering = ["-sold_at", "-pk"]
        constraints = [
            # The same receipt never earns or moves stock twice, whatever the retries.
            models.UniqueConstraint(fields=["store", "receipt_id"], name="pos_sale_once_per_store_receipt"),
            models.CheckConstraint(condition=Q(paid_fen__lte=F("total_fen")), name="pos_sale_paid_within_total"),
        ]
        indexes = [models.Index(fields=["store", "-sold_at"], name="pos_sale_store_latest")]

    def __str__(self) -> str:
        return self.reference


class PosSaleLine(models.Model):
    sale = models.ForeignKey(PosSale, on_delete=models.CASCADE, related_name="lines", verbose_name=_("sale"))
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU"))
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price_fen = models.PositiveIntegerField(_("unit price (fen)"))
    amount_fen = models.PositiveIntegerField(_("amount (fen)"), help_text=_("After line discounts."))
    shortfall = models.PositiveIntegerField(
        _("shortfall"), default=0, help_text=_("Units sold that the store's stock did not show as available.")
    )

    class Meta:
        verbose_name = _("POS sale line")
        verbose_name_plural = _("POS sale lines")
        ordering = ["sale", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="pos_sale_line_quantity_positive"),
            models.CheckConstraint(condition=Q(shortfall__lte=F("quantity")), name="pos_sale_line_shortfall_within"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} × {self.quantity}"


class PosReturn(models.Model):
    """Goods of a POS sale brought back to the same store's till: one per (store, return id)."""

    sale = models.ForeignKey(PosSale, on_delete=models.PROTECT, related_name="returns", verbose_name=_("sale"))
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="pos_returns", verbose_name=_("store"))
    return_id = models.CharField(_("return"), max_length=32)
    returned_at = models.DateTimeField(_("returned at"))
    amount_fen = models.PositiveIntegerField(_("refunded (fen)"))
    points_reversed = models.PositiveIntegerField(_("points reversed"), default=0)
    content_digest = models.CharField(_("content digest"), max_length=64)
    reported_by = models.CharField(_("reported by"), max_length=100, blank=True)
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("POS return")
        verbose_name_plural = _("POS returns")
        ordering = ["-returned_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["store", "return_id"], name="pos_return_once_per_store_return"),
        ]

    def __str__(self) -> str:
        return f"{self.sale_id} ↩ {self.return_id}"


class PosReturnLine(models.Model):
    pos_return = models.ForeignKey(PosReturn, on_delete=models.CASCADE, related_name="lines", verbose_name=_("return"))
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU"))
    quantity = models.PositiveIntegerField(_("quantity"))
    amount_fen = models.PositiveIntegerField(_("refunded (fen)"))

    class Meta:
        verbose_name = _("POS returned line")
        verbose_name_plural = _("POS returned lines")
        ordering = ["pos_return", "pk"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gte=1), name="pos_return_line_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.sku_id} × {self.quantity}"
