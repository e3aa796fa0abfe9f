"""HQ's sync job page in a real browser: the latest runs with their progress, reloading while one runs,
and "Run now" (a start while a run is going is recorded as skipped)."""

from datetime import timedelta

from django.utils import timezone

from integrations.models import ErpConnection, SyncJob, SyncRun


def test_the_job_page_shows_progress_and_run_now_records_a_skipped_start(live_server, browser, admin_user, screenshot):
    connection = ErpConnection.objects.create(
        name="总部 ERP", base_url="http://127.0.0.1:9", auth_token="Bearer s3cret"
    )
    job = SyncJob.objects.create(connection=connection, kind=SyncJob.Kind.PULL_STOCK, cursor="2")
    started = timezone.now() - timedelta(minutes=1)
    SyncRun.objects.create(
        job=job,
        status=SyncRun.Status.FAILED,
        started_at=started - timedelta(hours=1),
        finished_at=started - timedelta(hours=1) + timedelta(seconds=3),
        duration_ms=3000,
        pages=2,
        counts={"fetched": 40, "applied": 38, "unchanged": 0, "rejected": 2, "pushed": 0},
        errors=["GET http://erp/stock: HTTP 500."],
        cursor_to="2",
    )
    SyncRun.objects.create(job=job, started_at=started, heartbeat_at=timezone.now(), pages=3, cursor_from="2")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en")
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/integrations/syncjob/{job.pk}/change/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_selector("#run-now")  # the job page has loaded, not only begun to

    assert page.locator('meta[http-equiv="refresh"]').count() == 1  # a run is going
    assert "3 pages" in page.content()
    page.click("#run-now")
    page.wait_for_selector(".messagelist")
    screenshot(page, "erp-sync-job")

    assert SyncRun.objects.filter(job=job, status=SyncRun.Status.SKIPPED, trigger=SyncRun.Trigger.MANUAL).count() == 1
    page.goto(f"{live_server.url}/admin/integrations/erpconnection/{connection.pk}/change/")
    assert "s3cret" not in page.content()
    screenshot(page, "erp-sync-connection")
    context.close()
