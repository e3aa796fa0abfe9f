"""Reads of the ERP/POS API: what a client may see of stores and members.

A client restricted to some stores sees every other store as missing (404, the same answer as
for a store that does not exist), as a clerk sees another store's order. Members are one
membership for the whole chain, so a member is found wherever the client's store is.
"""

from django.db.models import Exists, OuterRef, QuerySet

from integrations.models import ApiClient
from inventory.models import Stock
from members.models import FollowUp, Member
from members.selectors import calls_of_the_day
from stores.models import Store


def stores_visible_to(client: ApiClient) -> QuerySet[Store]:
    """Active stores the client may touch: its own list, or every store when the list is empty."""
    through = ApiClient.stores.through.objects.filter(apiclient_id=client.pk)
    # One query either way: allowed if listed, or if the client lists no store at all.
    return Store.objects.filter(is_active=True).filter(
        Exists(through.filter(store_id=OuterRef("pk"))) | ~Exists(through)
    )


def is_store_restricted(client: ApiClient) -> bool:
    """Whether the client is limited to a list of stores (it may then not touch HQ-wide data such as HQ prices)."""
    return ApiClient.stores.through.objects.filter(apiclient_id=client.pk).exists()


def client_store(client: ApiClient, code: str) -> Store | None:
    """The store with this code if the client may touch it; None (a 404) otherwise."""
    return stores_visible_to(client).filter(code=code).first()


def open_members() -> QuerySet[Member]:
    """Members the POS may serve: active and not closed."""
    return Member.objects.filter(is_active=True, closed_at__isnull=True).select_related("home_store")


def member_by_phone(phone: str) -> Member | None:
    """The open member with this normalised number (+86…), if any."""
    return open_members().filter(phone=phone).first()


def open_member(member_id: int) -> Member | None:
    # An id beyond the bigint range matches nothing (Django answers an empty result, not an error).
    return open_members().filter(pk=member_id).first()


def store_calls_of_the_day(store: Store, day) -> QuerySet[FollowUp]:
    """The store's open calls due on `day` or overdue, with member, product and guide in the same query."""
    return calls_of_the_day(store, day).select_related("guide")


def store_stock(store: Store, *, sku_codes: list[str]) -> QuerySet[Stock]:
    """A store's stock rows by SKU code, optionally only those codes, with store and SKU in the same query."""
    rows = Stock.objects.filter(store=store).select_related("store", "sku").order_by("sku__code")
    return rows.filter(sku__code__in=sku_codes) if sku_codes else rows
