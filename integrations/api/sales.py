"""Sales and returns at a store's till (POS), reported through /api/v1/erp/ (scope `sales:write`).

Both are `ErpWriteApi` (an Idempotency-Key on every call) and, besides, recorded once per store
and receipt (or return id) by `orders.pos`: a report sent again under another key answers the
first record with `"duplicate": true` (200) and changes nothing. See docs/erp-api.md.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.idempotency import ErpWriteApi, erp_write_schema
from integrations.models import Scope
from o2o.errors import ApplicationError
from orders import pos
from orders.api.serializers import ErrorSerializer
from orders.models import PosReturn, PosSale

MAX_FEN = 1_000_000_000  # ¥10,000,000: far above any till's receipt, far below the columns' range


def _check_batch(data, field: str, limit: int) -> None:
    """Refuse an oversized batch before validating its rows one by one."""
    rows = data.get(field) if hasattr(data, "get") else None
    if isinstance(rows, list) and len(rows) > limit:
        raise ApplicationError(
            _("At most {limit} lines in one report.").format(limit=limit),
            code="too_many_lines",
            status=422,
            details={field: [_("At most {limit}.").format(limit=limit)]},
        )


class MemberRefSerializer(serializers.Serializer):
    card_code = serializers.CharField(required=False, max_length=40, help_text="As scanned from the member card.")
    phone = serializers.CharField(required=False, max_length=32, help_text="A mainland mobile.")
    id = serializers.IntegerField(required=False, min_value=1, help_text="The id a member lookup answered.")

    class Meta:
        ref_name = "ErpPosMember"

    def validate(self, attrs):
        if len([name for name in ("card_code", "phone", "id") if attrs.get(name) not in (None, "")]) != 1:
            raise serializers.ValidationError(_("Give exactly one of card_code, phone or id."))
        return attrs

    @staticmethod
    def reference(data: dict | None) -> pos.MemberRef | None:
        if not data:
            return None
        return pos.MemberRef(card_code=data.get("card_code", ""), phone=data.get("phone", ""), member_id=data.get("id"))


class SaleLineInputSerializer(serializers.Serializer):
    sku_code = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(help_text=f"1 to {pos.MAX_QUANTITY}.")
    unit_price_fen = serializers.IntegerField(min_value=0, max_value=MAX_FEN)
    amount_fen = serializers.IntegerField(
        min_value=0,
        max_value=MAX_FEN,
        help_text="What the line cost after its discounts: at most quantity × unit price.",
    )

    class Meta:
        ref_name = "ErpPosSaleLineInput"


class SaleLineSerializer(serializers.Serializer):
    sku_code = serializers.CharField(source="sku.code")
    quantity = serializers.IntegerField()
    unit_price_fen = serializers.IntegerField()
    amount_fen = serializers.IntegerField()
    shortfall = serializers.IntegerField(
        help_text="Units the store's stock did not show as available: recorded for the stock team to count."
    )

    class Meta:
        ref_name = "ErpPosSaleLine"


class ReturnLineInputSerializer(serializers.Serializer):
    sku_code = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(help_text=f"1 to {pos.MAX_QUANTITY}.")
    amount_fen = serializers.IntegerField(min_value=0, max_value=MAX_FEN, help_text="The money given back for it.")

    class Meta:
        ref_name = "ErpPosReturnLineInput"


class ReturnLineSerializer(serializers.Serializer):
    sku_code = serializers.CharField(source="sku.code")
    quantity = serializers.IntegerField()
    amount_fen = serializers.IntegerField()

    class Meta:
        ref_name = "ErpPosReturnLine"


SALE_EXAMPLE = {
    "receipt_id": "20250602-0123",
    "store_code": "WS",
    "reference": "POS:WS:20250602-0123",
    "sold_at": "2025-06-02T15:04:05+08:00",
    "total_fen": 51600,
    "paid_fen": 51600,
    "member_id": 1024,
    "guide_staff_code": "G0007",
    "points_earned": 516,
    "lines": [
        {"sku_code": "FH-XFF-3-900", "quantity": 2, "unit_price_fen": 25800, "amount_fen": 51600, "shortfall": 0}
    ],
    "duplicate": False,
    "recorded_at": "2025-06-02T15:04:07+08:00",
}


class StoreSalesApi(ErpWriteApi):
    """A sale at the store's till: stock, and for a member purchase, points and follow-up calls."""

    required_scope = Scope.SALES_WRITE

    class InputSerializer(serializers.Serializer):
        receipt_id = serializers.CharField(
            max_length=64, help_text="The till's receipt number: 1 to 32 of A–Z a–z 0–9 . _ / -; unique per store."
        )
        sold_at = serializers.DateTimeField(help_text="ISO 8601 with offset; at most 5 minutes ahead of our clock.")
        lines = SaleLineInputSerializer(many=True, help_text=f"1 to {pos.MAX_LINES} lines.")
        total_fen = serializers.IntegerField(min_value=0, max_value=MAX_FEN, help_text="The sum of the lines' amounts.")
        paid_fen = serializers.IntegerField(
            min_value=0,
            max_value=MAX_FEN,
            required=False,
            help_text="Paid in money (points are earned on it); total_fen when left out.",
        )
        member = MemberRefSerializer(required=False, allow_null=True)
        guide_staff_code = serializers.CharField(
            required=False, allow_blank=True, max_length=32, help_text="The guide who served, of this store."
        )

        class Meta:
            ref_name = "ErpPosSaleInput"

    class OutputSerializer(serializers.Serializer):
        receipt_id = serializers.CharField()
        store_code = serializers.CharField(source="store.code")
        reference = serializers.CharField(help_text="The sale's name in the points ledger and stock moves.")
        sold_at = serializers.DateTimeField()
        total_fen = serializers.IntegerField()
        paid_fen = serializers.IntegerField()
        member_id = serializers.IntegerField(allow_null=True)
        guide_staff_code = serializers.SerializerMethodField()
        points_earned = serializers.IntegerField()
        lines = serializers.SerializerMethodField()
        duplicate = serializers.BooleanField(help_text="True: this receipt had been recorded; nothing changed now.")
        recorded_at = serializers.DateTimeField()

        class Meta:
            ref_name = "ErpPosSale"

        def get_guide_staff_code(self, sale: PosSale) -> str | None:
            return sale.guide.staff_code if sale.guide_id else None

        def get_lines(self, sale: PosSale) -> list[dict]:
            return SaleLineSerializer(sale.lines.select_related("sku"), many=True).data

    @erp_write_schema(
        scope=Scope.SALES_WRITE,
        operation_id="erp_store_sale",
        summary="Record a sale at the store's till",
        description=(
            "The goods leave the store's stock; with a member (card code, mobile or id), the purchase is "
            "recorded at this store (the store online orders are dispatched to first), points are earned on "
            "`paid_fen` and follow-up calls open, as for an online order. Units beyond what the store's stock "
            "shows as available are recorded as the line's `shortfall`, never taken from reservations. A "
            "receipt is recorded once per store: sent again (under any Idempotency-Key) with the same time, "
            "lines and amounts, the first record is answered with `duplicate: true` (200); with others, 409 "
            "`receipt_exists`. 422: `unknown_sku`, `total_mismatch`, `invalid_quantity`, `too_many_lines`, "
            "`sold_at_in_future`, `line_amount_exceeds_price`, `paid_exceeds_total`, `member_not_found`, "
            "`stale_card_code`, `unknown_guide`, `invalid_receipt_id`. A store this client may not touch is "
            "404 `store_not_found`."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 201: OutputSerializer, 404: ErrorSerializer},
        examples=[
            OpenApiExample(
                "A sale to a member",
                request_only=True,
                value={
                    "receipt_id": "20250602-0123",
                    "sold_at": "2025-06-02T15:04:05+08:00",
                    "lines": [
                        {"sku_code": "FH-XFF-3-900", "quantity": 2, "unit_price_fen": 25800, "amount_fen": 51600}
                    ],
                    "total_fen": 51600,
                    "member": {"card_code": "812345678901123456"},
                    "guide_staff_code": "G0007",
                },
            ),
            OpenApiExample("Recorded", response_only=True, status_codes=["201"], value=SALE_EXAMPLE),
            OpenApiExample(
                "Reported again",
                response_only=True,
                status_codes=["200"],
                value={**SALE_EXAMPLE, "duplicate": True},
            ),
            OpenApiExample(
                "An unknown SKU",
                response_only=True,
                status_codes=["422"],
                value={
                    "code": "unknown_sku",
                    "message": "Some lines name no known SKU.",
                    "details": {"lines[1].sku_code": ["No SKU has this code."]},
                },
            ),
            OpenApiExample(
                "The same receipt with other lines",
                response_only=True,
                status_codes=["409"],
                value={
                    "code": "receipt_exists",
                    "message": "This receipt was recorded at this store with other lines, time or amounts.",
                    "details": {"receipt_id": ["20250602-0123"]},
                },
            ),
        ],
    )
    def post(self, request: Request, store_code: str) -> Response:
        store = self.store(store_code)
        _check_batch(request.data, "lines", pos.MAX_LINES)
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        recorded = pos.record_pos_sale(
            store=store,
            receipt_id=data["receipt_id"],
            sold_at=data["sold_at"],
            lines=[pos.SaleLine(**line) for line in data["lines"]],
            total_fen=data["total_fen"],
            paid_fen=data.get("paid_fen"),
            member=MemberRefSerializer.reference(data.get("member")),
            guide_staff_code=data.get("guide_staff_code", ""),
            reported_by=self.api_client.name,
        )
        sale = recorded.record
        sale.duplicate = recorded.duplicate
        return Response(self.OutputSerializer(sale).data, status=200 if recorded.duplicate else 201)


RETURN_EXAMPLE = {
    "return_id": "R20250603-0007",
    "receipt_id": "20250602-0123",
    "store_code": "WS",
    "returned_at": "2025-06-03T10:00:00+08:00",
    "amount_fen": 25800,
    "points_reversed": 258,
    "lines": [{"sku_code": "FH-XFF-3-900", "quantity": 1, "amount_fen": 25800}],
    "duplicate": False,
    "recorded_at": "2025-06-03T10:00:02+08:00",
}


class StoreReturnsApi(ErpWriteApi):
    """Goods of a till sale brought back to the same store: stock back, points reversed in proportion."""

    required_scope = Scope.SALES_WRITE

    class InputSerializer(serializers.Serializer):
        return_id = serializers.CharField(max_length=64, help_text="The till's return number, unique per store.")
        receipt_id = serializers.CharField(max_length=64, help_text="The sale's receipt at this store.")
        returned_at = serializers.DateTimeField()
        lines = ReturnLineInputSerializer(many=True, help_text=f"1 to {pos.MAX_LINES} lines.")

        class Meta:
            ref_name = "ErpPosReturnInput"

    class OutputSerializer(serializers.Serializer):
        return_id = serializers.CharField()
        receipt_id = serializers.CharField(source="sale.receipt_id")
        store_code = serializers.CharField(source="store.code")
        returned_at = serializers.DateTimeField()
        amount_fen = serializers.IntegerField(help_text="The money given back: the sum of the lines.")
        points_reversed = serializers.IntegerField()
        lines = serializers.SerializerMethodField()
        duplicate = serializers.BooleanField()
        recorded_at = serializers.DateTimeField()

        class Meta:
            ref_name = "ErpPosReturn"

        def get_lines(self, record: PosReturn) -> list[dict]:
            return ReturnLineSerializer(record.lines.select_related("sku"), many=True).data

    @erp_write_schema(
        scope=Scope.SALES_WRITE,
        operation_id="erp_store_return",
        summary="Record goods of a till sale brought back",
        description=(
            "The goods rejoin the store's stock and the sale's points are reversed in proportion to the money "
            "given back (all of them once everything is returned). Returned at the store of the sale. Once per "
            "store and `return_id`: sent again with the same content, the first record is answered with "
            "`duplicate: true` (200); with another, 409 `return_exists`. 422: `receipt_not_found`, "
            "`sku_not_on_receipt`, `return_exceeds_sale` (more units or money than is left of the sale), "
            "`invalid_quantity`, `too_many_lines`, `returned_at_in_future`, `returned_before_sale`."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 201: OutputSerializer, 404: ErrorSerializer},
        examples=[
            OpenApiExample(
                "One of two tins back",
                request_only=True,
                value={
                    "return_id": "R20250603-0007",
                    "receipt_id": "20250602-0123",
                    "returned_at": "2025-06-03T10:00:00+08:00",
                    "lines": [{"sku_code": "FH-XFF-3-900", "quantity": 1, "amount_fen": 25800}],
                },
            ),
            OpenApiExample("Recorded", response_only=True, status_codes=["201"], value=RETURN_EXAMPLE),
            OpenApiExample(
                "Reported again", response_only=True, status_codes=["200"], value={**RETURN_EXAMPLE, "duplicate": True}
            ),
            OpenApiExample(
                "More than was sold",
                response_only=True,
                status_codes=["422"],
                value={
                    "code": "return_exceeds_sale",
                    "message": "More is returned than was sold on this receipt.",
                    "details": {"lines[0].quantity": ["More than is left of the sale."]},
                },
            ),
        ],
    )
    def post(self, request: Request, store_code: str) -> Response:
        store = self.store(store_code)
        _check_batch(request.data, "lines", pos.MAX_LINES)
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        recorded = pos.record_pos_return(
            store=store,
            return_id=data["return_id"],
            receipt_id=data["receipt_id"],
            returned_at=data["returned_at"],
            lines=[pos.ReturnedLine(**line) for line in data["lines"]],
            reported_by=self.api_client.name,
        )
        record = recorded.record
        record.duplicate = recorded.duplicate
        return Response(self.OutputSerializer(record).data, status=200 if recorded.duplicate else 201)
