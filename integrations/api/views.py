"""The ERP/POS open API, mounted at /api/v1/erp/ (o2o.urls): members at the till and the stores' calls.

Every view is an `ErpApi`: signed with an API key (integrations.api.authentication), limited to the
scope it declares in `required_scope`, counted against the client's rate, answered in JSON only.
A store the client may not touch is 404 `store_not_found`, as a store that does not exist.
See docs/erp-api.md.
"""

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import selectors
from integrations.api.authentication import ApiKeyAuthentication, missing_key
from integrations.api.pagination import CappedPagination
from integrations.api.permissions import ClientRateThrottle, HasScope
from integrations.models import ApiClient, Scope
from members.models import FollowUp, Member, PointsEntry
from members.selectors import points_history
from members.services import member_by_card_code
from o2o.errors import ApplicationError, NotFound
from o2o.phone import normalize_cn_mobile
from orders.api.serializers import ErrorSerializer
from stores.models import Store

TAGS = ["erp"]
PAGE_PARAMETERS = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="1-based page number."),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": CappedPagination.max_page_size},
        description=f"Rows per page: {CappedPagination.page_size} by default, at most "
        f"{CappedPagination.max_page_size} (beyond: 422 `page_size_too_large`).",
    ),
]


def erp_schema(*, scope: str, summary: str, description: str = "", responses: dict, **kwargs):
    """extend_schema for an ERP operation: its scope stated, and the errors every one of them can answer."""
    return extend_schema(
        tags=TAGS,
        summary=summary,
        description=f"Scope: `{scope}`.\n\n{description}".strip(),
        responses={
            **responses,
            401: ErrorSerializer,
            403: ErrorSerializer,
            429: ErrorSerializer,
        },
        **kwargs,
    )


class ErpApi(APIView):
    """The base of every ERP endpoint; a subclass sets `required_scope`."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ClientRateThrottle]
    renderer_classes = [JSONRenderer]
    required_scope: str | None = None
    #: The query parameters this endpoint reads, as its schema documents them. Any other is refused
    #: with 400 `invalid` before anything is read or written: a misspelt one (`?curser=`, `?skus=`)
    #: would otherwise be ignored, and the answer (a feed from its start, every SKU) taken for the
    #: one asked for.
    query_parameters: frozenset[str] = frozenset()

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)  # the API key, the scope and the rate come first
        unknown = sorted(set(request.query_params) - self.query_parameters)
        if unknown:
            shown = [name[:40] for name in unknown[:5]]
            raise ApplicationError(
                _("Unknown parameters: {names}.").format(names=", ".join(shown)),
                code="invalid",
                details={name: [_("Unknown parameter.")] for name in shown},
            )

    def permission_denied(self, request: Request, message=None, code=None):
        if not request.successful_authenticator:
            raise missing_key()
        raise exceptions.PermissionDenied(detail=message, code=code)

    def throttled(self, request: Request, wait: float):
        raise exceptions.Throttled(
            wait=wait, detail=_("Too many calls: this client's rate limit is reached."), code="rate_limited"
        )

    @property
    def api_client(self) -> ApiClient:
        return self.request.auth

    def store(self, code: str) -> Store:
        store = selectors.client_store(self.api_client, code)
        if store is None:
            raise NotFound(_("No such store."), code="store_not_found")
        return store


# --- rows of the lists (module level: the outputs below nest them) --------------------------------


class PointsEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=PointsEntry.Kind.choices)
    kind_label = serializers.CharField(source="get_kind_display")
    points = serializers.IntegerField()
    balance_after = serializers.IntegerField()
    reference = serializers.CharField(help_text="Order number or POS receipt.")
    expires_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ErpPointsEntry"


class FollowUpCallSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=FollowUp.Kind.choices)
    kind_label = serializers.CharField(source="get_kind_display")
    due_on = serializers.DateField()
    overdue = serializers.SerializerMethodField()
    runs_out_on = serializers.DateField(allow_null=True)
    member_id = serializers.IntegerField()
    member_name = serializers.CharField(source="member.nickname")
    member_phone = serializers.CharField(source="member.phone", allow_null=True, help_text="In full, +86….")
    product_code = serializers.CharField(source="product.code")
    product_name = serializers.CharField(source="product.name")
    guide_name = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ErpFollowUpCall"

    def get_overdue(self, call: FollowUp) -> bool:
        return call.due_on < self.context["day"]

    def get_guide_name(self, call: FollowUp) -> str | None:
        return call.guide.display_name if call.guide_id else None


# --- members -------------------------------------------------------------------------------------


class MemberLookupApi(ErpApi):
    """The member at the counter, by the code their member card shows or by their mobile number."""

    required_scope = Scope.MEMBERS_READ
    query_parameters = frozenset({"card_code", "phone"})

    class FilterSerializer(serializers.Serializer):
        card_code = serializers.CharField(required=False, max_length=40)
        phone = serializers.CharField(required=False, max_length=32)

        def validate(self, attrs):
            given = [name for name in ("card_code", "phone") if name in attrs]
            if len(given) != 1:
                message = _("Give card_code or phone, not both.") if given else _("Give card_code or phone.")
                raise serializers.ValidationError({"card_code": [message], "phone": [message]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        card_number = serializers.CharField(allow_null=True, help_text="Null until the member first shows the card.")
        nickname = serializers.CharField()
        phone = serializers.CharField(allow_null=True, help_text="In full, +86…: the member is at the counter.")
        tier = serializers.CharField()
        tier_label = serializers.CharField(source="get_tier_display")
        points_balance = serializers.IntegerField()
        home_store_code = serializers.SerializerMethodField()
        marketing_consent = serializers.BooleanField()
        do_not_call = serializers.BooleanField()

        class Meta:
            ref_name = "ErpMember"

        def get_home_store_code(self, member: Member) -> str | None:
            return member.home_store.code if member.home_store_id else None

    @erp_schema(
        scope=Scope.MEMBERS_READ,
        operation_id="erp_member_lookup",
        summary="Find the member at the counter by card code or mobile number",
        description=(
            "Exactly one of `card_code` (what the member card shows: 12-digit card number + 6-digit code, "
            "valid this minute and the last) or `phone` (a mainland mobile). A stale or unknown card code is "
            "404 `stale_card_code`; an unknown number 404 `member_not_found`; a closed account is never found."
        ),
        parameters=[
            OpenApiParameter(
                "card_code",
                OpenApiTypes.STR,
                description="As scanned from the member card.",
                examples=[OpenApiExample("card code", value="812345678901123456")],
            ),
            OpenApiParameter(
                "phone",
                OpenApiTypes.STR,
                description="Mainland mobile; spaces, dashes and +86 are accepted.",
                examples=[OpenApiExample("mobile", value="13800138000")],
            ),
        ],
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
        examples=[
            OpenApiExample(
                "A member",
                response_only=True,
                status_codes=["200"],
                value={
                    "id": 1024,
                    "card_number": "812345678901",
                    "nickname": "王芳",
                    "phone": "+8613800138000",
                    "tier": "loyal",
                    "tier_label": "Loyal",
                    "points_balance": 1280,
                    "home_store_code": "WS",
                    "marketing_consent": True,
                    "do_not_call": False,
                },
            ),
            OpenApiExample(
                "A code from a screenshot",
                response_only=True,
                status_codes=["404"],
                value={
                    "code": "stale_card_code",
                    "message": "This card code is unknown or has expired; ask the member to refresh it.",
                },
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        if "card_code" in data:
            member = member_by_card_code(text=data["card_code"])
        else:
            member = selectors.member_by_phone(normalize_cn_mobile(data["phone"]))
            if member is None:
                raise NotFound(_("No member has this mobile number."), code="member_not_found")
        return Response(self.OutputSerializer(member).data)


class MemberPointsApi(ErpApi):
    """A member's points balance and the ledger behind it, newest first."""

    required_scope = Scope.MEMBERS_READ
    query_parameters = frozenset({"page", "page_size"})

    class OutputSerializer(serializers.Serializer):
        member_id = serializers.IntegerField()
        balance = serializers.IntegerField(help_text="Always the sum of the whole ledger.")
        count = serializers.IntegerField(help_text="Entries in the whole ledger.")
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = PointsEntrySerializer(many=True)

        class Meta:
            ref_name = "ErpMemberPoints"

    @erp_schema(
        scope=Scope.MEMBERS_READ,
        operation_id="erp_member_points",
        summary="A member's points balance and ledger",
        description="Paged, newest first. A member that does not exist or closed the account is 404 "
        "`member_not_found`.",
        parameters=PAGE_PARAMETERS,
        responses={
            200: OutputSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            422: ErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "Earned at the till, spent online",
                response_only=True,
                status_codes=["200"],
                value={
                    "member_id": 1024,
                    "balance": 158,
                    "count": 2,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "id": 77,
                            "created_at": "2025-06-02T15:04:05+08:00",
                            "kind": "redeem",
                            "kind_label": "Redeemed",
                            "points": -100,
                            "balance_after": 158,
                            "reference": "M2506020001",
                            "expires_at": None,
                        },
                        {
                            "id": 61,
                            "created_at": "2025-05-30T10:12:00+08:00",
                            "kind": "earn",
                            "kind_label": "Earned",
                            "points": 258,
                            "balance_after": 258,
                            "reference": "POS-WS-000123",
                            "expires_at": None,
                        },
                    ],
                },
            ),
        ],
    )
    def get(self, request: Request, member_id: int) -> Response:
        member = selectors.open_member(member_id)
        if member is None:
            raise NotFound(_("No such member."), code="member_not_found")
        paginator = CappedPagination()
        page = paginator.paginate_queryset(points_history(member), request, view=self)
        body = {
            "member_id": member.pk,
            "balance": member.points_balance,
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }
        return Response(self.OutputSerializer(body).data)


# --- follow-up calls -------------------------------------------------------------------------------


class StoreFollowUpsApi(ErpApi):
    """A store's calls for the day (open, due that day or overdue), for the POS to print each morning."""

    required_scope = Scope.FOLLOWUPS_READ
    query_parameters = frozenset({"day", "page", "page_size"})

    class FilterSerializer(serializers.Serializer):
        day = serializers.DateField(required=False, input_formats=["iso-8601"])

        def validate(self, attrs):
            # `?day=` with nothing after it is a mistake, not "today": leave the parameter out for today.
            if self.initial_data.get("day", None) == "":
                raise serializers.ValidationError({"day": [_("Give a date as YYYY-MM-DD, or leave day out.")]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        store_code = serializers.CharField()
        day = serializers.DateField()
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = FollowUpCallSerializer(many=True)

        class Meta:
            ref_name = "ErpStoreCalls"

    @erp_schema(
        scope=Scope.FOLLOWUPS_READ,
        operation_id="erp_store_follow_ups",
        summary="A store's follow-up calls of the day, for the POS to print",
        description=(
            "The store's open calls due on `day` (default: today in Beijing time) or earlier, overdue first. "
            "A store this client may not touch, or that does not exist, is 404 `store_not_found`."
        ),
        parameters=[
            OpenApiParameter(
                "day",
                OpenApiTypes.DATE,
                description="YYYY-MM-DD; today (Asia/Shanghai) when left out.",
                examples=[OpenApiExample("a day", value="2025-06-02")],
            ),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: OutputSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            422: ErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "One overdue call and one of the day",
                response_only=True,
                status_codes=["200"],
                value={
                    "store_code": "WS",
                    "day": "2025-06-02",
                    "count": 2,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "id": 301,
                            "kind": "replenish",
                            "kind_label": "Replenishment call",
                            "due_on": "2025-06-01",
                            "overdue": True,
                            "runs_out_on": "2025-06-06",
                            "member_id": 1024,
                            "member_name": "王芳",
                            "member_phone": "+8613800138000",
                            "product_code": "FH-XFF-3",
                            "product_name": "飞鹤星飞帆 3段",
                            "guide_name": "李娜",
                        },
                        {
                            "id": 305,
                            "kind": "first_use",
                            "kind_label": "First-use check",
                            "due_on": "2025-06-02",
                            "overdue": False,
                            "runs_out_on": None,
                            "member_id": 1090,
                            "member_name": "陈静",
                            "member_phone": "+8613900139000",
                            "product_code": "HW-M64",
                            "product_name": "花王纸尿裤 M",
                            "guide_name": None,
                        },
                    ],
                },
            ),
        ],
    )
    def get(self, request: Request, store_code: str) -> Response:
        store = self.store(store_code)
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        day = params.validated_data.get("day") or timezone.localdate()
        paginator = CappedPagination()
        page = paginator.paginate_queryset(selectors.store_calls_of_the_day(store, day), request, view=self)
        body = {
            "store_code": store.code,
            "day": day,
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }
        return Response(self.OutputSerializer(body, context={"day": day}).data)
