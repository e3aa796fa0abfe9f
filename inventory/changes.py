"""The stock change cursor: which stock rows changed since a reader last looked, none missed.

Every stock change stamps the row with the database transaction that made it
(`Stock.change_txid`). Transaction ids are handed out when a transaction first writes,
not when it commits, so a plain "ids greater than the last one seen" would skip a
transaction that started earlier and committed later. A reader therefore only takes rows
stamped below the **horizon**: the oldest transaction still running (its own excepted).
Everything below it has committed or rolled back, so nothing can appear there later, and
the cursor (the last (txid, row id) handed out) moves forward without gaps. A change that
commits late is not lost, only shown once its transaction has ended; a very long
transaction holds the horizon back for everybody until it ends.

SQLite (the embedded demo) runs one writer at a time, so a counter (the largest stamp
plus one) is in commit order and every committed row is below the horizon.
"""

import base64
import binascii
from dataclasses import dataclass

from django.db import connection

from inventory.models import Stock

_TABLE = Stock._meta.db_table
# The oldest transaction still running in this database, other than the reader's own, or the
# next id to be handed out when none is. Transaction ids are the whole server's, and a
# transaction in another database cannot write these rows, so only this database's count
# (pg_stat_activity; the 32-bit id there is the low half of the 64-bit one). The reader's own
# transaction counts as finished: it sees its own rows. pg_stat_clear_snapshot() first, so a
# reader inside a longer transaction does not read backends as they were at its start.
_HORIZON_SQL = """
WITH s AS (SELECT txid_current_snapshot() AS snap, txid_current_if_assigned() AS own),
running AS (
    SELECT backend_xid::text::bigint AS xid32 FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
)
SELECT LEAST(
    (SELECT MIN(x) FROM txid_snapshot_xip(s.snap) AS x
     WHERE x IS DISTINCT FROM s.own AND x % 4294967296 IN (SELECT xid32 FROM running)),
    GREATEST(txid_snapshot_xmax(s.snap), COALESCE(s.own + 1, 0))
) FROM s
"""


def stamp_sql() -> str:
    """The SQL value a stock UPDATE sets `change_txid` to (no user input reaches it)."""
    if connection.vendor == "postgresql":
        return "txid_current()"
    return f"(SELECT COALESCE(MAX(change_txid), 0) + 1 FROM {_TABLE})"  # noqa: S608 - the model's table


def horizon() -> int | None:
    """Every stock change stamped below this has committed (or rolled back) for good; None: every one has (SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(_HORIZON_SQL)
        return int(cursor.fetchone()[0])


@dataclass(frozen=True, order=True)
class ChangeCursor:
    """A position in the stream of stock changes: after row `row_id` of transaction `txid`."""

    txid: int = -1
    row_id: int = 0

    def encode(self) -> str:
        raw = f"1:{self.txid}:{self.row_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "ChangeCursor | None":
        """The cursor a client sent back, or None if it is not one of ours."""
        if not text:
            return cls()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            version, txid, row_id = raw.split(":")
            cursor = cls(int(txid), int(row_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if version != "1" or cursor.txid < -1 or cursor.row_id < 0 or cursor.txid >= 2**63 or cursor.row_id >= 2**63:
            return None
        return cursor
