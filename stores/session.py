"""The store a shopper chose in this browser (by location, the chooser or a QR code)."""

from django.http import HttpRequest

from stores.models import Store

CHOSEN_STORE_SESSION_KEY = "mall_store_id"


def chosen_store(request: HttpRequest) -> Store | None:
    """The chosen store, if it is still active."""
    store_id = request.session.get(CHOSEN_STORE_SESSION_KEY)
    if not store_id:
        return None
    return Store.objects.filter(pk=store_id, is_active=True).first()


def choose_store(request: HttpRequest, store: Store) -> None:
    request.session[CHOSEN_STORE_SESSION_KEY] = store.pk
