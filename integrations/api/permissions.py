"""What an authenticated client may call, and how often.

`HasScope`: each view declares `required_scope`; a client without it gets 403 `missing_scope`,
and a view that forgot to declare one refuses everyone. `ClientRateThrottle`: the client's own
calls-per-minute, counted in Django's cache (Redis in production, local memory in the demo);
beyond it, 429 `rate_limited` with `Retry-After`.
"""

import time

from django.core.cache import cache
from django.utils.translation import gettext as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from integrations.models import ApiClient, Scope

WINDOW_SECONDS = 60


class HasScope(BasePermission):
    code = "missing_scope"

    def has_permission(self, request: Request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return False  # no key: the view answers 401 `missing_api_key`
        scope = getattr(view, "required_scope", None)
        if scope not in Scope.values:
            self.message = _("This endpoint is not open to API clients.")
            return False
        if not client.has_scope(scope):
            self.message = _("This API key lacks the scope {scope}.").format(scope=scope)
            return False
        return True


class ClientRateThrottle(BaseThrottle):
    """A fixed one-minute window per client: one atomic cache increment per call.

    Atomic with Redis and with the local-memory cache alike, so concurrent calls cannot all
    slip under the limit. A window may meet the next one's burst at its edge (at most twice
    the rate over any 60 seconds), which is the price of one cache operation per call.
    """

    def allow_request(self, request: Request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return True  # unauthenticated calls were refused before throttling
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"erp-rate:{client.pk}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
            count = 1
        self._wait = WINDOW_SECONDS - (now % WINDOW_SECONDS)
        return count <= client.rate_limit_per_minute

    def wait(self) -> float:
        return max(self._wait, 1.0)
