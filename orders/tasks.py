"""Celery tasks of orders: thin, idempotent, by id."""

from celery import shared_task

from orders import services


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
