"""The beat schedule: every periodic job of the system, in one place.

Each entry names a thin, idempotent task in the app that owns the work. Deadline
and expiry work runs as frequent sweepers over due rows, never as long ETA tasks.
"""

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {
    "expire-unpaid-orders": {"task": "orders.expire_unpaid_orders", "schedule": 30.0},
    # Offers past their one-hour deadline go to the next store; lost dispatches are retried.
    "sweep-dispatch": {"task": "orders.sweep_dispatch", "schedule": 30.0},
    # Earned points past HQ's validity, nightly at 03:10 (Asia/Shanghai, the Celery timezone).
    "expire-points": {"task": "members.expire_due_points", "schedule": crontab(hour=3, minute=10)},
    # Tiers also fall as purchases leave HQ's window: nightly at 03:30.
    "recompute-tiers": {"task": "members.recompute_all_tiers", "schedule": crontab(hour=3, minute=30)},
    # Calls left too long are missed; open calls follow the member's guide or home store: 03:50.
    "refresh-follow-ups": {"task": "members.refresh_follow_ups", "schedule": crontab(hour=3, minute=50)},
    # Commission becomes withdrawable once the return window has passed: hourly.
    "settle-commissions": {"task": "commissions.settle_due_commissions", "schedule": crontab(minute=15)},
    # WeChat transfers of approved payouts: sent if WeChat Pay never got them, recorded when final.
    "reconcile-payouts": {"task": "commissions.reconcile_payouts", "schedule": 300.0},
    "reconcile-pending-payments": {"task": "orders.reconcile_pending_payments", "schedule": 120.0},
    # The ERP API's call log keeps O2O_API_CALL_LOG_DAYS days: older rows go nightly at 04:10.
    "prune-api-calls": {"task": "integrations.prune_api_calls", "schedule": crontab(hour=4, minute=10)},
    # Webhooks: stock changes coalesced per store, then due deliveries sent and failed ones retried.
    "deliver-webhooks": {"task": "integrations.deliver_webhooks", "schedule": 10.0},
    # Idempotency keys of ERP writes are kept 24 hours (older ones already count as gone): 04:20.
    "prune-idempotent-requests": {
        "task": "integrations.prune_idempotent_requests",
        "schedule": crontab(hour=4, minute=20),
    },
    # Scheduled ERP sync: each job says its own interval; this starts the due ones every minute.
    "run-due-sync-jobs": {"task": "integrations.run_due_sync_jobs", "schedule": 60.0},
}
