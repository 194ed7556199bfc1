"""The Celery app: workers and beat for settlement, sweeps, payment re-checks, notifications.

Delivery guarantees (acks late, redelivery after a visibility timeout, time limits) are
set in settings (CELERY_*). ``lock_bounded`` keeps a periodic job from waiting on row locks
held by someone else: see its docstring.
"""

import contextlib
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")

app = Celery("chargenet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@contextlib.contextmanager
def lock_bounded():
    """A transaction whose lock waits fail after ``CELERY_JOB_LOCK_TIMEOUT_MS`` (an
    OperationalError), for periodic jobs. Their candidate rows are taken with SKIP LOCKED,
    so runs never wait for each other; this bounds the waits that remain (foreign-key
    checks, rows a stuck request holds): the run gives up and releases what it locked
    instead of holding it until its time limit, and the next tick tries again."""
    from django.conf import settings
    from django.db import connection, transaction

    timeout = int(settings.CELERY_JOB_LOCK_TIMEOUT_MS)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {timeout}")
        yield
