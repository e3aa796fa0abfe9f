"""The call log of /api/v1/erp/: one row per call, whatever its answer (401, 403, 429 and 500 included).

A middleware rather than a view hook, so that calls refused before any view runs (an unknown
URL under /api/v1/erp/, an unexpected error) are logged too. One INSERT per call.
"""

import logging
import time

from django.db import DatabaseError

from integrations.api.authentication import presented_prefix
from integrations.models import ApiClient
from integrations.services import record_api_call

PATH_PREFIX = "/api/v1/erp/"
logger = logging.getLogger(__name__)


class ApiCallLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(PATH_PREFIX):
            return self.get_response(request)
        started = time.monotonic()
        response = self.get_response(request)
        duration_ms = round((time.monotonic() - started) * 1000)
        client = getattr(request, "auth", None)  # DRF sets it on the Django request too
        match = getattr(request, "resolver_match", None)
        try:
            record_api_call(
                client_id=client.pk if isinstance(client, ApiClient) else None,
                key_prefix=presented_prefix(request),
                method=request.method or "",
                endpoint=(match.route if match else "") or request.path,
                path=request.path,
                status_code=response.status_code,
                duration_ms=duration_ms,
            )
        except DatabaseError:
            # The answer is already made; a lost log row must not turn it into an error.
            logger.exception("could not log the API call %s %s", request.method, request.path)
        return response
