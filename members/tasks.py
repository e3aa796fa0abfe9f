"""Celery tasks of members: thin, idempotent."""

from celery import shared_task

from members import services


@shared_task(name="members.expire_due_points")
def expire_due_points() -> int:
    return services.expire_due_points()
