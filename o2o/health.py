"""Liveness for load balancers and the compose health check: the database and cache answer."""

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def healthz(request) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure, never raise
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        cache.set("healthz", "ok", 5)
        checks["cache"] = "ok" if cache.get("healthz") == "ok" else "error: no round trip"
    except Exception as exc:  # noqa: BLE001
        checks["cache"] = f"error: {exc.__class__.__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)


class HealthCheckMiddleware:
    """Answers /healthz before host validation and HTTPS redirects.

    Probes call the container by its internal address over plain HTTP, which
    ALLOWED_HOSTS and SECURE_SSL_REDIRECT would rightly refuse for real traffic.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return healthz(request)
        return self.get_response(request)
