"""HQ's catalog (categories, products, SKUs, per-store prices) and per-store stock.

Stock changes only through inventory.services, each writing an append-only
StockMove in the same transaction; the CHECK constraints below are the last line
against negative or over-reserved stock whatever the code does.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from o2o.ledger import AppendOnlyModel
from o2o.state_machine import StateMachine
from stores.models import Store, code_validator


class Category(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=50)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", verbose_name=_("parent")
    )
    sort_order = models.PositiveIntegerField(_("sort order"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=120)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", verbose_name=_("category")
    )
    brand = models.CharField(_("brand"), max_length=50, blank=True)
    description = models.TextField(_("description"), blank=True)
    days_per_unit = models.PositiveIntegerField(
        _("days one unit lasts"),
        null=True,
        blank=True,
        help_text=_("The consumption rate (e.g. a can of formula: 7). Buying it opens follow-up calls."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class ProductImage(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images", verbose_name=_("product"))
    image = models.ImageField(_("image"), upload_to="products/%Y/%m/")
    alt_text = models.CharField(_("alt text"), max_length=120, blank=True)
    sort_order = models.PositiveIntegerField(_("sort order"), default=0)

    class Meta:
        verbose_name = _("product image")
        verbose_name_plural = _("product images")
        ordering = ["product", "sort_order", "pk"]

    def __str__(self) -> str:
        return self.alt_text or self.image.name


class SKU(models.Model):
    """A sellable variant of a product (size, colour, stage); the unit stock and prices refer to."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="skus", verbose_name=_("product"))
    code = models.CharField(_("SKU code"), max_length=32, unique=True, validators=[code_validator])
    barcode = models.CharField(_("barcode"), max_length=32, unique=True, null=True, blank=True)
    spec = models.CharField(_("specification"), max_length=80, blank=True, help_text=_("Size, colour, stage…"))
    price_fen = models.PositiveIntegerField(_("HQ price (fen)"))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("SKU")
        verbose_name_plural = _("SKUs")
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=Q(price_fen__gte=0), name="sku_price_not_negative")]

    def __str__(self) -> str:
        return f"{self.product.name} {self.spec}".strip() if self.spec else self.product.name


class StorePrice(models.Model):
    """A store's own price for a SKU, overriding HQ's price there."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="prices", verbose_name=_("store"))
    sku = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="store_prices", verbose_name=_("SKU"))
    price_fen = models.PositiveIntegerField(_("store price (fen)"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("store price")
        verbose_name_plural = _("store prices")
        constraints = [
            models.UniqueConstraint(fields=["store", "sku"], name="store_price_unique"),
            models.CheckConstraint(condition=Q(price_fen__gte=0), name="store_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.store.code} {self.sku.code}"


class Stock(models.Model):
    """What one store holds of one SKU: on hand, and how much of it is reserved for orders."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="stock", verbose_name=_("store"))
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="stock", verbose_name=_("SKU"))
    on_hand = models.IntegerField(_("on hand"), default=0)
    reserved = models.IntegerField(_("reserved"), default=0)
    low_stock_threshold = models.PositiveIntegerField(_("low-stock threshold"), default=5)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    synced_at = models.DateTimeField(
        _("ERP snapshot taken at"),
        null=True,
        blank=True,
        help_text=_("When the ERP counted the last snapshot applied here; an older snapshot is ignored."),
    )
    # Set by every stock change (inventory.services): the database transaction that made it, so
    # a reader can ask for "changes since" without missing a transaction that commits late.
    change_txid = models.BigIntegerField(_("changed in transaction"), default=0, editable=False)

    class Meta:
        verbose_name = _("stock")
        verbose_name_plural = _("stock")
        ordering = ["store", "sku"]
        indexes = [models.Index(fields=["change_txid", "id"], name="stock_change_cursor")]
        constraints = [
            models.UniqueConstraint(fields=["store", "sku"], name="stock_unique_store_sku"),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_not_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_not_negative"),
            models.CheckConstraint(condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_within_on_hand"),
        ]

    def __str__(self) -> str:
        return f"{self.store.code} · {self.sku.code}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def is_low(self) -> bool:
        return self.available <= self.low_stock_threshold


class AppendOnlyQuerySet(models.QuerySet):
    """A ledger's rows are written once: bulk updates and deletes are refused too."""

    def update(self, **kwargs):
        raise ValueError(f"{self.model.__name__} rows are append-only.")

    def delete(self):
        raise ValueError(f"{self.model.__name__} rows are append-only.")

    def _raw_delete(self, using):
        raise ValueError(f"{self.model.__name__} rows are append-only.")


class StockMove(AppendOnlyModel):
    """One change of one stock row, never edited or deleted: the stock's history and proof.

    For every (store, SKU), the sums of on_hand_delta and reserved_delta equal
    the stock row's on_hand and reserved.
    """

    class Kind(models.TextChoices):
        RECEIVE = "receive", _("Received")
        COUNT = "count", _("Count adjustment")
        RESERVE = "reserve", _("Reserved")
        RELEASE = "release", _("Reservation released")
        CONSUME = "consume", _("Reserved stock handed over")
        TRANSFER_OUT = "transfer_out", _("Transferred out")
        TRANSFER_IN = "transfer_in", _("Transferred in")
        RETURN = "return", _("Returned by a customer")
        POS_SALE = "pos_sale", _("Sold at the till")
        ERP_SNAPSHOT = "erp_snapshot", _("ERP stock snapshot")
        ERP_RECEIVE = "erp_receive", _("Received (ERP)")
        ERP_SALE = "erp_sale", _("Sold at the POS (reported by the ERP)")
        ERP_COUNT = "erp_count", _("Count correction (ERP)")

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="stock_moves", verbose_name=_("store"))
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="stock_moves", verbose_name=_("SKU"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    on_hand_delta = models.IntegerField(_("on-hand change"))
    reserved_delta = models.IntegerField(_("reserved change"))
    on_hand_after = models.IntegerField(_("on hand after"))
    reserved_after = models.IntegerField(_("reserved after"))
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    reference = models.CharField(
        _("reference"), max_length=64, blank=True, db_index=True, help_text=_("e.g. transfer:12, order:…")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    occurred_at = models.DateTimeField(
        _("happened at"),
        null=True,
        blank=True,
        help_text=_("When the ERP says it happened, for moves it reported later; else the time it was recorded."),
    )

    objects = AppendOnlyQuerySet.as_manager()

    # The ERP's own moves, one per (store, SKU, reference): a delta sent twice is applied once.
    ERP_DELTA_KINDS = (Kind.ERP_RECEIVE, Kind.ERP_SALE, Kind.ERP_COUNT)

    class Meta:
        verbose_name = _("stock move")
        verbose_name_plural = _("stock moves")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["store", "sku", "created_at"], name="stockmove_store_sku_at")]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "sku", "reference"],
                condition=Q(kind__in=["erp_receive", "erp_sale", "erp_count"]),
                name="stockmove_erp_delta_once",
            ),
        ]

    def __str__(self) -> str:
        deltas = f"{self.on_hand_delta:+d}/{self.reserved_delta:+d}"
        return f"{self.get_kind_display()} {self.store.code} {self.sku.code} {deltas}"


class StockTransfer(models.Model):
    """Goods moved from one store to another (调货).

    requested: the goods are reserved at the source; shipped: they have left it;
    received: they are on hand at the destination. Only a requested transfer can
    be cancelled, which releases the reservation.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        SHIPPED = "shipped", _("Shipped")
        RECEIVED = "received", _("Received")
        CANCELLED = "cancelled", _("Cancelled")

    MACHINE = StateMachine(
        {
            Status.REQUESTED: {Status.SHIPPED, Status.CANCELLED},
            Status.SHIPPED: {Status.RECEIVED},
        }
    )

    from_store = models.ForeignKey(
        Store, on_delete=models.PROTECT, related_name="transfers_out", verbose_name=_("from store")
    )
    to_store = models.ForeignKey(
        Store, on_delete=models.PROTECT, related_name="transfers_in", verbose_name=_("to store")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.REQUESTED)
    reference = models.CharField(_("reference"), max_length=64, blank=True, db_index=True)
    note = models.CharField(_("note"), max_length=255, blank=True)
    hold_reference = models.CharField(
        _("hold for"),
        max_length=64,
        blank=True,
        help_text=_("An order this transfer is for: the goods arrive reserved under this reference."),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("stock transfer")
        verbose_name_plural = _("stock transfers")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=~Q(from_store=F("to_store")), name="transfer_between_two_stores"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.from_store.code} → {self.to_store.code}"


class StockTransferLine(models.Model):
    transfer = models.ForeignKey(
        StockTransfer, on_delete=models.CASCADE, related_name="lines", verbose_name=_("transfer")
    )
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU"))
    quantity = models.PositiveIntegerField(_("quantity"))

    class Meta:
        verbose_name = _("transfer line")
        verbose_name_plural = _("transfer lines")
        ordering = ["transfer", "sku"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "sku"], name="transfer_line_unique_sku"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="transfer_line_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.sku.code} × {self.quantity}"


class StockTransferEvent(models.Model):
    """Every state change of a transfer: who, when, from which state, to which, why."""

    transfer = models.ForeignKey(
        StockTransfer, on_delete=models.CASCADE, related_name="events", verbose_name=_("transfer")
    )
    from_status = models.CharField(_("from"), max_length=10, blank=True)
    to_status = models.CharField(_("to"), max_length=10)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("by"),
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("transfer event")
        verbose_name_plural = _("transfer events")
        ordering = ["transfer", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"
