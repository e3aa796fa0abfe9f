"""Celery tasks of commissions: thin, idempotent."""

from celery import shared_task

from commissions import services


@shared_task(name="commissions.settle_due_commissions")
def settle_due_commissions() -> int:
    return services.settle_due_commissions()
