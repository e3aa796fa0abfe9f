"""Settings for the O2O chain-store backend.

Every setting comes from an environment variable. The defaults are the embedded
development mode (SQLite under var/, kombu's filesystem broker, local-memory
cache); production sets DJANGO_DEBUG=0 and must then provide a secret key and
allowed hosts, which have no default.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from o2o import beat

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
VAR_DIR = Path(env.str("O2O_VAR_DIR", default=str(BASE_DIR / "var")))

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="development-only-secret-key-never-use-in-production")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
else:
    try:
        SECRET_KEY = env.str("DJANGO_SECRET_KEY")
        ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            f"{exc}. With DJANGO_DEBUG off (production), DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS are required; "
            "set DJANGO_DEBUG=1 for development."
        ) from exc
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    # The project's apps, in their dependency order (each may import only those above it).
    "stores",
    "inventory",
    "members",
    "orders",
    "commissions",
    "integrations",
]

MIDDLEWARE = [
    "o2o.health.HealthCheckMiddleware",
    # Logs every call to /api/v1/erp/ with its answer and duration; other paths pass straight through.
    "integrations.api.middleware.ApiCallLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "o2o.urls"
WSGI_APPLICATION = "o2o.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "o2o.context_processors.chain",
                "members.context_processors.member",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'o2o.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded demo: web and worker share one file, so writers queue instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

# Users are in mainland China: Chinese first, English on request; CNY; Beijing time.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="o2o@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security: strict unless DEBUG; `manage.py check --deploy` is clean with production variables.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "o2o.api.pagination.PageNumberPagination",
    "EXCEPTION_HANDLER": "o2o.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "O2O chain-store API",
    "DESCRIPTION": (
        "Stores, catalog and stock of the chain; the shopper's and the clerk console's APIs; and the "
        "ERP/POS open API under `/api/v1/erp/`, signed with an API key that HQ issues (tag `erp`). "
        "Errors are JSON objects with a stable `code`, a human `message` and, for invalid input, "
        "per-field `details`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from this site: the docs must load inside mainland-China networks, so no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets answer to a field named `status`: each keeps a stable component name.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "integrations.api.views_orders.ORDER_STATUS_CHOICES",
        "ErpFulfilmentStepEnum": "integrations.api.views_orders.FULFILMENT_STEP_CHOICES",
    },
}

# Celery: Redis in production; kombu's filesystem transport for the embedded demo.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Periodic jobs (sweepers, sync): the whole schedule is in o2o/beat.py.
CELERY_BEAT_SCHEDULE = beat.BEAT_SCHEDULE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# WeChat official account (web sign-in, JS-SDK) and WeChat Pay API v3. Unset: the demo's
# development sign-in and payment stand in (only with DJANGO_DEBUG=1).
WECHAT_APP_ID = env.str("WECHAT_APP_ID", default="")
WECHAT_APP_SECRET = env.str("WECHAT_APP_SECRET", default="")
# Template message ids of the official account (模板消息), by purpose; empty: no message is sent.
WECHAT_TEMPLATES = {
    "new_order": env.str("WECHAT_TEMPLATE_NEW_ORDER", default=""),
    "order_status": env.str("WECHAT_TEMPLATE_ORDER_STATUS", default=""),
    # Marketing campaigns: "first" is the campaign's title, keyword1 its text, keyword2 the sender.
    "campaign": env.str("WECHAT_TEMPLATE_CAMPAIGN", default=""),
}
# Text messages: a dotted path to an integrations.vendors.sms.SmsBackend. The default only logs
# them (development); production names its provider's backend.
SMS_BACKEND = env.str("SMS_BACKEND", default="integrations.vendors.sms.LoggingSmsBackend")
WECHAT_PAY_MCH_ID = env.str("WECHAT_PAY_MCH_ID", default="")
WECHAT_PAY_PRIVATE_KEY = env.str("WECHAT_PAY_PRIVATE_KEY", default="", multiline=True)
WECHAT_PAY_CERT_SERIAL_NO = env.str("WECHAT_PAY_CERT_SERIAL_NO", default="")
WECHAT_PAY_APIV3_KEY = env.str("WECHAT_PAY_APIV3_KEY", default="")
WECHAT_PAY_PUBLIC_KEY = env.str("WECHAT_PAY_PUBLIC_KEY", default="", multiline=True)
WECHAT_PAY_PUBLIC_KEY_ID = env.str("WECHAT_PAY_PUBLIC_KEY_ID", default="")
WECHAT_PAY_NOTIFY_URL = env.str("WECHAT_PAY_NOTIFY_URL", default="")
O2O_DEVELOPMENT_PAYMENTS = env.bool("O2O_DEVELOPMENT_PAYMENTS", default=DEBUG)

# Business settings that HQ sets per deployment.
O2O_CHAIN_NAME = env.str("O2O_CHAIN_NAME", default="贝恩母婴")
# The mall's public address: printed QR codes (stores, products, guides) point here.
O2O_PUBLIC_URL = env.str("O2O_PUBLIC_URL", default="http://localhost:8000").rstrip("/")
O2O_NEAREST_STORES_MAX = 100  # the most stores one nearest-store query returns
O2O_MAX_DELIVERY_RADIUS_KM = 50  # also a database constraint on Store
# Days the ERP API's call log is kept (integrations.ApiCall), pruned nightly.
O2O_API_CALL_LOG_DAYS = env.int("O2O_API_CALL_LOG_DAYS", default=90)

# Webhooks (docs/webhooks.md). Plain http only to a loopback host, and only when this is on.
O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK = env.bool("O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK", default=DEBUG)
O2O_WEBHOOK_TIMEOUT_SECONDS = env.float("O2O_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# After failed attempt n: a random wait in [0, min(cap, base × 2^(n-1))); dead after the last attempt.
O2O_WEBHOOK_BACKOFF_BASE_SECONDS = env.float("O2O_WEBHOOK_BACKOFF_BASE_SECONDS", default=5.0)
O2O_WEBHOOK_BACKOFF_CAP_SECONDS = env.float("O2O_WEBHOOK_BACKOFF_CAP_SECONDS", default=3600.0)
O2O_WEBHOOK_MAX_ATTEMPTS = env.int("O2O_WEBHOOK_MAX_ATTEMPTS", default=12)
# Send a new delivery as soon as its transaction commits (else the beat sweeper takes it within 10 s).
O2O_WEBHOOK_DELIVER_ON_COMMIT = env.bool("O2O_WEBHOOK_DELIVER_ON_COMMIT", default=True)
# The most SKUs one stock.changed event lists; a store with more changes gets several events.
O2O_WEBHOOK_STOCK_MAX_SKUS = env.int("O2O_WEBHOOK_STOCK_MAX_SKUS", default=5000)

# A TrueType/OpenType font with Chinese glyphs for promoters' posters (a path; .ttc collections
# work). Empty or missing: a Noto CJK or WenQuanYi font found on the system, else Pillow's own.
O2O_POSTER_FONT = env.str("O2O_POSTER_FONT", default="")
