"""Celery tasks of commissions: thin, idempotent."""

import logging

from celery import shared_task

from commissions import services
from integrations.vendors.wechat_pay import PaymentGatewayError, PaymentNotConfigured

logger = logging.getLogger(__name__)


@shared_task(name="commissions.settle_due_commissions")
def settle_due_commissions() -> int:
    return services.settle_due_commissions()


@shared_task(name="commissions.send_payout", acks_late=True)
def send_payout(payout_id: int) -> None:
    try:
        services.send_payout(payout_id=payout_id)
    except (PaymentGatewayError, PaymentNotConfigured) as exc:
        # Left to the reconciler, which asks WeChat Pay again a few minutes later.
        logger.warning("payout %s not sent yet: %s", payout_id, exc)


@shared_task(name="commissions.reconcile_payouts")
def reconcile_payouts() -> int:
    return services.reconcile_payouts()
