"""Batches the ERP sends: the size cap, item-by-item reading, and the shape of the answer.

A batch is read item by item: an item that is not even well formed is answered `rejected`
(reason `invalid`) and the others still go through, as the issue asks for a half-valid
upload; only a body that is not a batch at all is a 400. A batch beyond its cap is refused
whole with 413 `batch_too_large`, before any item is read.
"""

from collections import Counter
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from inventory.sync import BatchOutcome, ItemResult, Reason, Rejected, Result
from o2o.errors import ApplicationError

MODE_EACH = "each"
MODE_ALL_OR_NOTHING = "all_or_nothing"


def batch_items(data: Any, key: str, cap: int) -> list[Any]:
    """The list under `key` in a JSON object body, at most `cap` long."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ApplicationError(
            _("The body is a JSON object with a list {key}.").format(key=key),
            code="invalid",
            details={key: [_("A list is required.")]},
        )
    items = data[key]
    if len(items) > cap:
        raise ApplicationError(
            _("At most {cap} items a request; this one has {count}.").format(cap=cap, count=len(items)),
            code="batch_too_large",
            status=413,
            details={key: [_("At most {cap}.").format(cap=cap)]},
        )
    return items


_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


def all_or_nothing(request) -> bool:
    """`?atomic=true` or `"mode": "all_or_nothing"` in the body.

    `atomic` is a boolean: true/false (or 1/0). Anything else is refused rather than read as false,
    so a caller who meant all-or-nothing never gets a half-written batch by a typo."""
    atomic = request.query_params.get("atomic")
    if atomic is not None:
        if atomic.lower() not in _BOOLEAN:
            raise ApplicationError(_("atomic is true or false."), code="invalid", details={"atomic": [atomic[:20]]})
        if _BOOLEAN[atomic.lower()]:
            return True
    mode = request.data.get("mode", MODE_EACH) if isinstance(request.data, dict) else MODE_EACH
    if mode not in (MODE_EACH, MODE_ALL_OR_NOTHING):
        raise ApplicationError(_("mode is each or all_or_nothing."), code="invalid", details={"mode": [str(mode)[:40]]})
    return mode == MODE_ALL_OR_NOTHING


def invalid_reason(errors: Any) -> Reason:
    """One readable line out of a serializer's errors: "price_fen: A valid integer is required."."""

    def flatten(prefix: str, value: Any) -> list[str]:
        if isinstance(value, dict):
            return [line for name, sub in value.items() for line in flatten(f"{prefix}{name}.", sub)]
        if isinstance(value, list):
            if value and all(isinstance(v, str) for v in value):
                return [f"{prefix.rstrip('.')}: {' '.join(value)}"]
            return [line for i, sub in enumerate(value) if sub for line in flatten(f"{prefix}{i}.", sub)]
        return [f"{prefix.rstrip('.')}: {value}"]

    return Reason("invalid", "; ".join(flatten("", errors))[:500])


def read_items(items: list[Any], serializer_class, to_input: Callable[[int, dict], Any], code_field: str) -> list:
    """Each item validated alone: its input for the service, or a Rejected saying what is wrong."""
    read = []
    for index, item in enumerate(items):
        serializer = serializer_class(data=item)
        if serializer.is_valid():
            read.append(to_input(index, serializer.validated_data))
        else:
            code = item.get(code_field) if isinstance(item, dict) else None
            read.append(Rejected(index, code if isinstance(code, str) else "", invalid_reason(serializer.errors)))
    return read


def summary_of(results: list[ItemResult]) -> dict[str, int]:
    counts = Counter(r.result for r in results)
    return {name: counts.get(name, 0) for name in SUMMARY_KEYS}


SUMMARY_KEYS = (Result.CREATED, Result.UPDATED, Result.UNCHANGED, Result.REMOVED, Result.REJECTED)


def outcome_body(outcome: BatchOutcome, *, mode: str) -> tuple[dict, int]:
    """The answer to a catalog or price batch, and its status: 200, or 422 when all-or-nothing refused it."""
    body: dict[str, Any] = {}
    status = 200
    if not outcome.written:
        status = 422
        body = {
            "code": "batch_rejected",
            "message": _("{count} items were rejected, so nothing was written (all or nothing).").format(
                count=outcome.rejected
            ),
        }
    body.update(
        {
            "mode": mode,
            "written": outcome.written,
            "summary": summary_of(outcome.results),
            "results": [
                {
                    "index": r.index,
                    "code": r.code,
                    "result": r.result,
                    **({"reason": {"code": r.reason.code, "message": r.reason.message}} if r.reason else {}),
                }
                for r in outcome.results
            ],
        }
    )
    return body, status


# --- for the schema ------------------------------------------------------------------------------


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()

    class Meta:
        ref_name = "ErpItemReason"


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's place in the request, from 0.")
    code = serializers.CharField(help_text="The item's product or SKU code, as sent.")
    result = serializers.ChoiceField(choices=[*SUMMARY_KEYS])
    reason = ReasonSerializer(required=False, help_text="Why it was rejected.")

    class Meta:
        ref_name = "ErpItemResult"


class SummarySerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    removed = serializers.IntegerField()
    rejected = serializers.IntegerField()

    class Meta:
        ref_name = "ErpBatchSummary"


class BatchOutcomeSerializer(serializers.Serializer):
    code = serializers.CharField(required=False, help_text="`batch_rejected` on a 422 only.")
    message = serializers.CharField(required=False)
    mode = serializers.ChoiceField(choices=[MODE_EACH, MODE_ALL_OR_NOTHING])
    written = serializers.BooleanField(help_text="False when all-or-nothing refused the batch: nothing changed.")
    summary = SummarySerializer()
    results = ItemResultSerializer(many=True)

    class Meta:
        ref_name = "ErpBatchOutcome"


class BatchRefusalSerializer(serializers.Serializer):
    """422: an all-or-nothing batch refused (`batch_rejected`, with every item's answer), or another 422 error."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField(required=False)
    mode = serializers.ChoiceField(choices=[MODE_EACH, MODE_ALL_OR_NOTHING], required=False)
    written = serializers.BooleanField(required=False)
    summary = SummarySerializer(required=False)
    results = ItemResultSerializer(many=True, required=False)

    class Meta:
        ref_name = "ErpBatchRefusal"
