"""Celery tasks of orders: thin, idempotent, by id."""

import time

from celery import shared_task

from orders import dispatch, fulfilment, notifications, services


@shared_task(name="orders.expire_unpaid_orders")
def expire_unpaid_orders() -> int:
    return services.expire_unpaid_orders()


@shared_task(name="orders.send_refund", autoretry_for=(Exception,), retry_backoff=30, max_retries=8)
def send_refund(refund_id: int) -> None:
    services.send_refund(refund_id=refund_id)


@shared_task(name="orders.reconcile_pending_payments")
def reconcile_pending_payments() -> int:
    return services.reconcile_pending_payments()


@shared_task(name="orders.close_wechat_pay_order", autoretry_for=(Exception,), retry_backoff=30, max_retries=5)
def close_wechat_pay_order(number: str) -> None:
    services.close_wechat_pay_order(number=number)


# Small batches: a batch holds its orders' row locks until it commits, and a clerk's accept waits
# for them. The job stops starting batches well inside Celery's 60 s soft time limit, so no batch
# is cut off and lost; the next run (30 s later) takes the rest.
SWEEP_BATCH_SIZE = 50
SWEEP_SECONDS = 40


@shared_task(name="orders.dispatch_order")
def dispatch_order(order_id: int) -> int | None:
    assignment = dispatch.dispatch_order(order_id=order_id)
    return assignment.pk if assignment else None


@shared_task(name="orders.sweep_dispatch")
def sweep_dispatch() -> dict[str, int]:
    """The beat job of dispatch: expired offers, stranded paid orders, deliveries to complete."""
    expired = 0
    started = time.monotonic()
    while time.monotonic() - started < SWEEP_SECONDS:  # each batch is its own transaction
        done = dispatch.expire_overdue_assignments(batch_size=SWEEP_BATCH_SIZE)
        expired += done
        if done < SWEEP_BATCH_SIZE:
            break
    return {
        "expired": expired,
        "dispatched": dispatch.dispatch_stranded_orders(),
        "completed": fulfilment.complete_delivered_orders(),
    }


@shared_task(name="orders.notify_store_of_assignment", autoretry_for=(Exception,), retry_backoff=30, max_retries=5)
def notify_store_of_assignment(assignment_id: int) -> list[str]:
    return notifications.notify_store_of_assignment(assignment_id=assignment_id)


@shared_task(name="orders.notify_shopper", autoretry_for=(Exception,), retry_backoff=30, max_retries=5)
def notify_shopper(order_id: int) -> bool:
    return notifications.notify_shopper(order_id=order_id)
