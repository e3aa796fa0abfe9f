"""Test settings: PostgreSQL and Redis on localhost when they answer, else SQLite and local memory.

`DATABASE_URL` / `REDIS_URL` override the probe. With O2O_REQUIRE_SERVICES=1 a
missing service is an error instead of a fallback (CI sets it). The choice and
its reason are printed in pytest's header (tests/conftest.py).
"""

import os
import socket

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

_REQUIRE = os.environ.get("O2O_REQUIRE_SERVICES") == "1"
SERVICE_NOTES: list[str] = []


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _postgres_url() -> str | None:
    if "DATABASE_URL" in os.environ:
        return os.environ["DATABASE_URL"]
    if not _answers("localhost", 5432):
        return None
    try:
        import psycopg2

        psycopg2.connect(host="localhost", dbname="postgres", user="postgres", connect_timeout=2).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        SERVICE_NOTES.append(f"PostgreSQL answers on localhost but refused us: {exc}".strip())
        return None
    return "postgres://postgres@localhost:5432/o2o"


def _redis_url() -> str | None:
    if "REDIS_URL" in os.environ:
        return os.environ["REDIS_URL"] or None
    return "redis://localhost:6379/15" if _answers("localhost", 6379) else None


_db = _postgres_url()
_redis = _redis_url()
if _db is None:
    SERVICE_NOTES.append("PostgreSQL not reachable on localhost:5432: using SQLite; PostgreSQL-only tests are skipped.")
if _redis is None:
    SERVICE_NOTES.append(
        "Redis not reachable on localhost:6379: using the local-memory cache; Redis tests are skipped."
    )
if _REQUIRE and (_db is None or _redis is None):
    raise ImproperlyConfigured("O2O_REQUIRE_SERVICES=1 but: " + " ".join(SERVICE_NOTES))

os.environ["DATABASE_URL"] = _db or "sqlite:///:memory:"
os.environ["REDIS_URL"] = _redis or ""
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

from o2o.settings import *  # noqa: E402,F403
from o2o.settings import DATABASES, REDIS_URL  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": None}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SECURE_SSL_REDIRECT = False
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Tests send webhooks by calling the sweeper themselves, never as a side effect of a commit.
O2O_WEBHOOK_DELIVER_ON_COMMIT = False
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"o2o-test-{os.getpid()}",
        }
    }
