"""The Celery app: workers and beat for settlement, sweeps, payment re-checks, notifications."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")

app = Celery("chargenet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
