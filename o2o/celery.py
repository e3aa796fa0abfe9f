"""The Celery application: workers and beat for dispatch, deadlines and ERP sync.

Tasks are thin and idempotent: they take ids, load rows and call a service.
The broker is Redis in production and kombu's filesystem transport in the
embedded demo (see settings), so both modes run real workers.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "o2o.settings")

app = Celery("o2o")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
