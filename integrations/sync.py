"""Scheduled sync with ERPs that cannot call us: pull prices and stock counts, push paid and completed orders.

A run goes page by page. Each page is fetched (or, for orders, pushed) with no transaction
open; then one transaction locks the job row, applies the page through `inventory.sync`,
moves the job's cursor past it and writes the run's counts. So the cursor always names the
last page whose writes committed: a run that fails (HTTP error, timeout, a payload not in the
contract) ends `failed` with the reason, and the next run starts where it stopped, applying
nothing twice. One run of a job at a time: starting locks the job row and a partial unique
index allows one `running` run per job; a second start is recorded as `skipped`.
Design and the ERP-side contract: docs/erp-sync.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.connectors import Connector, ConnectorError, OrderPush, Page, connector_for
from integrations.models import ErpConnection, SyncJob, SyncRun
from inventory.sync import Result, apply_stock_snapshot, set_prices
from o2o.errors import ApplicationError, NotFound
from orders.models import Order, OrderEvent
from stores.models import Store

logger = logging.getLogger(__name__)

MAX_ERRORS = 50
MAX_ERROR_LENGTH = 500
ORDER_BATCH_SIZE = 50
# A run that has shown no progress for this long was lost with its worker; the next start ends it.
ABANDONED_AFTER = timedelta(minutes=15)
# One run stops taking pages after this long (and succeeds); the task starts the next run at once.
RUN_BUDGET = timedelta(seconds=45)
# Order events are read this long after they were written: an event id handed out earlier may
# commit later than a bigger one, and the cursor (the last event id pushed) must not pass it.
EVENT_SETTLE = timedelta(seconds=30)
DUE_SLACK = timedelta(seconds=5)

# The order events an ERP is told of: paid (pickup → paid, delivery → awaiting dispatch) and completed.
_PAID = Q(from_status=Order.Status.PENDING_PAYMENT, to_status__in=[Order.Status.PAID, Order.Status.AWAITING_DISPATCH])
_COMPLETED = Q(to_status=Order.Status.COMPLETED)


@dataclass(frozen=True)
class RunOutcome:
    run: SyncRun
    more: bool = False  # stopped by its time budget with pages left


# --- starting and finishing ---------------------------------------------------------------------


def start_run(*, job_id: int, trigger: str, at: datetime | None = None) -> SyncRun:
    """Open a `running` run of the job, or record a `skipped` one if another is running.

    A running run that has shown no progress for ABANDONED_AFTER was lost with its worker: it
    is closed as failed and this run starts from the job's cursor, which it never passed.
    """
    now = at or timezone.now()
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFound(_("No such sync job."), code="sync_job_not_found")
        running = SyncRun.objects.filter(job=job, status=SyncRun.Status.RUNNING).first()
        if running is not None and running.heartbeat_at < now - ABANDONED_AFTER:
            _close(running, SyncRun.Status.FAILED, now, error=_("Abandoned: no progress since the last page."))
            running = None
        if running is not None:
            return SyncRun.objects.create(
                job=job,
                trigger=trigger,
                status=SyncRun.Status.SKIPPED,
                started_at=now,
                finished_at=now,
                duration_ms=0,
                cursor_from=job.cursor,
                cursor_to=job.cursor,
                errors=[_("Run {id} of this job is still running.").format(id=running.pk)],
            )
        job.last_run_at = now
        job.save(update_fields=["last_run_at"])
        try:
            with transaction.atomic():
                return SyncRun.objects.create(
                    job=job,
                    trigger=trigger,
                    started_at=now,
                    heartbeat_at=now,
                    cursor_from=job.cursor,
                    cursor_to=job.cursor,
                )
        except IntegrityError:  # the job row lock makes this unreachable; the index stays the last line
            raise ApplicationError(_("This job is already running."), code="sync_running", status=409) from None


def _close(run: SyncRun, status: str, now: datetime, *, error: str = "") -> None:
    run.status = status
    run.finished_at = now
    run.duration_ms = max(int((now - run.started_at).total_seconds() * 1000), 0)
    if error:
        _add_errors(run, [error])
    run.save(update_fields=["status", "finished_at", "duration_ms", "errors"])


def _add_errors(run: SyncRun, messages: list[str]) -> None:
    room = MAX_ERRORS - len(run.errors)
    if room <= 0 or not messages:
        return
    extra = [m[:MAX_ERROR_LENGTH] for m in messages[:room]]
    if len(messages) > room:
        extra[-1] = _("… and more errors (only the first {count} are kept).").format(count=MAX_ERRORS)
    run.errors = [*run.errors, *extra]


def finish_run(*, run_id: int, error: str = "", at: datetime | None = None) -> SyncRun:
    """End a running run: failed with `error` if one is given, else succeeded."""
    now = at or timezone.now()
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run_id)
        if run.status == SyncRun.Status.RUNNING:
            _close(run, SyncRun.Status.FAILED if error else SyncRun.Status.SUCCEEDED, now, error=error)
    return run


# --- one page, committed -------------------------------------------------------------------------


def _commit_page(run_id: int, next_cursor: str, apply: Callable[[SyncJob, SyncRun], None]) -> SyncRun:
    """In one transaction: apply the page, move the job's cursor past it, count it in the run."""
    with transaction.atomic():
        job_id = SyncRun.objects.values_list("job_id", flat=True).get(pk=run_id)
        # The job row first, then the run: the order start_run takes them in.
        job = SyncJob.objects.select_for_update(of=("self",)).select_related("connection").get(pk=job_id)
        run = SyncRun.objects.select_for_update().get(pk=run_id)
        if run.status != SyncRun.Status.RUNNING:
            raise ApplicationError(_("The run was closed meanwhile."), code="sync_run_closed", status=409)
        apply(job, run)
        job.cursor = next_cursor
        job.save(update_fields=["cursor"])
        run.pages += 1
        run.cursor_to = next_cursor
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["pages", "cursor_to", "heartbeat_at", "counts", "errors"])
        return run


def _count(run: SyncRun, **more: int) -> None:
    counts = dict(run.counts)
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value
    run.counts = counts


def covered_stores(connection: ErpConnection):
    """The active stores the connection covers: those chosen, or every one when none is."""
    stores = Store.objects.filter(is_active=True)
    return stores.filter(erp_connections=connection) if connection.stores.exists() else stores


def _apply_prices(page: Page) -> Callable[[SyncJob, SyncRun], None]:
    def apply(job: SyncJob, run: SyncRun) -> None:
        connection = job.connection
        all_stores = not connection.stores.exists()
        outcome = set_prices(items=page.items, stores=covered_stores(connection), may_set_hq_price=all_stores)
        tally = {"fetched": len(page.items), "applied": 0, "unchanged": 0, "rejected": 0}
        problems = []
        for result in outcome.results:
            if result.result == Result.REJECTED:
                tally["rejected"] += 1
                problems.append(f"{result.code or '#' + str(result.index)}: {result.reason.message}")
            elif result.result == Result.UNCHANGED:
                tally["unchanged"] += 1
            else:
                tally["applied"] += 1
        _count(run, **tally)
        _add_errors(run, problems)

    return apply


def _apply_stock(page: Page) -> Callable[[SyncJob, SyncRun], None]:
    def apply(job: SyncJob, run: SyncRun) -> None:
        stores = {s.code: s for s in covered_stores(job.connection).filter(code__in={c.store_code for c in page.items})}
        tally = {"fetched": 0, "applied": 0, "unchanged": 0, "rejected": 0}
        problems = []
        for count in page.items:
            tally["fetched"] += len(count.rows)
            store = stores.get(count.store_code)
            if store is None:
                tally["rejected"] += len(count.rows)
                problems.append(_("Store {code}: no such store for this ERP.").format(code=count.store_code))
                continue
            try:
                results = apply_stock_snapshot(store=store, taken_at=count.taken_at, rows=count.rows)
            except ApplicationError as error:
                tally["rejected"] += len(count.rows)
                problems.append(f"{count.store_code}: {error.message}")
                continue
            for result in results:
                if result.result in (Result.REJECTED, Result.CONFLICT_RESERVED):
                    problems.append(f"{count.store_code}/{result.sku_code}: {result.reason.message}")
                if result.result == Result.REJECTED:
                    tally["rejected"] += 1
                elif result.result in (Result.APPLIED, Result.CONFLICT_RESERVED):
                    tally["applied"] += 1
                else:  # unchanged, or stale: a count already applied
                    tally["unchanged"] += 1
        _count(run, **tally)
        _add_errors(run, problems)

    return apply


# --- orders --------------------------------------------------------------------------------------


def pending_order_events(*, job: SyncJob, limit: int, at: datetime | None = None) -> list[OrderEvent]:
    """The paid and completed events after the job's cursor (an OrderEvent id), oldest first."""
    settled = (at or timezone.now()) - EVENT_SETTLE
    after = int(job.cursor) if job.cursor.isdigit() else 0
    events = OrderEvent.objects.filter(_PAID | _COMPLETED, pk__gt=after, created_at__lte=settled)
    chosen = job.connection.stores.all()
    if chosen.exists():
        events = events.filter(
            Q(order__fulfilling_store__in=chosen)
            | Q(order__pickup_store__in=chosen)
            | Q(order__credited_store__in=chosen)
        )
    return list(
        events.select_related("order__pickup_store", "order__fulfilling_store", "order__credited_store")
        .prefetch_related("order__lines__sku")
        .order_by("pk")[:limit]
    )


def order_push(event: OrderEvent, connector: Connector) -> OrderPush:
    order = event.order
    kind = "completed" if event.to_status == Order.Status.COMPLETED else "paid"
    money = connector.from_fen

    def code(store):
        return store.code if store is not None else None

    payload = {
        "order_number": order.number,
        "event": kind,
        "event_id": event.pk,
        "at": event.created_at.isoformat(),
        "status": order.status,
        "fulfilment": order.fulfilment,
        "pickup_store": code(order.pickup_store),
        "fulfilling_store": code(order.fulfilling_store),
        "credited_store": code(order.credited_store),
        "member_id": order.member_id,
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
        "completed_at": order.completed_at.isoformat() if order.completed_at else None,
        "items": money(order.items_fen),
        "delivery_fee": money(order.delivery_fee_fen),
        "points_discount": money(order.points_discount_fen),
        "total": money(order.total_fen),
        "price_unit": connector.mapping["price_unit"],
        "lines": [
            {
                "sku_code": line.sku.code,
                "quantity": line.quantity,
                "unit_price": money(line.unit_price_fen),
                "line_total": money(line.line_total_fen),
            }
            for line in order.lines.all()
        ],
    }
    return OrderPush(order.number, kind, payload)


def _count_pushed(*, size: int, accepted: int, refused: list[str]) -> Callable[[SyncJob, SyncRun], None]:
    def apply(job: SyncJob, run: SyncRun) -> None:
        _count(run, fetched=size, pushed=accepted, rejected=len(refused))
        _add_errors(run, refused)

    return apply


def _push_orders(run: SyncRun, connector: Connector, deadline: float, batch_size: int) -> bool:
    """Push batches until none is left or the budget is spent; True if events are left."""
    while True:
        job = SyncJob.objects.select_related("connection").get(pk=run.job_id)
        events = pending_order_events(job=job, limit=batch_size)
        if not events:
            return False
        batch = [order_push(event, connector) for event in events]
        results = connector.push_orders(batch)  # no transaction open: may take its timeout
        accepted = sum(1 for r in results if r.accepted)
        refused = [
            _("Order {number} ({event}) refused: {error}").format(number=p.number, event=p.event, error=r.error or "—")
            for p, r in zip(batch, results, strict=True)
            if not r.accepted
        ]

        apply = _count_pushed(size=len(batch), accepted=accepted, refused=refused)
        # A refused order is recorded and passed: the cursor moves past the whole batch.
        run = _commit_page(run.pk, str(events[-1].pk), apply)
        if time.monotonic() > deadline:
            job.refresh_from_db(fields=["cursor"])
            return bool(pending_order_events(job=job, limit=1))


# --- the run -------------------------------------------------------------------------------------


def run_job(
    *,
    job_id: int,
    trigger: str = SyncRun.Trigger.BEAT,
    budget: timedelta = RUN_BUDGET,
    batch_size: int = ORDER_BATCH_SIZE,
) -> RunOutcome:
    """Run a job from its cursor, page by page, committing the cursor after each page.

    Any failure (the ERP unreachable, slow, answering an error or a payload out of contract)
    ends the run `failed` with its reason; the cursor stays after the last page applied, so the
    next run resumes there. A second start while a run is going is recorded as `skipped`.
    """
    run = start_run(job_id=job_id, trigger=trigger)
    if run.status == SyncRun.Status.SKIPPED:
        return RunOutcome(run)
    job = SyncJob.objects.select_related("connection").get(pk=job_id)
    deadline = time.monotonic() + budget.total_seconds()
    more = False
    try:
        if not job.connection.is_enabled:
            raise ConnectorError(_("The connection is disabled."))
        connector = connector_for(job.connection)
        if job.kind == SyncJob.Kind.PUSH_ORDERS:
            more = _push_orders(run, connector, deadline, batch_size)
        else:
            fetch, apply = (
                (connector.fetch_prices, _apply_prices)
                if job.kind == SyncJob.Kind.PULL_PRICES
                else (connector.fetch_stock, _apply_stock)
            )
            cursor = job.cursor
            while True:
                page = fetch(cursor)  # no transaction open
                run = _commit_page(run.pk, page.next_cursor, apply(page))
                cursor = page.next_cursor
                if page.done:
                    break
                if time.monotonic() > deadline:
                    more = True
                    break
    except ConnectorError as error:
        return RunOutcome(finish_run(run_id=run.pk, error=str(error)))
    except ApplicationError as error:
        return RunOutcome(finish_run(run_id=run.pk, error=error.message))
    except Exception as error:
        logger.exception("sync run %s of job %s failed", run.pk, job_id)
        finish_run(run_id=run.pk, error=_("Unexpected error: {kind}.").format(kind=type(error).__name__))
        raise
    return RunOutcome(finish_run(run_id=run.pk), more=more)


def due_job_ids(*, at: datetime | None = None) -> list[int]:
    """Claim the enabled jobs whose interval has passed since their last run (their last_run_at moves to now).

    Claimed under `SKIP LOCKED`, so two beats (or a beat and a slow worker) do not both start a job.
    """
    now = at or timezone.now()
    with transaction.atomic():
        candidates = (
            SyncJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(is_enabled=True, connection__is_enabled=True)
            .order_by("pk")
            .only("pk", "interval_minutes", "last_run_at")
        )
        # A few seconds' slack: a job every minute, seen by a beat every minute, is due each time.
        due = [
            job.pk
            for job in candidates
            if job.last_run_at is None or job.last_run_at + timedelta(minutes=job.interval_minutes) <= now + DUE_SLACK
        ]
        SyncJob.objects.filter(pk__in=due).update(last_run_at=now)
    return due


def queue_job(*, job_id: int, trigger: str = SyncRun.Trigger.MANUAL) -> None:
    """Start a run of the job in a worker once the caller's transaction commits ("Run now")."""
    from integrations import tasks

    if not SyncJob.objects.filter(pk=job_id).exists():
        raise NotFound(_("No such sync job."), code="sync_job_not_found")
    transaction.on_commit(lambda: tasks.run_sync_job.delay(job_id, trigger))
