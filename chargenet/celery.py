"""The Celery app: workers and beat for settlement, sweeps, payment re-checks, notifications.

Delivery guarantees (acks late, redelivery after a visibility timeout, time limits) are
set in settings (CELERY_*). ``lock_bounded`` keeps a periodic job from waiting on row locks
held by someone else: see its docstring.
"""

import contextlib
import logging
import os
import threading

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


# ---- Queueing tasks after commit -------------------------------------------------------

_gathering = threading.local()
logger = logging.getLogger(__name__)


def task_queue_on_commit(task, *args) -> None:
    """Queue ``task.delay(*args)`` once the current transaction commits. A broker that is
    down is logged, not raised: the change is committed and the beat sweeps catch up.

    Inside `tasks_gathered` the sends are kept instead, for its owner to make later in one
    go (`tasks_send`): the gateway's group commit uses it so that a batch of many piles'
    messages is answered without waiting for one broker round trip per message."""
    from django.db import transaction

    transaction.on_commit(lambda: _send_or_gather(task, args))


def _send_or_gather(task, args: tuple) -> None:
    gathered = getattr(_gathering, "sends", None)
    if gathered is not None:
        gathered.append((task, args))
    else:
        tasks_send([(task, args)])


@contextlib.contextmanager
def tasks_gathered():
    """Collect the sends `task_queue_on_commit` would make while inside; yields the list."""
    sends: list = []
    outer = getattr(_gathering, "sends", None)
    _gathering.sends = sends
    try:
        yield sends
    finally:
        _gathering.sends = outer


def tasks_send(sends: list) -> None:
    """Send gathered ``(task, args)`` pairs. Tasks marked ``merges_lists`` (one list
    argument, e.g. event ids) are sent once with the lists joined."""
    merged: dict[str, tuple] = {}
    for task, args in sends:
        if getattr(task, "merges_lists", False):
            held = merged.setdefault(task.name, (task, []))
            held[1].extend(args[0])
            continue
        _send(task, args)
    for task, joined in merged.values():
        _send(task, (joined,))


def _send(task, args: tuple) -> None:
    try:
        task.delay(*args)
    except Exception:  # the broker is down: the beat sweeps pick the work up
        logger.warning("task %s%r not queued; its sweep will catch up", task.name, args[:1])
