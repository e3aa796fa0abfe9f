"""Celery tasks of members: thin, idempotent."""

from celery import shared_task

from members import services


@shared_task(name="members.expire_due_points")
def expire_due_points() -> int:
    return services.expire_due_points()


@shared_task(name="members.recompute_all_tiers")
def recompute_all_tiers() -> int:
    return services.recompute_all_tiers()


@shared_task(name="members.refresh_follow_ups")
def refresh_follow_ups() -> dict[str, int]:
    return services.refresh_follow_ups()
