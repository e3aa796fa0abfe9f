import pytest
from django.conf import settings
from django.db import connection
from hypothesis import settings as hypothesis_settings

# Properties are checked, never timed: a busy machine must not fail an example for its speed.
hypothesis_settings.register_profile("o2o", deadline=None)
hypothesis_settings.load_profile("o2o")


def pytest_report_header(config):
    from o2o import settings_test

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    lines = [f"o2o: database={engine} cache={settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}"]
    return lines + [f"o2o: {note}" for note in settings_test.SERVICE_NOTES]


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (row locks, real concurrency); skipped on SQLite")
    config.addinivalue_line("markers", "redis: needs Redis; skipped without it")
    config.addinivalue_line("markers", "browser: drives headless Chromium; skipped when it is not installed")
    # whitenoise warns that collectstatic has not run; tests never serve static files.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


def pytest_collection_modifyitems(config, items):
    on_postgres = connection.vendor == "postgresql"
    has_redis = bool(settings.REDIS_URL)
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL; this run uses SQLite (see the header)"))
        if "redis" in item.keywords and not has_redis:
            item.add_marker(pytest.mark.skip(reason="needs Redis; none reachable (see the header)"))


@pytest.fixture(autouse=True)
def _english_messages(settings):
    """Assertions read messages in English unless a test switches language itself."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient(HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def client():
    """pytest-django's client, asking for English so assertions read one language (zh-hans is the default)."""
    from django.test import Client

    return Client(HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def hq_user(db):
    """An HQ account: Django staff (not a superuser), no store of its own."""
    from tests.factories import UserFactory

    return UserFactory(username="hq", is_staff=True)


@pytest.fixture
def clerk(db):
    """A clerk of one store (their Staff row; the user is clerk.user)."""
    from tests.factories import StaffFactory, StoreFactory, UserFactory

    return StaffFactory(store=StoreFactory(code="WS", name="文三路店"), user=UserFactory(username="ws-clerk"))


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's admin client, in English like `client`."""
    from django.test import Client

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(admin_user)
    return client


@pytest.fixture(autouse=True)
def _fresh_cached_rules():
    """Rules cached across requests (HQ's checkout and points settings) must not leak from one test's database
    to the next."""
    from commissions.selectors import forget_commission_settings
    from members.selectors import forget_campaign_settings, forget_loyalty_settings
    from orders.selectors import forget_mall_settings

    forgets = (forget_mall_settings, forget_loyalty_settings, forget_commission_settings, forget_campaign_settings)
    for forget in forgets:
        forget()
    yield
    for forget in forgets:
        forget()
