"""Celery tasks of integrations: thin, idempotent."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from integrations import idempotency, services, sync
from integrations.models import SyncRun


@shared_task(name="integrations.prune_api_calls")
def prune_api_calls() -> int:
    return services.prune_api_calls(older_than=timedelta(days=settings.O2O_API_CALL_LOG_DAYS))


@shared_task(name="integrations.deliver_webhooks")
def deliver_webhooks() -> int:
    """The beat sweeper: coalesce pending stock changes into events, then send every due delivery."""
    from integrations import delivery, outbox

    outbox.collect_stock_changes()
    return delivery.deliver_due_webhooks()


@shared_task(name="integrations.deliver_webhooks_now")
def deliver_webhooks_now(delivery_ids: list[int]) -> int:
    """Send deliveries just committed, if still due; a second run finds them claimed or done."""
    from integrations import delivery

    return delivery.deliver_now(delivery_ids=delivery_ids)


@shared_task(name="integrations.prune_idempotent_requests")
def prune_idempotent_requests() -> int:
    return idempotency.prune_idempotent_requests()


@shared_task(name="integrations.run_due_sync_jobs")
def run_due_sync_jobs() -> list[int]:
    """Every minute: start a run of each enabled job whose interval has passed."""
    due = sync.due_job_ids()
    for job_id in due:
        run_sync_job.delay(job_id, SyncRun.Trigger.BEAT)
    return due


@shared_task(name="integrations.run_sync_job")
def run_sync_job(job_id: int, trigger: str = SyncRun.Trigger.BEAT) -> int:
    """One run of a job; a run stopped by its time budget with pages left is followed by the next at once."""
    outcome = sync.run_job(job_id=job_id, trigger=trigger)
    if outcome.more:
        run_sync_job.delay(job_id, trigger)
    return outcome.run.pk
