"""Database helpers shared by the apps' services."""

from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, transaction
from django.db.models import BigIntegerField, Func
from django.utils.deconstruct import deconstructible

T = TypeVar("T")

DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE for a deadlock it broke
ATTEMPTS = 3


def atomic_with_deadlock_retry(work: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """Run `work` in a transaction; if PostgreSQL breaks a deadlock by stopping it, run it again.

    For work that must lock rows of several stores whose order cannot be fixed in advance
    (re-dispatching an order releases stock at one store and reserves it at another). The
    stopped transaction rolled back completely, so running it again is safe. Must be the
    outermost transaction: inside another one, the rollback would take the caller's work too.
    """
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return work()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return work()
        except OperationalError as error:
            if attempt == attempts or getattr(error.__cause__, "pgcode", None) != DEADLOCK_DETECTED:
                raise
    raise AssertionError("unreachable")


@deconstructible(path="o2o.db.CurrentTransactionId")
class CurrentTransactionId(Func):
    """The id of the writing transaction, as a column's database default (`db_default`).

    On PostgreSQL, `pg_current_xact_id()` (the top-level transaction's 64-bit id, from savepoints
    too): a reader can then tell which rows are final, since every transaction with a smaller id
    than the oldest one still running has ended. Elsewhere (SQLite: one writer at a time, so rows
    commit in the order of their ids) it is 0.
    """

    output_field = BigIntegerField()
    arity = 0

    def as_sql(self, compiler, connection, **extra_context):
        return "0", []

    def as_postgresql(self, compiler, connection, **extra_context):
        return "(pg_current_xact_id()::text::bigint)", []
