"""Celery tasks of integrations: thin, idempotent."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from integrations import services


@shared_task(name="integrations.prune_api_calls")
def prune_api_calls() -> int:
    return services.prune_api_calls(older_than=timedelta(days=settings.O2O_API_CALL_LOG_DAYS))
