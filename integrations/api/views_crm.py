"""The ERP API's member writes: the CRM's upsert by mobile number, answered member by member.

See docs/erp-api.md ("Members written by the CRM") and members.crm for the rules.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.fields import StrictBooleanField, StrictCharField
from integrations.api.idempotency import ErpWriteApi, erp_write_schema
from integrations.models import Scope
from members.crm import CrmMember, Outcome, UpsertResult, upsert_member_from_crm
from o2o.errors import ApplicationError
from orders.api.serializers import ErrorSerializer

UPSERT_MAX_MEMBERS = 500


class CrmMemberSerializer(serializers.Serializer):
    """One member as the CRM sends it; a field left out is left as it is."""

    phone = StrictCharField(max_length=32, help_text="The key: a mainland mobile, any usual spelling.")
    nickname = StrictCharField(required=False, allow_blank=True, max_length=64)
    do_not_call = StrictBooleanField(
        required=False, help_text="true records that the member asked not to be called; false changes nothing."
    )

    class Meta:
        ref_name = "ErpCrmMember"


class UpsertItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The member's place in the request, from 0.")
    phone = serializers.CharField(help_text="Normalised (+86…) when it was a mobile number; else as sent.")
    result = serializers.ChoiceField(choices=[Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.REJECTED])
    member_id = serializers.IntegerField(allow_null=True)
    card_number = serializers.CharField(allow_null=True)
    code = serializers.CharField(required=False, help_text="Why it was rejected (`invalid_phone`, `member_closed`…).")
    message = serializers.CharField(required=False)

    class Meta:
        ref_name = "ErpCrmMemberResult"


class MemberUpsertApi(ErpWriteApi):
    """The CRM writes members: each created, updated, left unchanged or rejected, in the order sent."""

    required_scope = Scope.MEMBERS_WRITE

    class InputSerializer(serializers.Serializer):
        members = CrmMemberSerializer(many=True, allow_empty=False, help_text="1 to 500 members.")

        class Meta:
            ref_name = "ErpCrmUpsertInput"

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        unchanged = serializers.IntegerField()
        rejected = serializers.IntegerField()
        results = UpsertItemSerializer(many=True)

        class Meta:
            ref_name = "ErpCrmUpsert"

    @erp_write_schema(
        scope=Scope.MEMBERS_WRITE,
        operation_id="erp_member_upsert",
        summary="Create or update members from the CRM, by mobile number",
        description=(
            f"Up to {UPSERT_MAX_MEMBERS} members (more: 422 `batch_too_large`). Each is found by its mobile number "
            "(the key) and created if none has it; the CRM sets the nickname and may record `do_not_call`. Points, "
            "tier, referrer, guide, home store and marketing consent are never changed here (consent is the "
            "member's own choice). A malformed member (no phone, a field of the wrong type or too long) refuses "
            "the whole batch with 400 (`details` by member index) and writes nothing. Otherwise each member is "
            "answered on its own, in the order sent: one rejected member does not stop the others. "
            "Rejections: `invalid_phone`, `member_closed` (the number's owner closed the account: it is "
            "never recreated), `member_inactive`. Sending the same batch again answers `unchanged`."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 422: ErrorSerializer},
        examples=[
            OpenApiExample(
                "Three members",
                request_only=True,
                value={
                    "members": [
                        {"phone": "138 0013 8000", "nickname": "王芳"},
                        {"phone": "13900139000", "nickname": "陈静", "do_not_call": True},
                        {"phone": "12345", "nickname": "?"},
                    ]
                },
            ),
            OpenApiExample(
                "Answered one by one",
                response_only=True,
                status_codes=["200"],
                value={
                    "created": 1,
                    "updated": 1,
                    "unchanged": 0,
                    "rejected": 1,
                    "results": [
                        {
                            "index": 0,
                            "phone": "+8613800138000",
                            "result": "updated",
                            "member_id": 1024,
                            "card_number": "812345678901",
                        },
                        {
                            "index": 1,
                            "phone": "+8613900139000",
                            "result": "created",
                            "member_id": 1093,
                            "card_number": None,
                        },
                        {
                            "index": 2,
                            "phone": "12345",
                            "result": "rejected",
                            "member_id": None,
                            "card_number": None,
                            "code": "invalid_phone",
                            "message": "Enter a mainland China mobile number: 11 digits starting with 1.",
                        },
                    ],
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        members = request.data.get("members") if isinstance(request.data, dict) else None
        if isinstance(members, list) and len(members) > UPSERT_MAX_MEMBERS:  # before reading each of them
            raise ApplicationError(
                _("At most {limit} members per call.").format(limit=UPSERT_MAX_MEMBERS),
                code="batch_too_large",
                status=422,
                details={"members": [_("At most {limit}.").format(limit=UPSERT_MAX_MEMBERS)]},
            )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)  # a malformed member refuses the whole batch: nothing written
        results = [
            _answer(index, upsert_member_from_crm(item=CrmMember(**item)))
            for index, item in enumerate(data.validated_data["members"])
        ]
        counts = dict.fromkeys((Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.REJECTED), 0)
        for row in results:
            counts[row["result"]] += 1
        return Response(self.OutputSerializer({**counts, "results": results}).data)


def _answer(index: int, result: UpsertResult) -> dict:
    row = {
        "index": index,
        "phone": result.phone,
        "result": result.outcome,
        "member_id": result.member.pk if result.member else None,
        "card_number": result.member.card_number if result.member else None,
    }
    if result.outcome == Outcome.REJECTED:
        row.update(code=result.code, message=result.message)
    return row
