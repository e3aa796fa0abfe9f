"""Celery tasks of members: thin, idempotent."""

import time

from celery import shared_task

from members import campaigns, services


@shared_task(name="members.expire_due_points")
def expire_due_points() -> int:
    return services.expire_due_points()


@shared_task(name="members.recompute_all_tiers")
def recompute_all_tiers() -> int:
    return services.recompute_all_tiers()


@shared_task(name="members.refresh_follow_ups")
def refresh_follow_ups() -> dict[str, int]:
    return services.refresh_follow_ups()


# A run stops taking members well inside Celery's 60 s soft time limit (a provider call may take
# its 5 s timeout), then hands the rest to a new run; a member is never cut off mid-decision.
CAMPAIGN_BATCH_SIZE = 50
CAMPAIGN_SECONDS = 40
CAMPAIGN_WAIT_SECONDS = 30


@shared_task(name="members.send_campaign")
def send_campaign(campaign_id: int) -> int:
    """Send a queued campaign batch by batch until it is done or cancelled; returns members handled."""
    until = time.monotonic() + CAMPAIGN_SECONDS
    handled = 0
    while time.monotonic() < until:
        result = campaigns.send_campaign_batch(campaign_id=campaign_id, batch_size=CAMPAIGN_BATCH_SIZE, until=until)
        handled += result.handled
        if result.finished:
            return handled
        if result.handled == 0:
            # Every member is handled but another run is still with the provider: look again later.
            send_campaign.apply_async((campaign_id,), countdown=CAMPAIGN_WAIT_SECONDS)
            return handled
    send_campaign.delay(campaign_id)
    return handled
