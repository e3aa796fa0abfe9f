"""How we talk to an ERP that cannot call us: the connector interface and the generic REST/JSON connector.

A connector only speaks HTTP and translates the ERP's JSON into our inputs (`inventory.sync`'s
PriceInput, SnapshotRow) through the connection's field mapping; it writes nothing. Every failure
it meets — a refused connection, a timeout, a non-2xx status, a payload that is not what the
contract says — is raised as `ConnectorError` with a message fit for the run's error list (never
the token). The services in `integrations.sync` decide what a failure means for a run.
The ERP-side contract is in docs/erp-sync.md.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from integrations.models import ErpConnection
from inventory.sync import PriceInput, Reason, Rejected, SnapshotRow
from o2o.money import fen_to_yuan, yuan_to_fen


class ConnectorError(Exception):
    """The ERP could not be read or written this time; the message says why, for HQ."""


@dataclass(frozen=True)
class Page:
    """One page the ERP answered: its items, where to continue, and whether there is more now."""

    items: list[Any]
    next_cursor: str
    done: bool


@dataclass(frozen=True)
class StockCount:
    """One store's count as the ERP took it: the rows of a stock page."""

    store_code: str
    taken_at: datetime
    rows: list[SnapshotRow]


@dataclass(frozen=True)
class OrderPush:
    """One order event sent to the ERP: the order and whether it was paid or completed."""

    number: str
    event: str  # "paid" | "completed"
    payload: dict[str, Any]


@dataclass(frozen=True)
class PushResult:
    number: str
    accepted: bool
    error: str = ""


@dataclass
class Connector(abc.ABC):
    """What a sync job needs from an ERP; one subclass per kind of connection."""

    connection: ErpConnection
    mapping: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.mapping = self.connection.field_mapping

    @abc.abstractmethod
    def fetch_prices(self, cursor: str) -> Page:
        """The page of price changes after `cursor`: items are PriceInput or Rejected."""

    @abc.abstractmethod
    def fetch_stock(self, cursor: str) -> Page:
        """The page of stock counts after `cursor`: items are StockCount (usually one)."""

    @abc.abstractmethod
    def push_orders(self, orders: list[OrderPush]) -> list[PushResult]:
        """Send a batch of order events; one result per order, accepted or rejected with the ERP's reason."""


def connector_for(connection: ErpConnection) -> Connector:
    kinds = {ErpConnection.Kind.REST_JSON: RestJsonConnector}
    return kinds[connection.kind](connection)


class RestJsonConnector(Connector):
    """GET `{base_url}{prices_path}?cursor=…`, GET `{base_url}{stock_path}?cursor=…`, POST `{base_url}{orders_path}`."""

    # --- HTTP -------------------------------------------------------------------------------------

    def _url(self, path_key: str) -> str:
        return self.connection.base_url.rstrip("/") + self.mapping[path_key]

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.connection.auth_token:
            headers[self.connection.auth_header] = self.connection.auth_token
        return headers

    def _call(self, method: str, path_key: str, **kwargs) -> Any:
        url = self._url(path_key)
        try:
            response = requests.request(
                method, url, headers=self._headers(), timeout=self.connection.timeout_seconds, **kwargs
            )
        except requests.Timeout:
            raise ConnectorError(
                _("{method} {url}: no answer within {seconds} s.").format(
                    method=method, url=url, seconds=self.connection.timeout_seconds
                )
            ) from None
        except requests.RequestException as error:
            # The exception's text names the URL and the cause, never the headers.
            raise ConnectorError(
                _("{method} {url}: {kind}.").format(method=method, url=url, kind=type(error).__name__)
            ) from None
        if not 200 <= response.status_code < 300:
            raise ConnectorError(
                _("{method} {url}: HTTP {status}.").format(method=method, url=url, status=response.status_code)
            )
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(_("{method} {url}: the answer is not JSON.").format(method=method, url=url)) from None

    def _page(self, path_key: str, cursor: str) -> tuple[dict, str, bool]:
        params = {self.mapping["cursor_param"]: cursor} if cursor else {}
        body = self._call("GET", path_key, params=params)
        if not isinstance(body, dict):
            raise ConnectorError(_("The page is not a JSON object."))
        next_cursor = body.get(self.mapping["next_cursor"])
        done = body.get(self.mapping["done"])
        if next_cursor is None or not isinstance(next_cursor, str | int) or not isinstance(done, bool):
            raise ConnectorError(
                _("The page lacks {next_cursor} (text) or {done} (true/false).").format(
                    next_cursor=self.mapping["next_cursor"], done=self.mapping["done"]
                )
            )
        return body, str(next_cursor), done

    # --- money ------------------------------------------------------------------------------------

    def to_fen(self, value: Any) -> int:
        """The ERP's amount in fen, exactly; ValueError when it is not a valid amount."""
        if isinstance(value, bool) or value is None:
            raise ValueError("not an amount")
        if self.mapping["price_unit"] == "yuan":
            if isinstance(value, float):
                value = repr(value)  # 12.3 → "12.3", never 12.2999…
            try:
                return yuan_to_fen(Decimal(str(value)))
            except InvalidOperation:
                raise ValueError("not an amount") from None
        if not isinstance(value, int):
            raise ValueError("fen are whole numbers")
        return value

    def from_fen(self, fen: int) -> int | str:
        return str(fen_to_yuan(fen)) if self.mapping["price_unit"] == "yuan" else fen

    # --- prices -----------------------------------------------------------------------------------

    def fetch_prices(self, cursor: str) -> Page:
        body, next_cursor, done = self._page("prices_path", cursor)
        raw = body.get(self.mapping["items"])
        if not isinstance(raw, list):
            raise ConnectorError(_("The page lacks the list {items}.").format(items=self.mapping["items"]))
        return Page([self._price(index, item) for index, item in enumerate(raw)], next_cursor, done)

    def _price(self, index: int, item: Any) -> PriceInput | Rejected:
        m = self.mapping
        if not isinstance(item, dict):
            return Rejected(index, "", Reason("invalid", _("An item is not a JSON object.")))
        code = item.get(m["sku_code"])
        if not isinstance(code, str) or not code:
            return Rejected(index, "", Reason("invalid", _("{field} is missing.").format(field=m["sku_code"])))
        store_code = item.get(m["store_code"])
        if store_code is not None and not isinstance(store_code, str):
            return Rejected(index, code, Reason("invalid", _("{field} is text.").format(field=m["store_code"])))
        price = item.get(m["price_fen"])
        if price is None and store_code:
            return PriceInput(index, code, store_code, None)  # the store's own price removed
        try:
            fen = self.to_fen(price)
        except ValueError:
            return Rejected(
                index, code, Reason("invalid_price", _("{field} is not a valid amount.").format(field=m["price_fen"]))
            )
        if fen < 0:
            return Rejected(index, code, Reason("invalid_price", _("A price is not negative.")))
        return PriceInput(index, code, store_code or None, fen)

    # --- stock ------------------------------------------------------------------------------------

    def fetch_stock(self, cursor: str) -> Page:
        body, next_cursor, done = self._page("stock_path", cursor)
        raw = body.get(self.mapping["items"])
        if raw is None:  # a page may also be one count itself
            raw = [body] if self.mapping["rows"] in body else []
        if not isinstance(raw, list):
            raise ConnectorError(_("The page lacks the list {items}.").format(items=self.mapping["items"]))
        return Page([self._count(item) for item in raw], next_cursor, done)

    def _count(self, item: Any) -> StockCount:
        m = self.mapping
        if not isinstance(item, dict):
            raise ConnectorError(_("A stock count is not a JSON object."))
        store_code = item.get(m["store_code"])
        taken_at = parse_datetime(str(item.get(m["taken_at"]) or ""))
        rows = item.get(m["rows"])
        if not isinstance(store_code, str) or not store_code:
            raise ConnectorError(_("A stock count lacks {field}.").format(field=m["store_code"]))
        if taken_at is None or taken_at.tzinfo is None:
            raise ConnectorError(_("A stock count lacks {field} with its offset.").format(field=m["taken_at"]))
        if not isinstance(rows, list):
            raise ConnectorError(_("A stock count lacks the list {field}.").format(field=m["rows"]))
        parsed = []
        for index, row in enumerate(rows):
            code = row.get(m["sku_code"]) if isinstance(row, dict) else None
            on_hand = row.get(m["on_hand"]) if isinstance(row, dict) else None
            if not isinstance(code, str) or not isinstance(on_hand, int) or isinstance(on_hand, bool) or on_hand < 0:
                raise ConnectorError(
                    _("Row {index} of {store}'s count needs {sku} and a whole {on_hand} ≥ 0.").format(
                        index=index, store=store_code, sku=m["sku_code"], on_hand=m["on_hand"]
                    )
                )
            parsed.append(SnapshotRow(index, code, on_hand))
        return StockCount(store_code, taken_at, parsed)

    # --- orders -----------------------------------------------------------------------------------

    def push_orders(self, orders: list[OrderPush]) -> list[PushResult]:
        m = self.mapping
        body = self._call("POST", "orders_path", json={"orders": [order.payload for order in orders]})
        raw = body.get(m["results"]) if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise ConnectorError(_("The answer lacks the list {field}.").format(field=m["results"]))
        answered: dict[str, PushResult] = {}
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get(m["order_number"]), str):
                raise ConnectorError(_("A result lacks {field}.").format(field=m["order_number"]))
            number = item[m["order_number"]]
            accepted = item.get(m["accepted"]) is True
            answered[number] = PushResult(number, accepted, "" if accepted else str(item.get(m["error"]) or "")[:300])
        missing = [order.number for order in orders if order.number not in answered]
        if missing:
            # Not answered is not refused: the batch is sent again next run (the ERP must take a
            # repeat as already done; see docs/erp-sync.md).
            raise ConnectorError(_("No result for orders {numbers}.").format(numbers=", ".join(missing[:10])))
        return [answered[order.number] for order in orders]
