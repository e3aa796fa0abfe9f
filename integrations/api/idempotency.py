"""`ErpWriteApi`: the base of every ERP endpoint that writes, with its `Idempotency-Key`.

Every POST, PUT, PATCH and DELETE must carry `Idempotency-Key: <1 to 255 visible ASCII characters>`
(a UUID does). After the key, the scope and the rate are checked, the key is claimed
(integrations.idempotency): a repeat gets the first answer again with `Idempotent-Replayed: true`,
a duplicate still running 409 `idempotency_in_progress` with `Retry-After`, the key on another
request 422 `idempotency_key_reused`. The handler then runs in one transaction with the storing
of its answer; 4xx answers are stored too (the same bad request gets the same answer), a 5xx or
an unexpected error releases the key. The tests require every write view of /api/v1/erp/ to be one.
"""

import contextlib
import re
from collections.abc import Callable

from django.db import transaction
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import idempotency
from integrations.api.views import ErpApi, erp_schema
from o2o.errors import ApplicationError
from orders.api.serializers import ErrorSerializer

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "1 to 255 visible ASCII characters, new for each new request (a UUID). Sent again with the same "
        "body, the first answer comes back with `Idempotent-Replayed: true`; with another body: 422 "
        "`idempotency_key_reused`; while the first is still running: 409 `idempotency_in_progress`. "
        "Kept 24 hours."
    ),
)


def erp_write_schema(*, parameters=(), responses: dict, **kwargs):
    """`erp_schema` for a write: the Idempotency-Key header and the answers it may bring."""
    return erp_schema(
        parameters=[IDEMPOTENCY_KEY_PARAMETER, *parameters],
        responses={400: ErrorSerializer, 409: ErrorSerializer, 422: ErrorSerializer, **responses},
        **kwargs,
    )


class _Replay(Exception):
    def __init__(self, answer: idempotency.StoredAnswer) -> None:
        self.answer = answer


def _idempotency_key(request: Request) -> str:
    raw = request.headers.get(HEADER)
    if raw is None or not raw.strip():
        raise ApplicationError(
            _("Send an Idempotency-Key header with every write (a new UUID for each new request)."),
            code="idempotency_key_required",
            details={"idempotency_key": [_("Required.")]},
        )
    key = raw.strip()
    if not KEY_PATTERN.fullmatch(key):
        raise ApplicationError(
            _("An Idempotency-Key is 1 to 255 visible ASCII characters."),
            code="invalid_idempotency_key",
            details={"idempotency_key": [_("1 to 255 visible ASCII characters.")]},
        )
    return key


def _body(response: Response) -> str:
    return JSONRenderer().render(response.data).decode() if response.data is not None else ""


class ErpWriteApi(ErpApi):
    """An ERP endpoint whose writes take an Idempotency-Key (see the module's docstring)."""

    # JSON bodies only: "the same body" is the same JSON data (anything else is 415 before the key is claimed).
    parser_classes = [JSONParser]
    _claim: idempotency.Claim | None = None

    def initial(self, request: Request, *args, **kwargs) -> None:
        self._claim = None
        super().initial(request, *args, **kwargs)  # the API key, the scope and the rate come first
        handler_name = request.method.lower()
        if request.method not in WRITE_METHODS or not hasattr(self, handler_name):
            return
        key = _idempotency_key(request)
        data = request.data  # parsed here: a malformed body is refused before the key is claimed
        digest = idempotency.request_digest(body=data, query=dict(request.query_params.lists()))
        outcome = idempotency.claim_idempotency_key(
            client=self.api_client, key=key, method=request.method, path=request.path, digest=digest
        )
        if isinstance(outcome, idempotency.StoredAnswer):
            raise _Replay(outcome)
        self._claim = outcome
        # DRF looks the handler up after initial(): this instance's handler runs in one transaction
        # with the storing of its answer.
        setattr(self, handler_name, self._answering_once(getattr(self, handler_name)))

    def _answering_once(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        def run(request: Request, *args, **kwargs) -> Response:
            with transaction.atomic():
                response = handler(request, *args, **kwargs)
                if response.status_code < 500:
                    claim, self._claim = self._claim, None
                    idempotency.complete_idempotent_request(
                        claim=claim, status=response.status_code, body=_body(response)
                    )
                else:
                    transaction.set_rollback(True)  # a 5xx answered without raising: undone, like a raise
            if self._claim is not None:  # … and the key released, so a retry runs again
                claim, self._claim = self._claim, None
                idempotency.release_idempotency_key(claim=claim)
            return response

        return run

    def handle_exception(self, exc: Exception):
        if isinstance(exc, _Replay):
            response = HttpResponse(exc.answer.body, status=exc.answer.status, content_type="application/json")
            response[REPLAYED_HEADER] = "true"
            return response
        claim, self._claim = self._claim, None
        try:
            response = super().handle_exception(exc)
        except BaseException:
            if claim is not None:
                idempotency.release_idempotency_key(claim=claim)
            raise
        if isinstance(exc, idempotency.IdempotencyInProgress):
            response["Retry-After"] = str(idempotency.RETRY_AFTER_SECONDS)
        if claim is not None:
            if response.status_code >= 500:
                idempotency.release_idempotency_key(claim=claim)
            else:
                # The write rolled back, so the refusal is stored on its own. If the claim was taken
                # over meanwhile, nothing was done here and the answer stands unstored.
                with contextlib.suppress(idempotency.IdempotencyInProgress):
                    idempotency.complete_idempotent_request(
                        claim=claim, status=response.status_code, body=_body(response)
                    )
        return response
