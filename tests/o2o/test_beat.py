"""The beat schedule reaches Celery and names only tasks that exist."""

from o2o.celery import app


def test_every_scheduled_job_is_a_registered_task():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"orders.expire_unpaid_orders", "orders.reconcile_pending_payments"} <= scheduled
    assert scheduled <= set(app.tasks)
